"""Experiment and scan routes: listings with filters and `columns=`, single objects, PUT create
/ update / relabel, DELETE (xnat-api §3.3, §3.4, §3.7, §4.5, §4.6, §11.9, §11.11).

Answers: experiment PUT 201 + bare accession ID when created, 200 + ID otherwise (409 if the
label lives in another project's primary space); scan PUT 200 (400 for a new scan without a
scan `xsiType`, 409 when changing an existing scan's `xsiType`); DELETEs 200. Fields are set by
shortcut or by an XML path of the record's own type (or a type above it); an XML path of another
type is ignored (`hierarchy.fields_from`).
"""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from xnatsync.emulator.common import (
    add_data_route,
    can_edit,
    can_read,
    fail,
    plain,
    result_set,
    store_of,
    user_of,
)
from xnatsync.emulator.hierarchy import fields_from, object_answer
from xnatsync.emulator.query import criteria, is_a, matches, parse_date, xsi_filter
from xnatsync.emulator.records import Experiment
from xnatsync.emulator.render import (
    EXPERIMENT_COLUMNS,
    EXPERIMENT_PATHS,
    PK_COLUMN,
    SCAN_COLUMNS,
    experiment_item,
    experiment_row,
    experiment_xml,
    scan_item,
    scan_row,
)
from xnatsync.emulator.resolve import resolve
from xnatsync.emulator.sharing import shared_through, unshare

EXPERIMENT_FIELDS = frozenset(
    [
        "visit_id",
        "visit",
        "protocol",
        "time",
        "note",
        "scanner",
        "operator",
        "dcmAccessionNumber",
        "dcmPatientId",
        "dcmPatientName",
        "session_type",
        "modality",
        "UID",
        "studyInstanceUID",
        "coil",
        "fieldStrength",
    ]
)
SCAN_FIELDS = frozenset(
    [
        "UID",
        "note",
        "quality",
        "condition",
        "documentation",
        "scanner",
        "modality",
        "frames",
        "scanTime",
        "coil",
        "fieldStrength",
    ]
)
_RECENT_COLUMNS = [
    "id", "label", "project", "date", "status", "workflow_status", "element_name", "type_desc",
    "insert_date", "activation_date", "last_modified", "workflow_date", "pipeline_name",
    "action_date", "scanner",
]  # fmt: skip


def _scoped(request: web.Request) -> tuple[list[Experiment], str]:
    """The experiments a listing covers, and the project whose labels its rows carry ("" for
    each experiment's primary project)."""
    store, user = store_of(request), user_of(request)
    if "project" in request.match_info:
        ctx = resolve(request)
        project = ctx.project.id
        if ctx.subject is None:
            return store.experiments_in(ctx.project), project
        found = [store.experiments[e] for e in ctx.subject.experiments]
        return [e for e in found if e.belongs_to(project)], project
    readable = {p.id for p in store.projects.values() if can_read(user, p)}
    return [e for e in store.experiments.values() if e.project in readable], ""


def _default_columns(request: web.Request, xsi: str | None) -> list[str]:
    if "project" in request.match_info:
        return [*EXPERIMENT_COLUMNS, PK_COLUMN]
    if xsi is None:
        return list(EXPERIMENT_COLUMNS)
    subject_assessor = xsi.endswith("sessiondata") or xsi == "xnat:subjectassessordata"
    extra = ["subject_ID", "subject_label"] if subject_assessor else []
    return [*EXPERIMENT_COLUMNS, *extra, f"{xsi}/id"]


async def list_experiments(request: web.Request) -> web.Response:
    """GET /data/experiments, /data/projects/{P}/experiments, …/subjects/{S}/experiments."""
    if "recent" in request.query and "project" not in request.match_info:
        return _recent(request)
    store = store_of(request)
    xsi = xsi_filter(request.query.get("xsiType"))
    scoped, project = _scoped(request)
    experiments = [e for e in scoped if xsi is None or is_a(e.xsi_type, xsi)]
    rows = [experiment_row(e, store.subjects[e.subject], project) for e in experiments]
    if xsi is not None:
        for row in rows:
            row[f"{xsi}/id"] = row["ID"]
    crit = criteria(request.query)
    rows = [r for r in rows if matches(r, crit)]
    title = None if "project" in request.match_info else "Matching experiments"
    return result_set(
        request,
        rows,
        title=title,
        default_columns=_default_columns(request, xsi),
        shortcuts=EXPERIMENT_PATHS,
    )


def _recent(request: web.Request) -> web.Response:
    days = int(request.query.get("recent", "60") or 60)
    limit = int(request.query.get("limit", "60") or 60)
    if days == 60 or limit == 60:  # XNAT passes them through only when both differ from 60
        days, limit = 60, 60
    since = dt.datetime.now() - dt.timedelta(days=days)
    rows = []
    for exp in _scoped(request)[0]:
        action = max(exp.insert_date, exp.last_modified, exp.workflow_date)
        if action and action >= since.strftime("%Y-%m-%d %H:%M:%S"):
            rows.append(_recent_row(exp, action))
    rows.sort(key=lambda r: r["action_date"], reverse=True)
    return result_set(request, rows[:limit], title="Recent Experiments")


def _recent_row(exp: Experiment, action: str) -> dict[str, str]:
    values = [exp.id, exp.label, exp.project, exp.date, "active", "", exp.xsi_type]
    values += [exp.xsi_type.split(":")[-1], exp.insert_date, exp.insert_date, exp.last_modified]
    values += [exp.workflow_date, "", action, exp.fields.get("scanner", "")]
    return dict(zip(_RECENT_COLUMNS, values, strict=True))


async def get_experiment(request: web.Request) -> web.Response:
    """GET an experiment (JSON items with format=json, XML otherwise)."""
    experiment = resolve(request).experiment
    assert experiment is not None
    subject = store_of(request).subjects[experiment.subject]
    item = experiment_item(experiment, subject)
    return object_answer(request, item, experiment_xml(experiment, subject))


def date_from(request: web.Request) -> dict[str, str]:
    """The `date` (or `{xsiType}/date`) a PUT sets, as `{"date": ISO}`; 400 if unparseable."""
    text = request.query.get("date") or request.query.get(
        f"{request.query.get('xsiType', '')}/date", ""
    )
    if not text:
        return {}
    parsed = parse_date(text)
    if parsed is None:
        fail(400, f"Invalid date {text}")
    return {"date": parsed.isoformat()}


async def put_experiment(request: web.Request) -> web.Response:
    """PUT …/experiments/{E}[?xsiType=&date=&label=]: 201 + ID when created, else 200 + ID."""
    store, user, info = store_of(request), user_of(request), request.match_info
    project = store.project(info["project"]) if "project" in info else None
    existing = store.experiment(project.id if project else None, info["experiment"])
    if existing is None and (project is None or "subject" not in info):
        fail(404, "Unable to find the specified experiment.")
    if existing is None and project is not None:
        if not can_edit(user, project):
            fail(403, "Specified user account has insufficient create privileges for experiments.")
        if store.experiment(None, info["experiment"]) is not None:
            fail(409, "Project must be modified through separate URI.")
    else:
        resolve(request, write=True, children=False)
    xsi = existing.xsi_type if existing else request.query.get("xsiType", "xnat:mrSessionData")
    fields = fields_from(request, EXPERIMENT_FIELDS, xsi) | date_from(request)
    if existing is None:
        assert project is not None
        experiment, _ = store.ensure_experiment(
            project.id,
            info["subject"],
            info["experiment"],
            xsi,
            insert_user=user.username,
            **fields,
        )
        return plain(experiment.id, 201)
    store.ensure_experiment(existing.project, "", existing.label, **fields)
    _relabel(request, existing)
    return plain(existing.id, 200)


def _relabel(request: web.Request, experiment: Experiment) -> None:
    new_label = request.query.get("label")
    if new_label and new_label != experiment.label:
        try:
            store_of(request).relabel(experiment, new_label)
        except ValueError:
            fail(409, f"Experiment label {new_label} already exists")


async def delete_experiment(request: web.Request) -> web.Response:
    """DELETE an experiment (through a project it is only shared into: unshare it)."""
    shared = shared_through(request)
    if shared is not None:
        return unshare(request, *shared)
    experiment = resolve(request, write=True, children=False).experiment
    assert experiment is not None
    store_of(request).delete_experiment(experiment)
    return plain("")


async def list_scans(request: web.Request) -> web.Response:
    """GET …/experiments/{E}/scans."""
    experiment = resolve(request).experiment
    assert experiment is not None
    rows = [scan_row(s) for s in experiment.scans.values()]
    return result_set(request, rows, default_columns=SCAN_COLUMNS)


async def get_scan(request: web.Request) -> web.Response:
    """GET …/scans/{S}: the scan item (404 if no scan matches)."""
    ctx = resolve(request)
    if not ctx.scans:
        fail(404, "Unable to find the specified scan.")
    return web.json_response({"items": [scan_item(s, ctx.project.id) for s in ctx.scans]})


async def put_scan(request: web.Request) -> web.Response:
    """PUT …/scans/{S}?xsiType=&type=&series_description=…: 200, create or update."""
    experiment = resolve(request, write=True, children=False).experiment
    assert experiment is not None
    scan_id = request.match_info["scans"]
    xsi = request.query.get("xsiType", "")
    scan = experiment.scans.get(scan_id)
    if (scan is None and not xsi.endswith("ScanData")) or xsi == "xnat:imageScanData":
        fail(400, "Multiple scan modalities match the specified xsiType.")
    if scan is not None and xsi and xsi != scan.xsi_type:
        fail(409, "Specified xsiType differs from existing xsiType")
    xsi = scan.xsi_type if scan is not None else xsi
    fields = fields_from(request, SCAN_FIELDS | {"type", "series_description"}, xsi)
    store_of(request).ensure_scan(
        experiment.id,
        scan_id,
        xsi,
        fields.pop("type", ""),
        fields.pop("series_description", ""),
        **fields,
    )
    return plain("")


async def delete_scan(request: web.Request) -> web.Response:
    """DELETE …/scans/{S}."""
    ctx = resolve(request, write=True)
    if not ctx.scans:
        fail(404, "Unable to find the specified scan.")
    for scan in ctx.scans:
        store_of(request).delete_scan(scan)
    return plain("")


def add_routes(app: web.Application) -> None:
    """Register experiment and scan routes."""
    listings = ("/experiments", "/projects/{project}/experiments")
    for path in (*listings, "/projects/{project}/subjects/{subject}/experiments"):
        add_data_route(app, "GET", path, list_experiments)
    singles = (
        "/experiments/{experiment}",
        "/projects/{project}/experiments/{experiment}",
        "/projects/{project}/subjects/{subject}/experiments/{experiment}",
    )
    for path in singles:
        add_data_route(app, "GET", path, get_experiment)
        add_data_route(app, "PUT", path, put_experiment)
        add_data_route(app, "DELETE", path, delete_experiment)
    for base in (singles[0], singles[2]):
        add_data_route(app, "GET", base + "/scans", list_scans)
        add_data_route(app, "GET", base + "/scans/{scans}", get_scan)
        add_data_route(app, "PUT", base + "/scans/{scans}", put_scan)
        add_data_route(app, "DELETE", base + "/scans/{scans}", delete_scan)
