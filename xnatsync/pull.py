"""``xnatsync pull``: list owners → diff → plan → scheduler → journal; deletes last.

This module is the front-end: settings (``PullConfig``), the destination lock and journal,
one client, the listing stage (``planner.Planner``) feeding the transfer stage
(``scheduler.Scheduler``), then deletes. Deletes are planned once, after every listing
succeeded, and only for files that left an owner the run listed (or owners gone from a
complete listing): files outside the selection are never deletion candidates.
"""

from __future__ import annotations

import signal
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio

from xnatsync.batching import BatchPolicy
from xnatsync.config import Limits, RetryPolicy, Timeouts
from xnatsync.credentials import resolve_login
from xnatsync.errors import LocalDiskError, UsageError, XnatSyncError
from xnatsync.events import Fanout, Notice, PlanShown, Reporter
from xnatsync.journal import Journal
from xnatsync.layout import Layout, parse_layout
from xnatsync.lock import DestLock
from xnatsync.manifest import LocalState, NoJournal, Owner
from xnatsync.plan import Plan, format_plan
from xnatsync.planner import Ledger, Planner
from xnatsync.report import Summary
from xnatsync.scheduler import Executor, Scheduler, Throttle
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
    batch: BatchPolicy | None = BatchPolicy()  # None: one request per file, never zips
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
            batch=None if settings.get("no_zip") else BatchPolicy(),
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
        last = journal.last_run()
        if last is not None and last["status"] == "running":
            await anyio.to_thread.run_sync(remove_stale_parts, config.dest)
        run_id = journal.start_run(f"pull {config.url} {' '.join(config.projects)}")
        counts = Summary()
        status = "interrupted"
        try:
            async with client:
                await _sync(config, Fanout(reporter, counts), client, journal, run_id)
            status = "ok" if counts.ok else "failed"
        except XnatSyncError:
            status = "error"
            raise
        finally:
            journal.finish_run(run_id, status, counts.counts())


async def _sync(
    config: PullConfig, reporter: Reporter, client: XnatClient, journal: Journal, run_id: int
) -> None:
    ledger = Ledger(journal)
    reporter = Fanout(reporter, ledger)
    executor = Executor(
        client,
        journal,
        config.dest,
        reporter,
        retry=config.retry,
        fsync=config.fsync,
        throttle=Throttle(config.limits.transfers),
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
    """List and plan everything; report the plans (``PlanShown``); write nothing, not even the
    journal."""
    exists = config.journal_path.exists()
    journal = Journal.open(config.journal_path, readonly=True) if exists else None
    state: LocalState = journal if journal is not None else NoJournal()
    total = Plan().summary()

    async def show(owner: Owner, plan: Plan) -> None:
        nonlocal total
        total = total + plan.summary()
        if plan.downloads or plan.batches or plan.verifies or plan.moves or plan.errors:
            reporter.emit(PlanShown(owner.describe(), format_plan(plan)))

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
                reporter.emit(PlanShown("deletes", format_plan(deletes)))
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
