"""``xnatsync pull``: list owners → diff → plan → scheduler → journal; deletes last.

The listing stage runs ``limits.listings`` listers over a bounded queue of owners (experiments,
subjects, the project itself); each lister plans one owner and submits the plan, which blocks
while the transfer queue is full. Deletes are planned once, after every listing succeeded, and
only for files that left an owner the run listed (or owners gone from a complete listing):
files outside the selection are never deletion candidates.
"""

from __future__ import annotations

import hashlib
import signal
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.abc

from xnatsync.config import Limits, RetryPolicy, Timeouts
from xnatsync.credentials import resolve_login
from xnatsync.diff import diff
from xnatsync.errors import LocalDiskError, UsageError, XnatSyncError
from xnatsync.events import (
    Event,
    ExperimentPlanned,
    Fanout,
    FileDone,
    FileFailed,
    ListingFailed,
    Notice,
    Reporter,
)
from xnatsync.journal import Entry, Journal, unchanged_on_disk
from xnatsync.layout import Layout, Memo, parse_layout
from xnatsync.lock import DestLock
from xnatsync.manifest import (
    Lister,
    LocalState,
    NoJournal,
    Owner,
    local_manifest,
    remote_listing,
    remote_manifest,
    selected,
)
from xnatsync.plan import (
    Download,
    Move,
    Plan,
    PlanOptions,
    PlanSummary,
    Verify,
    build_delete_plan,
    build_plan,
    format_plan,
)
from xnatsync.scheduler import Executor, Scheduler
from xnatsync.selection import Selection
from xnatsync.transfer import first_error, remove_stale_parts
from xnatsync.xnat.auth import Credentials
from xnatsync.xnat.client import XnatClient


@dataclass(frozen=True)
class PullConfig:
    """Everything one pull needs, validated."""

    url: str
    projects: tuple[str, ...]
    dest: Path
    journal_path: Path
    credentials: Credentials = field(repr=False)
    selection: Selection = Selection()
    layout: Layout = field(default_factory=parse_layout)
    dry_run: bool = False
    delete: bool = False
    max_delete: int | None = None
    purge: bool = False
    fsync: bool = False
    limits: Limits = Limits()
    timeouts: Timeouts = Timeouts()
    retry: RetryPolicy = RetryPolicy()
    ssl: ssl.SSLContext | bool | None = None
    report_path: Path | None = None
    log_json: bool = False
    progress: bool = False
    quiet: bool = False

    @classmethod
    def build(
        cls,
        settings: dict[str, Any],
        *,
        selection: Selection,
        limits: Limits,
        timeouts: Timeouts,
        retry: RetryPolicy,
        prompt: Callable[[str], str] | None,
        stderr_is_tty: bool,
        env: dict[str, str],
    ) -> PullConfig:
        url = check_url(settings["url"])
        dest = Path(settings["dest"]).absolute()
        layout = settings.get("layout")
        credentials = resolve_login(
            url, user=settings.get("user"), token_env=settings.get("token_env"), env=env,
            prompt=prompt,
        )  # fmt: skip
        journal = settings.get("journal")
        report = settings.get("report")
        return cls(
            url=url,
            projects=tuple(dict.fromkeys(settings["project"])),
            dest=dest,
            journal_path=Path(journal) if journal else dest / ".xnatsync" / "journal.db",
            credentials=credentials,
            selection=selection,
            layout=parse_layout(layout) if layout else parse_layout(),
            dry_run=bool(settings.get("dry_run")),
            delete=bool(settings.get("delete")),
            max_delete=settings.get("max_delete"),
            purge=bool(settings.get("no_trash")),
            fsync=bool(settings.get("fsync")),
            limits=limits,
            timeouts=timeouts,
            retry=retry,
            ssl=tls_context(settings.get("ca_bundle"), bool(settings.get("insecure"))),
            report_path=Path(report) if report else None,
            log_json=bool(settings.get("log_json")),
            progress=bool(settings.get("progress"))
            or (stderr_is_tty and not settings.get("no_progress") and not settings.get("quiet")),
            quiet=bool(settings.get("quiet")),
        )


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"not an XNAT URL: {url!r} (expected http(s)://host[:port][/path])")
    if parts.username or parts.password:
        raise UsageError(
            "put credentials in XNATSYNC_USER/XNATSYNC_PASSWORD or ~/.netrc, not the URL"
        )
    if parts.query or parts.fragment:
        raise UsageError(f"the XNAT URL must not have a query or fragment: {url!r}")
    return url.rstrip("/")


def tls_context(ca_bundle: str | None, insecure: bool) -> ssl.SSLContext | bool | None:
    if insecure:
        return False
    if ca_bundle:
        try:
            return ssl.create_default_context(cafile=ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"--ca-bundle {ca_bundle}: {exc}") from exc
    return None


Submit = Callable[[Owner, Plan], Awaitable[None]]


@dataclass
class _Owed:
    fingerprint: str
    remaining: int
    failed: bool = False


class Ledger:
    """Records an owner's listing fingerprint once every file its plan touches is done.

    A reporter: completions arrive as ``FileDone``/``FileFailed`` events, which the executor
    emits after the journal rows, so a fingerprint is written after the rows it vouches for.
    A failed file, or a plan with errors, leaves the owner without one (next run: full diff).
    """

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._owner_of: dict[str, tuple[str, str]] = {}
        self._owed: dict[tuple[str, str], _Owed] = {}

    def expect(self, project: str, owner: str, fingerprint: str, plan: Plan) -> None:
        self._journal.forget_fingerprint(project, owner)
        if plan.errors:
            return
        actions: tuple[Download | Verify | Move, ...] = (
            *plan.downloads,
            *plan.verifies,
            *plan.moves,
        )
        if not actions:
            self._journal.set_fingerprint(project, owner, fingerprint)
            return
        self._owed[(project, owner)] = _Owed(fingerprint, len(actions))
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
                self._journal.set_fingerprint(*owner, owed.fingerprint)

    def close(self) -> None:
        pass


@dataclass
class Planner:
    """The listing stage: discovers owners, plans each, hands plans on; tracks completeness."""

    config: PullConfig
    lister: Lister
    state: LocalState
    reporter: Reporter
    submit: Submit
    journal: Journal | None = None
    run_id: int = 0
    ledger: Ledger | None = None
    complete: bool = True
    shape: str = ""
    listed: set[tuple[str, str]] = field(default_factory=set)
    known: set[tuple[str, str]] = field(default_factory=set)
    kinds: set[tuple[str, str]] = field(default_factory=set)

    async def run(self) -> None:
        send, recv = anyio.create_memory_object_stream[Owner](self.config.limits.listings * 2)
        async with anyio.create_task_group() as tg:
            for _ in range(self.config.limits.listings):
                tg.start_soon(self._lister, recv.clone())
            recv.close()
            async with send:
                for project in self.config.projects:
                    await self._discover(project, send)

    def _listing_failed(self, what: str, exc: XnatSyncError) -> None:
        if exc.fatal:
            raise exc
        self.complete = False
        self.reporter.emit(ListingFailed(what, str(exc)))

    async def _discover(self, project: str, send: anyio.abc.ObjectSendStream[Owner]) -> None:
        sel = self.config.selection
        if sel.project_resources:
            await send.send(Owner(project, "", ""))
        try:
            experiments = await self.lister.list_experiments(project)
        except XnatSyncError as exc:
            self._listing_failed(f"experiments of {project}", exc)
            return
        self.kinds.add((project, "experiment"))
        self.known.update((project, e.id) for e in experiments)
        for exp in experiments:
            if sel.wants_experiment(exp):
                await send.send(Owner(project, exp.id, exp.label, exp))
        if not sel.subject_resources:
            return
        try:
            subjects = await self.lister.list_subjects(project)
        except XnatSyncError as exc:
            self._listing_failed(f"subjects of {project}", exc)
            return
        self.kinds.add((project, "subject"))
        for row in subjects:
            sid, label = row.get("ID", ""), row.get("label", "")
            self.known.add((project, sid))
            if sid and sel.wants_subject(sid, label):
                await send.send(Owner(project, sid, label))

    async def _lister(self, recv: anyio.abc.ObjectReceiveStream[Owner]) -> None:
        async with recv:
            async for owner in recv:
                await self._plan_owner(owner)

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
        if self.journal is not None:
            self.journal.mark_seen([f.key for f in remote], self.run_id)
        local = local_manifest(self.state, self.config.dest, owner)
        wanted = selected(remote, self.config.selection)
        placer = Memo(self.config.layout)
        changes = diff(wanted, local, relpath_of=placer.relpath)
        plan = build_plan(changes, placer, PlanOptions())
        if self.ledger is not None:
            self.ledger.expect(owner.project, owner.id, fingerprint, plan)
        self._planned(owner, plan.summary())
        await self.submit(owner, plan)

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
            sel = self.config.selection
            filters = (sorted(sel.resources), sel.scan_types, sel.assessors, sel.session_resources)
            self.shape = f"{self.config.layout.describe()}\n{filters!r}"
        text = f"{listing}\n{self.shape}"
        return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

    async def _unchanged(self, owner: Owner, fingerprint: str) -> bool:
        """The no-op fast path: the same listing as when every file was last verified, and
        every file still as verified on disk (one lstat each). Nothing to parse or diff."""
        journal = self.journal
        if journal is None or journal.fingerprint(owner.project, owner.id) != fingerprint:
            return False
        rows = journal.owner_rows(owner.project, owner.id)
        if rows is None:
            return False
        dest = self.config.dest
        if not await anyio.to_thread.run_sync(unchanged_on_disk, dest, rows):
            return False
        journal.mark_owner_seen(owner.project, owner.id, self.run_id)
        self._planned(owner, PlanSummary(skips=len(rows)))
        return True

    def deletable(self, entry: Entry) -> bool:
        """A file that left an owner we listed, or whose owner left a complete listing."""
        if (entry.project, entry.owner) in self.listed:
            return True
        if (entry.project, entry.owner) in self.known:
            return False
        level = entry.key.split("/")[2]
        kind = level if level in ("project", "subject") else "experiment"
        return (entry.project, kind) in self.kinds

    def delete_plan(self, journal: Journal, run_id: int) -> Plan:
        cfg = self.config
        options = PlanOptions(
            delete=cfg.delete,
            listing_complete=self.complete,
            max_delete=cfg.max_delete,
            purge=cfg.purge,
            run_id=run_id,
        )
        candidates = (
            e for e in journal.delete_candidates(cfg.projects, run_id) if self.deletable(e)
        )
        return build_delete_plan(candidates, journal.count(cfg.projects), options)


async def pull(config: PullConfig, reporter: Reporter, client: XnatClient | None = None) -> None:
    """Run one pull. Per-file outcomes arrive as events; fatal errors raise."""
    client = client or XnatClient(
        config.url, config.credentials, limits=config.limits, timeouts=config.timeouts,
        retry=config.retry, ssl=config.ssl,
    )  # fmt: skip
    if config.dry_run:
        await _dry_run(config, reporter, client)
        return
    try:
        config.dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LocalDiskError(f"cannot create {config.dest}: {exc.strerror or exc}") from exc
    with DestLock(config.dest), Journal.open(config.journal_path) as journal:
        last = journal.summary()["last_run"]
        if last is not None and last["status"] == "running":
            await anyio.to_thread.run_sync(remove_stale_parts, config.dest)
        run_id = journal.start_run(f"pull {config.url} {' '.join(config.projects)}")
        status = "interrupted"
        try:
            async with client:
                await _sync(config, reporter, client, journal, run_id)
            status = "ok"
        except XnatSyncError:
            status = "error"
            raise
        finally:
            journal.finish_run(run_id, status, {})


async def _sync(
    config: PullConfig, reporter: Reporter, client: XnatClient, journal: Journal, run_id: int
) -> None:
    ledger = Ledger(journal)
    reporter = Fanout(reporter, ledger)
    executor = Executor(
        client, journal, config.dest, reporter, retry=config.retry, fsync=config.fsync
    )
    async with Scheduler(executor, config.limits) as scheduler:

        async def submit(owner: Owner, plan: Plan) -> None:
            await scheduler.submit(plan)

        planner = Planner(config, client, journal, reporter, submit, journal, run_id, ledger)
        try:
            await planner.run()
        except BaseExceptionGroup as group:
            raise first_error(group) from None
        deletes = planner.delete_plan(journal, run_id)
        if config.delete and deletes.delete_refused:
            reporter.emit(Notice(f"deletes refused: {deletes.delete_refused}"))
        await scheduler.submit(deletes)


async def _dry_run(config: PullConfig, reporter: Reporter, client: XnatClient) -> None:
    """List and plan everything; print the plans; write nothing, not even the journal."""
    journal = Journal.open(config.journal_path) if config.journal_path.exists() else None
    state: LocalState = journal if journal is not None else NoJournal()
    total = Plan().summary()

    async def show(owner: Owner, plan: Plan) -> None:
        nonlocal total
        total = total + plan.summary()
        if plan.downloads or plan.verifies or plan.moves or plan.errors:
            print(f"# {owner.describe()}\n{format_plan(plan)}")

    try:
        async with client:
            planner = Planner(config, client, state, reporter, show)
            try:
                await planner.run()
            except BaseExceptionGroup as group:
                raise first_error(group) from None
            if journal is not None and config.delete:
                deletes = planner.delete_plan(journal, run_id=-1)
                total = total + deletes.summary()
                print(f"# deletes\n{format_plan(deletes)}")
    finally:
        if journal is not None:
            journal.close()
    print(
        f"plan: {total.downloads} files to download ({total.download_bytes} bytes), "
        f"{total.skips} up to date, {total.verifies} to verify, {total.moves} to move, "
        f"{total.deletes} to delete, {total.errors} errors"
    )


def run(config: PullConfig, reporter: Reporter) -> bool:
    """Run a pull from synchronous code; True if SIGINT/SIGTERM interrupted it.

    An interrupted run cancels every task: temp files are removed, the journal keeps what was
    verified and records the run as interrupted; rerunning finishes the rest.
    """
    return anyio.run(_main, config, reporter)


async def _main(config: PullConfig, reporter: Reporter) -> bool:
    interrupted = False
    try:
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                nonlocal interrupted
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        interrupted = True
                        tg.cancel_scope.cancel()
                        return

            tg.start_soon(watch)
            try:
                await pull(config, reporter)
            finally:
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The task group wraps what pull() raised; callers map the error itself to an exit code.
        raise first_error(group) from None
    return interrupted
