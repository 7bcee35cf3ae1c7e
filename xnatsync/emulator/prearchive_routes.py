"""Prearchive REST routes (§5.2): listings, one session, its scans/resources/files, actions.

A single scan (`…/scans/{S}`) is offered only as `format=zip` (400 otherwise), as on XNAT; the
emulator keeps no session-level prearchive resources, so `…/resources/{R}[/files]` → 404.

Also the lazy auto-build of §5.2: on every prearchive, archive and import request, RECEIVING
sessions idle for `Prearchive.idle_build` (the emulator's `session_idle_seconds`, XNAT's
"Session Idle Time", 5 minutes by default; unless `prevent_auto_commit` or `SOURCE=uploader`)
are built (READY), and archived if their project or session says auto-archive. Nothing runs on
a timer, so tests drive it with the prearchive's injected clock.

Parameters are read from the query and from a urlencoded body (pyxnat posts `action=build`
as a form).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from pathlib import Path
from xml.sax.saxutils import escape

import anyio.to_thread
from aiohttp import web
from multidict import MultiDict

from xnatsync.emulator import common
from xnatsync.emulator.archiving import ArchiveError, archive_session, resolve_target
from xnatsync.emulator.dicom_import import UNASSIGNED
from xnatsync.emulator.prearchive import (
    BUSY,
    READY,
    STATUSES,
    Prearchive,
    PrearcSession,
    autoarchive_name,
)
from xnatsync.emulator.store import Store

PREARCHIVE_KEY: web.AppKey[Prearchive] = web.AppKey("xnat_prearchive", Prearchive)
_SESSION = "/prearchive/projects/{project}/{timestamp}/{folder}"


def prearchive_of(request: web.Request) -> Prearchive:
    """The app's prearchive, attached to `{store root}/prearchive` on first use."""
    state = request.app[PREARCHIVE_KEY]
    state.attach(common.store_of(request).root / "prearchive")
    return state


async def params_of(request: web.Request) -> MultiDict[str]:
    """Query parameters plus those of a urlencoded body."""
    params: MultiDict[str] = MultiDict(request.query)
    if request.content_type == "application/x-www-form-urlencoded":
        form = await request.post()
        params.extend((k, v) for k, v in form.items() if isinstance(v, str))
    return params


def project_code(store: Store, project: str) -> int:
    """A project's prearchive code (0 for Unassigned or an unknown project)."""
    record = store.project(project)
    return record.prearchive_code if record is not None else 0


def project_autoarchive(store: Store, project: str) -> str:
    """The `autoarchive` a new prearchive session of `project` gets."""
    record = store.project(project)
    return autoarchive_name(record.prearchive_code) if record is not None else ""


def wants_archive(store: Store, session: PrearcSession, params: Mapping[str, str]) -> bool:
    """Commit archives if `auto-archive`/`AA` say so, else by session or project setting."""
    for name in ("auto-archive", "AA"):
        value = params.get(name, "").strip().lower()
        if value in ("true", "false"):
            return value == "true"
    if session.autoarchive.startswith("AutoArchive"):
        return True
    return project_code(store, session.project) >= 4


def commit_overwrite(session: PrearcSession, params: Mapping[str, str]) -> str:
    if "overwrite" in params:
        return params["overwrite"]
    return "delete" if session.autoarchive == "AutoArchiveOverwrite" else "none"


def visible(request: web.Request, project: str) -> bool:
    """Prearchive rows are shown for projects the user may edit; Unassigned to admins."""
    user = common.user_of(request)
    if project == UNASSIGNED:
        return user.admin
    record = common.store_of(request).project(project)
    return record is not None and common.can_edit(user, record)


def sweep(request: web.Request) -> None:
    """Build sessions the rebuilder would have built by now; archive the auto-archive ones."""
    prearchive = prearchive_of(request)
    if prearchive.idle_build is None:
        return
    store = common.store_of(request)
    for session in prearchive.due_for_build(prearchive.idle_build):
        prearchive.touch(session, READY)
        if session.project != UNASSIGNED and wants_archive(store, session, {}):
            try:
                target = resolve_target(store, session)
                archive_session(
                    store, prearchive, session, target, overwrite=commit_overwrite(session, {})
                )
            except ArchiveError:
                prearchive.touch(session, "CONFLICT")


def session_of(request: web.Request) -> PrearcSession:
    """The session named by the path, or a 404 page."""
    info = request.match_info
    session = prearchive_of(request).get(info["project"], info["timestamp"], info["folder"])
    if session is None or not visible(request, session.project):
        common.fail(404, "Unable to find the specified prearchive session.")
    return session


async def list_sessions(request: web.Request) -> web.Response:
    """GET /prearchive[/projects[/{P}[,{P2}]]] — rows with §5.2's keys, no totalRecords."""
    sweep(request)
    prearchive = prearchive_of(request)
    projects = request.match_info.get("project")
    wanted = None if projects is None else projects.split(",")
    tag = request.query.get("tag")
    rows = [
        s.row()
        for s in prearchive.listing(wanted)
        if visible(request, s.project) and (tag is None or s.study_uid == tag)
    ]
    return common.result_set(request, rows, total=False)


def _zip_folder(root: Path, prefix: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            archive.write(path, f"{prefix}/{path.relative_to(root).as_posix()}")
    return buffer.getvalue()


def _zip_session(prearchive: Prearchive, session: PrearcSession) -> bytes:
    return _zip_folder(prearchive.directory(session), session.folder)


def _session_xml(session: PrearcSession) -> str:
    prefix = session.xsi_type.split(":", 1)[1]
    scans = "".join(
        f'<xnat:scan ID="{escape(s.id)}" type="{escape(s.series_description)}" '
        f'xsi:type="{s.xsi_type}"><xnat:series_description>{escape(s.series_description)}'
        f"</xnat:series_description></xnat:scan>"
        for s in session.scans.values()
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<xnat:{prefix[0].upper()}{prefix[1:]} label="{escape(session.folder)}" '
        f'project="{escape(session.project)}" xmlns:xnat="http://nrg.wustl.edu/xnat" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<xnat:date>{session.scan_date}</xnat:date><xnat:UID>{session.study_uid}</xnat:UID>"
        f"<xnat:dcmPatientName>{escape(session.subject)}</xnat:dcmPatientName>"
        f"<xnat:scans>{scans}</xnat:scans></xnat:{prefix[0].upper()}{prefix[1:]}>"
    )


async def get_session(request: web.Request) -> web.StreamResponse:
    """GET one session: json row, zip of its files, or (once built) its XML document."""
    sweep(request)
    session = session_of(request)
    fmt = request.query.get("format", "").lower()
    if fmt == "json":
        return common.result_set(request, [session.row()], total=False)
    if fmt == "zip":
        data = await anyio.to_thread.run_sync(_zip_session, prearchive_of(request), session)
        return web.Response(
            body=data,
            content_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{session.folder}.zip"'},
        )
    if session.status != READY:
        common.fail(404, "The session document is not available until the session is built.")
    return web.Response(text=_session_xml(session), content_type="text/xml")


async def delete_session(request: web.Request) -> web.Response:
    """DELETE one session → 200."""
    session = session_of(request)
    if session.status in BUSY:
        common.fail(409, "session document locked")
    prearchive_of(request).remove(session)
    return web.Response(text="", content_type="text/plain")


async def post_session(request: web.Request) -> web.Response:
    """POST ?action=build|commit|move|reset-status|set-status."""
    session = session_of(request)
    prearchive = prearchive_of(request)
    params = await params_of(request)
    action = params.get("action", "")
    if action not in ("build", "commit", "move", "reset-status", "set-status"):
        common.fail(400, f"Unsupported action: {action}")
    if action == "set-status":
        status = params.get("status", "")
        if status not in STATUSES:
            common.fail(400, f"Invalid status: {status}")
        prearchive.touch(session, status)
        return common.uri_list([session.uri])
    if action == "reset-status":
        prearchive.touch(session, READY)
        return common.uri_list([session.uri])
    if session.status in BUSY:
        common.fail(409, "session document locked")
    if action == "move":
        return _move(request, prearchive, session, params.get("newProject", ""))
    prearchive.touch(session, READY)
    if action == "build":
        return common.uri_list([session.uri])
    store = common.store_of(request)
    if not wants_archive(store, session, params):
        return web.Response(text=session.uri, content_type="text/uri-list")
    try:
        target = resolve_target(store, session)
        uri = archive_session(
            store,
            prearchive,
            session,
            target,
            overwrite=commit_overwrite(session, params),
            overwrite_files=params.get("overwrite_files", "").lower() == "true",
            user=common.user_of(request).username,
        )
    except ArchiveError as exc:
        if exc.status >= 500 or exc.status == 409:
            prearchive.touch(session, "CONFLICT" if exc.status == 409 else "ERROR")
        return common.error_page(exc.status, exc.message)
    return web.Response(status=301, text=uri, content_type="text/plain")


def _move(
    request: web.Request, prearchive: Prearchive, session: PrearcSession, project: str
) -> web.Response:
    if not project or (project != UNASSIGNED and not visible(request, project)):
        common.fail(403 if project else 400, f"Cannot move the session to project {project}")
    store = common.store_of(request)
    moved = prearchive.move(session, project, project_autoarchive(store, project))
    return web.Response(status=301, text=moved.uri, content_type="text/uri-list")


async def list_scans(request: web.Request) -> web.Response:
    """GET …/scans → rows ID, xsiType, series_description."""
    session = session_of(request)
    rows = [
        {"ID": s.id, "xsiType": s.xsi_type, "series_description": s.series_description}
        for s in session.scans.values()
    ]
    return common.result_set(request, rows, total=False)


def _scan(request: web.Request, session: PrearcSession) -> str:
    scan_id = request.match_info["scan"]
    if scan_id not in session.scans:
        common.fail(404, "Unable to find the specified scan.")
    return scan_id


async def list_resources(request: web.Request) -> web.Response:
    """GET …/scans/{S}/resources → one `DICOM` row (label, file_count, file_size)."""
    session = session_of(request)
    scan = session.scans[_scan(request, session)]
    row = {
        "label": "DICOM",
        "file_count": str(len(scan.files)),
        "file_size": str(scan.total_size()),
    }
    # fixed columns, as the archive's resource and file listings: a `columns=` asking for
    # ID and URI (xnatpy does) must not blank the row xnatpy then keys by its label
    return common.result_set(request, [row], total=False, honour_columns=False)


async def list_session_resources(request: web.Request) -> web.Response:
    """GET …/resources — session-level prearchive resources (the emulator keeps none)."""
    session_of(request)
    return common.result_set(request, [], total=False)


async def list_files(request: web.Request) -> web.Response:
    """GET …/scans/{S}/resources/DICOM/files → rows Name, Size, URI."""
    session = session_of(request)
    scan = session.scans[_scan(request, session)]
    if request.match_info["resource"] != "DICOM":
        common.fail(404, "Unable to find the specified resource.")
    base = f"{session.uri}/scans/{scan.id}/resources/DICOM/files"
    rows = [
        {"Name": f.name, "Size": str(f.size), "URI": f"{base}/{f.name}"}
        for f in sorted(scan.files.values(), key=lambda f: f.name)
    ]
    return common.result_set(request, rows, total=False, honour_columns=False)


async def get_file(request: web.Request) -> web.StreamResponse:
    """GET one prearchive file's bytes."""
    session = session_of(request)
    scan = session.scans[_scan(request, session)]
    name = request.match_info["name"]
    if request.match_info["resource"] != "DICOM" or name not in scan.files:
        return web.Response(status=404, body=b"", content_type="text/plain")
    path = prearchive_of(request).file_path(session, scan.id, name)
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})


async def get_scan(request: web.Request) -> web.StreamResponse:
    """GET …/scans/{S}: only `format=zip` (the scan's folder); other formats → 400."""
    session = session_of(request)
    scan = _scan(request, session)
    fmt = request.query.get("format", "").lower()
    if fmt != "zip":
        common.fail(400, f"Requested type {fmt or 'text/html'} is not supported")
    folder = prearchive_of(request).directory(session) / "SCANS" / scan
    data = await anyio.to_thread.run_sync(_zip_folder, folder, scan)
    return web.Response(body=data, content_type="application/zip")


async def get_session_resource(request: web.Request) -> web.Response:
    """GET …/resources/{R}[/files]: the emulator keeps no session-level prearchive resources."""
    session_of(request)
    common.fail(404, f"Unknown resource {request.match_info['resource']}")


def add_routes(app: web.Application, idle_seconds: float = 300.0) -> None:
    """Register the prearchive routes and create the app's prearchive, building RECEIVING
    sessions once idle for `idle_seconds` (XNAT's "Session Idle Time")."""
    app[PREARCHIVE_KEY] = Prearchive(idle_seconds=idle_seconds)
    add = common.add_data_route
    for path in ("/prearchive", "/prearchive/projects", "/prearchive/projects/{project}"):
        add(app, "GET", path, list_sessions)
    add(app, "GET", _SESSION, get_session)
    add(app, "POST", _SESSION, post_session)
    add(app, "DELETE", _SESSION, delete_session)
    add(app, "GET", _SESSION + "/scans", list_scans)
    add(app, "GET", _SESSION + "/resources", list_session_resources)
    add(app, "GET", _SESSION + "/resources/{resource}", get_session_resource)
    add(app, "GET", _SESSION + "/resources/{resource}/files", get_session_resource)
    add(app, "GET", _SESSION + "/scans/{scan}", get_scan)
    add(app, "GET", _SESSION + "/scans/{scan}/resources", list_resources)
    add(app, "GET", _SESSION + "/scans/{scan}/resources/{resource}/files", list_files)
    add(app, "GET", _SESSION + "/scans/{scan}/resources/{resource}/files/{name}", get_file)
