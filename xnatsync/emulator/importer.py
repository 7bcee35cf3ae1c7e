"""The import service: `POST /data/services/import` (DICOM-zip and gradual-DICOM, §5.1, §8.4).

The request is read by `import_receive`, unpacked and header-read in a worker thread
(`import_staging`), then applied to the prearchive on the event loop. The prearchive, archive
and status routes live in their own modules, registered from here with the configured session
idle time and XNAT version.

Rules (XNAT's DicomZipImporter and GradualDicomImporter):
* DICOM-zip/SI with `action=commit`, or with any `dest` (which implies it), build every touched
  session (READY, TestPrearchiveMgmt.testPrearchiveListing) and archive them in the request only
  if asked: an `/archive…` dest, or `AA`/`auto-archive=true` without a dest (a `/prearchive…`
  dest forces them false). Without a commit the sessions stay RECEIVING, and `AA=true` only marks
  a new session AutoArchive, archived once idle (`prearchive_routes.sweep`). An explicit
  `action=commit` also makes `Ignore-Unparsable` default to true.
* gradual-DICOM never builds; an `/archive…` dest archives in the request.
* `dest=/prearchive/projects/P/TS/F` names one session: created there if absent (label from
  `EXPT_LABEL`/`session`, else F), merged into if present; an instance of another study → 400
  (409 for gradual-DICOM) with nothing stored; the legacy SI importer merges it.
* `Direct-Archive=true` archives in the request on 1.8.3+ for a known project, and is ignored
  before (`xnat_version`); a tar/tgz sent to DICOM-zip before 1.8.3 imports nothing (200, empty).
* With `http-session-listener=<id>`, progress goes to `/data/status/<id>`: PROCESSING steps, a
  terminal COMPLETED (`Prearchive:`/`Archive:` and the URIs) when the import commits, or FAILED.

Answers: 200 `text/uri-list`, one URI per line ending CRLF (`format=txt`: one bare URI);
unreadable member, or a stored zip member with a data descriptor (Java's ZipInputStream refuses
those) → 400 `unable to read DICOM object <name>` (members before it stay);
conflicts → 400 for DICOM-zip, 409 for gradual-DICOM/SI; GET/PUT → 405.
"""

from __future__ import annotations

import shutil
import uuid
import zipfile
from collections.abc import Mapping
from functools import partial
from pathlib import Path

import anyio.to_thread
from aiohttp import web
from multidict import MultiDict

from xnatsync.emulator import (
    archive_routes,
    common,
    prearchive_routes,
    status_routes,
    version_routes,
)
from xnatsync.emulator.archiving import (
    ArchiveError,
    Destination,
    archive_session,
    parse_dest,
    resolve_target,
)
from xnatsync.emulator.dicom_import import UNASSIGNED, Naming, identify
from xnatsync.emulator.import_receive import ImportRefused, handler_name, receive, truthy
from xnatsync.emulator.import_staging import StageResult, stage_archive, stage_single
from xnatsync.emulator.prearchive import READY, Conflict, PrearcSession
from xnatsync.emulator.prearchive_routes import prearchive_of, project_autoarchive, sweep
from xnatsync.emulator.settings import EmulatorConfig
from xnatsync.emulator.store import Store


def _pick(params: Mapping[str, str], *names: str) -> str | None:
    return next((params[n] for n in names if params.get(n, "").strip()), None)


def _naming(params: Mapping[str, str], dest: Destination | None) -> Naming:
    project = _pick(params, "PROJECT_ID", "project")
    subject = _pick(params, "SUBJECT_ID", "subject")
    session = _pick(params, "EXPT_LABEL", "session")
    if dest is not None:
        project = dest.project or project
        subject = dest.subject or subject
        if dest.timestamp is None:  # a prearchive dest names the folder, not the label
            session = dest.session or session
    return Naming(project, subject, session)


def _session_options(
    session: PrearcSession, params: Mapping[str, str], created: bool, mark_auto: bool
) -> None:
    if created:
        session.prevent_anon = truthy(params, "prevent_anon")
        session.prevent_auto_commit = truthy(params, "prevent_auto_commit")
        session.source = params.get("SOURCE", "")
        session.visit = params.get("VISIT", "")
        session.protocol = params.get("PROTOCOL", "")
        session.timezone = params.get("TIMEZONE", "")
        if mark_auto:
            session.autoarchive = "AutoArchive"
    archive_mode = params.get("autoArchive", "")
    if archive_mode in ("Manual", "AutoArchive", "AutoArchiveOverwrite"):
        session.autoarchive = archive_mode


def _checked_naming(request: web.Request, naming: Naming) -> Naming:
    """The naming with the project's ID; 400 unknown project, 403 not editable."""
    if naming.project is None or naming.project == UNASSIGNED:
        return naming
    record = common.store_of(request).project(naming.project)
    if record is None:
        raise ImportRefused(400, f"Invalid project: {naming.project}")
    if not common.can_edit(common.user_of(request), record):
        raise ImportRefused(403, f"Insufficient privileges for project {naming.project}")
    return Naming(record.id, naming.subject, naming.session)


def _named_session(
    request: web.Request, staged: StageResult, naming: Naming, dest: Destination, handler: str
) -> PrearcSession | None:
    """The session `dest=/prearchive/projects/P/TS/F` names: found, or created for the first
    instance's study. Conflict (before anything is stored) if an instance is of another study,
    except with the legacy SI importer, which merges it (TestImport.testPrearcMergeDiffUidSi)."""
    prearchive = prearchive_of(request)
    project, folder, stamp = naming.project or UNASSIGNED, dest.session or "", dest.timestamp
    session = prearchive.get(project, stamp or "", folder)
    if not staged.instances:
        return session
    first = staged.instances[0].header
    study = session.study_uid if session is not None else first.study_uid
    if handler != "SI" and any(item.header.study_uid != study for item in staged.instances):
        where = session.url if session is not None else _dest_url(project, stamp or "", folder)
        raise Conflict(f"Unable to merge a different study into {where}")
    if session is not None:
        return session
    store = common.store_of(request)
    who = identify(first, Naming(project, naming.subject, naming.session or folder), lambda p: True)
    return prearchive.create(
        project,
        folder,
        who.subject,
        first,
        project_autoarchive(store, project),
        timestamp=stamp,
        name=who.session,
    )


def _dest_url(project: str, timestamp: str, folder: str) -> str:
    """A prearchive session's URL (no `/data`)."""
    return f"/prearchive/projects/{project}/{timestamp}/{folder}"


def _apply(
    request: web.Request,
    staged: StageResult,
    params: Mapping[str, str],
    dest: Destination | None,
    handler: str,
) -> list[PrearcSession]:
    """Put staged instances into prearchive sessions, in order; the touched sessions."""
    store = common.store_of(request)
    prearchive = prearchive_of(request)
    naming = _checked_naming(request, _naming(params, dest))
    named = None
    if dest is not None and dest.timestamp is not None:
        named = _named_session(request, staged, naming, dest, handler)
    overwrite = params.get("overwrite", "") == "delete" or truthy(params, "overwrite_files")
    mark_auto = dest is None and truthy(params, "AA", "auto-archive")
    touched: dict[str, PrearcSession] = {}
    for item in staged.instances:
        if named is not None:
            session, created = named, named.url not in touched and not named.scans
        else:
            who = identify(item.header, naming, lambda p: store.project(p) is not None)
            found = prearchive.find(who.project, item.header.study_uid, who.session)
            created = found is None
            session = found or prearchive.create(
                who.project,
                who.session,
                who.subject,
                item.header,
                project_autoarchive(store, who.project),
            )
        _session_options(session, params, created, mark_auto)
        prearchive.add_instance(session, item.header, item.name, item.path, overwrite=overwrite)
        touched[session.url] = session
    return list(touched.values())


def _archive_all(
    request: web.Request,
    sessions: list[PrearcSession],
    params: Mapping[str, str],
    dest: Destination | None,
) -> list[str]:
    store: Store = common.store_of(request)
    prearchive = prearchive_of(request)
    naming = _naming(params, dest)
    overwrite = params.get("overwrite", "none") or "none"
    uris = []
    for session in sessions:
        target = resolve_target(store, session, naming.project, naming.subject, naming.session)
        uris.append(
            archive_session(
                store,
                prearchive,
                session,
                target,
                overwrite=overwrite,
                overwrite_files=truthy(params, "overwrite_files"),
                user=common.user_of(request).username,
            )
        )
    return uris


def _answer(uris: list[str], params: Mapping[str, str]) -> web.Response:
    if params.get("format", "") == "txt" and len(uris) == 1:
        return web.Response(text=uris[0], content_type="text/plain")
    return common.uri_list(uris)


class _Progress:
    """Status messages of one import, if it names an `http-session-listener`."""

    def __init__(self, request: web.Request, params: Mapping[str, str]) -> None:
        self.queues = status_routes.queues_of(request)
        self.listener = params.get("http-session-listener", "").strip()

    def note(self, status: str, msg: str, *, terminal: bool = False) -> None:
        if self.listener:
            self.queues.add(self.listener, status, msg, terminal=terminal)


async def handle_import(request: web.Request) -> web.Response:
    """POST /data/services/import."""
    store = common.store_of(request)
    work = store.temp_dir() / f"import-{uuid.uuid4().hex}"
    work.mkdir(parents=True)
    progress = _Progress(request, request.query)
    try:
        params, file_name = await receive(request, work / "upload")
        progress = _Progress(request, params)
        return await _import(request, work, params, file_name, progress)
    except (ImportRefused, ArchiveError) as exc:
        progress.note("FAILED", exc.message, terminal=True)
        return common.error_page(exc.status, exc.message)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _stage_job(
    spool: Path, file_name: str, work: Path, handler: str, params: Mapping[str, str]
) -> partial[StageResult]:
    rename = truthy(params, "rename")
    if handler == "gradual-DICOM" or file_name.lower().endswith(".dcm"):
        return partial(stage_single, spool, file_name, work, rename=rename)
    ignore = truthy(params, "Ignore-Unparsable")
    if "Ignore-Unparsable" not in params and params.get("action", "") == "commit":
        ignore = True  # XNAT's Importer: an explicit commit ignores unparsable members
    return partial(stage_archive, spool, file_name, work, rename=rename, ignore_unparsable=ignore)


def _old_zip_reader_finds_nothing(request: web.Request, spool: Path, handler: str) -> bool:
    """Before 1.8.3 DICOM-zip read every upload as a zip stream: a tar gave no entries."""
    return (
        handler != "gradual-DICOM"
        and not version_routes.version_of(request).tar_import
        and not zipfile.is_zipfile(spool)
    )


async def _import(
    request: web.Request,
    work: Path,
    params: MultiDict[str],
    file_name: str | None,
    progress: _Progress,
) -> web.Response:
    sweep(request)
    handler = handler_name(params, request.headers.get("Content-Type", ""))
    if file_name is None:
        raise ImportRefused(400, "Unable to identify upload format.")
    progress.note("PROCESSING", "Determining destination")
    dest = None
    if params.get("dest", "").strip():
        dest = parse_dest(params["dest"])
        if dest is None:
            raise ImportRefused(400, "Parameter dest format error")
    spool = work / "upload"
    single = handler == "gradual-DICOM" or file_name.lower().endswith(".dcm")
    if not single and _old_zip_reader_finds_nothing(request, spool, handler):
        return _answer([], params)
    progress.note("PROCESSING", "Importing sessions to the prearchive")
    staged = await anyio.to_thread.run_sync(_stage_job(spool, file_name, work, handler, params))
    try:
        sessions = _apply(request, staged, params, dest, handler)
    except Conflict as exc:
        raise ImportRefused(400 if handler == "DICOM-zip" else 409, str(exc)) from exc
    if staged.unreadable is not None:
        raise ImportRefused(400, f"unable to read DICOM object {staged.unreadable}")
    if not sessions:
        raise ImportRefused(400, "No DICOM objects found in the upload.")
    return _finish(request, sessions, params, dest, handler, progress)


def _finish(
    request: web.Request,
    sessions: list[PrearcSession],
    params: Mapping[str, str],
    dest: Destination | None,
    handler: str,
    progress: _Progress,
) -> web.Response:
    """Build, archive or leave the touched sessions as the request asks; answer their URIs."""
    zip_like = handler != "gradual-DICOM"
    commit = zip_like and (params.get("action", "") == "commit" or dest is not None)
    aa = zip_like and truthy(params, "AA", "auto-archive")
    asked = dest.archive if dest is not None else aa
    direct = (
        truthy(params, "Direct-Archive")
        and version_routes.version_of(request).direct_archive
        and all(s.project != UNASSIGNED for s in sessions)
    )
    if (asked and (commit or not zip_like)) or direct:
        try:
            uris = _archive_all(request, sessions, params, dest)
        except ArchiveError as exc:
            for session in sessions:
                if session.url in prearchive_of(request).sessions:
                    prearchive_of(request).touch(session, "CONFLICT")
            conflict = exc.status == 409 and handler == "DICOM-zip"
            raise ImportRefused(400 if conflict else exc.status, exc.message) from exc
        progress.note("COMPLETED", "Archive:" + ";".join(uris), terminal=True)
        return _answer(uris, params)
    uris = [s.uri for s in sessions]
    if commit:
        for session in sessions:
            prearchive_of(request).touch(session, READY)
        progress.note("COMPLETED", "Prearchive:" + ";".join(uris), terminal=True)
    return _answer(uris, params)


async def _not_allowed(request: web.Request) -> web.Response:
    return common.error_page(405, "Method Not Allowed")


def add_routes(app: web.Application) -> None:
    """Register the import service and the prearchive, archive and status routes, set up with
    the app's configured XNAT version and session idle time (defaults without a config)."""
    config = app.get(common.CONFIG_KEY) or EmulatorConfig()
    common.add_data_route(app, "POST", "/services/import", handle_import)
    common.add_data_route(app, "GET", "/services/import", _not_allowed)
    common.add_data_route(app, "PUT", "/services/import", _not_allowed)
    version_routes.add_routes(app, config.xnat_version)
    status_routes.add_routes(app)
    prearchive_routes.add_routes(app, config.session_idle_seconds)
    archive_routes.add_routes(app)
