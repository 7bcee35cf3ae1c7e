"""``import``: discover → studies → labels → per study: look, send what is missing, check.

The run: the state folder's lock and journal, one client, discovery of every source (non-DICOM
files are counted and skipped, unreadable ones fail), grouping by StudyInstanceUID (instances
XNAT would refuse fail, duplicates are sent once), labels (one session per study), then one
``StudySender`` action per study through the engine's ``Scheduler`` (few at once: imports are
heavy for the server). A study the journal has ``done`` with the same instances is not looked
at again.
"""

from __future__ import annotations

from pathlib import Path

import anyio

from xnatsync.dicom.discover import check_sources, discover
from xnatsync.dicom.instance import Instance, Skipped, Unreadable
from xnatsync.dicom.labels import LabelFailure, Labelled, assign
from xnatsync.dicom.options import ImportOptions
from xnatsync.dicom.send import Sessions, StudySender, fingerprint, list_sessions, study_label
from xnatsync.dicom.studies import group
from xnatsync.errors import NotFoundError, ProjectNotFoundError
from xnatsync.events import ExperimentPlanned, Fanout, FileFailed, Notice, PlanShown, Reporter
from xnatsync.journal import Journal, recorded_run
from xnatsync.lock import DestLock
from xnatsync.report import Summary
from xnatsync.scheduler import Attempts, Scheduler, Throttle
from xnatsync.xnat.client import XnatClient

JOURNAL = "journal.db"


async def import_dicom(
    options: ImportOptions,
    state: Path,
    reporter: Reporter | None = None,
    *,
    client: XnatClient | None = None,
) -> Summary:
    """Run one import with its journal and lock under ``state``; return its totals (per-file
    and per-study failures are counted, never raised; fatal errors raise)."""
    reporter = reporter if reporter is not None else Fanout()
    counts = Summary()
    events = Fanout(reporter, counts)
    client = client or XnatClient(
        options.url, options.credentials, limits=options.limits, timeouts=options.timeouts,
        retry=options.retry, ssl=options.ssl,
    )  # fmt: skip
    await anyio.to_thread.run_sync(check_sources, list(options.sources))  # a typo: no login
    async with client:  # logged in before the sources are read: a server down fails at once
        try:
            archived = await list_sessions(client, options.project)
        except NotFoundError as exc:
            raise ProjectNotFoundError(
                f"project {options.project}: not on {client.base_url}, or not visible to this "
                "user (XNAT answers 404 for both); nothing was sent"
            ) from exc
        await client.check_writable(options.project)
        labelled = await _studies(options, events)
        if options.dry_run:
            _show(labelled, archived, events)
            counts.close()
            return counts
        with DestLock(state), Journal.open(state / JOURNAL) as journal:
            done = {e.relpath: e.md5 for e in journal.iter_done(options.project)}
            todo = []
            for item in labelled:
                if done.get(study_label(item)) == fingerprint(item):
                    events.emit(ExperimentPlanned(options.project, item.session, 0, 0,
                                                  item.study.count, 0, 0, 0))  # fmt: skip
                else:
                    todo.append(item)
            with recorded_run(journal, f"import {options.url} {options.project}", counts):
                await _send(options, todo, client, journal, events, archived)
    return counts


async def _studies(options: ImportOptions, reporter: Reporter) -> list[Labelled]:
    """Discover, group and label; report what will not be sent."""
    instances: list[Instance] = []
    skipped = 0
    async with discover(list(options.sources), follow_symlinks=options.follow_symlinks) as found:
        async for item in found:
            if isinstance(item, Instance):
                instances.append(item)
            elif isinstance(item, Skipped):
                skipped += 1
            elif isinstance(item, Unreadable):
                reporter.emit(FileFailed(str(item.path), str(item.path), item.reason))
    if skipped:
        reporter.emit(Notice(f"{skipped} files are not DICOM (or are symlinks): skipped"))
    grouping = group(instances)
    for rejected in grouping.rejected:
        path = str(rejected.path)
        reporter.emit(FileFailed(path, path, rejected.reason))
    if grouping.duplicates:
        reporter.emit(Notice(
            f"{len(grouping.duplicates)} instances are copies of others (same SOPInstanceUID): "
            f"each sent once (first: {grouping.duplicates[0].dropped})"
        ))  # fmt: skip
    out: list[Labelled] = []
    for result in assign(grouping.studies, options.naming):
        if isinstance(result, LabelFailure):
            uid = result.study.uid
            reporter.emit(FileFailed(uid, f"study {uid}", result.reason))
        else:
            if result.suffix > 1:
                reporter.emit(Notice(
                    f"study {result.study.uid} would share its session label with another "
                    f"study: sent as {result.session}"
                ))  # fmt: skip
            out.append(result)
    return out


async def _send(
    options: ImportOptions,
    todo: list[Labelled],
    client: XnatClient,
    journal: Journal,
    reporter: Reporter,
    archived: Sessions,
) -> None:
    attempts = Attempts(reporter, retry=options.retry, throttle=Throttle(options.limits.transfers))
    sender = StudySender(client=client, journal=journal, project=options.project,
                         reporter=reporter, attempts=attempts,
                         part_bytes=options.part_bytes,
                         to_prearchive=options.to_prearchive)  # fmt: skip
    sender.sessions.update(archived.by_label)
    sender.by_uid.update(archived.by_uid)
    async with Scheduler[Labelled](sender, options.limits) as scheduler:
        await scheduler.submit(todo)


def _show(labelled: list[Labelled], archived: Sessions, reporter: Reporter) -> None:
    lines = []
    for item in labelled:
        there = ""
        found = archived.by_uid.get(item.study.uid)
        if found is not None and found.label != item.session:
            there = f" (archived as {found.label}: what it lacks is appended there)"
        elif found is not None or item.session in archived.by_label:
            there = " (the session exists: what it lacks is appended)"
        lines.append(f"{item.session} ({item.subject}): {item.study.count} instances, "
                     f"{len(item.study.series)} series{there}")  # fmt: skip
    reporter.emit(PlanShown("plan", "\n".join(lines) + f"\nplan: {len(labelled)} studies to send"))
