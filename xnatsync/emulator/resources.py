"""Resource routes at project, subject, experiment, scan, assessor and reconstruction level: list
(with `all=true` at experiment level: the session's own, every scan's, every reconstruction's
OUT and every assessor's), get
(catalog XML / JSON), PUT create (409 if the label exists), DELETE (xnat-api §3.5, §4.5, §4.6).

Also the table of owner paths every resource and file route is registered under (§9). An
assessor's or reconstruction's OUT resources are under `…/assessors/{A}` (`…/reconstructions/
{R}`) and `…/out` below it, its IN resources under `…/in`.
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from aiohttp import web

from xnatsync.emulator.common import add_data_route, fail, flag, plain, result_set, store_of
from xnatsync.emulator.records import (
    Assessor,
    Inputs,
    Owner,
    Reconstruction,
    Resource,
    Scan,
)
from xnatsync.emulator.render import resource_row
from xnatsync.emulator.resolve import Ctx, resolve, select_resources

_EXPERIMENTS = (
    "/experiments/{experiment}",
    "/projects/{project}/experiments/{experiment}",
    "/projects/{project}/subjects/{subject}/experiments/{experiment}",
)
ASSESSORS = tuple(base + "/assessors/{assessor}" for base in _EXPERIMENTS)
# XNAT routes reconstructions only under these two session paths (XNATApplication)
RECONSTRUCTIONS = tuple(
    base + "/reconstructions/{reconstruction}" for base in (_EXPERIMENTS[0], _EXPERIMENTS[2])
)
OWNER_BASES = (
    "/projects/{project}",
    "/projects/{project}/subjects/{subject}",
    "/subjects/{subject}",
    *_EXPERIMENTS,
    "/experiments/{experiment}/scans/{scans}",
    "/projects/{project}/subjects/{subject}/experiments/{experiment}/scans/{scans}",
    *ASSESSORS,
    *(base + "/{assessor_type:in|out}" for base in ASSESSORS),
    *RECONSTRUCTIONS,
    *(base + "/{recon_type:in|out}" for base in RECONSTRUCTIONS),
)


def owners(ctx: Ctx, *, every: bool = False) -> list[Owner]:
    """The records whose resources a path addresses (`every`: a session, all its scans, all its
    assessors and all its reconstructions' OUT resources, as XNAT's `all=true` query)."""
    if ctx.assessor is not None or ctx.reconstruction is not None:
        return [ctx.owner()]
    if ctx.scans is not None:
        return list(ctx.scans)
    if ctx.experiment is not None:
        if not every:
            return [ctx.experiment]
        experiment = ctx.experiment
        recons = experiment.reconstructions.values()
        return [experiment, *experiment.scans.values(), *recons, *experiment.assessors.values()]
    return [ctx.subject or ctx.project]


def single_owner(ctx: Ctx) -> Owner:
    """The one record a write addresses; a scans segment must name exactly one scan."""
    if ctx.scans is not None and len(ctx.scans) != 1:
        fail(404, "Unable to find the specified scan.")
    return ctx.owner()


def cat_desc(request: web.Request, resource: Resource) -> str:
    """A resource's `cat_desc`: the scan or reconstruction type, or the assessor's xsiType
    ("" otherwise)."""
    owner = store_of(request).owner_of(resource)
    if isinstance(owner, Inputs):
        session = store_of(request).experiments[owner.session]
        kind = session.assessors if owner.kind == "assessor" else session.reconstructions
        owner = kind[owner.of]
    if isinstance(owner, Scan | Reconstruction):
        return owner.type
    return owner.xsi_type if isinstance(owner, Assessor) else ""


async def list_resources(request: web.Request) -> web.Response:
    """GET …/resources[?all=true]."""
    ctx = resolve(request)
    rows = [
        resource_row(res, cat_desc(request, res))
        for owner in owners(ctx, every=flag(request, "all"))
        for res in owner.resources.values()
    ]
    return result_set(request, rows, title="Resources", honour_columns=False)


def _catalog_xml(resource: Resource) -> str:
    entries = "".join(
        f"<cat:entry URI={quoteattr(e.relpath)} ID={quoteattr(e.relpath)} "
        f'name={quoteattr(e.relpath.rsplit("/", 1)[-1])} size="{e.size}" '
        f'digest="{e.digest}" format={quoteattr(e.format)} content={quoteattr(e.content)} '
        'xsi:type="cat:entry"/>'
        for e in resource.files.values()
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<cat:Catalog ID={quoteattr(resource.label)} xmlns:cat="http://nrg.wustl.edu/catalog" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<cat:description>{escape(resource.description)}</cat:description>"
        f"<cat:entries>{entries}</cat:entries></cat:Catalog>"
    )


async def get_resource(request: web.Request) -> web.Response:
    """GET …/resources/{R}: the catalog XML (also for format=json, as XNAT does)."""
    ctx = resolve(request)
    found = select_resources(owners(ctx), request.match_info["resource"])
    if not found:
        fail(404, "Unable to find the specified resource.")
    # XNAT answers the catalog document whatever `format` says (xnatpy relies on it)
    return web.Response(text=_catalog_xml(found[0]), content_type="text/xml")


async def put_resource(request: web.Request) -> web.Response:
    """PUT …/resources/{label}[?format=&content=&tags=&description=]: 200, or 409 if it exists."""
    owner = single_owner(resolve(request, write=True))
    label, query = request.match_info["resource"], request.query
    if store_of(request).resource(owner, label) is not None:
        fail(409, "Specified resource already exists.")
    fmt = query.get("format", "")
    fmt = "" if fmt.lower() in ("json", "xml", "html", "csv") else fmt
    resource, _ = store_of(request).ensure_resource(owner, label, fmt, query.get("content", ""))
    resource.tags = query.get("tags", "")
    resource.description = query.get("description", "")
    return plain("")


async def delete_resource(request: web.Request) -> web.Response:
    """DELETE …/resources/{R} (labels, ids or comma lists)."""
    ctx = resolve(request, write=True)
    found = select_resources(owners(ctx), request.match_info["resource"])
    if not found:
        fail(404, "Unable to find the specified resource.")
    for resource in found:
        store_of(request).delete_resource(resource)
    return plain("")


def add_routes(app: web.Application) -> None:
    """Register resource routes under every owner path."""
    for base in OWNER_BASES:
        add_data_route(app, "GET", base + "/resources", list_resources)
        add_data_route(app, "GET", base + "/resources/{resource}", get_resource)
        add_data_route(app, "PUT", base + "/resources/{resource}", put_resource)
        add_data_route(app, "POST", base + "/resources/{resource}", put_resource)
        add_data_route(app, "DELETE", base + "/resources/{resource}", delete_resource)
