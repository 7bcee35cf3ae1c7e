"""``WatchOptions``: everything the daemon needs, as one frozen value (no I/O here), and
``Reloadable``, the part a SIGHUP may change while it runs."""

from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from xnatsync.dicom.labels import Naming
from xnatsync.errors import UsageError
from xnatsync.limits import Limits, Timeouts
from xnatsync.retry import RetryPolicy
from xnatsync.watch.rules import AfterUpload
from xnatsync.xnat.auth import Credentials
from xnatsync.xnat.routes import check_base_url

QUIET_SECONDS = 120.0  # a study is complete after this long without a new instance
SETTLE_SECONDS = 2.0  # two looks at a file this far apart must agree before it is read
SENDS = 2  # studies sent at once (imports are heavy for the server)
# a study that could not be sent waits 5 s, then twice as long each time, at most 5 minutes
REQUEUE = RetryPolicy(attempts=1_000_000, backoff_base=5.0, backoff_max=300.0)


@dataclass(frozen=True)
class Reloadable:
    """What SIGHUP reloads from the config file. The rest (server, project, credentials,
    spool, state, where the sessions go, health address, limits) needs a restart."""

    quiet_seconds: float = QUIET_SECONDS
    naming: Naming = Naming()
    after_upload: AfterUpload = AfterUpload()

    def __post_init__(self) -> None:
        if self.quiet_seconds < 0:
            raise UsageError(f"--quiet-seconds must not be negative, not {self.quiet_seconds}")


@dataclass(frozen=True)
class WatchOptions:
    """Watch ``spool`` and send each complete study into ``project`` on ``url``.

    ``state`` holds the queue, the journal, the lock, the quarantine folder and the status file
    (default: the user's state directory, keyed by the spool's path); it must not be inside the
    spool."""

    url: str
    project: str
    spool: Path
    credentials: Credentials = field(repr=False)
    live: Reloadable = Reloadable()
    state: Path | None = None
    to_prearchive: bool = False
    poll: bool = False  # poll the spool instead of the OS's file events (network shares)
    poll_seconds: float = 1.0
    settle_seconds: float = SETTLE_SECONDS
    rescan_seconds: float = 600.0  # a full scan of the spool this often (events can be lost)
    status_seconds: float = 2.0  # the status file is written at most this often
    health: tuple[str, int] | None = None  # serve the status over HTTP here
    max_backlog_age: float = 3600.0
    max_unreachable: float = 900.0
    stop_grace: float = 30.0  # on SIGTERM, sends under way may finish within this
    part_bytes: int = 2 << 30
    requeue: RetryPolicy = REQUEUE
    limits: Limits = Limits(transfers=SENDS)
    timeouts: Timeouts = Timeouts()
    retry: RetryPolicy = RetryPolicy()
    ssl: ssl.SSLContext | bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", check_base_url(self.url))
        if not self.project:
            raise UsageError("watch needs the target project (--project)")
        for name in ("settle_seconds", "poll_seconds", "status_seconds", "rescan_seconds"):
            if getattr(self, name) <= 0:
                raise UsageError(f"{name.replace('_', '-')} must be positive")
        if self.part_bytes < 1:
            raise UsageError(f"--part-size must be positive, not {self.part_bytes}")

    def state_dir(self, home: Path) -> Path:
        """``state``, or one folder per spool under ``home`` (the user's state directory)."""
        if self.state is not None:
            return self.state
        key = hashlib.sha256(str(self.spool).encode()).hexdigest()[:16]
        return home / "watch" / f"{self.spool.name or 'spool'}-{key}"
