"""``push``: local tree → targets → the server's catalog → plan → scheduler → check → journal.

The run: the tree's lock (the same as pull's: a pull and a push never run on one tree at once)
and the push journal beside pull's, one client, the local listing (``tree.place``, MD5 from the
journal when size and mtime are unchanged, else hashed in worker threads), the server's
listing of every owner the tree names, the plan (``plan``), then one ``Uploader`` action per
resource through the engine's ``Scheduler``.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import anyio

from xnatsync.errors import LocalDiskError, NotFoundError, ProjectNotFoundError, UsageError
from xnatsync.events import ExperimentPlanned, Fanout, FileFailed, PlanShown, Reporter
from xnatsync.journal import Journal, recorded_run
from xnatsync.layout import Reader
from xnatsync.localfs import hash_file
from xnatsync.lock import DestLock
from xnatsync.model import Experiment, Level
from xnatsync.push.execute import Owner, Uploader, journal_file
from xnatsync.push.options import PULL_JOURNAL, STATE_DIR, PushOptions
from xnatsync.push.plan import (
    NO_ZIPS,
    Listed,
    LocalEntry,
    PushPlan,
    ResourceUpload,
    ZipRule,
    listed_key,
    plan,
)
from xnatsync.push.tree import MEMBER_KINDS, Known, NotPushedError, place
from xnatsync.report import Summary
from xnatsync.scheduler import Attempts, Scheduler, Throttle
from xnatsync.temps import PART_SUFFIX
from xnatsync.xnat import routes
from xnatsync.xnat.client import XnatClient

HASHERS = 4  # local MD5s at once (worker threads)


async def push(
    options: PushOptions, reporter: Reporter | None = None, *, client: XnatClient | None = None
) -> Summary:
    """Run one push and return its totals; per-file outcomes arrive as events on ``reporter``
    (failed files are counted, never raised); fatal errors raise an ``XnatSyncError``."""
    reporter = reporter if reporter is not None else Fanout()
    client = client or XnatClient(
        options.url, options.credentials, limits=options.limits, timeouts=options.timeouts,
        retry=options.retry, ssl=options.ssl,
    )  # fmt: skip
    counts = Summary()
    events = Fanout(reporter, counts)
    if not options.source.is_dir():
        raise UsageError(f"--source {options.source} is not a folder")
    reader = Reader(options.layout)  # a template push cannot read back stops the run here
    folder = project_folder(options) if reader.rooted_in_project else whole_tree(options)
    async with client:
        if options.dry_run:
            path = options.journal_file
            journal = Journal.open(path, readonly=True) if path.exists() else None
            try:
                the_plan, _ = await _prepare(options, reader, folder, journal, client, events)
            finally:
                if journal is not None:
                    journal.close()
            events.emit(PlanShown("plan", describe(the_plan)))
            counts.close()
            return counts
        with DestLock(options.source), Journal.open(options.journal_file) as journal:
            the_plan, existing = await _prepare(options, reader, folder, journal, client, events)
            with recorded_run(journal, f"push {options.url} {options.project}", counts):
                await _send(options, the_plan, existing, client, journal, events)
    return counts


def whole_tree(options: PushOptions) -> str:
    """A layout not rooted in ``{project}`` folders: the whole of ``--source`` is sent."""
    if options.tree_project is not None:
        raise UsageError(
            "--tree-project picks a project folder, but this --layout does not start with "
            "'{project}/': the whole --source is sent"
        )
    return ""


def project_folder(options: PushOptions) -> str:
    """The project folder of the tree to send: named, the only one, or the target's name."""
    folders = sorted(
        e.name for e in os.scandir(options.source)
        if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")
    )  # fmt: skip
    if options.tree_project is not None:
        if options.tree_project not in folders:
            raise UsageError(f"{options.source} has no project folder {options.tree_project!r}")
        return options.tree_project
    if len(folders) == 1:
        return folders[0]
    if options.project in folders:
        return options.project
    raise UsageError(
        f"{options.source} holds {len(folders)} project folders ({', '.join(folders[:5]) or '-'}"
        f"{', …' if len(folders) > 5 else ''}): name the one to send with --tree-project"
    )


async def _prepare(
    options: PushOptions,
    reader: Reader,
    folder: str,
    journal: Journal | None,
    client: XnatClient,
    reporter: Reporter,
) -> tuple[PushPlan, set[Owner]]:
    """List both sides and plan; report skips, conflicts and files push cannot send."""
    entries, unsent = await local_entries(options, reader, folder, journal)
    experiments = await project_experiments(client, options.project)
    await client.check_writable(options.project)
    entries = await resolve_members(client, options.project, entries, experiments, unsent)
    catalog, existing = await remote_catalog(client, options.project, entries, experiments)
    entries = await hashed_where_listed(options.source, entries, catalog, unsent)
    rule = ZipRule() if options.zips else NO_ZIPS
    the_plan = plan(entries, catalog, overwrite=options.overwrite, zips=rule)
    sending = sum(len(u.all_files) for u in the_plan.uploads)
    size = sum(u.size for u in the_plan.uploads)
    reporter.emit(ExperimentPlanned(
        options.project, "", sending, size, len(the_plan.skipped), 0, 0,
        len(the_plan.conflicts) + len(unsent),
    ))  # fmt: skip
    for relpath, reason in sorted(unsent):
        reporter.emit(FileFailed(relpath, relpath, reason))
    for conflict in the_plan.conflicts:
        e = conflict.entry
        reason = (
            f"the server has other content ({conflict.listed.size} bytes, MD5 "
            f"{conflict.listed.digest}): left alone; --overwrite replaces it"
        )
        if journal is not None and not options.dry_run:
            journal.mark_failed(journal_file(options.project, e), reason, e.relpath)
        reporter.emit(FileFailed(e.target.key, e.relpath, reason))
    if journal is not None and not options.dry_run:
        for e in the_plan.skipped:  # remembered, so the next run need not hash them
            journal.mark_done(journal_file(options.project, e), e.relpath, e.size, e.mtime_ns,
                              e.md5 or "")  # fmt: skip
    return the_plan, existing


async def local_entries(
    options: PushOptions, reader: Reader, folder: str, journal: Journal | None
) -> tuple[list[LocalEntry], list[tuple[str, str]]]:
    """Every regular file of the project folder, placed (MD5 from the push journal where size
    and mtime are unchanged, else None for now); and the files push cannot send, with why. A
    path that fits no level of the layout stops the run (``UnplacedError``)."""
    found = await anyio.to_thread.run_sync(_walk, options.source / folder)
    known = await anyio.to_thread.run_sync(_pull_known, options.source)
    recorded = {} if journal is None else {
        e.relpath: e for e in journal.iter_done(options.project)
    }  # fmt: skip
    entries: list[LocalEntry] = []
    unsent: list[tuple[str, str]] = []
    for rel, size, mtime_ns, is_link in found:
        relpath = f"{folder}/{rel}" if folder else rel
        if is_link:
            unsent.append((relpath, f"{relpath} is a symlink: not followed, not sent"))
            continue
        try:
            target = place(PurePosixPath(relpath), known, reader)
        except NotPushedError as exc:
            unsent.append((relpath, str(exc)))
            continue
        row = recorded.get(relpath)
        unchanged = row is not None and (row.size, row.mtime_ns) == (size, mtime_ns)
        md5 = row.md5 if unchanged and row is not None else None
        entries.append(LocalEntry(relpath, target, size, mtime_ns, md5))
    return entries, unsent


async def hashed_where_listed(
    source: Path,
    entries: list[LocalEntry],
    catalog: Mapping[str, Listed],
    unsent: list[tuple[str, str]],
) -> list[LocalEntry]:
    """Entries the server lists get their MD5 now (there is something to compare it with);
    the others are hashed while they are sent. A file that changes while hashed joins
    ``unsent``."""
    limiter = anyio.CapacityLimiter(HASHERS)
    out: list[LocalEntry] = []

    async def hashed(entry: LocalEntry) -> None:
        size, md5, mtime_ns = await anyio.to_thread.run_sync(
            hash_file, source / entry.relpath, limiter=limiter
        )
        if (size, mtime_ns) != (entry.size, entry.mtime_ns):
            unsent.append((entry.relpath, f"{entry.relpath} changed while it was read; not sent"))
            return
        out.append(dataclasses.replace(entry, md5=md5))

    async with anyio.create_task_group() as tg:
        for entry in entries:
            if entry.md5 is None and entry.target.key in catalog:
                tg.start_soon(hashed, entry)
            else:
                out.append(entry)
    return out


def _walk(root: Path) -> list[tuple[str, int, int, bool]]:
    """(path relative to ``root``, size, mtime_ns, is a symlink) of every file, sorted; temp
    files of xnatsync runs and the tree's own ``.xnatsync`` folder (journals, lock) left out;
    directories are not followed through symlinks. A folder
    that cannot be read stops the run (its files would go unsent without a word); a file gone
    since it was listed is not there to send."""

    def unreadable(exc: OSError) -> None:
        raise LocalDiskError(f"cannot read {exc.filename}: {exc.strerror or exc}") from exc

    out: list[tuple[str, int, int, bool]] = []
    for dirpath, dirs, files in os.walk(root, onerror=unreadable):
        base = Path(dirpath)
        if base == root and STATE_DIR in dirs:
            dirs.remove(STATE_DIR)
        for name in [*files, *(d for d in dirs if (base / d).is_symlink())]:
            if name.endswith(PART_SUFFIX):
                continue
            try:
                st = os.lstat(base / name)
            except FileNotFoundError:
                continue
            rel = (base / name).relative_to(root).as_posix()
            out.append((rel, st.st_size, st.st_mtime_ns, stat.S_ISLNK(st.st_mode)))
    return sorted(out)


def _pull_known(source: Path) -> dict[str, Known]:
    """What the tree's pull journals (the unsharded one and any shard's) know of each path
    (relative to the tree's root): the file's level and container (scan, assessor or
    reconstruction) ID."""
    levels = {level.value: level for level in Level}
    known: dict[str, Known] = {}
    for path in pull_journals(source):
        with Journal.open(path, readonly=True) as journal:
            for entry in journal.iter_done():
                parts = entry.key.split("/", 5)
                if len(parts) == 6 and parts[2] in levels:
                    known[entry.relpath] = (levels[parts[2]], parts[3])
    return known


def pulled_session_types(source: Path) -> dict[str, str]:
    """Session label → XNAT type, as the tree's pull journals recorded them (a label typed two
    ways is left out: push then uses ``--xsi-type``)."""
    types: dict[str, set[str]] = {}
    for path in pull_journals(source):
        with Journal.open(path, readonly=True) as journal:
            for label, kind in journal.session_types().items():
                types.setdefault(label, set()).add(kind)
    return {label: kinds.pop() for label, kinds in types.items() if len(kinds) == 1}


def pull_journals(source: Path) -> list[Path]:
    """The tree's pull journals: ``journal.db`` and the shards' ``journal.shard-…db``."""
    folder = source / PULL_JOURNAL.parent
    return sorted(folder.glob("journal*.db")) if folder.is_dir() else []


async def project_experiments(client: XnatClient, project: str) -> dict[str, Experiment]:
    """The target project's experiments by label; a project the user cannot see stops the
    run before anything is sent."""
    try:
        return {e.label: e for e in await client.list_experiments(project)}
    except NotFoundError as exc:
        raise ProjectNotFoundError(
            f"project {project}: not on {client.base_url}, or not visible to this user "
            "(XNAT answers 404 for both); nothing was sent"
        ) from exc


async def resolve_members(
    client: XnatClient,
    project: str,
    entries: list[LocalEntry],
    experiments: Mapping[str, Experiment],
    unsent: list[tuple[str, str]],
) -> list[LocalEntry]:
    """Assessor and reconstruction folders named by the target's ID for them (a folder may
    name one by ID, as pull writes it, or by label); files of one the target session lacks
    join ``unsent``: push does not create them (their type and label are not in the tree)."""
    wanted = sorted({(e.target.level, e.target.subject, e.target.session) for e in entries
                     if e.target.level in MEMBER_KINDS})  # fmt: skip
    ids: dict[tuple[Level, str], dict[str, str]] = {}  # (level, session) → name → ID
    for level, subject, session in wanted:
        names: dict[str, str] = {}
        if session in experiments:
            route = routes.session_members(project, subject, session, MEMBER_KINDS[level])
            for row in await client.list_rows(route):
                member = row.get("ID", "")
                names.update({row.get("label", "") or member: member, member: member})
        ids[(level, session)] = names
    out: list[LocalEntry] = []
    for entry in entries:
        t = entry.target
        if t.level not in MEMBER_KINDS:
            out.append(entry)
            continue
        found = ids[(t.level, t.session)].get(t.scan)
        if found is None:
            what = MEMBER_KINDS[t.level].removesuffix("s")
            unsent.append((entry.relpath, (
                f"{entry.relpath}: no {what} {t.scan!r} in session {t.session!r} of {project}; "
                f"push fills an existing {what}'s resources but does not create one"
            )))  # fmt: skip
            continue
        out.append(dataclasses.replace(entry, target=dataclasses.replace(t, scan=found)))
    return out


async def remote_catalog(
    client: XnatClient,
    project: str,
    entries: list[LocalEntry],
    experiments: Mapping[str, Experiment],
) -> tuple[dict[str, Listed], set[Owner]]:
    """What the server lists for every owner the tree names, and which owners exist."""
    existing: set[Owner] = {(Level.EXPERIMENT, e.subject_label, e.label, "") for e in
                            experiments.values()}  # fmt: skip
    existing |= {e.target.owner for e in entries if e.target.level in MEMBER_KINDS}
    files = []
    levels = {e.target.level for e in entries}
    if Level.PROJECT in levels:
        files += await client.list_project_files(project)
    if Level.SUBJECT in levels:
        subjects = {
            r.get("label", ""): r.get("ID", "") for r in await client.list_subjects(project)
        }
        existing |= {(Level.SUBJECT, label, "", "") for label in subjects}
        for label in sorted({e.target.subject for e in entries if e.target.level is Level.SUBJECT}):
            if label in subjects:
                files += await client.list_subject_files(project, subjects[label], label)
    for label in sorted({e.target.session for e in entries if e.target.session}):
        if label in experiments:
            files += await client.list_experiment_files(project, experiments[label])
    catalog: dict[str, Listed] = {}
    for f in files:
        catalog[listed_key(f)] = Listed(f.size, f.digest)
        if f.level is Level.SCAN:
            existing.add((Level.SCAN, f.subject, f.experiment, f.container))
    return catalog, existing


async def _send(
    options: PushOptions,
    the_plan: PushPlan,
    existing: set[Owner],
    client: XnatClient,
    journal: Journal,
    reporter: Reporter,
) -> None:
    attempts = Attempts(reporter, retry=options.retry, throttle=Throttle(options.limits.transfers))
    types = await anyio.to_thread.run_sync(pulled_session_types, options.source)
    uploader = Uploader(
        client=client, journal=journal, source=options.source, project=options.project,
        session_type=options.session_type, reporter=reporter, attempts=attempts,
        existing=set(existing), session_types=types,
    )  # fmt: skip
    async with Scheduler[ResourceUpload](uploader, options.limits) as scheduler:
        await scheduler.submit(the_plan.uploads)


def describe(the_plan: PushPlan) -> str:
    """A dry run's plan in one paragraph."""
    sending = sum(len(u.all_files) for u in the_plan.uploads)
    size = sum(u.size for u in the_plan.uploads)
    replacing = sum(len(u.replace) for u in the_plan.uploads)
    by_size = the_plan.by_size_only
    zipped = sum(len(u.zips) for u in the_plan.uploads)
    return (
        f"plan: {sending} files to send ({size} bytes) into {len(the_plan.uploads)} resources"
        f"{f' (some in {zipped} zips the server unpacks)' if zipped else ''}"
        f"{f', {replacing} replacing the server copy' if replacing else ''}; "
        f"{len(the_plan.skipped)} already there"
        f"{f' ({by_size} by size only: no MD5 listed)' if by_size else ''}"
        f"; {len(the_plan.conflicts)} conflicts"
    )
