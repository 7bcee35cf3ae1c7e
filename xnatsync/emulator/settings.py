"""Frozen settings of the XNAT emulator: users, timeouts, site identity, seeding, faults.

The emulator is an independent implementation of the XNAT server, so it has its own settings
value rather than sharing the client's `xnatsync.config`.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field

from xnatsync.emulator.xnat_version import DEFAULT_VERSION, XnatVersion


@dataclass(frozen=True, slots=True)
class User:
    """An account of the emulated site. `admin` users read and edit every project."""

    username: str
    password: str
    admin: bool = False
    firstname: str = ""
    lastname: str = ""
    email: str = ""


@dataclass(frozen=True, slots=True)
class SyntheticSpec:
    """Shape of the `--seed synthetic` project: counts are per parent (sessions per subject…)."""

    project: str = "SYNTH"
    subjects: int = 2
    sessions: int = 1
    scans: int = 2
    files: int = 4
    file_size: int = 64 * 1024


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """Everything the emulator needs to start; `root=None` means a temporary directory."""

    host: str = "127.0.0.1"
    port: int = 0
    root: pathlib.Path | None = None
    admin_user: str = "admin"
    admin_password: str = "admin"
    extra_users: tuple[User, ...] = (
        User("user", "user", firstname="Plain", lastname="User"),
        User("other", "other", firstname="Other", lastname="User"),
    )
    site_id: str = "XNAT"
    session_timeout: float = 900.0  # XNAT's default idle timeout: 15 minutes
    token_timeout: float = 2 * 86400.0  # aliasTokenTimeout default: 2 days
    seed: str = ""  # "", "demo" or "synthetic"
    synthetic: SyntheticSpec = field(default_factory=SyntheticSpec)
    faults: str = ""
    flush_interval: float = 1.0  # seconds between metadata flushes of a dirty store
    xnat_version: str = DEFAULT_VERSION  # the version answered as (xnat_version module)
    # XNAT's "Session Idle Time" (sessionXmlRebuilderInterval, default 5 minutes): a RECEIVING
    # prearchive session idle this long is built, then auto-archived per its project
    session_idle_seconds: float = 300.0
    checksums: bool = True  # XNAT's `checksums` site setting: off, catalogs list no digests

    def __post_init__(self) -> None:
        """Refuse a malformed version or a negative idle time (ValueError, one line)."""
        XnatVersion.parse(self.xnat_version)
        if not self.session_idle_seconds >= 0:
            raise ValueError(f"session idle time {self.session_idle_seconds} must be >= 0 seconds")

    def users(self) -> tuple[User, ...]:
        """All accounts, the administrator first."""
        admin = User(
            self.admin_user, self.admin_password, admin=True, firstname="Admin", lastname="Istrator"
        )
        return (admin, *(u for u in self.extra_users if u.username != self.admin_user))
