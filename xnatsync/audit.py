"""``xnatsync status`` and ``xnatsync verify``: read a destination's journal and its files.

``status_of_dest`` summarises a destination's journals: the one of an unsharded pull, or one
per shard (``xnatsync.shards``), saying which shards finished, failed, run, died or never ran.

``verify`` re-hashes every file the journal says is done, compares it with the MD5 recorded at
download and with the digest the server listed then, and marks mismatches failed so that the
next pull fetches them again. It never deletes or rewrites a file.
"""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any

from xnatsync.errors import JournalReadOnlyError, UsageError, XnatSyncError
from xnatsync.journal import JOURNAL, Entry, Journal
from xnatsync.localfs import hash_file, resolve_under
from xnatsync.lock import STATE_DIR, pid_alive, read_lock
from xnatsync.model import FileState
from xnatsync.paths import safe_relpath
from xnatsync.shards import Shard, shard_named

VERIFY_BATCH = 1000  # journal rows read and hashed at a time


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


def status_of_dest(dest: Path, folder: Path | None = None) -> tuple[str, bool]:
    """The status of DEST's journals in ``folder`` (default DEST/.xnatsync), and whether the
    pull is complete. Unsharded: the one journal's ``status`` (complete as today: True).
    Sharded: the shard count whose journals ran last; complete when each of its N shards' last
    run ended "ok" and none is running. Only reads."""
    folder = folder if folder is not None else dest / STATE_DIR
    by_count: dict[int, dict[int, Path]] = {}
    for path in sorted(folder.glob("journal.shard-*.db")):
        shard = shard_named(path.name)
        if shard is not None:
            by_count.setdefault(shard.count, {})[shard.index] = path
    plain = folder / JOURNAL.name
    if not by_count:
        return status(plain), True
    runs = {n: _shard_runs(dest, paths) for n, paths in by_count.items()}
    count = max(runs, key=lambda n: max(r.started for r in runs[n].values()))
    text, complete = _shard_table(count, runs[count], folder)
    lines = [text]
    for n in sorted(set(runs) - {count}):
        lines.append(
            f"earlier shard count {n}: {len(runs[n])} journals (their done files are taken "
            "over by the current shards as they run)"
        )
    if plain.exists():
        with _open(plain, readonly=True) as journal:
            last = journal.last_run()
        said = "never run" if last is None else f"#{last['id']} {last['status']}"
        lines.append(f"unsharded journal {plain}: last run {said}")
    return "\n".join(lines), complete


class _ShardRun:
    """What one shard's journal and lock say."""

    def __init__(self, summary: dict[str, Any], state: str, started: float) -> None:
        self.summary = summary
        self.state = state
        self.started = started


def _shard_runs(dest: Path, paths: dict[int, Path]) -> dict[int, _ShardRun]:
    """Each shard's journal summary and state. A live lock says "running" whatever the
    journal says: a run on a network filesystem holds its journal exclusively, and what
    can be read of it then is its state before the run."""
    out = {}
    for index, path in paths.items():
        shard = shard_named(path.name)
        assert shard is not None
        live = _liveness(dest / STATE_DIR / shard.lock_name)
        try:
            with _open(path, readonly=True) as journal:
                info = journal.summary()
        except XnatSyncError as exc:
            empty = {"files": 0, "bytes": 0}
            info = {"states": {s.value: empty for s in FileState}, "last_run": None}
            out[index] = _ShardRun(info, live or f"unreadable ({exc})", path.stat().st_mtime)
            continue
        last = info["last_run"]
        state = "never ran" if last is None else str(last["status"])
        if live is not None or state == "running":
            state = live or "killed"
        out[index] = _ShardRun(info, state, float(last["started"]) if last else 0.0)
    return out


def _liveness(lock: Path) -> str | None:
    """ "running" while the shard's lock is held by a live process; None otherwise."""
    holder = read_lock(lock)
    if holder is None or holder.pid < 0:
        return None
    if holder.host != socket.gethostname():
        return f"running on {holder.host} (pid {holder.pid}), or died there"
    return "running" if pid_alive(holder.pid) else None


def _shard_table(count: int, runs: dict[int, _ShardRun], folder: Path) -> tuple[str, bool]:
    lines = [f"{count} shards (hash v{Shard(0, count).version}), journals in {folder}"]
    done = failed = size = 0
    unfinished = []
    for index in range(count):
        run = runs.get(index)
        if run is None:
            unfinished.append(index)
            lines.append(f"  shard {index}/{count}: never ran")
            continue
        states = run.summary["states"]
        done += states["done"]["files"]
        size += states["done"]["bytes"]
        failed += states["failed"]["files"]
        if run.state != "ok":
            unfinished.append(index)
        lines.append(
            f"  shard {index}/{count}: {run.state:<10} {states['done']['files']:>9} done "
            f"{states['done']['bytes']:>15} bytes {states['failed']['files']:>6} failed"
        )
    lines.append(f"total: {done} files done ({size} bytes), {failed} failed")
    if unfinished:
        shards = ", ".join(str(i) for i in unfinished)
        lines.append(f"incomplete: shards {shards} of {count} have not finished without error")
    else:
        lines.append(f"complete: all {count} shards finished")
    return "\n".join(lines), not unfinished


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
    dest: Path,
    journal_path: Path,
    workers: int = 2,
    batch: int = VERIFY_BATCH,
    *,
    readonly: bool = False,
) -> tuple[str, bool]:
    """Re-hash every done file; return a report and whether all of them matched.

    Rows are read and hashed a batch at a time, so memory does not grow with the mirror; only
    the mismatches are kept, and marked failed once the reading is over, so that the next pull
    fetches them. A journal that may only be read (or ``readonly``) is still checked: the
    report then says that the mismatches were not recorded."""
    checked, bad, text = _verify_journal(dest, journal_path, workers, batch, readonly=readonly)
    return f"verified {checked - bad} of {checked} files{text}", not bad


def verify_dest(dest: Path, folder: Path | None = None, workers: int = 2) -> tuple[str, bool]:
    """``verify`` every journal of DEST in ``folder`` (default DEST/.xnatsync): the one of an
    unsharded pull, or each shard's (and the unsharded one, if there is one). A file done in
    several journals (kept by both shard counts after a change of count) is hashed for each,
    and a mismatch is marked in each: every run that holds the file fetches it again."""
    folder = folder if folder is not None else dest / STATE_DIR
    plain = folder / JOURNAL.name
    shards = [p for p in sorted(folder.glob("journal.shard-*.db")) if shard_named(p.name)]
    if not shards:
        return verify(dest, plain, workers)
    lines, total, wrong = [], 0, 0
    for path in [plain, *shards] if plain.exists() else shards:
        checked, bad, text = _verify_journal(dest, path, workers, VERIFY_BATCH, readonly=False)
        lines.append(f"{path.name}: verified {checked - bad} of {checked} files{text}")
        total, wrong = total + checked, wrong + bad
    lines.append(f"verified {total - wrong} of {total} files in {len(lines)} journals")
    return "\n".join(lines), not wrong


def _verify_journal(
    dest: Path, journal_path: Path, workers: int, batch: int, *, readonly: bool
) -> tuple[int, int, str]:
    """(files checked, mismatches, the report's lines after its first, each after a newline)."""
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
    lines = [f"  {e.relpath}: {why}" for e, why in bad]
    if bad and readonly:
        lines.append(
            f"not recorded: the journal {journal_path} may only be read, so the next pull "
            "does not know of these; run verify where it is writable, or delete the files"
        )
    elif bad:
        lines.append("the next pull downloads these again")
    return checked, len(bad), "".join(f"\n{line}" for line in lines)
