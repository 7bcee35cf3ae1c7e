"""The destination on disk: resolving a safe relative path without following symlinks,
hashing a local file, and OS errors as our types (temp names and their sweep: ``temps``).

Every call here is blocking filesystem I/O: callers on the event loop run them in a worker
thread (a few ``lstat``s excepted, which cost less than the thread hop).

OS errors become ``LocalDiskError`` (fatal: disk full, read-only, permission) or
``LocalFileError`` (this file only) here, at the boundary.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from xnatsync.errors import LocalDiskError, LocalFileError, UnsafePathError

HASH_BLOCK = 4 << 20

_FATAL_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO}
)


def os_error(exc: OSError, path: Path | str) -> LocalDiskError | LocalFileError:
    """Convert an OSError on DEST into our type: fatal for the disk, or this file only."""
    reason = exc.strerror or str(exc)
    if exc.errno in _FATAL_ERRNOS:
        return LocalDiskError(f"cannot write {path}: {reason}")
    return LocalFileError(f"cannot write {path}: {reason}")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def resolve_under(dest: Path, rel: PurePosixPath, known_dirs: set[str] | None = None) -> Path:
    """``dest / rel``, refusing a relative path that escapes or an existing symlink component.

    I/O: one ``lstat`` per existing component below ``dest`` (``dest`` itself may be a link).
    ``known_dirs``, if given, remembers folders (relative, "/"-joined) already found to be real
    directories, so that the files of one folder cost one ``lstat`` each, not one per level.
    """
    parts = rel.parts
    if rel.is_absolute() or any(part in ("", ".", "..") for part in parts):
        raise UnsafePathError(f"unsafe relative path {str(rel)!r}")
    start = 0
    if known_dirs:
        start = next((i for i in range(len(parts) - 1, 0, -1)
                      if "/".join(parts[:i]) in known_dirs), 0)  # fmt: skip
    root = os.fspath(dest)
    current = os.path.join(root, *parts[:start])  # strings: a file costs one lstat, no Paths
    for i in range(start, len(parts)):
        current = os.path.join(current, parts[i])
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            break
        if stat.S_ISLNK(mode):
            raise UnsafePathError(f"refusing to follow symlink {current!r} under {dest}")
        if known_dirs is not None and stat.S_ISDIR(mode) and i < len(parts) - 1:
            known_dirs.add("/".join(parts[: i + 1]))
    return Path(root, *parts)


def sizes_on_disk(dest: Path, relpaths: Iterable[PurePosixPath]) -> dict[str, int]:
    """The size of each regular file at ``dest/relpath`` (symlinks and the absent left out).

    Blocking: one ``lstat`` per folder, and one per file only in folders that exist, so a
    destination that is still empty costs one call per resource folder."""
    sizes: dict[str, int] = {}
    folders: dict[PurePosixPath, bool] = {}
    root = os.fspath(dest)
    for rel in relpaths:
        parent = rel.parent
        exists = folders.get(parent)
        if exists is None:
            exists = folders[parent] = os.path.isdir(os.path.join(root, parent))
        if not exists:
            continue
        try:
            st = os.lstat(os.path.join(root, rel))
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            sizes[str(rel)] = st.st_size
    return sizes


def unchanged_on_disk(dest: Path, rows: list[tuple[str, int, int, str]]) -> bool:
    """Whether every file of ``owner_rows`` still has its recorded size and mtime (one lstat
    each; blocking, and free of the journal's connection, so it may run in a worker thread)."""
    root = os.fspath(dest) + os.sep
    for relpath, size, mtime_ns, _state in rows:
        try:
            st = os.lstat(root + relpath)
        except OSError:
            return False
        if st.st_size != size or st.st_mtime_ns != mtime_ns or not stat.S_ISREG(st.st_mode):
            return False
    return True


def hash_file(path: Path) -> tuple[int, str, int]:
    """Size, MD5 and mtime_ns of a local file (blocking; run it in a worker thread)."""
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    try:
        with open(path, "rb", buffering=0) as f:
            while block := f.read(HASH_BLOCK):
                md5.update(block)
                size += len(block)
            mtime_ns = os.fstat(f.fileno()).st_mtime_ns
    except OSError as exc:
        raise LocalFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return size, md5.hexdigest(), mtime_ns
