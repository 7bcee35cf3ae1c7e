"""``PushOptions``: everything one push needs, as one frozen value (no I/O here)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path

from xnatsync.errors import UsageError
from xnatsync.layout import DEFAULT_LAYOUT, Layout
from xnatsync.limits import Limits, Timeouts
from xnatsync.retry import RetryPolicy
from xnatsync.xnat.auth import Credentials
from xnatsync.xnat.routes import check_base_url

STATE_DIR = ".xnatsync"  # the tree's journals and lock: never sent
PUSH_JOURNAL = Path(STATE_DIR) / "push.db"  # beside pull's journal.db, under the same lock
PULL_JOURNAL = Path(STATE_DIR) / "journal.db"


@dataclass(frozen=True)
class PushOptions:
    """Send the files of ``source`` (a tree in the pull layout) into ``project`` on ``url``.

    ``tree_project`` is the project folder under ``source`` to send (default: the only one);
    ``project`` wins over it, so a tree pulled from one project can go into another.
    ``layout`` is the tree's shape (pull's templates; read back by ``layout.Reader``).
    ``session_type`` is the ``xsiType`` of sessions push must create. Files the server has with
    other content are conflicts unless ``overwrite``. ``zips``: many small new files of a
    resource go as zips the server unpacks (``push.plan.ZipRule``); False sends each alone.
    """

    url: str
    project: str
    source: Path
    credentials: Credentials = field(repr=False)
    tree_project: str | None = None
    layout: Layout = DEFAULT_LAYOUT
    session_type: str = "xnat:mrSessionData"
    overwrite: bool = False
    dry_run: bool = False
    zips: bool = True
    limits: Limits = Limits()
    timeouts: Timeouts = Timeouts()
    retry: RetryPolicy = RetryPolicy()
    ssl: ssl.SSLContext | bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", check_base_url(self.url))
        if not self.project:
            raise UsageError("push needs the target project (--project)")
        if not self.session_type.endswith("SessionData") or ":" not in self.session_type:
            raise UsageError(
                f"--xsi-type {self.session_type!r} is not an imaging session type "
                "(for example xnat:mrSessionData)"
            )

    @property
    def journal_file(self) -> Path:
        return self.source / PUSH_JOURNAL
