"""Catalog refresh (xnat-api §4.7): `POST /data/services/refresh/catalog?resource=…&options=…`
and `PUT /xapi/archive/catalogs/refresh[/{operations}]` with a JSON list of paths.

A path names an archive item the XNAT way: `/archive/projects/{P}[/subjects/{S}[/experiments/
{E}]]…` or `/archive/experiments/{E}[/scans/{SC}|/assessors/{A}|/reconstructions/{R}]
[/resources/{R}]` (a leading `/data`, `/REST` or `/archive` is optional; labels or IDs as in
request paths). Every resource of the named item (and of everything below it) is refreshed, or
the one resource the path names. Operations: `append` (catalog files present on disk but not
in the catalog), `checksum` (compute missing digests), `delete` (drop entries whose bytes are
gone), `populateStats` (counts and sizes; always live here); none given = all.

Answers (XNAT's RefreshCatalog and DefaultCatalogService; under `/data` and `/REST`, not
`/data/archive`): 200 with an empty body; a path that names no item → 400 "Cannot locate
archivable item securing {path}"; an item the user may not edit → 403 (404 if they cannot read
it); an unknown operation → 400 naming it.
"""

from __future__ import annotations

import json
import os

from aiohttp import web

from xnatsync.emulator.blobs import md5_of_path
from xnatsync.emulator.common import (
    add_data_route,
    can_edit,
    can_read,
    fail,
    flag,
    plain,
    store_of,
    user_of,
)
from xnatsync.emulator.records import (
    Assessor,
    Experiment,
    Owner,
    Project,
    Reconstruction,
    Resource,
)
from xnatsync.emulator.resolve import select_scans
from xnatsync.emulator.store import Store

OPERATIONS = ("append", "checksum", "delete", "populateStats")
_CHILD_KINDS = ("scans", "assessors", "reconstructions")


def _segments(path: str) -> list[str]:
    parts = [p for p in path.split("/") if p]
    for prefix in ("data", "REST", "archive"):
        if parts and parts[0] == prefix:
            parts = parts[1:]
    return parts


def _below_experiment(store: Store, experiment: Experiment, rest: list[str]) -> list[Owner]:
    """The owners a path names below a session (itself and everything under it if nothing)."""
    if not rest:
        owners: list[Owner] = [experiment, *experiment.scans.values()]
        derived: list[Assessor | Reconstruction] = [*experiment.assessors.values()]
        derived += experiment.reconstructions.values()
        for record in derived:
            owners += [record, record.inputs]
        return owners
    kind, key = rest[0], rest[1] if len(rest) > 1 else ""
    if kind == "scans":
        return list(select_scans(experiment, key))
    found: Assessor | Reconstruction | None = None
    if kind == "assessors":
        found = store.assessor(experiment, key)
    elif kind == "reconstructions":
        found = experiment.reconstructions.get(key)
    if found is None:
        return []
    side = rest[2:3]
    return (
        [found.inputs] if side == ["in"] else [found] if side == ["out"] else [found, found.inputs]
    )


def locate(store: Store, path: str) -> tuple[Project, list[Owner], str] | None:
    """The project securing `path`, the owners it names and the resource label it names ("")."""
    parts = _segments(path)
    resource = ""
    if "resources" in parts:
        at = parts.index("resources")
        resource = parts[at + 1] if len(parts) > at + 1 else ""
        parts = parts[:at]
    pairs = dict(zip(parts[::2], parts[1::2], strict=False))
    project = store.project(pairs["projects"]) if "projects" in pairs else None
    experiment, subject = None, None
    if "experiments" in pairs:
        experiment = store.experiment(project.id if project else None, pairs["experiments"])
        if experiment is None:
            return None
        project = store.projects[experiment.project]
    elif "subjects" in pairs and project is not None:
        subject = store.subject(project.id, pairs["subjects"])
        if subject is None:
            return None
    if project is None:
        return None
    if experiment is not None:
        at = next((i for i, p in enumerate(parts) if p in _CHILD_KINDS), len(parts))
        return project, _below_experiment(store, experiment, parts[at:]), resource
    if subject is not None:
        sessions = [store.experiments[e] for e in subject.experiments]
        below = [o for e in sessions for o in _below_experiment(store, e, [])]
        return project, [subject, *below] if not resource else [subject], resource
    return project, [project], resource


def refresh(store: Store, resource: Resource, operations: set[str]) -> None:
    """Bring one catalog in line with the bytes on disk."""
    if "delete" in operations:
        gone = [p for p in resource.files if not store.file_path(resource, p).is_file()]
        store.remove_files(resource, gone)
    if "append" in operations:
        root = store.file_path(resource, "")
        for found in sorted(root.rglob("*")) if root.is_dir() else []:
            relpath = found.relative_to(root).as_posix()
            if found.is_file() and relpath not in resource.files:
                store.add_file(resource, relpath, found)  # already in place: stays
    if "checksum" in operations:
        for entry in resource.files.values():
            path = store.file_path(resource, entry.relpath)
            if not entry.digest and path.is_file():
                entry.digest = md5_of_path(path)
                entry.size = os.stat(path).st_size
                store.dirty = True


def _operations(names: list[str]) -> set[str]:
    """The operations named (query options or XAPI enum names, any first-letter case); all of
    them for none or `All`; 400 naming any unknown one."""
    known = {op.lower(): op for op in OPERATIONS}
    wanted = [n for n in names if n]
    unknown = [n for n in wanted if n.lower() not in known and n.lower() != "all"]
    if unknown:
        fail(400, f"Unknown catalog refresh operation(s): {', '.join(unknown)}")
    if not wanted or any(n.lower() == "all" for n in wanted):
        return set(OPERATIONS)
    return {known[n.lower()] for n in wanted}


def _refresh_paths(request: web.Request, paths: list[str], operations: set[str]) -> None:
    store, user = store_of(request), user_of(request)
    for path in paths:
        found = locate(store, path)
        if found is None:
            fail(400, f"Cannot locate archivable item securing {path}")
        project, owners, label = found
        if not can_edit(user, project):
            fail(404 if not can_read(user, project) else 403, f"No edit rights on {path}")
        for owner in owners:
            chosen = [
                r for r in owner.resources.values() if not label or label in (r.label, str(r.id))
            ]
            for resource in chosen:
                refresh(store, resource, operations)


async def refresh_service(request: web.Request) -> web.Response:
    """POST /data/services/refresh/catalog?resource=…[&options=…|&append=true…]."""
    paths = request.query.getall("resource", [])
    if not paths:
        fail(400, "Give at least one resource= path to refresh")
    names = request.query.get("options", "").split(",")
    names += [op for op in OPERATIONS if flag(request, op)]
    _refresh_paths(request, paths, _operations(names))
    return plain("")


async def refresh_xapi(request: web.Request) -> web.Response:
    """PUT /xapi/archive/catalogs/refresh[/{operations}] with a JSON list of paths."""
    try:
        paths = json.loads(await request.text())
    except json.JSONDecodeError as exc:
        fail(400, f"The body must be a JSON list of archive paths: {exc}")
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        fail(400, "The body must be a JSON list of archive paths")
    ops = _operations(request.match_info.get("operations", "").split(","))
    _refresh_paths(request, paths, ops)
    return plain("")


def add_routes(app: web.Application) -> None:
    """Register the refresh service and its XAPI twin."""
    add_data_route(app, "POST", "/services/refresh/catalog", refresh_service)
    app.router.add_put("/xapi/archive/catalogs/refresh", refresh_xapi)
    app.router.add_put("/xapi/archive/catalogs/refresh/{operations}", refresh_xapi)
