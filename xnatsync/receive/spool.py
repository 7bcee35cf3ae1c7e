"""The spool folder: each received instance becomes one complete file, or nothing.

Invariants (``Spool.store``, in this order):

1. Bytes go to a temp file in the spool's own hidden folder ``SPOOL/.xnatsync-receive/``
   (same filesystem, so the rename below is atomic), named
   ``{final name}.{pid}.{random}.part`` and opened ``O_CREAT|O_EXCL|O_NOFOLLOW``: two stores of
   one instance at once never share a temp, and a planted symlink cannot redirect the write.
2. All bytes are written, then the file is fsynced.
3. ``os.replace`` gives it its final name ``SPOOL/{name}``: a reader (the ``watch`` daemon)
   sees no file or the whole file, never a partial one; a repeated instance replaces the
   earlier file (one file per SOP Instance UID, never two).
4. The spool folder is fsynced, so the name survives a power cut.

Only after all four has the instance been stored; any failure on the way removes the temp and
raises ``LocalDiskError`` (the disk: full, read-only, no permission) or ``LocalFileError``
(converted by ``localfs.os_error``), and the caller must not acknowledge the instance.

The spool folder itself is never created: a missing spool (a share not mounted) is an error,
not a new empty folder on the wrong disk. Blocking filesystem I/O: called from pynetdicom's
association threads, never from an event loop.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path

from xnatsync.errors import LocalDiskError, UsageError
from xnatsync.localfs import fsync_dir, os_error

TMP_DIR = ".xnatsync-receive"
PART_SUFFIX = ".part"
STALE_AFTER = 3600.0  # a temp this old belongs to a receiver that died (a store takes seconds)

# os.open's and os.write's shapes: the seams through which tests fill or lock the disk
Open = Callable[[Path, int, int], int]
Write = Callable[[int, memoryview], int]
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class Spool:
    """Writes instances into ``root`` by ``store``; ``prepare`` first, once."""

    def __init__(
        self,
        root: Path,
        *,
        opener: Open = os.open,
        write: Write = os.write,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = root
        self.tmp = root / TMP_DIR
        self._open = opener
        self._write = write
        self._clock = clock

    def prepare(self) -> int:
        """Check the spool (an existing, writable folder), make its temp folder, remove temps
        left by a receiver that died; return how many were removed."""
        if not self.root.is_dir():
            what = "does not exist" if not self.root.exists() else "is not a folder"
            raise UsageError(f"spool {self.root} {what}")
        try:
            self.tmp.mkdir(exist_ok=True)
            probe = self._create(f"probe.{os.getpid()}")
            os.close(probe[0])
            os.unlink(probe[1])
        except OSError as exc:
            raise LocalDiskError(
                f"spool {self.root} is not writable: {exc.strerror or exc}"
            ) from exc
        return self._sweep()

    def store(self, name: str, parts: Sequence[bytes]) -> Path:
        """Write ``parts`` as the file ``name`` in the spool, atomically and durably."""
        if not name or "/" in name or "\0" in name or name.startswith("."):
            raise ValueError(f"not a spool file name: {name!r}")
        final = self.root / name
        try:
            fd, temp = self._create(name)
        except OSError as exc:
            raise os_error(exc, final) from exc
        try:
            try:
                for part in parts:
                    self._write_all(fd, memoryview(part))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, final)
            fsync_dir(self.root)
        except OSError as exc:
            with suppress(OSError):
                os.unlink(temp)
            raise os_error(exc, final) from exc
        except BaseException:
            with suppress(OSError):
                os.unlink(temp)
            raise
        return final

    def _create(self, name: str) -> tuple[int, Path]:
        temp = self.tmp / f"{name}.{os.getpid()}.{secrets.token_hex(4)}{PART_SUFFIX}"
        try:
            return self._open(temp, _CREATE, 0o666), temp
        except FileNotFoundError:
            if not self.root.is_dir():  # the spool is gone (unmounted?): never recreate it
                raise
            self.tmp.mkdir(exist_ok=True)  # only our temp folder, removed by someone
            return self._open(temp, _CREATE, 0o666), temp

    def _write_all(self, fd: int, data: memoryview) -> None:
        while data:
            written = self._write(fd, data)
            data = data[written:]

    def _sweep(self) -> int:
        removed = 0
        cutoff = self._clock() - STALE_AFTER
        for entry in os.scandir(self.tmp):
            if not entry.name.endswith(PART_SUFFIX) or not entry.is_file(follow_symlinks=False):
                continue
            with suppress(FileNotFoundError):
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
        return removed
