"""The import service: `POST /data/services/import` (DICOM-zip and gradual-DICOM, §5.1, §8.4).

The request is spooled to disk, unpacked and header-read in a worker thread
(`import_staging`), then applied to the prearchive on the event loop; with an archive `dest`,
`auto-archive=true`/`AA=true` or `Direct-Archive=true` the sessions are archived before the
answer. The prearchive and archive routes are in `prearchive_routes`, registered from here.

Answers: 200 `text/uri-list`, one URI per line ending CRLF (`format=txt`: one bare URI);
unreadable member → 400 `unable to read DICOM object <name>` (members before it stay);
conflicts → 400 for DICOM-zip, 409 for gradual-DICOM/SI; GET/PUT → 405.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Mapping
from functools import partial
from pathlib import Path

import anyio.to_thread
from aiohttp import BodyPartReader, web
from multidict import MultiDict

from xnatsync.emulator import archive_routes, common, prearchive_routes
from xnatsync.emulator.archiving import (
    ArchiveError,
    Destination,
    archive_session,
    parse_dest,
    resolve_target,
)
from xnatsync.emulator.dicom_import import UNASSIGNED, Naming, identify, upload_file_name
from xnatsync.emulator.import_staging import StageResult, stage_archive, stage_single
from xnatsync.emulator.prearchive import Conflict, PrearcSession
from xnatsync.emulator.prearchive_routes import prearchive_of, project_autoarchive
from xnatsync.emulator.store import Store

HANDLERS = ("DICOM-zip", "gradual-DICOM", "SI")
_CHUNK = 1 << 20


class ImportRefused(Exception):
    """The import cannot go on; `status` and `message` become the Restlet error page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _truthy(params: Mapping[str, str], *names: str) -> bool:
    return any(params.get(name, "").strip().lower() == "true" for name in names)


async def _spool_to(path: Path, reader: BodyPartReader | web.Request) -> int:
    size = 0
    with path.open("wb") as handle:
        if isinstance(reader, BodyPartReader):
            while chunk := await reader.read_chunk(_CHUNK):
                handle.write(chunk)
                size += len(chunk)
        else:
            async for chunk in reader.content.iter_chunked(_CHUNK):
                handle.write(chunk)
                size += len(chunk)
    return size


async def _receive(request: web.Request, spool: Path) -> tuple[MultiDict[str], str | None]:
    """Merge query and form parameters, spool the one uploaded file; return (params, name)."""
    params: MultiDict[str] = MultiDict(request.query)
    content_type = request.headers.get("Content-Type", "")
    if content_type.startswith("multipart/"):
        name: str | None = None
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            if part.filename is None:
                params.add(part.name or "", await part.text())
                continue
            if name is not None:
                raise ImportRefused(400, "Importer is limited to one uploaded resource at a time.")
            await _spool_to(spool, part)
            name = part.filename or "upload"
        return params, name
    if content_type.startswith("application/x-www-form-urlencoded"):
        form = await request.post()
        params.extend((k, v) for k, v in form.items() if isinstance(v, str))
        return params, None
    size = await _spool_to(spool, request)
    return params, (upload_file_name(content_type) if size else None)


def _handler_name(params: Mapping[str, str], content_type: str) -> str:
    handler = params.get("import-handler", "").strip()
    if handler:
        if handler not in HANDLERS:
            raise ImportRefused(404, f"Unknown import handler: {handler}")
        return handler
    if content_type.split(";", 1)[0].strip().lower() == "application/dicom":
        return "gradual-DICOM"
    return "DICOM-zip"


def _naming(params: Mapping[str, str], dest: Destination | None) -> Naming:
    def pick(*names: str) -> str | None:
        return next((params[n] for n in names if params.get(n, "").strip()), None)

    project = pick("PROJECT_ID", "project")
    subject = pick("SUBJECT_ID", "subject")
    session = pick("EXPT_LABEL", "session")
    if dest is not None:
        project = dest.project or project
        subject = dest.subject or subject
        session = dest.session or session
    return Naming(project, subject, session)


def _session_options(session: PrearcSession, params: Mapping[str, str], created: bool) -> None:
    if created:
        session.prevent_anon = _truthy(params, "prevent_anon")
        session.prevent_auto_commit = _truthy(params, "prevent_auto_commit")
        session.source = params.get("SOURCE", "")
        session.visit = params.get("VISIT", "")
        session.protocol = params.get("PROTOCOL", "")
        session.timezone = params.get("TIMEZONE", "")
    archive_mode = params.get("autoArchive", "")
    if archive_mode in ("Manual", "AutoArchive", "AutoArchiveOverwrite"):
        session.autoarchive = archive_mode


def _apply(
    request: web.Request,
    staged: StageResult,
    params: Mapping[str, str],
    dest: Destination | None,
) -> list[PrearcSession]:
    """Put staged instances into prearchive sessions, in order; the touched sessions."""
    store = common.store_of(request)
    prearchive = prearchive_of(request)
    naming = _naming(params, dest)
    explicit = None
    if dest is not None and dest.timestamp is not None:
        explicit = prearchive.get(dest.project or "", dest.timestamp, dest.session or "")
        if explicit is None:
            raise ImportRefused(404, "Unknown prearchive session.")
    if naming.project is not None and naming.project != UNASSIGNED:
        record = store.project(naming.project)
        if record is None:
            raise ImportRefused(400, f"Invalid project: {naming.project}")
        if not common.can_edit(common.user_of(request), record):
            raise ImportRefused(403, f"Insufficient privileges for project {naming.project}")
        naming = Naming(record.id, naming.subject, naming.session)
    overwrite = params.get("overwrite", "") == "delete" or _truthy(params, "overwrite_files")
    touched: dict[str, PrearcSession] = {}
    for item in staged.instances:
        if explicit is not None:
            if item.header.study_uid != explicit.study_uid:
                raise Conflict("Unable to merge a different study into " + explicit.url)
            session, created = explicit, False
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
        _session_options(session, params, created)
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
        uris.append(archive_session(store, prearchive, session, target, overwrite=overwrite))
    return uris


def _answer(uris: list[str], params: Mapping[str, str]) -> web.Response:
    if params.get("format", "") == "txt" and len(uris) == 1:
        return web.Response(text=uris[0], content_type="text/plain")
    return common.uri_list(uris)


async def handle_import(request: web.Request) -> web.Response:
    """POST /data/services/import."""
    store = common.store_of(request)
    work = store.temp_dir() / f"import-{uuid.uuid4().hex}"
    work.mkdir(parents=True)
    try:
        return await _import(request, work)
    except ImportRefused as exc:
        return common.error_page(exc.status, exc.message)
    except ArchiveError as exc:
        return common.error_page(exc.status, exc.message)
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def _import(request: web.Request, work: Path) -> web.Response:
    spool = work / "upload"
    params, file_name = await _receive(request, spool)
    handler = _handler_name(params, request.headers.get("Content-Type", ""))
    if file_name is None:
        raise ImportRefused(400, "Unable to identify upload format.")
    dest = None
    if params.get("dest", "").strip():
        dest = parse_dest(params["dest"])
        if dest is None:
            raise ImportRefused(400, "Parameter dest format error")
    rename = _truthy(params, "rename")
    if handler == "gradual-DICOM" or file_name.lower().endswith(".dcm"):
        job = partial(stage_single, spool, file_name, work, rename=rename)
    else:
        ignore = _truthy(params, "Ignore-Unparsable")
        job = partial(
            stage_archive, spool, file_name, work, rename=rename, ignore_unparsable=ignore
        )
    staged = await anyio.to_thread.run_sync(job)
    try:
        sessions = _apply(request, staged, params, dest)
    except Conflict as exc:
        raise ImportRefused(400 if handler == "DICOM-zip" else 409, str(exc)) from exc
    if staged.unreadable is not None:
        raise ImportRefused(400, f"unable to read DICOM object {staged.unreadable}")
    if not sessions:
        raise ImportRefused(400, "No DICOM objects found in the upload.")
    to_archive = (dest is not None and dest.archive) or _truthy(
        params, "auto-archive", "AA", "Direct-Archive"
    )
    if to_archive:
        try:
            return _answer(_archive_all(request, sessions, params, dest), params)
        except ArchiveError as exc:
            for session in sessions:
                if session.url in prearchive_of(request).sessions:
                    prearchive_of(request).touch(session, "CONFLICT")
            conflict = exc.status == 409 and handler == "DICOM-zip"
            raise ImportRefused(400 if conflict else exc.status, exc.message) from exc
    return _answer([s.uri for s in sessions], params)


async def _not_allowed(request: web.Request) -> web.Response:
    return common.error_page(405, "Method Not Allowed")


def add_routes(app: web.Application) -> None:
    """Register the import service and the prearchive/archive routes."""
    common.add_data_route(app, "POST", "/services/import", handle_import)
    common.add_data_route(app, "GET", "/services/import", _not_allowed)
    common.add_data_route(app, "PUT", "/services/import", _not_allowed)
    prearchive_routes.add_routes(app)
    archive_routes.add_routes(app)
