"""Sharing subjects and experiments into other projects (xnat-api §1.4).

A shared record keeps its accession ID and primary project; listed under a project it is
shared into, its rows carry that project and the label it has there.

- `PUT …/subjects/{S}/projects/{P2}[?label=L]` and `PUT …/experiments/{E}/projects/{P2}[?label=L]`
  share the record into P2 (200). 409 if it is already in P2 or the label is taken there, 403
  without create rights in P2, 404 for a project the user cannot see. `primary=true` (moving
  the record to P2) is not emulated: 400 says so.
- `DELETE` on the same path, or on the record's own path under a project it is shared into,
  takes it out of that project (200); the record itself stays. Shared data is read-only where
  it is shared: other writes through P2 need edit rights on the primary project.
"""

from __future__ import annotations

from aiohttp import web

from xnatsync.emulator.common import (
    add_data_route,
    can_edit,
    can_see,
    fail,
    flag,
    plain,
    store_of,
    user_of,
)
from xnatsync.emulator.records import Experiment, Project, Subject
from xnatsync.emulator.resolve import Ctx, resolve


def _record(ctx: Ctx) -> Subject | Experiment:
    record = ctx.experiment or ctx.subject
    assert record is not None
    return record


def _target(request: web.Request) -> Project:
    name = request.match_info["target"]
    project = store_of(request).project(name)
    if project is None or not can_see(user_of(request), project):
        fail(404, f"Unable to identify project: {name}")
    return project


async def put_share(request: web.Request) -> web.Response:
    """PUT …/projects/{P2}[?label=L]: share the subject or experiment into P2."""
    record = _record(resolve(request, children=False))
    target = _target(request)
    if flag(request, "primary"):
        fail(400, "Moving a record to another primary project (primary=true) is not emulated")
    if not can_edit(user_of(request), target):
        fail(403, f"Specified user account has insufficient create privileges in {target.id}.")
    try:
        store_of(request).share(record, target, request.query.get("label", ""))
    except ValueError as exc:
        fail(409, str(exc))
    return plain("")


def unshare(request: web.Request, record: Subject | Experiment, project: Project) -> web.Response:
    """Take `record` out of `project`, a project it is shared into."""
    if record.project == project.id:
        fail(400, f"Cannot remove {record.label} from its primary project {project.id}")
    if project.id not in record.shares:
        fail(404, f"{record.label} is not shared into {project.id}")
    if not can_edit(user_of(request), project):
        fail(403, f"Specified user account has insufficient delete privileges in {project.id}.")
    store_of(request).unshare(record, project.id)
    return plain("")


async def delete_share(request: web.Request) -> web.Response:
    """DELETE …/projects/{P2}: unshare from P2."""
    return unshare(request, _record(resolve(request, children=False)), _target(request))


def shared_through(request: web.Request) -> tuple[Subject | Experiment, Project] | None:
    """The record a DELETE names and the path's project, if the record is only shared there
    (such a DELETE unshares instead of deleting)."""
    if "project" not in request.match_info:
        return None
    ctx = resolve(request, children=False)
    record = _record(ctx)
    return (record, ctx.project) if record.project != ctx.project.id else None


def add_routes(app: web.Application) -> None:
    """Register the share and unshare routes."""
    records = (
        "/subjects/{subject}",
        "/projects/{project}/subjects/{subject}",
        "/experiments/{experiment}",
        "/projects/{project}/experiments/{experiment}",
        "/projects/{project}/subjects/{subject}/experiments/{experiment}",
    )
    for path in records:
        add_data_route(app, "PUT", path + "/projects/{target}", put_share)
        add_data_route(app, "DELETE", path + "/projects/{target}", delete_share)
