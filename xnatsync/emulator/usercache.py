"""The per-user cache (`/data/user/cache/resources…`, xnat-api §9, §12: XSync stages large
uploads there): named folders of files private to each user, outside the archive, kept under
`root/cache/users/{username}/{folder}` so they survive a restart like the archive's bytes.

Answers (XNAT's UserCacheResource; routed under `/data` and `/REST` only, not `/data/archive`):
* `GET …/resources` → ResultSet of `Resource`, `URI` (with `totalRecords`);
* `PUT …/resources/{X}` → 200 creates the folder; 412 "Resource with this name already exists.";
* `GET …/resources/{X}[/files]` → ResultSet of `Name` (path inside the folder), `Size`, `URI`
  (recursive), `?format=zip` zips them; 404 for an unknown folder;
* `PUT …/resources/{X}/files/{path}` → 200: the body in-body with `inbody=true`, else the one
  multipart part, stored at `{path}` (folders auto-created); `POST …/resources/{X}/files` with
  multipart → 201 "File(s) successfully uploaded" (each part under its own file name);
  `POST` naming a file or with `inbody=true` → 400 "Please use HTTP PUT request to specify a
  file name in the URL."; a PUT that is neither in-body nor multipart → 400 naming `inbody`;
* `GET …/files/{path}` → the bytes (404 if absent); `DELETE …/files/{a,b}` → 200 (404 "One or
  more specified files do not exist." / "No matching files found."); `DELETE …/resources/{X}`
  → 200 (404 if absent).

XNAT 1.8.11-SNAPSHOT inverts its "has a file name" flag (`_hasPFile = isBlank(_pFile)`), which
would turn a file GET into a listing; the emulator serves the intended answers above.
"""

from __future__ import annotations

import email.utils
import pathlib
import shutil

from aiohttp import BodyPartReader, web

from xnatsync.emulator.blobs import safe_relpath
from xnatsync.emulator.common import (
    add_data_route,
    error_page,
    fail,
    flag,
    plain,
    result_set,
    store_of,
    user_of,
)
from xnatsync.emulator.faultwire import ServedFile
from xnatsync.emulator.files import content_type
from xnatsync.emulator.records import FileEntry
from xnatsync.emulator.zipstream import Member, send_zip

_BASE = "/user/cache/resources"
_PUT_NAME = "Please use HTTP PUT request to specify a file name in the URL."


def _user_root(request: web.Request) -> pathlib.Path:
    return store_of(request).root / "cache" / "users" / user_of(request).username


def _folder(request: web.Request, *, must_exist: bool = True) -> pathlib.Path:
    try:
        name = safe_relpath(request.match_info["folder"])
    except ValueError as exc:
        fail(400, str(exc))
    folder = _user_root(request) / name
    if must_exist and not folder.is_dir():
        fail(404, "User directory not found or is not a directory.")
    return folder


def _file(request: web.Request, folder: pathlib.Path, relpath: str) -> pathlib.Path:
    try:
        return folder / safe_relpath(relpath)
    except ValueError as exc:
        fail(400, str(exc))


def _listing_base(request: web.Request) -> str:
    path = request.path.rstrip("/")
    return path if path.endswith("/files") else path + "/files"


async def list_folders(request: web.Request) -> web.Response:
    """GET …/user/cache/resources."""
    root = _user_root(request)
    names = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    base = request.path.rstrip("/")
    rows = [{"Resource": n, "URI": f"{base}/{n}"} for n in names]
    return result_set(request, rows, columns_meta=[{"key": "URI", "serverRoot": ""}])


async def create_folder(request: web.Request) -> web.Response:
    """PUT …/resources/{X}: 200, or 412 if it exists."""
    folder = _folder(request, must_exist=False)
    if folder.exists():  # 412: outside `common.halt`'s table, so answered directly
        return error_page(412, "Resource with this name already exists.")
    folder.mkdir(parents=True)
    return plain("")


async def delete_folder(request: web.Request) -> web.Response:
    """DELETE …/resources/{X}."""
    shutil.rmtree(_folder(request))
    return plain("")


async def list_files(request: web.Request) -> web.StreamResponse:
    """GET …/resources/{X}[/files][?format=zip]."""
    folder = _folder(request)
    found = sorted(p for p in folder.rglob("*") if p.is_file())
    names = [p.relative_to(folder).as_posix() for p in found]
    if request.query.get("format", "").lower() == "zip":
        members: list[Member] = [
            (n, p, FileEntry(n, p.stat().st_size, "", p.stat().st_mtime))
            for n, p in zip(names, found, strict=True)
        ]
        return await send_zip(request, members, f"{folder.name}.zip")
    base = _listing_base(request)
    rows = [
        {"Name": n, "Size": str(p.stat().st_size), "URI": f"{base}/{n}"}
        for n, p in zip(names, found, strict=True)
    ]
    return result_set(
        request, rows, columns_meta=[{"key": "URI", "serverRoot": ""}], honour_columns=False
    )


async def get_file(request: web.Request) -> web.StreamResponse:
    """GET …/resources/{X}/files/{path}: the bytes."""
    path = _file(request, _folder(request), request.match_info["path"])
    if not path.is_file():
        fail(404, "User directory not found or is not a directory.")
    headers = {
        "Content-Type": content_type(path.name),
        "Last-Modified": email.utils.formatdate(path.stat().st_mtime, usegmt=True),
        "Cache-Control": "must-revalidate",
    }
    return ServedFile(path, headers, honour_ranges=False)


async def _write(source: web.Request | BodyPartReader, target: pathlib.Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # page-cache writes of 1 MiB blocks are fast; a thread hop per chunk would cost more
    with target.open("wb") as out:
        if isinstance(source, BodyPartReader):
            while chunk := await source.read_chunk(1 << 20):
                out.write(chunk)
        else:
            async for chunk in source.content.iter_chunked(1 << 20):
                out.write(chunk)


async def _parts(request: web.Request, folder: pathlib.Path, name: str = "") -> int:
    """Store each multipart file part (under `name` when one is given); how many."""
    count = 0
    async for part in await request.multipart():
        if isinstance(part, BodyPartReader) and part.filename:
            await _write(part, _file(request, folder, name or part.filename))
            count += 1
    return count


async def put_file(request: web.Request) -> web.Response:
    """PUT …/resources/{X}/files/{path} (in-body with inbody=true, or one multipart part)."""
    folder = _folder(request, must_exist=False)
    target = _file(request, folder, request.match_info["path"])
    if flag(request, "inbody"):
        await _write(request, target)
    elif request.content_type.startswith("multipart/"):
        if not await _parts(request, folder, target.relative_to(folder).as_posix()):
            fail(400, "The multipart body holds no file part.")
    else:
        fail(400, "Send the file as multipart/form-data, or in the body with inbody=true.")
    return plain("")


async def post_files(request: web.Request) -> web.Response:
    """POST …/resources/{X}/files (multipart): 201."""
    if flag(request, "inbody") or "path" in request.match_info:
        fail(400, _PUT_NAME)
    folder = _folder(request, must_exist=False)
    if not request.content_type.startswith("multipart/") or not await _parts(request, folder):
        fail(400, "POST needs a multipart/form-data body with at least one file part.")
    return plain("File(s) successfully uploaded", 201)


async def delete_files(request: web.Request) -> web.Response:
    """DELETE …/resources/{X}/files/{a[,b…]}: files or folders."""
    folder = _folder(request)
    names = request.match_info["path"].split(",")
    doomed = [_file(request, folder, n) for n in names]
    if any(not p.exists() for p in doomed):
        fail(404, "One or more specified files do not exist." if len(names) > 1 else
             "No matching files found.")  # fmt: skip
    for path in doomed:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return plain("")


def add_routes(app: web.Application) -> None:
    """Register the user cache routes under `/data` and `/REST`."""
    folder, files = f"{_BASE}/{{folder}}", f"{_BASE}/{{folder}}/files"
    _route = add_data_route  # under /data and /REST: XNAT has no /data/archive alias here
    _route(app, "GET", _BASE, list_folders)
    _route(app, "PUT", folder, create_folder)
    _route(app, "DELETE", folder, delete_folder)
    _route(app, "GET", folder, list_files)
    _route(app, "GET", files, list_files)
    _route(app, "POST", files, post_files)
    _route(app, "GET", files + "/{path:.+}", get_file)
    _route(app, "PUT", files + "/{path:.+}", put_file)
    _route(app, "POST", files + "/{path:.+}", post_files)
    _route(app, "DELETE", files + "/{path:.+}", delete_files)
