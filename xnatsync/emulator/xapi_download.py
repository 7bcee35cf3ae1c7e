"""The XAPI bulk-download service (xnat-api §4.2 end, §9): `POST /xapi/archive/download` builds
a download catalog from a JSON selection and answers its ID; `GET /xapi/archive/download/{id}`
(and `…/{id}/xml`) gives the catalog XML, `GET …/{id}/zip` streams its files as a zip.
`POST /xapi/archive/downloadwithsize` answers `{"id": …, "size": …}`.

Selection (XNAT's DefaultCatalogService.buildCatalogForResources): `sessions` lists
`project:subject:label:accessionID` strings; `scan_types` and `scan_formats` pick scans by type
and their resources by label (`NULL` matches an empty one) — when `sessions`, `scan_types` or
`scan_formats` is missing or empty no scans are chosen; `resources` lists session-level resource
labels. Entry paths are `{label}/scans/{id}-{type}/resources/{R}/files/{path}` and
`{label}/resources/{R}/files/{path}` (the scan type with `\\/(), ` turned into `_`).

Answers: a body that is not a JSON object of string lists, or a session string without its four
parts → 400 naming it; no `sessions` → 204; a session the user cannot read → 403, an unknown
one → 404; a catalog ID never issued (or another user's) → 404. Catalogs live in memory only.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from aiohttp import web

from xnatsync.emulator.common import can_read, fail, store_of, user_of
from xnatsync.emulator.records import Experiment, Resource
from xnatsync.emulator.store import Store
from xnatsync.emulator.zipstream import Member, send_zip

Entry = tuple[str, Resource, str]  # (zip member path, resource, relpath)
_UNSAFE = re.compile(r"[\\/(), ]")  # what XNAT turns into `_` in a scan type folder
_SELECTION_KEYS = ("sessions", "scan_types", "scan_formats", "resources", "options")


@dataclass(slots=True)
class Catalog:
    """One built download catalog and who may fetch it."""

    id: str
    user: str
    entries: list[Entry]


CATALOGS_KEY: web.AppKey[dict[str, Catalog]] = web.AppKey("xnat_download_catalogs", dict)
_COUNTER = itertools.count(1)


async def _selection(request: web.Request) -> dict[str, list[str]]:
    try:
        body = json.loads(await request.text() or "{}")
    except json.JSONDecodeError as exc:
        fail(400, f"The body must be a JSON object of string lists: {exc}")
    lists = isinstance(body, dict) and all(
        isinstance(v, list) and all(isinstance(x, str) for x in v) for v in body.values()
    )
    if not lists:
        fail(400, 'The body must be a JSON object of string lists, e.g. {"sessions": [...]}')
    unknown = sorted(set(body) - set(_SELECTION_KEYS) - {"reconstructions", "assessors"})
    if unknown:
        fail(400, f"Unknown selection key(s): {', '.join(unknown)}")
    return dict(body)


def _session(request: web.Request, text: str) -> Experiment:
    atoms = text.split(":")
    if len(atoms) != 4:
        fail(400, f"A session must be project:subject:label:ID, not {text!r}")
    store = store_of(request)
    experiment = store.experiments.get(atoms[3])
    if experiment is None:
        fail(404, f"No session {atoms[3]}")
    if not can_read(user_of(request), store.projects[experiment.project]):
        fail(403, f"No access to session {atoms[3]}")
    return experiment


def _entries(store: Store, experiment: Experiment, selection: dict[str, list[str]]) -> list[Entry]:
    out: list[Entry] = []
    types, formats = selection.get("scan_types", []), selection.get("scan_formats", [])
    if types and formats:
        for scan in experiment.scans.values():
            if (scan.type or "NULL") not in types:
                continue
            folder = f"{scan.id}-{_UNSAFE.sub('_', scan.type)}" if scan.type else scan.id
            for res in scan.resources.values():
                if (res.label or "NULL") in formats:
                    base = f"{experiment.label}/scans/{folder}/resources/{res.label}/files"
                    out += [(f"{base}/{p}", res, p) for p in sorted(res.files)]
    for label in selection.get("resources", []):
        own = experiment.resources.get(label)
        if own is not None:
            base = f"{experiment.label}/resources/{own.label}/files"
            out += [(f"{base}/{p}", own, p) for p in sorted(own.files)]
    return out


async def _build(request: web.Request) -> Catalog:
    selection = await _selection(request)
    sessions = selection.get("sessions", [])
    if not sessions:
        raise web.HTTPNoContent()
    store, user = store_of(request), user_of(request).username
    entries = [e for s in sessions for e in _entries(store, _session(request, s), selection)]
    stamp = time.strftime("%Y%m%d_%H%M%S")
    catalog = Catalog(f"{user}_{stamp}{next(_COUNTER):03d}", user, entries)
    request.app[CATALOGS_KEY][catalog.id] = catalog
    return catalog


async def create(request: web.Request) -> web.Response:
    """POST /xapi/archive/download: the new catalog's ID."""
    catalog = await _build(request)
    return web.Response(text=catalog.id, content_type="application/xml")


async def create_with_size(request: web.Request) -> web.Response:
    """POST /xapi/archive/downloadwithsize: `{"id", "size"}` (size in bytes, a string)."""
    catalog = await _build(request)
    size = sum(r.files[p].size for _, r, p in catalog.entries)
    return web.json_response({"id": catalog.id, "size": str(size)})


def _catalog(request: web.Request) -> Catalog:
    found = request.app[CATALOGS_KEY].get(request.match_info["catalog"])
    if found is None or found.user != user_of(request).username:
        fail(404, f"No download catalog {request.match_info['catalog']}")
    return found


async def get_xml(request: web.Request) -> web.Response:
    """GET /xapi/archive/download/{id}[/xml]: the catalog document."""
    catalog = _catalog(request)
    entries = "".join(
        f"<cat:entry name={quoteattr(name)} URI={quoteattr(res_uri(r, p))}/>"
        for name, r, p in catalog.entries
    )
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<cat:Catalog ID={quoteattr(catalog.id)} xmlns:cat="http://nrg.wustl.edu/catalog">'
        f"<cat:entries>{entries}</cat:entries></cat:Catalog>"
    )
    return web.Response(text=text, content_type="application/xml")


def res_uri(resource: Resource, relpath: str) -> str:
    """The archive path of one file of the catalog."""
    owner = f"/archive/experiments/{resource.experiment}"
    if resource.level == "scan":
        owner += f"/scans/{resource.scan}"
    return f"{owner}/resources/{resource.label}/files/{relpath}"


async def get_zip(request: web.Request) -> web.StreamResponse:
    """GET /xapi/archive/download/{id}/zip: the catalog's files (404 if it holds none)."""
    catalog = _catalog(request)
    store = store_of(request)
    members: list[Member] = [
        (name, store.file_path(r, p), r.files[p]) for name, r, p in catalog.entries if p in r.files
    ]
    return await send_zip(request, members, f"{catalog.id}.zip")


def add_routes(app: web.Application) -> None:
    """Register the XAPI download routes."""
    app[CATALOGS_KEY] = {}
    app.router.add_post("/xapi/archive/download", create)
    app.router.add_post("/xapi/archive/downloadwithsize", create_with_size)
    app.router.add_get("/xapi/archive/download/{catalog}", get_xml)
    app.router.add_get("/xapi/archive/download/{catalog}/xml", get_xml)
    app.router.add_get("/xapi/archive/download/{catalog}/zip", get_zip)
