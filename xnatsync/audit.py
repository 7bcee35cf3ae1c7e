"""``xnatsync status`` and ``xnatsync verify``: read a destination's journal and its files.

``verify`` re-hashes every file the journal says is done, compares it with the MD5 recorded at
download and with the digest the server listed then, and marks mismatches failed so that the
next pull fetches them again. It never deletes or rewrites a file.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path

from xnatsync.errors import JournalReadOnlyError, UsageError, XnatSyncError
from xnatsync.journal import Entry, Journal
from xnatsync.localfs import hash_file, resolve_under
from xnatsync.model import FileState
from xnatsync.paths import safe_relpath


def _open(journal_path: Path, *, readonly: bool = False) -> Journal:
    if not journal_path.exists():
        raise UsageError(f"no journal at {journal_path} (has this destination been pulled?)")
    return Journal.open(journal_path, readonly=readonly)


def status(journal_path: Path) -> str:
    """A few lines: files and bytes per state, the last run, recent failures. Only reads (a
    read-only mount, an auditor without write access)."""
    with _open(journal_path, readonly=True) as journal:
        info = journal.summary()
    lines = [f"journal {journal_path}"]
    for state in FileState:
        counts = info["states"][state.value]
        lines.append(f"  {state.value:<12} {counts['files']:>9} files {counts['bytes']:>15} bytes")
    last = info["last_run"]
    if last is not None:
        lines.append(f"last run #{last['id']}: {last['command']} → {last['status']}")
    lines += [f"  failed: {f['key']}: {f['error']}" for f in info["failures"]]
    return "\n".join(lines)


def check_entry(dest: Path, entry: Entry) -> str | None:
    """None if the file at its place has the recorded size and MD5, else what is wrong."""
    try:
        path = resolve_under(dest, safe_relpath(entry.relpath, entry.key))
    except XnatSyncError as exc:
        return str(exc)
    if not path.is_file():
        return "missing"
    try:
        size, md5, _mtime = hash_file(path)
    except XnatSyncError as exc:
        return str(exc)
    if size != entry.size:
        return f"size {size}, journal says {entry.size}"
    if md5 != entry.md5:
        return f"MD5 {md5}, journal says {entry.md5}"
    if entry.remote_digest and md5 != entry.remote_digest:
        return f"MD5 {md5}, the server listed {entry.remote_digest}"
    return None


def verify(
    dest: Path, journal_path: Path, workers: int = 2, batch: int = 1000, *, readonly: bool = False
) -> tuple[str, bool]:
    """Re-hash every done file; return a report and whether all of them matched.

    Rows are read and hashed a batch at a time, so memory does not grow with the mirror; only
    the mismatches are kept, and marked failed once the reading is over, so that the next pull
    fetches them. A journal that may only be read (or ``readonly``) is still checked: the
    report then says that the mismatches were not recorded."""
    checked = 0
    bad: list[tuple[Entry, str]] = []
    if not readonly:
        try:
            journal = _open(journal_path)
        except JournalReadOnlyError:
            readonly = True
    if readonly:
        journal = _open(journal_path, readonly=True)
    with journal, ThreadPoolExecutor(workers) as pool:
        rows = journal.iter_done()
        while entries := list(islice(rows, batch)):
            verdicts = pool.map(lambda e: check_entry(dest, e), entries)
            bad += [(e, why) for e, why in zip(entries, verdicts, strict=True) if why is not None]
            checked += len(entries)
        if not readonly:
            for entry, why in bad:
                journal.mark_corrupt(entry.key, f"verify: {why}")
    lines = [f"verified {checked - len(bad)} of {checked} files"]
    lines += [f"  {e.relpath}: {why}" for e, why in bad]
    if bad and readonly:
        lines.append(
            f"not recorded: the journal {journal_path} may only be read, so the next pull "
            "does not know of these; run verify where it is writable, or delete the files"
        )
    elif bad:
        lines.append("the next pull downloads these again")
    return "\n".join(lines), not bad
