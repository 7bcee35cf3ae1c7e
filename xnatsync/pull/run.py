"""``pull``: list owners → diff → plan → scheduler → journal; deletes last.

The front-end's run: the destination lock and journal, one client, the listing stage
(``listing.Planner``) feeding the transfer stage (the engine's ``Scheduler`` running
``execute.Executor``), then deletes. Deletes are planned once, after every listing succeeded,
and only for files that left an owner the run listed (or owners gone from a complete listing):
files outside the selection are never deletion candidates.

Shards (``options.shard``): several runs on one DEST, each with its own lock and journal. A
shard never runs beside the unsharded run on the same DEST, nor the other way round. At its
start a run adopts, from the other journals in its folder, the rows of its owners that they
hold and it does not (``Journal.adopt``): after a change of shard count nothing done is
fetched again, and an unsharded ``--delete-only`` run sees what every shard downloaded.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import anyio

from xnatsync.errors import (
    LocalDiskError,
    LockedError,
    ProjectNotFoundError,
    first_error,
)
from xnatsync.events import Fanout, Notice, PlanShown, Reporter
from xnatsync.journal import JOURNAL, Journal, recorded_run
from xnatsync.lock import DestLock
from xnatsync.mounts import network_filesystem, read_mount_table
from xnatsync.pull.batching import SessionGate
from xnatsync.pull.describe import format_plan
from xnatsync.pull.execute import Executor, Unpacking, unpacking
from xnatsync.pull.listing import Ledger, Planner
from xnatsync.pull.manifest import LocalState, NoJournal, Owner
from xnatsync.pull.nightly import Nightly
from xnatsync.pull.options import PullOptions
from xnatsync.pull.plan import Action, Plan
from xnatsync.pull.searches import searched
from xnatsync.report import Summary
from xnatsync.scheduler import Attempts, Scheduler, Throttle
from xnatsync.shards import shard_named
from xnatsync.temps import TempNames, sweep
from xnatsync.xnat.client import XnatClient


async def pull(
    options: PullOptions,
    reporter: Reporter | None = None,
    *,
    client: XnatClient | None = None,
    mount_table: str | None = None,
) -> Summary:
    """Run one pull and return its totals. Per-file outcomes arrive as events on ``reporter``
    (failed files are counted, never raised); fatal errors raise an ``XnatSyncError``.

    Cancel the surrounding scope to stop: temp files are removed, the journal keeps what was
    verified and records the run as interrupted; running it again finishes the rest.
    ``mount_table`` (a mountinfo text; read from /proc when None) says where the journal and
    DEST are: on a network filesystem the journal is opened in SQLite's exclusive locking mode
    and zips unpack several at once in threads; on a local disk small ones on the event loop.
    """
    reporter = reporter if reporter is not None else Fanout()
    client = client or XnatClient(
        options.url, options.credentials, limits=options.limits, timeouts=options.timeouts,
        retry=options.retry, ssl=options.ssl,
    )  # fmt: skip
    counts = Summary()
    if options.dry_run:
        await _dry_run(options, Fanout(reporter, counts), client)
        counts.close()
        return counts
    table = read_mount_table() if mount_table is None else mount_table  # read once
    exclusive = _journal_mode(options, table, reporter)
    unpack = unpacking(options.dest, table, fsync=options.fsync)
    # Log in before touching DEST: a run that cannot reach the server, or is refused, leaves
    # the destination as it found it (no folder, no lock, no journal).
    async with client:
        options = await searched(client, options, reporter)  # a bad search changes nothing
        try:
            options.dest.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LocalDiskError(f"cannot create {options.dest}: {exc.strerror or exc}") from exc
        with DestLock(options.dest, name=options.lock_name) as lock:
            _alone_or_among_shards(options, lock)
            with Journal.open(options.journal_file, exclusive=exclusive) as journal:
                await _sweep(options, lock, journal.last_run())
                await _adopt_others(options, journal, reporter)
                await _run_recorded(options, reporter, client, journal, lock, counts, unpack)
    return counts


async def _run_recorded(
    options: PullOptions,
    reporter: Reporter,
    client: XnatClient,
    journal: Journal,
    lock: DestLock,
    counts: Summary,
    unpack: Unpacking,
) -> None:
    temps = TempNames(lock.tag, options.dest)
    what = f" (shard {options.shard})" if options.shard is not None else ""
    command = f"pull {options.url} {' '.join(options.projects)}{what}"
    try:
        with recorded_run(journal, command, counts) as run_id:
            done = await _sync(options, Fanout(reporter, counts), client, journal, run_id, temps,
                               unpack)  # fmt: skip
            if done.nightly is not None and counts.ok:
                done.nightly.record(journal, done.planner, reporter)
    finally:
        temps.close()


def _journal_mode(options: PullOptions, mount_table: str, reporter: Reporter) -> bool:
    """Whether to open the journal ``exclusive``: yes on a network filesystem, and say so.

    Switched rather than refused: on HPC scratch and Kubernetes ReadWriteMany volumes (Lustre,
    GPFS, NFS) there is often no local disk that outlives a job, and a journal lost with its
    node costs a re-hash of every file. One process at a time uses a journal (its run holds
    DEST's lock, an O_EXCL file, which NFS and Lustre honour), so exclusive locking loses
    nothing but reading it while that run is live (``status`` says "running" then)."""
    folder = options.journal_folder
    mount = network_filesystem(folder, mount_table)
    if mount is None:
        return False
    reporter.emit(
        Notice(
            f"the journal's folder {folder} is on {mount.fstype} ({mount.source}): its journal "
            "is opened in exclusive mode (no shared-memory file; other processes read it only "
            "after this run); --journal-dir DIR on a local disk avoids that"
        )
    )
    return True


def _alone_or_among_shards(options: PullOptions, lock: DestLock) -> None:
    """A shard runs beside other shards only; the unsharded run (which may delete) alone."""
    for name, holder in lock.live_others():
        other = shard_named(name)
        if options.shard is not None and other is not None:
            continue
        what = "the unsharded run" if other is None else f"shard {other}"
        wait = (
            "shards wait until it has"
            if other is None
            else "an unsharded run waits until every shard has"
        )
        raise LockedError(
            f"{options.dest} is in use by {what} (host {holder.host} pid {holder.pid} since "
            f"{holder.started}): {wait} finished"
        )


def _sources(options: PullOptions, journal: Journal) -> list[Path]:
    """The other journals of this DEST whose rows may be ours: the unsharded one and the
    shards of other counts (shards of our own count hold none of our owners)."""
    folder = options.journal_folder
    names = [JOURNAL.name, *(p.name for p in sorted(folder.glob("journal.shard-*.db")))]
    ours = options.shard
    sources = []
    for name in names:
        path = folder / name
        if path == journal.path or not path.is_file():
            continue
        other = shard_named(name)
        if name != JOURNAL.name and other is None:
            continue  # another hash version's shard: never guessed at
        if ours is not None and other is not None and other.count == ours.count:
            continue
        sources.append(path)
    return sources


async def _adopt_others(options: PullOptions, journal: Journal, reporter: Reporter) -> None:
    """Take over the other journals' newer rows of this run's projects and shard. Not with
    ``--journal FILE``: its folder may hold other destinations' journals."""
    if options.journal_path is not None:
        return
    shard, projects = options.shard, set(options.projects)

    def owns(project: str, owner: str) -> bool:
        return project in projects and (shard is None or shard.owner_in(owner))

    for source in _sources(options, journal):
        adopted = await anyio.to_thread.run_sync(journal.adopt, source, owns)
        if adopted:
            reporter.emit(Notice(f"{adopted} files' records taken over from {source.name}"))


async def _sweep(options: PullOptions, lock: DestLock, last: dict[str, object] | None) -> None:
    """Remove the temps and spools of every run on DEST that is not live, whatever the last
    run's status (``temps.sweep``); another live run's (a shard's) are left alone. The whole
    tree is walked too after a run recorded as not having ended (killed, or by a version
    without temp ledgers)."""
    walk = last is not None and last["status"] not in ("ok", "failed")
    live = lock.live_tags()
    await anyio.to_thread.run_sync(functools.partial(sweep, options.dest, live, walk=walk))


def _check_projects(options: PullOptions, missing: list[str]) -> None:
    """The run's end: a requested project that answered 404 is an error (exit 3)."""
    if not missing:
        return
    what = f"project {missing[0]}" if len(missing) == 1 else f"projects {', '.join(missing)}"
    others = "; the other projects were pulled" if len(options.projects) > len(missing) else ""
    raise ProjectNotFoundError(
        f"{what}: not on {options.url}, or user {options.credentials.username!r} may not see "
        f"it (XNAT answers 404 for both){others}"
    )


async def _sync(
    options: PullOptions,
    reporter: Reporter,
    client: XnatClient,
    journal: Journal,
    run_id: int,
    temps: TempNames,
    unpack: Unpacking,
) -> _Synced:
    ledger = Ledger(journal, run_id)
    reporter = Fanout(reporter, ledger)
    throttle = Throttle(options.limits.transfers)
    attempts = Attempts(reporter, retry=options.retry, throttle=throttle)
    executor = Executor(
        source=client, journal=journal, dest=options.dest, reporter=reporter,
        attempts=attempts, temps=temps, fsync=options.fsync,
        unpack=anyio.CapacityLimiter(unpack.threads), inline_unpack=unpack.inline,
    )  # fmt: skip
    gate = SessionGate(options.limits.transfers)  # scan-group zips once streams are busy
    async with Scheduler[Action](executor, options.limits) as scheduler:

        async def submit(owner: Owner, plan: Plan) -> None:
            if options.delete_only:
                return  # listed (so seen), never fetched: deletes only
            executor.record(plan.errors)
            plan = plan if gate.admit(len(plan.scan_zips)) else plan.without_scan_zips()
            await scheduler.submit(plan.actions())

        scope, nightly = options.scope(), None
        if options.changed_only is not None:
            nightly, scope = Nightly.plan(
                options.changed_only, scope, journal, reporter,
                now=options.clock(), delete=options.delete,
            )  # fmt: skip
            scope = await nightly.with_workflows(client, scope, reporter)
        planner = Planner(
            scope=scope, lister=client, state=journal, reporter=reporter,
            submit=submit, ledger=ledger,
        )  # fmt: skip
        try:
            await planner.run()
        except BaseExceptionGroup as group:
            raise first_error(group) from None
        deletes = planner.delete_plan(journal, options.delete_rules(run_id))
        if options.delete and deletes.delete_refused:
            reporter.emit(Notice(f"deletes refused: {deletes.delete_refused}"))
        executor.record(deletes.errors)
        await scheduler.submit(deletes.actions())
    _check_projects(options, planner.missing)
    return _Synced(planner, nightly if planner.complete else None)


@dataclass(frozen=True, slots=True)
class _Synced:
    """A finished listing stage, and what ``--changed-only`` records if the run succeeded."""

    planner: Planner
    nightly: Nightly | None


async def _dry_run(options: PullOptions, reporter: Reporter, client: XnatClient) -> None:
    """List and plan everything; report the plans (``PlanShown``); write nothing, not even the
    journal."""
    path = options.journal_file
    journal = Journal.open(path, readonly=True) if path.exists() else None
    state: LocalState = journal if journal is not None else NoJournal()
    total = Plan().summary()
    gate = SessionGate(options.limits.transfers)  # the zips the run would take

    async def show(owner: Owner, plan: Plan) -> None:
        nonlocal total
        if options.delete_only:
            return  # the run would fetch none of it
        plan = plan if gate.admit(len(plan.scan_zips)) else plan.without_scan_zips()
        total = total + plan.summary()
        if (
            plan.downloads
            or plan.batches
            or plan.scan_zips
            or plan.verifies
            or plan.moves
            or plan.errors
        ):
            reporter.emit(PlanShown(owner.describe(), format_plan(plan)))

    try:
        async with client:
            options = await searched(client, options, reporter)
            planner = Planner(
                scope=options.scope(), lister=client, state=state, reporter=reporter, submit=show
            )
            try:
                await planner.run()
            except BaseExceptionGroup as group:
                raise first_error(group) from None
            if journal is not None and options.delete:
                deletes = planner.delete_plan(journal, options.delete_rules(run_id=-1))
                total = total + deletes.summary()
                reporter.emit(PlanShown("deletes", format_plan(deletes)))
            _check_projects(options, planner.missing)
    finally:
        if journal is not None:
            journal.close()
    reporter.emit(
        PlanShown(
            "plan",
            f"plan: {total.downloads} files to download ({total.download_bytes} bytes), "
            f"{total.skips} up to date, {total.verifies} to verify, {total.moves} to move, "
            f"{total.deletes} to delete, {total.errors} errors",
        )
    )
