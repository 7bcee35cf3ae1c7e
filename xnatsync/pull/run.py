"""``pull``: list owners → diff → plan → scheduler → journal; deletes last.

The front-end's run: the destination lock and journal, one client, the listing stage
(``listing.Planner``) feeding the transfer stage (the engine's ``Scheduler`` running
``execute.Executor``), then deletes. Deletes are planned once, after every listing succeeded,
and only for files that left an owner the run listed (or owners gone from a complete listing):
files outside the selection are never deletion candidates.
"""

from __future__ import annotations

import functools

import anyio

from xnatsync.errors import LocalDiskError, ProjectNotFoundError, first_error
from xnatsync.events import Fanout, Notice, PlanShown, Reporter
from xnatsync.journal import Journal, recorded_run
from xnatsync.lock import DestLock
from xnatsync.pull.batching import SessionGate
from xnatsync.pull.describe import format_plan
from xnatsync.pull.execute import Executor
from xnatsync.pull.listing import Ledger, Planner
from xnatsync.pull.manifest import LocalState, NoJournal, Owner
from xnatsync.pull.options import PullOptions
from xnatsync.pull.plan import Action, Plan
from xnatsync.report import Summary
from xnatsync.scheduler import Attempts, Scheduler, Throttle
from xnatsync.temps import TempNames, sweep
from xnatsync.xnat.client import XnatClient


async def pull(
    options: PullOptions, reporter: Reporter | None = None, *, client: XnatClient | None = None
) -> Summary:
    """Run one pull and return its totals. Per-file outcomes arrive as events on ``reporter``
    (failed files are counted, never raised); fatal errors raise an ``XnatSyncError``.

    Cancel the surrounding scope to stop: temp files are removed, the journal keeps what was
    verified and records the run as interrupted; running it again finishes the rest.
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
    # Log in before touching DEST: a run that cannot reach the server, or is refused, leaves
    # the destination as it found it (no folder, no lock, no journal).
    async with client:
        try:
            options.dest.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LocalDiskError(f"cannot create {options.dest}: {exc.strerror or exc}") from exc
        with DestLock(options.dest) as lock, Journal.open(options.journal_file) as journal:
            await _sweep(options, lock, journal.last_run())
            temps = TempNames(lock.tag, options.dest)
            command = f"pull {options.url} {' '.join(options.projects)}"
            try:
                with recorded_run(journal, command, counts) as run_id:
                    await _sync(options, Fanout(reporter, counts), client, journal, run_id, temps)
            finally:
                temps.close()
    return counts


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
) -> None:
    ledger = Ledger(journal, run_id)
    reporter = Fanout(reporter, ledger)
    throttle = Throttle(options.limits.transfers)
    attempts = Attempts(reporter, retry=options.retry, throttle=throttle)
    executor = Executor(
        source=client, journal=journal, dest=options.dest, reporter=reporter,
        attempts=attempts, temps=temps, fsync=options.fsync,
    )  # fmt: skip
    gate = SessionGate(options.limits.transfers)  # scan-group zips once streams are busy
    async with Scheduler[Action](executor, options.limits) as scheduler:

        async def submit(owner: Owner, plan: Plan) -> None:
            executor.record(plan.errors)
            plan = plan if gate.admit(len(plan.scan_zips)) else plan.without_scan_zips()
            await scheduler.submit(plan.actions())

        planner = Planner(
            scope=options.scope(), lister=client, state=journal, reporter=reporter,
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
