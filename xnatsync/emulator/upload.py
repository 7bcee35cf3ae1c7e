"""File uploads: `PUT`/`POST …/resources/{R}/files[/{path}]`, in-body or multipart, with
`overwrite`, `extract=true` (zip, tar, tar.gz, tgz) and the duplicates answer (xnat-api §4.4).

Rules: the resource is auto-created; in-body bodies need a positive Content-Length unless
`Content-Type: application/zip` (else 500, as XNAT's FileUploadException); no data at all → 400;
an existing file without `overwrite=true` is kept and the answer is 200 `{"duplicates":[…]}`
served as text/html; success → 200 with an empty body. Bodies are spooled to disk while hashing.

With `--faults catalog-race=1` the upload reads its resource's catalog before an in-body body
streams (after a multipart body arrived) and fails with 500 if another write changed the catalog
meanwhile (`catalogs`). Files a failed upload left uncatalogued count as duplicates for a later
upload without `overwrite=true`, whether or not the switch is still on.
"""

from __future__ import annotations

import hashlib
import pathlib
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass

from aiohttp import BodyPartReader, web

from xnatsync.emulator.blobs import safe_relpath
from xnatsync.emulator.catalogs import CATALOGS_KEY, Catalogs, Snapshot, conflict_message
from xnatsync.emulator.common import (
    FAULTS_KEY,
    add_data_route,
    fail,
    file_path_param,
    flag,
    json_text,
    plain,
    store_of,
)
from xnatsync.emulator.records import Owner, Resource
from xnatsync.emulator.resolve import resolve
from xnatsync.emulator.resources import OWNER_BASES, single_owner
from xnatsync.emulator.store import Store

IN_BODY_TYPES = frozenset(
    {
        "application/octet-stream", "application/zip", "application/dicom", "text/plain",
        "application/x-tar", "application/x-gtar", "application/gzip", "application/x-gzip",
        "application/x-zip-compressed", "text/xml", "application/xml", "application/json",
        "text/csv", "application/pdf", "application/x-dicom",
    }
)  # fmt: skip
_NAMES = {
    "application/zip": "upload.zip",
    "application/x-tar": "upload.tar",
    "application/x-gtar": "upload.tar.gz",
    "application/dicom": "upload.dcm",
}
_ARCHIVES = (".zip", ".tar", ".tar.gz", ".tgz")


@dataclass(slots=True)
class Spooled:
    """An uploaded body on disk with its MD5."""

    name: str
    path: pathlib.Path
    digest: str


async def _spool(reader: web.Request | BodyPartReader, name: str, tmp: pathlib.Path) -> Spooled:
    digest = hashlib.md5()
    handle, raw = tempfile.mkstemp(dir=tmp)
    # page-cache writes of 1 MiB blocks are fast; a thread hop per chunk would cost more
    with open(handle, "wb") as out:  # noqa: ASYNC230
        if isinstance(reader, BodyPartReader):
            while chunk := await reader.read_chunk(1 << 20):
                out.write(chunk)
                digest.update(chunk)
        else:
            async for chunk in reader.content.iter_chunked(1 << 20):
                out.write(chunk)
                digest.update(chunk)
    return Spooled(name, pathlib.Path(raw), digest.hexdigest())


async def _multipart(request: web.Request, relpath: str, tmp: pathlib.Path) -> list[Spooled]:
    if flag(request, "inbody"):
        fail(400, "Multipart uploads cannot be combined with inbody=true")
    parts: list[Spooled] = []
    reader = await request.multipart()
    async for part in reader:
        if isinstance(part, BodyPartReader) and part.filename:
            parts.append(await _spool(part, part.filename, tmp))
    if len(parts) == 1 and relpath:
        parts[0].name = relpath
    elif relpath:
        for spooled in parts:
            spooled.name = f"{relpath.rstrip('/')}/{spooled.name}"
    return parts


async def _bodies(request: web.Request, relpath: str, tmp: pathlib.Path) -> list[Spooled]:
    ctype = request.content_type
    if ctype.startswith("multipart/"):
        return await _multipart(request, relpath, tmp)
    typed = "Content-Type" in request.headers  # aiohttp defaults a missing type to octet-stream
    in_body = typed and (ctype in IN_BODY_TYPES or ctype.startswith("image/"))
    if not (in_body or flag(request, "inbody")):
        fail(400, "You tried to PUT to this service, but didn't provide any data.")
    if not request.content_length and ctype != "application/zip":
        fail(500, "FileUploadException: in-body uploads need a positive Content-Length")
    name = relpath or _NAMES.get(ctype, "upload")
    return [await _spool(request, name, tmp)]


def _members(archive: pathlib.Path, name: str) -> list[tuple[str, bytes]]:
    if name.lower().endswith(".zip"):
        with zipfile.ZipFile(archive) as zipped:
            return [(i.filename, zipped.read(i)) for i in zipped.infolist() if not i.is_dir()]
    with tarfile.open(archive, "r:*") as tarred:
        out = []
        for member in tarred.getmembers():
            handle = tarred.extractfile(member) if member.isfile() else None
            if handle is not None:
                out.append((member.name, handle.read()))
        return out


def _put(
    catalogs: Catalogs,
    store: Store,
    resource: Resource,
    name: str,
    data: bytes | pathlib.Path,
    overwrite: bool,
    meta: dict[str, str],
    digest: str | None = None,
) -> bool:
    """Store one file; False for a duplicate (catalogued, or left on disk uncatalogued)."""
    relpath = safe_relpath(name)
    if not overwrite and catalogs.is_orphan(resource, relpath):
        return False
    added = store.add_file(resource, relpath, data, overwrite=overwrite, digest=digest, **meta)
    if added:
        catalogs.adopt(resource, relpath)
    return added


def _store(request: web.Request, store: Store, resource: Resource, body: Spooled) -> list[str]:
    query = request.query
    fmt = query.get("format", "")
    meta = {
        "format": "" if fmt.lower() in ("json", "xml", "html", "csv") else fmt,
        "content": query.get("content", ""),
        "tags": query.get("tags", ""),
    }
    overwrite = flag(request, "overwrite")
    catalogs = request.app[CATALOGS_KEY]
    try:
        if flag(request, "extract") and body.name.lower().endswith(_ARCHIVES):
            members = _members(body.path, body.name)
            body.path.unlink()
            return [
                safe_relpath(m)
                for m, data in members
                if not _put(catalogs, store, resource, m, data, overwrite, meta)
            ]
        added = _put(catalogs, store, resource, body.name, body.path, overwrite, meta, body.digest)
    except (ValueError, zipfile.BadZipFile, tarfile.TarError) as exc:
        body.path.unlink(missing_ok=True)
        fail(400, str(exc))
    if not added:
        body.path.unlink(missing_ok=True)
        return [safe_relpath(body.name)]
    return []


def _written(request: web.Request, body: Spooled) -> list[str]:
    """The catalog paths a body's files would get (an archive's members when extracting)."""
    try:
        if flag(request, "extract") and body.name.lower().endswith(_ARCHIVES):
            return [safe_relpath(m) for m, _ in _members(body.path, body.name)]
        return [safe_relpath(body.name)]
    except (ValueError, zipfile.BadZipFile, tarfile.TarError):
        return []


def _read_catalog(request: web.Request, owner: Owner, key: str) -> Snapshot:
    request.app[FAULTS_KEY].catalog_read(request.path)
    return request.app[CATALOGS_KEY].read(store_of(request), owner, key)


async def _write_catalog(
    request: web.Request, owner: Owner, key: str, seen: Snapshot, bodies: list[Spooled]
) -> None:
    """The catalog-race check before the catalog write: 500 if the catalog changed since `seen`;
    the failed upload's new files are then left uncatalogued."""
    await request.app[FAULTS_KEY].catalog_write(request.path)
    store, catalogs = store_of(request), request.app[CATALOGS_KEY]
    if not catalogs.changed(store, owner, key, seen):
        return
    resource = store.resource(owner, key)
    known = resource.files if resource is not None else {}
    names = [name for body in bodies for name in _written(request, body) if name not in known]
    catalogs.orphan(resource, names)
    for body in bodies:
        body.path.unlink(missing_ok=True)
    fail(500, conflict_message(resource.label if resource is not None else key))


async def upload(request: web.Request) -> web.Response:
    """PUT/POST …/resources/{R}/files[/{path}]."""
    ctx = resolve(request, write=True)
    owner = single_owner(ctx)
    store = store_of(request)
    relpath = file_path_param(request)
    key = request.match_info["resource"]  # a label, or the numeric id of an existing one
    race = request.app[FAULTS_KEY].catalog_race
    streamed = not request.content_type.startswith("multipart/")
    seen = _read_catalog(request, owner, key) if race and streamed else None
    bodies = await _bodies(request, relpath, store.temp_dir())
    if not bodies:
        fail(400, "You tried to PUT to this service, but didn't provide any data.")
    if race:
        if seen is None:  # multipart: the catalog is read once the whole body arrived
            seen = _read_catalog(request, owner, key)
        await _write_catalog(request, owner, key, seen, bodies)
    resource = store.resource(owner, key) or store.ensure_resource(owner, key)[0]
    duplicates = [d for body in bodies for d in _store(request, store, resource, body)]
    if ctx.experiment is not None:
        store.log_workflow(ctx.experiment)
    if duplicates:
        return json_text({"duplicates": duplicates}, content_type="text/html")
    return plain("")


def add_routes(app: web.Application) -> None:
    """Register upload routes under every owner path (and the catalogs' race state)."""
    app[CATALOGS_KEY] = Catalogs()
    for base in OWNER_BASES:
        for method in ("PUT", "POST"):
            add_data_route(app, method, base + "/resources/{resource}/files", upload)
            add_data_route(app, method, base + "/resources/{resource}/files/{path:.+}", upload)
