"""The listing stage of a pull: discover owners, list each, diff, plan, hand plans on.

``Planner`` runs ``limits.listings`` listers over a bounded queue of owners (the project's own
resources, each selected experiment, each subject); each lister plans one owner and submits the
plan, which blocks while the transfer queue is full. It tracks what a complete listing needs
before deletes may be planned: which owners were listed, which exist remotely, which listings
failed. An owner whose listing bytes are unchanged since every one of its files was verified
takes the no-op fast path; ``Ledger`` records those fingerprints as plans complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import anyio
import anyio.abc

from xnatsync.errors import NotFoundError, UnsafePathError, XnatSyncError
from xnatsync.events import (
    Event,
    ExperimentPlanned,
    FileDone,
    FileFailed,
    ListingFailed,
    ListingProgress,
    NotFound,
    Notice,
    Reporter,
)
from xnatsync.journal import Entry, Journal
from xnatsync.layout import Layout, Memo
from xnatsync.localfs import sizes_on_disk, unchanged_on_disk
from xnatsync.model import FileState
from xnatsync.pull.batching import BatchPolicy
from xnatsync.pull.changes import Since, newest, stamps_of
from xnatsync.pull.deletes import build_delete_plan
from xnatsync.pull.diff import Change, diff
from xnatsync.pull.manifest import (
    Lister,
    LocalState,
    Owner,
    local_manifest,
    remote_listing,
    remote_manifest,
    selected,
)
from xnatsync.pull.plan import (
    ADOPTABLE,
    Download,
    Move,
    Plan,
    PlanOptions,
    PlanSummary,
    Verify,
    build_plan,
)
from xnatsync.pull.selection import Selection

Submit = Callable[[Owner, Plan], Awaitable[None]]
INLINE_LSTATS = 1000
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Scope:
    """What the listing stage needs to know of a pull: what to list and how to place it."""

    projects: tuple[str, ...]
    dest: Path
    selection: Selection
    layout: Layout
    batch: BatchPolicy | None
    listings: int
    adopt_by_size: bool = False
    changed: Mapping[str, Since] = field(default_factory=dict)  # --changed-only, by project
    track_stamps: bool = False  # keep each owner's server dates with its fingerprint
    workflows: Mapping[str, str] = field(default_factory=dict)  # session → recent= workflow


@dataclass
class _Owed:
    fingerprint: str
    remaining: int
    stamps: str = ""
    failed: bool = False


class Ledger:
    """A real run's bookkeeping in the journal: which keys this run saw, and each owner's
    listing fingerprint, recorded once every file its plan touches is done.

    A reporter: completions arrive as ``FileDone``/``FileFailed`` events, which the executor
    emits after the journal rows, so a fingerprint is written after the rows it vouches for.
    A failed file, or a plan with errors, leaves the owner without one (next run: full diff).
    """

    def __init__(self, journal: Journal, run_id: int) -> None:
        self.journal = journal
        self.run_id = run_id
        self._owner_of: dict[str, tuple[str, str]] = {}
        self._owed: dict[tuple[str, str], _Owed] = {}

    def expect(
        self,
        project: str,
        owner: str,
        fingerprint: str,
        plan: Plan,
        *,
        departed: bool,
        stamps: str = "",
    ) -> None:
        """Record ``fingerprint`` (and the owner's server dates, ``stamps``) once ``plan`` is
        carried out, unless the owner's journal still holds files its listing no longer has
        (``departed``): the no-op fast path marks every row of an owner seen, and would hide
        those from ``--delete`` for ever."""
        self.journal.forget_fingerprint(project, owner)
        if plan.errors or departed:
            return
        actions: tuple[Download | Verify | Move, ...] = (
            *plan.all_downloads(),
            *plan.verifies,
            *plan.moves,
        )
        if not actions:
            self._vouch(project, owner, fingerprint, stamps)
            return
        self._owed[(project, owner)] = _Owed(fingerprint, len(actions), stamps)
        self._owner_of.update((a.remote.key, (project, owner)) for a in actions)

    def emit(self, event: Event) -> None:
        if not isinstance(event, FileDone | FileFailed):
            return
        owner = self._owner_of.pop(event.key, None)
        owed = self._owed.get(owner) if owner is not None else None
        if owner is None or owed is None:
            return
        owed.remaining -= 1
        owed.failed = owed.failed or isinstance(event, FileFailed)
        if owed.remaining == 0:
            del self._owed[owner]
            if not owed.failed:
                self._vouch(*owner, owed.fingerprint, owed.stamps)

    def _vouch(self, project: str, owner: str, fingerprint: str, stamps: str) -> None:
        self.journal.set_fingerprint(project, owner, fingerprint)
        if stamps:
            self.journal.set_stamps(project, owner, stamps)

    def close(self) -> None:
        pass


@dataclass(kw_only=True)
class Planner:
    """The listing stage: discovers owners, plans each, hands plans on; tracks completeness.

    ``state`` is the journal's read side; ``ledger`` is None in a dry run, which writes
    nothing (it remembers the keys it saw instead)."""

    scope: Scope
    lister: Lister
    state: LocalState
    reporter: Reporter
    submit: Submit
    ledger: Ledger | None = None
    complete: bool = True
    unproven: int = 0  # files on disk fetched again: no listed digest, no --adopt-by-size
    missing: list[str] = field(default_factory=list)  # requested projects that answered 404
    named: set[tuple[str, str]] = field(default_factory=set)  # selection names found
    scan_types_seen: set[str] = field(default_factory=set)  # --scan-type patterns that matched
    fast: int = 0  # owners that took the no-op fast path (their files were not looked at)
    unchanged: dict[str, int] = field(default_factory=dict)  # --changed-only: owners not listed
    newest: dict[str, str] = field(default_factory=dict)  # project → newest server date listed
    found: int = 0  # owners queued for listing so far
    done: int = 0  # owners listed (planned, fast-pathed or failed) so far
    shape: str = ""
    seen_keys: set[str] = field(default_factory=set)
    listed: set[tuple[str, str]] = field(default_factory=set)
    known: set[tuple[str, str]] = field(default_factory=set)
    kinds: set[tuple[str, str]] = field(default_factory=set)
    stamps: dict[tuple[str, str], str] = field(default_factory=dict)  # owner → server dates

    async def run(self) -> None:
        send, recv = anyio.create_memory_object_stream[Owner](self.scope.listings * 2)
        async with anyio.create_task_group() as tg:
            for _ in range(self.scope.listings):
                tg.start_soon(self._lister, recv.clone())
            recv.close()
            async with send:
                for project in self.scope.projects:
                    await self._discover(project, send)
        self.reporter.emit(ListingProgress(self.found, self.done, complete=True))
        self._report_misses()
        if self.unproven:
            self.reporter.emit(
                Notice(
                    f"{self.unproven} files already on disk with the listed size were fetched "
                    "again: the server lists no MD5 to check them against (--adopt-by-size "
                    "keeps such files, on the strength of their size alone)"
                )
            )

    def _report_misses(self) -> None:
        """Names the selection gave that no project had: errors; filters that matched nothing:
        warnings. Said only of complete listings (a failed one may hold them)."""
        if not self.complete:
            return
        sel = self.scope.selection
        for what, wanted in (("subject", sel.subjects), ("experiment", sel.experiments)):
            for name in sorted(wanted):
                if (what, name) not in self.named:
                    self.reporter.emit(NotFound(what, name))
        if self.fast or any(self.unchanged.values()):
            return  # the files of unchanged owners were not parsed: no verdict on filters
        for pattern in sorted(set(sel.scan_types) - self.scan_types_seen):
            self.reporter.emit(
                Notice(f"--scan-type {pattern!r} matched no scan of the selected sessions")
            )

    def _listing_failed(self, what: str, exc: XnatSyncError) -> None:
        if exc.fatal:
            raise exc
        self.complete = False
        self.reporter.emit(ListingFailed(what, str(exc)))

    async def _discover(self, project: str, send: anyio.abc.ObjectSendStream[Owner]) -> None:
        """List a project's experiments and (at the same time: both are project-level
        listings, and a nightly run's cost is mostly these two) its subjects; queue owners,
        a subject after each experiment while both last (``alternate``): subjects queued
        after every session would be listed only once the last sessions' transfers were
        queued, one round trip each at the end of a run with its streams idle."""
        subjects: list[dict[str, str]] = []
        failed: list[XnatSyncError] = []

        async def list_subjects() -> None:
            try:
                subjects.extend(await self.lister.list_subjects(project))
            except XnatSyncError as exc:
                failed.append(exc)

        async with anyio.create_task_group() as tg:
            if self.scope.selection.subject_resources:
                tg.start_soon(list_subjects)
            experiments = await self._discover_experiments(project, send)
        if experiments is None:
            return  # the project's own listing failed: its subjects do not matter
        owners: list[tuple[Owner, str]] = []
        if failed:
            self._listing_failed(f"subjects of {project}", failed[0])
        elif self.scope.selection.subject_resources:
            owners = self._discover_subjects(project, subjects)
        for owner, dates in alternate(experiments, owners):
            await self._queue_changed(send, owner, dates)

    async def _discover_experiments(
        self, project: str, send: anyio.abc.ObjectSendStream[Owner]
    ) -> list[tuple[Owner, str]] | None:
        """The project's experiments to list, with their dates (None if its listing failed);
        the project's own resources are queued at once."""
        sel = self.scope.selection
        try:
            experiments = await self.lister.list_experiments(project)
        except NotFoundError:
            # absent, or hidden from this user (XNAT says 404 for both): the run's error at
            # the end, once the other projects are pulled; no deletes on an incomplete run
            self.missing.append(project)
            self.complete = False
            return None
        except XnatSyncError as exc:
            self._listing_failed(f"experiments of {project}", exc)
            return None
        if sel.project_resources:
            await self._queue(send, Owner(project, "", ""))
        self.kinds.add((project, "experiment"))
        self.known.update((project, e.id) for e in experiments)
        self.newest[project] = newest(
            d for e in experiments for d in (e.insert_date, e.last_modified)
        )
        if self.ledger is not None:  # for a push of the tree: the sessions' own types
            wanted = {e.label: e.xsi_type for e in experiments if sel.wants_experiment(e)}
            self.ledger.journal.set_session_types(project, wanted)
        owners = []
        for exp in experiments:
            subject_names, experiment_names = sel.names_in(exp)
            self.named.update(("subject", n) for n in subject_names)
            self.named.update(("experiment", n) for n in experiment_names)
            if sel.wants_experiment(exp):
                workflow = self.scope.workflows.get(exp.id, "")
                dates = stamps_of(exp.insert_date, exp.last_modified, workflow)
                owners.append((Owner(project, exp.id, exp.label, exp), dates))
        return owners

    def _discover_subjects(
        self, project: str, subjects: list[dict[str, str]]
    ) -> list[tuple[Owner, str]]:
        """The project's subjects to list for their own resources, with their dates."""
        sel = self.scope.selection
        self.kinds.add((project, "subject"))
        on_rows = (row.get(k, "") for row in subjects for k in ("insert_date", "last_modified"))
        self.newest[project] = newest([self.newest.get(project, ""), *on_rows])
        owners = []
        for row in subjects:
            sid, label = row.get("ID", ""), row.get("label", "")
            self.known.add((project, sid))
            self.named.update(("subject", n) for n in {sid, label} & sel.subjects)
            if sid and sel.wants_subject(sid, label):
                dates = stamps_of(row.get("insert_date", ""), row.get("last_modified", ""))
                owners.append((Owner(project, sid, label), dates))
        return owners

    async def _lister(self, recv: anyio.abc.ObjectReceiveStream[Owner]) -> None:
        async with recv:
            async for owner in recv:
                await self._plan_owner(owner)
                self.done += 1
                self.reporter.emit(ListingProgress(self.found, self.done, complete=False))

    async def _queue_changed(
        self, send: anyio.abc.ObjectSendStream[Owner], owner: Owner, stamps: str
    ) -> None:
        """Queue an experiment or subject, unless ``--changed-only`` finds its dates as kept."""
        since = self.scope.changed.get(owner.project)
        stamps = since.settle(owner.id, stamps) if since is not None else stamps
        if since is not None and not since.wants(owner.id, stamps):
            self.unchanged[owner.project] = self.unchanged.get(owner.project, 0) + 1
            return
        if self.scope.track_stamps:
            self.stamps[(owner.project, owner.id)] = stamps
        await self._queue(send, owner)

    async def _queue(self, send: anyio.abc.ObjectSendStream[Owner], owner: Owner) -> None:
        self.found += 1
        await send.send(owner)

    async def _plan_owner(self, owner: Owner) -> None:
        try:
            listing = await remote_listing(self.lister, owner)
            if owner.kind == "project":
                self.kinds.add((owner.project, "project"))
            self.listed.add((owner.project, owner.id))
            fingerprint = self._fingerprint(listing.fingerprint)
            if await self._unchanged(owner, fingerprint):
                return
            remote = remote_manifest(listing)
        except XnatSyncError as exc:
            self._listing_failed(owner.describe(), exc)
            return
        keys = [f.key for f in remote]  # in key order: the journal's writes follow its index
        if self.ledger is not None:
            self.ledger.journal.mark_seen(keys, self.ledger.run_id)
        else:  # a dry run writes no seen marks: it remembers the keys instead
            self.seen_keys.update(keys)
        local = local_manifest(self.state, self.scope.dest, owner)
        wanted = selected(remote, self.scope.selection)
        self.scan_types_seen |= self.scope.selection.scan_types_matching(remote)
        placer = Memo(self.scope.layout)
        changes = diff(wanted, local, relpath_of=placer.relpath)
        on_disk = await self._on_disk(changes, placer)
        options = PlanOptions(batch=self.scope.batch, adopt_by_size=self.scope.adopt_by_size)
        plan = build_plan(changes, placer, options, on_disk)
        self.unproven += plan.unproven
        if self.ledger is not None:
            listed = set(keys)
            departed = any(f.state is FileState.DONE and f.key not in listed for f in local)
            stamps = self.stamps.get((owner.project, owner.id), "")
            self.ledger.expect(
                owner.project, owner.id, fingerprint, plan, departed=departed, stamps=stamps
            )
        self._planned(owner, plan.summary())
        await self.submit(owner, plan)

    async def _on_disk(self, changes: list[Change], placer: Memo) -> dict[str, int]:
        """Sizes of the files already at the targets of files to fetch (for adoption)."""
        targets = []
        for change in changes:
            if change.kind in ADOPTABLE and change.remote is not None:
                try:
                    targets.append(placer.relpath(change.remote))
                except UnsafePathError:
                    continue  # the plan reports it
        if len(targets) > INLINE_LSTATS:
            return await anyio.to_thread.run_sync(sizes_on_disk, self.scope.dest, targets)
        return sizes_on_disk(self.scope.dest, targets)

    def _planned(self, owner: Owner, s: PlanSummary) -> None:
        self.reporter.emit(
            ExperimentPlanned(
                owner.project, owner.label or owner.project, s.downloads, s.download_bytes,
                s.skips, s.verifies, s.moves, s.errors,
            )
        )  # fmt: skip

    def _fingerprint(self, listing: str) -> str:
        """The listing's fingerprint, bound to what shapes the plan: layout and file filters."""
        if not self.shape:
            sel = self.scope.selection
            filters = (sorted(sel.resources), sel.scan_types, sel.assessors, sel.session_resources)
            self.shape = f"{self.scope.layout.describe()}\n{filters!r}"
        text = f"{listing}\n{self.shape}"
        return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

    async def _unchanged(self, owner: Owner, fingerprint: str) -> bool:
        """The no-op fast path: the same listing as when every file was last verified, and
        every file still as verified on disk (one lstat each). Nothing to parse or diff."""
        if self.ledger is None:
            return False
        journal = self.ledger.journal
        if journal.fingerprint(owner.project, owner.id) != fingerprint:
            return False
        rows = journal.owner_rows(owner.project, owner.id)
        if rows is None:
            return False
        dest = self.scope.dest
        # a thread hop costs more than a hundred lstats: only large owners leave the loop
        if len(rows) > INLINE_LSTATS:
            same = await anyio.to_thread.run_sync(unchanged_on_disk, dest, rows)
        else:
            same = unchanged_on_disk(dest, rows)
        if not same:
            return False
        journal.mark_owner_seen(owner.project, owner.id, self.ledger.run_id)
        stamps = self.stamps.get((owner.project, owner.id))
        if stamps:
            journal.set_stamps(owner.project, owner.id, stamps)
        self.fast += 1
        self._planned(owner, PlanSummary(skips=len(rows)))
        return True

    def deletable(self, entry: Entry) -> bool:
        """A file that left an owner we listed, or whose owner left a complete listing."""
        if entry.key in self.seen_keys:
            return False
        if (entry.project, entry.owner) in self.listed:
            return True
        if (entry.project, entry.owner) in self.known:
            return False
        level = entry.key.split("/")[2]
        kind = level if level in ("project", "subject") else "experiment"
        return (entry.project, kind) in self.kinds

    def delete_plan(self, journal: Journal, rules: PlanOptions) -> Plan:
        """Deletes as ``rules`` allow them (``delete``, ``max_delete``, ``purge``, ``run_id``),
        and only if every listing of this run succeeded."""
        options = dataclasses.replace(rules, listing_complete=self.complete)
        projects = self.scope.projects
        candidates = (
            e for e in journal.delete_candidates(projects, rules.run_id) if self.deletable(e)
        )
        return build_delete_plan(candidates, journal.count(projects), options)


def alternate(first: Sequence[T], second: Sequence[T]) -> list[T]:
    """``first[0], second[0], first[1], second[1], …``, then the rest of the longer one."""
    common = min(len(first), len(second))
    paired = [item for pair in zip(first[:common], second[:common], strict=True) for item in pair]
    return [*paired, *first[common:], *second[common:]]
