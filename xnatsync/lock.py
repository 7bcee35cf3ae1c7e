"""One run per DEST: the lock file DEST/.xnatsync/lock, without ``flock``.

The lock is a small JSON file (host, pid, start time, a random token) created with
``O_CREAT | O_EXCL``, which is atomic on local filesystems and on NFSv3+ (``flock`` silently
"succeeds" on some NFS/Lustre mounts, so it is never used).

Invariants:

* A second run fails fast with ``LockedError`` naming host, pid and start time.
* Staleness is decided by PID liveness on the same host, never by the lock's age (clocks skew,
  laptops sleep). A lock held by a dead PID on this host is taken over; a lock from another
  host is never taken over automatically: the message says which file to remove. A lock
  naming this very process (host and PID) that this process does not hold is a dead run's
  too: a container's run is often PID 1, and the pod that replaces a killed one has the same
  hostname (a Kubernetes Indexed Job's) and PID.
* Release removes the file only if it still holds our token (a lock broken by hand and taken
  by another run is left alone).
* Correctness does not depend on the lock: transfers use temp names unique to the run and
  atomic renames; the lock only prevents wasted work and interleaved journals.
* The lock names the run: its ``tag`` (from the token) is in every temp file the run makes
  (``temps``). Several runs may share DEST under differently named locks (``lock.*``, one per
  shard); ``live_tags`` says which runs on DEST are live, so a sweep spares their temps.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from xnatsync.errors import LocalDiskError, LockedError

STATE_DIR = Path(".xnatsync")
LOCK_FILE = "lock"
LOCK_NAME = STATE_DIR / LOCK_FILE  # the lock of an unsharded run, under DEST
TAG_LENGTH = 12
_HELD_HERE: set[str] = set()  # the lock files this process holds (see DestLock._reused_pid)


@dataclass(frozen=True, slots=True)
class LockInfo:
    """What a lock file says about its holder."""

    host: str
    pid: int
    started: str
    token: str


def pid_alive(pid: int) -> bool:
    """True if a process with this PID exists on this host (signal 0 probes without sending)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def read_lock(path: Path) -> LockInfo | None:
    """The lock's holder, or None if the file is absent or unreadable (half-written)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return LockInfo(str(data["host"]), int(data["pid"]), str(data["started"]), data["token"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return LockInfo(host="?", pid=-1, started="?", token="")


class DestLock:
    """Context manager holding the lock of one DEST for the duration of a run."""

    def __init__(
        self,
        dest: Path,
        *,
        name: str = LOCK_FILE,
        host: str | None = None,
        pid: int | None = None,
        is_alive: Callable[[int], bool] = pid_alive,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.dest = dest
        if not _is_lock_name(name):
            raise ValueError(f"bad lock name {name!r}")
        self.path = dest / STATE_DIR / name
        self.info = LockInfo(
            host=host or socket.gethostname(),
            pid=pid if pid is not None else os.getpid(),
            started=datetime.fromtimestamp(clock(), UTC).isoformat(timespec="seconds"),
            token=secrets.token_hex(16),
        )
        self._is_alive = is_alive
        self.held = False

    @property
    def tag(self) -> str:
        """This run's name in its temp files."""
        return self.info.token[:TAG_LENGTH]

    def live_tags(self) -> set[str]:
        """The tags of the runs on DEST that hold a lock and are not stale (ours included)."""
        tags = set()
        for path in self.path.parent.glob(LOCK_FILE + "*"):
            holder = read_lock(path) if _is_lock_name(path.name) else None
            if holder is not None and holder.pid > 0 and not self._stale(holder):
                tags.add(holder.token[:TAG_LENGTH])
        return tags

    def live_others(self) -> list[tuple[str, LockInfo]]:
        """The other runs on DEST that hold a lock and are not stale: (lock file name, holder),
        sorted by name. A shard sees the unsharded run and the other shards; so does it."""
        others = []
        for path in sorted(self.path.parent.glob(LOCK_FILE + "*")):
            if path == self.path or not _is_lock_name(path.name):
                continue
            holder = read_lock(path)
            if holder is not None and holder.pid > 0 and not self._stale(holder):
                others.append((path.name, holder))
        return others

    def __enter__(self) -> DestLock:
        self.acquire()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock, taking over a stale one once; ``LockedError`` if another run holds it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LocalDiskError(f"cannot create {self.path.parent}: {exc}") from exc
        if self._try_create():
            return
        holder = read_lock(self.path)
        if holder is not None and not self._stale(holder) and not self._reused_pid(holder):
            raise LockedError(self._message(holder))
        if holder is not None:
            self._break(holder)
        if not self._try_create():
            raise LockedError(self._message(read_lock(self.path)))

    def release(self) -> None:
        """Remove the lock if it is still ours. Idempotent."""
        if not self.held:
            return
        self.held = False
        _HELD_HERE.discard(str(self.path))
        holder = read_lock(self.path)
        if holder is not None and holder.token == self.info.token:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def _try_create(self) -> bool:
        body = json.dumps(_as_dict(self.info)).encode()
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise LocalDiskError(f"cannot create lock {self.path}: {exc}") from exc
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.held = True
        _HELD_HERE.add(str(self.path))
        return True

    def _reused_pid(self, holder: LockInfo) -> bool:
        """The lock names this process, which does not hold it: a dead run's, same PID."""
        mine = holder.host == self.info.host and holder.pid == self.info.pid
        return mine and str(self.path) not in _HELD_HERE

    def _stale(self, holder: LockInfo) -> bool:
        return holder.host == self.info.host and holder.pid > 0 and not self._is_alive(holder.pid)

    def _break(self, holder: LockInfo) -> None:
        """Move the stale lock aside; if what we moved is not what we judged stale, put it back."""
        aside = self.path.with_name(f"lock.stale.{self.info.pid}.{self.info.token[:8]}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # someone else removed it; the next create decides
        moved = read_lock(aside)
        if moved is not None and moved.token != holder.token:
            with contextlib.suppress(OSError):
                os.link(aside, self.path)  # fails if a third run already holds it: fine
            aside.unlink(missing_ok=True)
            raise LockedError(self._message(moved))
        aside.unlink(missing_ok=True)

    def _message(self, holder: LockInfo | None) -> str:
        if holder is None:
            return f"{self.dest} is locked (lock {self.path} changed while we looked); try again"
        if holder.pid < 0:
            return (
                f"{self.dest} is locked: {self.path} is unreadable (a run starting, or one that "
                "crashed while taking the lock); if no xnatsync run uses this DEST, delete it"
            )
        hint = (
            "it is still running"
            if holder.host == self.info.host
            else f"if no xnatsync runs on {holder.host}, delete {self.path}"
        )
        return (
            f"{self.dest} is locked by host {holder.host} pid {holder.pid} since "
            f"{holder.started} ({hint})"
        )


def _is_lock_name(name: str) -> bool:
    """``lock``, or ``lock.{what}`` for one of several runs on DEST (not a lock being broken)."""
    if name == LOCK_FILE:
        return True
    what = name.removeprefix(LOCK_FILE + ".")
    return what != name and bool(what) and "/" not in what and not what.startswith("stale.")


def _as_dict(info: LockInfo) -> dict[str, object]:
    return {"host": info.host, "pid": info.pid, "started": info.started, "token": info.token}


def lock_dest(dest: Path) -> DestLock:
    """``with lock_dest(dest):`` hold DEST's lock for a run."""
    return DestLock(dest)
