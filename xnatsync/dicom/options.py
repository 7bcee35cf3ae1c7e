"""``ImportOptions``: everything one import needs, as one frozen value (no I/O here)."""

from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from xnatsync.dicom.labels import Naming
from xnatsync.errors import UsageError
from xnatsync.limits import Limits, Timeouts
from xnatsync.retry import RetryPolicy
from xnatsync.xnat.auth import Credentials
from xnatsync.xnat.routes import check_base_url

IMPORTS = 2  # import requests are heavy for the server: few at once (issue 9)


@dataclass(frozen=True)
class ImportOptions:
    """Send the DICOM studies found under ``sources`` into ``project`` on ``url``.

    One session per StudyInstanceUID, labelled by ``naming`` (XNAT's defaults unless given);
    each study goes to the archive through the DICOM-zip import service, at most
    ``limits.transfers`` requests at once (default 2). ``state`` holds the journal and the lock
    (default: the user's state directory, keyed by server and project)."""

    url: str
    project: str
    sources: tuple[Path, ...]
    credentials: Credentials = field(repr=False)
    naming: Naming = Naming()
    state: Path | None = None
    follow_symlinks: bool = False
    part_bytes: int = 2 << 30  # a bigger study goes in several requests, cut between scans
    to_prearchive: bool = False  # else the archive
    dry_run: bool = False
    limits: Limits = Limits(transfers=IMPORTS)
    timeouts: Timeouts = Timeouts()
    retry: RetryPolicy = RetryPolicy()
    ssl: ssl.SSLContext | bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", check_base_url(self.url))
        if not self.project:
            raise UsageError("import needs the target project (--project)")
        if not self.sources:
            raise UsageError("import needs at least one --source")
        if self.part_bytes < 1:
            raise UsageError(f"--part-size must be positive, not {self.part_bytes}")

    def state_dir(self, home: Path) -> Path:
        """Where the journal and lock live: ``state``, or one folder per server and project
        under ``home`` (the user's state directory, given by the CLI)."""
        if self.state is not None:
            return self.state
        key = hashlib.sha256(f"{self.url}\n{self.project}".encode()).hexdigest()[:16]
        return home / "import" / f"{self.project}-{key}"
