"""``--changed-only`` around one run: read each project's record before listing, write the new
one after a complete run (``pull.changes`` holds the rules; this is the journal side).

The project's record (``Cutoff``) is written only when the whole run succeeded: every listing
answered and no file failed (``Summary.ok``); a run that failed, or was interrupted, leaves the
previous one. Owners' dates are kept as each owner is mirrored whole (``listing.Ledger``), so an
owner with a failed file keeps no dates and is listed again by the next run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from xnatsync.errors import XnatSyncError
from xnatsync.events import Notice, Reporter
from xnatsync.journal import Journal
from xnatsync.pull.changes import (
    ChangedOnly,
    Cutoff,
    Since,
    decide,
    recent_window,
    shape_of,
    workflow_dates,
)
from xnatsync.pull.listing import Planner, Scope
from xnatsync.xnat.client import XnatClient


@dataclass
class Nightly:
    """What a changed-only run decided per project, to record once it completes."""

    mode: ChangedOnly
    shape: str
    now: float
    previous: dict[str, Cutoff] = field(default_factory=dict)
    full: set[str] = field(default_factory=set)  # projects listed in full this run

    @classmethod
    def plan(
        cls,
        mode: ChangedOnly,
        scope: Scope,
        journal: Journal,
        reporter: Reporter,
        *,
        now: float,
        delete: bool,
    ) -> tuple[Nightly, Scope]:
        """Decide per project; the scope with a ``Since`` for each project listed by change."""
        nightly = cls(mode, shape_of(scope.selection, scope.layout.describe()), now)
        changed: dict[str, Since] = {}
        for project in scope.projects:
            row = journal.cutoff(project)
            record = Cutoff(*row) if row is not None else None
            if record is not None:
                nightly.previous[project] = record
            by_change, why = decide(mode, record, nightly.shape, now, delete=delete)
            reporter.emit(Notice(f"--changed-only, project {project}: {why}"))
            if by_change:
                changed[project] = Since(journal.owner_stamps(project))
            else:
                nightly.full.add(project)
        return nightly, dataclasses.replace(scope, changed=changed, track_stamps=True)

    async def with_workflows(self, client: XnatClient, scope: Scope, reporter: Reporter) -> Scope:
        """The scope with each image session's newest workflow date from ``recent=`` (what
        catches files changed without a session date moving). Unavailable: said, and the run
        goes on by dates alone; possibly cut short: the projects are listed in full."""
        if not scope.changed:
            return scope
        since = min(self.previous[p].done_at for p in scope.changed)
        days, limit = recent_window(since, self.now)
        try:
            rows = await client.recent_experiments(days, limit)
        except XnatSyncError as exc:
            if exc.fatal:
                raise
            reporter.emit(
                Notice(
                    f"--changed-only: the server's recent= listing failed ({exc}); files "
                    "changed without a session date moving wait for the next full listing"
                )
            )
            return scope
        dates = workflow_dates(rows, limit)
        if dates is None:
            reporter.emit(
                Notice(
                    f"--changed-only: over {limit} sessions changed in {days} days: listing "
                    "every session"
                )
            )
            self.full.update(scope.changed)
            return dataclasses.replace(scope, changed={})
        return dataclasses.replace(scope, workflows=dates)

    def record(self, journal: Journal, planner: Planner, reporter: Reporter) -> None:
        """After a complete, failure-free run: each project's new record (its listing's newest
        server date, for messages; the previous one if the listing had no readable date)."""
        for project, count in sorted(planner.unchanged.items()):
            if count:
                reporter.emit(
                    Notice(
                        f"--changed-only, project {project}: {count} sessions and subjects "
                        "unchanged since the last complete run were not listed"
                    )
                )
        for project in planner.scope.projects:
            before = self.previous.get(project)
            stamp = planner.newest.get(project, "") or (before.stamp if before else "")
            if not stamp:
                continue
            if project in self.full:
                full_at = self.now
            elif before is not None:
                full_at = before.full_at
            else:
                continue
            journal.set_cutoff(project, self.shape, stamp, full_at, self.now)
