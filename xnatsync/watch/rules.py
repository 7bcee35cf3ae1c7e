"""The daemon's decisions as plain functions over values: when a file may be read, when a study
is complete, when a failed study is tried again, what to do with sent files, whether the daemon
is healthy.

Pure: no I/O module, no anyio, aiohttp or sqlite3 (import-linter holds it).

Rules:
* A file is read only once it is *settled*: two looks at least ``settle`` seconds apart saw the
  same size and mtime. Names starting with ``.`` (in any folder below the spool) are temps of
  the program writing into the spool (the receiver writes ``.name.tmp`` then renames): never
  looked at.
* A study is *complete* ``quiet`` seconds after its last new instance was read (Orthanc's
  "stable study"); a study that grows after it was sent is complete again the same way.
* A study that could not be sent is tried again after ``backoff_cap`` of its failures so far
  (the engine's retry arithmetic), jittered, capped at the policy's ``backoff_max``.
* Healthy unless the oldest unsent study has waited longer than ``max_backlog_age`` since it
  became pending, or the server has been unreachable for longer than ``max_unreachable``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

from xnatsync.errors import UsageError
from xnatsync.retry import RetryPolicy, backoff_cap


@dataclass(frozen=True, slots=True)
class Look:
    """One look at a file: its size and mtime, and when (daemon clock, seconds)."""

    size: int
    mtime_ns: int
    at: float


def settled(previous: Look, now: Look, settle: float) -> bool:
    """The file may be read: unchanged across two looks at least ``settle`` seconds apart."""
    same = (previous.size, previous.mtime_ns) == (now.size, now.mtime_ns)
    return same and now.at - previous.at >= settle


def hidden(relative: PurePath) -> bool:
    """A temp of the writer (a name starting with ``.``, the file's or a folder's)."""
    return any(part.startswith(".") for part in relative.parts)


def complete(last_instance_at: float, quiet: float, now: float) -> bool:
    """No new instance for ``quiet`` seconds."""
    return now - last_instance_at >= quiet


def next_try(policy: RetryPolicy, failures: int, now: float, rand: float) -> float:
    """When a study that failed ``failures`` times in a row is tried again: half the capped
    exponential delay plus a jittered half (never sooner than half, so a dead server is not
    hammered by a lucky draw)."""
    cap = backoff_cap(policy, failures)
    return now + cap / 2 + min(max(rand, 0.0), 1.0) * cap / 2


@dataclass(frozen=True, slots=True)
class AfterUpload:
    """What happens to a study's files once its check passed: ``keep``, ``delete`` or ``move``
    (to ``folder``, keeping their path below the spool)."""

    action: str = "keep"
    folder: PurePath | None = None

    @property
    def text(self) -> str:
        return f"move:{self.folder}" if self.action == "move" else self.action


def parse_after_upload(text: str) -> AfterUpload:
    """``keep``, ``delete`` or ``move:DIR`` (``UsageError`` for anything else)."""
    if text in ("keep", "delete"):
        return AfterUpload(text)
    if text.startswith("move:") and text[5:]:
        return AfterUpload("move", PurePath(text[5:]))
    raise UsageError(f"--after-upload {text!r}: keep, delete or move:DIR")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What health is judged from (seconds on the daemon's clock; None when not applicable)."""

    now: float
    oldest_pending_since: float | None  # the oldest study not yet sent (pending or sending)
    unreachable_since: float | None  # the server has failed every request since then


def verdict(snapshot: Snapshot, max_backlog_age: float, max_unreachable: float) -> str | None:
    """None when healthy, else the reason (for the 503 and the status file)."""
    since = snapshot.oldest_pending_since
    if since is not None and snapshot.now - since > max_backlog_age:
        return (
            f"backlog: the oldest unsent study has waited {snapshot.now - since:.0f} s "
            f"(more than {max_backlog_age:.0f} s)"
        )
    down = snapshot.unreachable_since
    if down is not None and snapshot.now - down > max_unreachable:
        return (
            f"server unreachable for {snapshot.now - down:.0f} s "
            f"(more than {max_unreachable:.0f} s)"
        )
    return None


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``UsageError`` otherwise); port 0 picks a free one."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--health {text!r}: HOST:PORT, e.g. 127.0.0.1:8089")
    return host.strip("[]"), int(port)
