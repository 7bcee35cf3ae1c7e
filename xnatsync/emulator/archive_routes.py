"""Prearchive → archive services (§5.3, §5.4, §11.4): `/services/archive` (with the XML-path
field parameters of `archive_params`), `/services/validate-archive` (a dry run), the batch
`/services/prearchive/{delete,move,rebuild}` and reading a project's prearchive code (setting
it is routed with the other project settings).

Every `src` may be given as `/data/prearchive/projects/…` (the importer's answer) or
`/prearchive/projects/…` (a listing's `url`). Batch services are synchronous whatever `async`
says, and answer a ResultSet of the affected rows (csv when asked, as pyxnat does).
"""

from __future__ import annotations

from dataclasses import replace

from aiohttp import web
from multidict import MultiDict

from xnatsync.emulator import common
from xnatsync.emulator.archive_params import scan_order, xml_path_overrides
from xnatsync.emulator.archiving import (
    ArchiveError,
    Target,
    archive_session,
    parse_dest,
    resolve_target,
    validate_archive,
)
from xnatsync.emulator.dicom_import import UNASSIGNED
from xnatsync.emulator.prearchive import BUSY, READY, Conflict, PrearcSession
from xnatsync.emulator.prearchive_routes import (
    params_of,
    prearchive_of,
    project_autoarchive,
    sweep,
    visible,
)


def _sources(request: web.Request, srcs: list[str]) -> list[PrearcSession]:
    prearchive = prearchive_of(request)
    if not srcs:
        common.fail(400, "Missing src parameter.")
    found = []
    for src in srcs:
        session = prearchive.by_src(src)
        if session is None or not visible(request, session.project):
            common.fail(404, "Unknown prearchive session.")
        found.append(session)
    return found


def _target(request: web.Request, params: MultiDict[str], session: PrearcSession) -> Target:
    """Where `session` goes: `project`/`subject`/`session`, then the XML-path parameters, then
    `dest`; with the XML-path field overrides attached (400 for an unusable path or dest)."""
    try:
        paths = xml_path_overrides(params.items(), session.xsi_type)
    except ValueError as exc:
        common.fail(400, str(exc))
    project = paths.project or params.get("project") or None
    subject = paths.subject or params.get("subject") or None
    label = paths.label or params.get("session") or None
    dest = params.get("dest", "").strip()
    if dest:
        parsed = parse_dest(dest)
        if parsed is None or not parsed.archive:
            common.fail(400, "Parameter dest format error")
        project = parsed.project or project
        subject = parsed.subject or subject
        label = parsed.session or label
    target = resolve_target(common.store_of(request), session, project, subject, label)
    scans = paths.by_scan_id(scan_order(session.scans))
    return replace(target, session_fields=paths.session_fields, scan_fields=scans)


async def archive_service(request: web.Request) -> web.Response:
    """POST /services/archive?src=…[&overwrite=…][&dest=…|project/subject/session|XML paths]."""
    sweep(request)
    params = await params_of(request)
    sessions = _sources(request, params.getall("src", []))
    store = common.store_of(request)
    prearchive = prearchive_of(request)
    uris = []
    redirect = params.get("redirect", "").lower() == "true"
    for session in sessions:
        if session.status in BUSY:
            common.fail(403, "Operation already in progress on this prearchive entry.")
        try:
            target = _target(request, params, session)
            record = store.project(target.project)
            if record is None or not common.can_edit(common.user_of(request), record):
                common.fail(403, f"Insufficient privileges for project {target.project}")
            auto = session.autoarchive.startswith("AutoArchive")
            redirect = redirect or (auto and params.get("auto-archive", "").lower() != "false")
            uris.append(
                archive_session(
                    store,
                    prearchive,
                    session,
                    target,
                    overwrite=params.get("overwrite", "none") or "none",
                    overwrite_files=params.get("overwrite_files", "").lower() == "true",
                    user=common.user_of(request).username,
                )
            )
        except ArchiveError as exc:
            return common.error_page(exc.status, exc.message)
    if redirect and len(uris) == 1:
        location = f"{request.scheme}://{request.host}{uris[0]}"
        return web.Response(status=303, text=uris[0], headers={"Location": location})
    return common.uri_list(uris)


async def validate_service(request: web.Request) -> web.Response:
    """POST /services/validate-archive?src=… — a dry run: a table of (code, type, message)
    notices, empty when archiving would go through; one src only (400 otherwise)."""
    sweep(request)
    params = await params_of(request)
    srcs = params.getall("src", [])
    if len(srcs) > 1:
        common.fail(400, "Cannot validate multiple sessions in one request.")
    (session,) = _sources(request, srcs)
    try:
        target: Target | None = _target(request, params, session)
    except ArchiveError:
        target = None
    notices = validate_archive(common.store_of(request), session, target)
    rows = [{"code": str(c), "type": t, "message": m} for c, t, m in notices]
    return common.result_set(request, rows)


async def batch_service(request: web.Request) -> web.Response:
    """POST /services/prearchive/{delete|move|rebuild}?src=…[&newProject=…]."""
    operation = request.match_info["operation"]
    if operation not in ("delete", "move", "rebuild"):
        common.fail(404, f"Unknown prearchive operation: {operation}")
    params = await params_of(request)
    sessions = _sources(request, params.getall("src", []))
    prearchive = prearchive_of(request)
    new_project = params.get("newProject", "")
    if operation == "move" and (
        not new_project or (new_project != UNASSIGNED and not visible(request, new_project))
    ):
        common.fail(403 if new_project else 400, f"Cannot move sessions to {new_project}")
    rows = []
    for session in sessions:
        if session.status in BUSY:
            common.fail(409, "Operation already in progress on this prearchive entry.")
        if operation == "delete":
            rows.append(session.row())
            prearchive.remove(session)
        elif operation == "move":
            try:
                autoarchive = project_autoarchive(common.store_of(request), new_project)
                rows.append(prearchive.move(session, new_project, autoarchive).row())
            except Conflict as exc:
                common.fail(409, str(exc))
        else:
            prearchive.touch(session, READY)
            rows.append(session.row())
    return common.result_set(request, rows, total=False)


async def get_prearchive_code(request: web.Request) -> web.Response:
    """GET /projects/{P}/prearchive_code → the code as text."""
    record = common.store_of(request).project(request.match_info["project"])
    if record is None or not common.can_read(common.user_of(request), record):
        common.fail(404, "Unable to identify project")
    return web.Response(text=str(record.prearchive_code))


def add_routes(app: web.Application) -> None:
    """Register the archive service, the batch prearchive services and prearchive codes."""
    add = common.add_data_route
    add(app, "POST", "/services/archive", archive_service)
    add(app, "POST", "/services/validate-archive", validate_service)
    add(app, "POST", "/services/prearchive/{operation}", batch_service)
    add(app, "GET", "/projects/{project}/prearchive_code", get_prearchive_code)
