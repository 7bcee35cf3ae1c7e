"""Image assessor routes (derived data such as QC or FreeSurfer outputs attached to a session):
listing, single object, PUT create / update, DELETE (xnat-api §3.5, §4.5, §9), under each
session path form (`/experiments/{E}`, `/projects/{P}/experiments/{E}`,
`/projects/{P}/subjects/{S}/experiments/{E}`). Resource, file, upload and zip routes at assessor
level are registered with the other owners (`resources.OWNER_BASES`): OUT resources under
`…/assessors/{A}[/out]`, IN resources under `…/assessors/{A}/in`.

Answers: PUT 201 + bare accession ID when created, 200 + ID when it existed (its fields
updated; a `label=` naming an existing assessor of the session addresses that one); creating
without `xsiType` → 417 (XNAT has nothing to build the item from); a session, scan, subject or
project type → 422; `label=` naming another label on an existing assessor → 400 (XNAT relabels
elsewhere); an unknown assessor → 404; DELETE 200. Permissions are the session's (reads 404
where the project is unreadable, writes 403 without edit rights).
"""

from __future__ import annotations

from aiohttp import web

from xnatsync.emulator.common import add_data_route, fail, plain, result_set, store_of, user_of
from xnatsync.emulator.experiments import date_from
from xnatsync.emulator.hierarchy import fields_from, object_answer
from xnatsync.emulator.query import criteria, matches, xsi_filter
from xnatsync.emulator.records import Assessor, Experiment
from xnatsync.emulator.render import (
    EXPERIMENT_COLUMNS,
    EXPERIMENT_PATHS,
    assessor_item,
    assessor_row,
    assessor_xml,
)
from xnatsync.emulator.resolve import Ctx, resolve
from xnatsync.emulator.resources import ASSESSORS

ASSESSOR_FIELDS = frozenset(["note", "visit_id", "visit", "protocol", "time", "type"])
_EVERY_ASSESSOR = frozenset({"xnat:experimentdata", "xnat:deriveddata", "xnat:imageassessordata"})
_NOT_ASSESSORS = ("sessiondata", "scandata", "xnat:subjectdata", "xnat:projectdata")


def _session(ctx: Ctx) -> Experiment:
    assert ctx.experiment is not None  # every assessor route names a session
    return ctx.experiment


def _assessor(ctx: Ctx) -> Assessor:
    assert ctx.assessor is not None  # resolve() answers 404 for an unknown assessor
    return ctx.assessor


def _listed(assessor: Assessor, root: str | None) -> bool:
    """Whether `xsiType=` lets the assessor through (the abstract roots let every one)."""
    return root is None or root in _EVERY_ASSESSOR or assessor.xsi_type.lower() == root


async def list_assessors(request: web.Request) -> web.Response:
    """GET …/experiments/{E}/assessors[?xsiType=&columns=&label=…]."""
    session = _session(resolve(request))
    root = xsi_filter(request.query.get("xsiType"))
    rows = [assessor_row(a, session) for a in session.assessors.values() if _listed(a, root)]
    crit = criteria(request.query)
    rows = [r for r in rows if matches(r, crit)]
    return result_set(request, rows, default_columns=EXPERIMENT_COLUMNS, shortcuts=EXPERIMENT_PATHS)


async def get_assessor(request: web.Request) -> web.Response:
    """GET …/assessors/{A} (ID or label): JSON items with format=json, XML otherwise."""
    assessor = _assessor(resolve(request))
    return object_answer(request, assessor_item(assessor), assessor_xml(assessor))


def _creatable(xsi_type: str) -> str:
    """The xsiType a new assessor gets; 417 without one, 422 for a non-assessor type."""
    if not xsi_type:
        fail(417, "Need PUT Contents: give xsiType= (e.g. xnat:qcAssessmentData) to create it")
    if ":" not in xsi_type or xsi_type.lower().endswith(_NOT_ASSESSORS):
        fail(422, f"{xsi_type} is not an image assessor type")
    return xsi_type


async def put_assessor(request: web.Request) -> web.Response:
    """PUT …/assessors/{A}[?xsiType=&label=&date=&note=…]: 201 + ID created, 200 + ID updated."""
    store, query = store_of(request), request.query
    session = _session(resolve(request, write=True, children=False))
    key = request.match_info["assessor"]
    label = query.get("label") or key
    # as XNAT does, a `label=` naming an existing assessor finds that one
    existing = store.assessor(session, key) or store.assessor(session, label)
    xsi_type = existing.xsi_type if existing else _creatable(query.get("xsiType", ""))
    fields = fields_from(request, ASSESSOR_FIELDS, xsi_type) | date_from(request)
    if existing is None:
        fields["insert_user"] = user_of(request).username
        created, _ = store.ensure_assessor(session, label, xsi_type, **fields)
        return plain(created.id, 201)
    if label not in (key, existing.label):
        fail(400, "Label must be modified through separate URI.")
    store.ensure_assessor(session, existing.id, **fields)
    return plain(existing.id, 200)


async def delete_assessor(request: web.Request) -> web.Response:
    """DELETE …/assessors/{A}: the assessor and its resources."""
    assessor = _assessor(resolve(request, write=True))
    store_of(request).delete_assessor(assessor)
    return plain("")


def add_routes(app: web.Application) -> None:
    """Register the assessor listing and single-assessor routes under every session path."""
    for path in ASSESSORS:
        add_data_route(app, "GET", path.removesuffix("/{assessor}"), list_assessors)
        add_data_route(app, "GET", path, get_assessor)
        add_data_route(app, "PUT", path, put_assessor)
        add_data_route(app, "DELETE", path, delete_assessor)
