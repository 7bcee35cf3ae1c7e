"""``PullOptions``: everything one pull needs, as one frozen value.

A Python caller builds it directly; the CLI builds it from the command line, a config file and
the environment. Nothing here reads a file or the environment.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from xnatsync.errors import UsageError
from xnatsync.journal import JOURNAL
from xnatsync.layout import Layout, parse_layout
from xnatsync.limits import Limits, Timeouts
from xnatsync.lock import LOCK_FILE
from xnatsync.pull.batching import BatchPolicy
from xnatsync.pull.changes import ChangedOnly
from xnatsync.pull.listing import Scope
from xnatsync.pull.plan import PlanOptions
from xnatsync.pull.selection import Selection
from xnatsync.retry import RetryPolicy
from xnatsync.shards import Shard
from xnatsync.xnat.auth import Credentials
from xnatsync.xnat.routes import check_base_url
from xnatsync.xnat.search import SearchSource


@dataclass(frozen=True)
class PullOptions:
    """What to pull from where, and how.

    ``url`` is the server's base URL (``https://host[:port][/path]``, checked on creation);
    ``journal_path`` defaults to ``DEST/.xnatsync/journal.db``; ``batch`` None means one
    request per file, never a zip; ``ssl`` is an ``ssl.SSLContext``, False to skip checks (not
    advised), or None for the system's trust store. A file already at its place with the
    listed size is adopted when its MD5 is the listed digest; with ``adopt_by_size`` also
    where the server lists no digest (size alone proves little: off by default).
    ``changed_only`` lists in detail only sessions whose server dates moved since the last
    complete run (``pull.changes``); a run with ``delete`` always lists in full.

    ``shard`` takes one shard of the selection (``xnatsync.shards``); its journal is
    ``journal.shard-K-of-N.h1.db`` in ``journal_dir`` (default ``DEST/.xnatsync``), its lock
    ``DEST/.xnatsync/lock.shard-K-of-N.h1``. No shard sees the whole listing, so a sharded run
    never deletes: ``delete_only`` (an unsharded run that lists everything, downloads nothing
    and deletes what left the server) does that once every shard has finished.
    """

    url: str
    projects: tuple[str, ...]
    dest: Path
    credentials: Credentials = field(repr=False)
    journal_path: Path | None = None
    selection: Selection = Selection()
    layout: Layout = field(default_factory=parse_layout)
    dry_run: bool = False
    delete: bool = False
    max_delete: int | None = None
    purge: bool = False
    fsync: bool = False
    batch: BatchPolicy | None = BatchPolicy()
    limits: Limits = Limits()
    timeouts: Timeouts = Timeouts()
    retry: RetryPolicy = RetryPolicy()
    ssl: ssl.SSLContext | bool | None = None
    adopt_by_size: bool = False
    changed_only: ChangedOnly | None = None  # list only sessions changed since the last run
    searches: tuple[SearchSource, ...] = ()  # experiments only of these server searches
    clock: Callable[[], float] = field(default=time.time, repr=False)  # wall clock (--full-every)
    shard: Shard | None = None
    journal_dir: Path | None = None
    delete_only: bool = False

    def __post_init__(self) -> None:
        if self.delete_only:
            object.__setattr__(self, "delete", True)
        if self.shard is not None and self.delete:
            raise UsageError(
                f"--shard {self.shard}: a shard sees only its part of the listing, so it never "
                "deletes; once every shard has finished, run the same pull without --shard and "
                "with --delete-only"
            )
        if self.journal_path is not None and (self.shard is not None or self.journal_dir):
            raise UsageError(
                "--journal names one journal file; a sharded run keeps one per shard: give "
                "--journal-dir DIR instead"
            )
        object.__setattr__(self, "url", check_base_url(self.url))
        object.__setattr__(self, "projects", tuple(dict.fromkeys(self.projects)))
        if len(self.projects) > 1 and not self.layout.per_project:
            raise UsageError(
                "a --layout without {project} is for a pull of one project: with several, "
                "their files could land on one path"
            )

    @property
    def journal_file(self) -> Path:
        if self.journal_path is not None:
            return self.journal_path
        name = JOURNAL.name if self.shard is None else self.shard.journal_name
        return self.journal_folder / name

    @property
    def journal_folder(self) -> Path:
        """Where this DEST's journals are: every shard's, and the unsharded one."""
        if self.journal_path is not None:
            return self.journal_path.parent
        return self.journal_dir if self.journal_dir is not None else self.dest / JOURNAL.parent

    @property
    def lock_name(self) -> str:
        """The lock file's name under DEST/.xnatsync (always there, whatever the journal's
        folder: every run on DEST must see the others' locks to spare their temps)."""
        return LOCK_FILE if self.shard is None else self.shard.lock_name

    def scope(self) -> Scope:
        """The narrow value the listing stage gets."""
        return Scope(
            self.projects, self.dest, self.selection.in_shard(self.shard), self.layout, self.batch,
            self.limits.listings, self.adopt_by_size,
        )  # fmt: skip

    def delete_rules(self, run_id: int) -> PlanOptions:
        """What deletes this run allows (completeness of the listing is the planner's part)."""
        return PlanOptions(
            delete=self.delete, max_delete=self.max_delete, purge=self.purge, run_id=run_id
        )
