"""File routes: listings (per resource, `scans/ALL/files`, `files?all=true`, folders, filters,
`index=`), single-file GET/HEAD, zip downloads and DELETE (xnat-api §3.6, §3.8, §4.1, §4.2, §4.6,
§11.15, §11.16). Uploads live in `upload`.

Single files are served with sendfile through `faultwire.ServedFile`, which ignores `Range`;
a missing file → 404 with an empty body.

A file is also addressed through its container, without naming the resource:
`{owner}/files/{path}` at every owner path (project, subject, session, scan, assessor; RT
TestFileUpload.testScanUpload, testProjectResourceUpload, …). XNAT's FileList walks the owner's
catalogs in database order (creation order here) and looks at the FIRST catalog only: the entry
is served from it; if that catalog lacks the entry the answer is 404 (the walk stops), and only
when the catalog lists it but its bytes are missing does the walk go on to the next catalog. So
when two resources hold the same name the older resource's copy is served, and a file held only
by a later resource is not reachable this way (use `…/resources/{R}/files/{path}`).
"""

from __future__ import annotations

import email.utils

from aiohttp import web

from xnatsync.emulator.common import (
    FAULTS_KEY,
    add_data_route,
    fail,
    file_path_param,
    flag,
    halt,
    plain,
    result_set,
    store_of,
)
from xnatsync.emulator.faultwire import ServedFile
from xnatsync.emulator.records import FileEntry, Resource
from xnatsync.emulator.render import below_session, file_row, resource_base
from xnatsync.emulator.resolve import Ctx, resolve, select_resources
from xnatsync.emulator.resources import OWNER_BASES, owners
from xnatsync.emulator.zipstream import Member, arcname, send_zip, zip_name

_TYPES = {
    "bmp": "image/bmp", "gif": "image/gif", "html": "text/html", "htm": "text/html",
    "jpg": "image/jpeg", "jpeg": "image/jpeg", "pdf": "application/pdf", "png": "image/png",
    "svg": "image/svg+xml", "tif": "image/tiff", "tiff": "image/tiff", "txt": "text/plain",
    "xml": "text/xml",
}  # fmt: skip
Selection = list[tuple[Resource, FileEntry]]


def content_type(name: str) -> str:
    """XNAT's extension map; everything else (.dcm, .nii.gz …) is octet-stream."""
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return _TYPES.get(extension, "application/octet-stream")


def _base(ctx: Ctx, resource: Resource) -> str:
    """The owner URI of a single-resource request (§3.8)."""
    if ctx.experiment is None:
        return resource_base(resource)
    base = "/data"
    if ctx.subject_in_path and ctx.subject is not None:
        base += f"/projects/{ctx.project.id}/subjects/{ctx.subject.id}"
    base += f"/experiments/{ctx.experiment.id}"
    return base + below_session(resource, ctx.assessor_type)


def _filtered(request: web.Request, selection: Selection) -> Selection:
    for name, attr in (("file_format", "format"), ("file_content", "content")):
        wanted = request.query.getall(name, [])
        if wanted:
            selection = [(r, e) for r, e in selection if (getattr(e, attr) or "NULL") in wanted]
    return selection


def _folder(request: web.Request, selection: Selection, folder: str) -> Selection:
    prefix = folder.strip("/") + "/"
    recursive = flag(request, "recursive", True)
    return [
        (r, e)
        for r, e in selection
        if e.relpath.startswith(prefix) and (recursive or "/" not in e.relpath[len(prefix) :])
    ]


async def _answer(
    request: web.Request, ctx: Ctx, resources: list[Resource], selection: Selection
) -> web.StreamResponse:
    selection = _filtered(request, selection)
    if "index" in request.query:
        index = int(request.query["index"])
        if not 0 <= index < len(selection):
            raise halt(404, empty=True)
        return serve_file(request, *selection[index])
    if request.query.get("format", "").lower() == "zip":
        store = store_of(request)
        scans = ctx.scans is not None
        members: list[Member] = [
            (arcname(store, r, e.relpath, scans), store.file_path(r, e.relpath), e)
            for r, e in selection
        ]
        return await send_zip(request, members, zip_name(store, resources))
    single = len(resources) == 1 and "resource" in request.match_info
    rows = [file_row(r, e, _base(ctx, r) if single else resource_base(r)) for r, e in selection]
    meta = [{"key": "URI", "serverRoot": ""}]
    return result_set(
        request, rows, title="Files", total=False, columns_meta=meta, honour_columns=False
    )


def _entries(resources: list[Resource]) -> Selection:
    return [(r, e) for r in resources for e in sorted(r.files.values(), key=lambda f: f.relpath)]


async def list_owner_files(request: web.Request) -> web.StreamResponse:
    """GET …/files: scans' resources, a session's own (all=true: everything), an owner's."""
    ctx = resolve(request)
    every = flag(request, "all")
    resources = [r for owner in owners(ctx, every=every) for r in owner.resources.values()]
    return await _answer(request, ctx, resources, _entries(resources))


def _resources(request: web.Request, ctx: Ctx) -> list[Resource]:
    return select_resources(owners(ctx), request.match_info["resource"])


async def list_resource_files(request: web.Request) -> web.StreamResponse:
    """GET …/resources/{R}/files (R: label, id or comma list)."""
    ctx = resolve(request)
    resources = _resources(request, ctx)
    return await _answer(request, ctx, resources, _entries(resources))


def serve_file(request: web.Request, resource: Resource, entry: FileEntry) -> web.StreamResponse:
    """One file's bytes with XNAT's headers."""
    path = store_of(request).file_path(resource, entry.relpath)
    if not path.is_file():
        raise halt(404, empty=True)
    name = entry.relpath.rsplit("/", 1)[-1]
    headers = {
        "Content-Type": content_type(name),
        "Content-Disposition": f'attachment; filename="{name}";',
        "Last-Modified": email.utils.formatdate(entry.mtime, usegmt=True),
        "Cache-Control": "must-revalidate",
    }
    return ServedFile(path, headers, honour_ranges=request.app[FAULTS_KEY].honour_ranges)


async def get_file(request: web.Request) -> web.StreamResponse:
    """GET/HEAD …/resources/{R}/files/{path}; a trailing `/` lists (or zips) a folder."""
    ctx = resolve(request)
    resources = _resources(request, ctx)
    relpath = file_path_param(request)
    if relpath.endswith("/"):
        return await _answer(
            request, ctx, resources, _folder(request, _entries(resources), relpath)
        )
    for resource in resources:
        entry = resource.files.get(relpath.strip("/"))
        if entry is not None:
            return serve_file(request, resource, entry)
    if flag(request, "accept-not-found"):
        return web.Response(status=204)
    raise halt(404, empty=True)


def first_catalog_file(request: web.Request, resources: list[Resource], relpath: str) -> Selection:
    """The entry a container-level `…/files/{path}` names, by XNAT's first-catalog rule (see the
    module docstring); empty if there is none."""
    store = store_of(request)
    for resource in sorted(resources, key=lambda r: r.id):
        entry = resource.files.get(relpath)
        if entry is None:
            return []
        if store.file_path(resource, entry.relpath).is_file():
            return [(resource, entry)]
    return []


async def get_owner_file(request: web.Request) -> web.StreamResponse:
    """GET/HEAD {owner}/files/{path}: a file of one of the owner's resources (first catalog
    rule); a trailing `/` lists (or zips) that folder across all the owner's resources."""
    ctx = resolve(request)
    every = flag(request, "all")
    resources = [r for owner in owners(ctx, every=every) for r in owner.resources.values()]
    relpath = file_path_param(request)
    if relpath.endswith("/"):
        return await _answer(
            request, ctx, resources, _folder(request, _entries(resources), relpath)
        )
    found = first_catalog_file(request, resources, relpath.strip("/"))
    if found:
        return serve_file(request, *found[0])
    if flag(request, "accept-not-found"):
        return web.Response(status=204)
    raise halt(404, empty=True)


async def delete_file(request: web.Request) -> web.Response:
    """DELETE …/resources/{R}/files/{path}: one file or every file under a folder."""
    ctx = resolve(request, write=True)
    relpath = file_path_param(request).strip("/")
    removed = 0
    for resource in _resources(request, ctx):
        doomed = [p for p in resource.files if p == relpath or p.startswith(relpath + "/")]
        store_of(request).remove_files(resource, doomed)
        removed += len(doomed)
    if removed and ctx.experiment is not None:
        store_of(request).log_workflow(ctx.experiment)
    if not removed:
        if flag(request, "accept-not-found"):
            return web.Response(status=204)
        fail(404, "No matched files")
    return plain("")


def add_routes(app: web.Application) -> None:
    """Register file listing, download and delete routes under every owner path."""
    for base in OWNER_BASES:
        add_data_route(app, "GET", base + "/files", list_owner_files)
        add_data_route(app, "GET", base + "/files/{path:.+}", get_owner_file)
        add_data_route(app, "GET", base + "/resources/{resource}/files", list_resource_files)
        add_data_route(app, "GET", base + "/resources/{resource}/files/{path:.+}", get_file)
        add_data_route(app, "DELETE", base + "/resources/{resource}/files/{path:.+}", delete_file)
