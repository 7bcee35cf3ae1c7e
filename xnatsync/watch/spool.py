"""The spool on disk: scanning it, looking at files, and moving files out of it (quarantine,
after-upload). Blocking functions: the daemon runs them in worker threads.

Invariants:
* Only regular files are considered; symlinks, hidden names (``rules.hidden``) and anything
  that is not a file are passed over, never followed.
* A file is moved out of the spool with ``os.replace`` when the target is on the same
  filesystem, else copied (with fsync) and then unlinked; the target's folder is made. An
  existing target is never overwritten: a ``.1``, ``.2`` … suffix is added.
* The quarantine keeps the file's path below the spool and writes ``NAME.reason`` beside it
  (what was wrong, where it came from, when).
* Nothing is ever written into the spool.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path, PurePath

from xnatsync.watch.rules import hidden

BATCH = 500

Look = tuple[Path, int, int]  # path, size, mtime_ns


def relative(spool: Path, path: Path) -> PurePath:
    """``path`` below the spool (``ValueError`` if it is not below it)."""
    return PurePath(os.path.relpath(path, spool)) if path.is_absolute() else PurePath(path)


def wanted(spool: Path, path: Path) -> bool:
    """Below the spool and not hidden."""
    rel = relative(spool, path)
    return not rel.parts or (rel.parts[0] != ".." and not hidden(rel))


def scan(spool: Path, batch: int = BATCH) -> Iterator[list[Look]]:
    """Every regular, non-hidden file below the spool, a batch at a time (memory stays flat:
    only the folders still to visit are held). Unreadable folders are passed over."""
    pending = [spool]
    out: list[Look] = []
    while pending:
        folder = pending.pop()
        try:
            entries = os.scandir(folder)
        except OSError:
            continue
        with entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(info.st_mode):
                    pending.append(Path(entry.path))
                elif stat.S_ISREG(info.st_mode):
                    out.append((Path(entry.path), info.st_size, info.st_mtime_ns))
                    if len(out) >= batch:
                        yield out
                        out = []
    if out:
        yield out


def look(path: Path) -> Look | None:
    """The file's size and mtime now, or None if it is gone or not a regular file."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return (path, info.st_size, info.st_mtime_ns)


def quarantine(spool: Path, folder: Path, path: Path, reason: str) -> Path | None:
    """Move ``path`` to ``folder`` (its path below the spool kept) with a ``.reason`` file;
    the new place, or None if the file is already gone."""
    target = move_out(spool, folder, path)
    if target is not None:
        note = target.with_name(target.name + ".reason")
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        note.write_text(f"{reason}\nfrom: {path}\nat: {stamp}\n", "utf-8")
    return target


def move_out(spool: Path, folder: Path, path: Path) -> Path | None:
    """Move ``path`` below ``folder`` at its path below the spool; None if it is gone."""
    target = _free(folder / relative(spool, path))
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno != 18:  # EXDEV: another filesystem
            raise
        _copy_across(path, target)
    return target


def _copy_across(path: Path, target: Path) -> None:
    temp = target.with_name(f".{target.name}.moving")
    with open(path, "rb") as source, open(temp, "wb") as sink:
        shutil.copyfileobj(source, sink, 1 << 20)
        sink.flush()
        os.fsync(sink.fileno())
    shutil.copystat(path, temp)
    os.replace(temp, target)
    os.unlink(path)


def _free(target: Path) -> Path:
    """``target``, or with the first ``.n`` suffix no file has."""
    n, candidate = 0, target
    while os.path.lexists(candidate):
        n += 1
        candidate = target.with_name(f"{target.name}.{n}")
    return candidate


def delete(path: Path) -> bool:
    """Remove a sent file; False if it was already gone."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True
