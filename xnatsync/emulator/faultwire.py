"""Applying fault decisions on the wire, logging every request, and serving files like XNAT.

`fault_middleware` is the outermost middleware: it asks `Faults.choose` for a decision, applies
pre-answer faults (latency, 5xx, 429, session expiry, login redirect), runs the handler, then
applies body faults (reset, truncation, stall, corruption …) by re-sending the handler's body
itself. A handler that streams on its own (zip downloads) answers one body instead when the
request carries a body fault (`BODY_FAULT_KEY`), so zips get every fault too.

Costs of a loaded server (`costs`, `routeclass`): while a `503` outage is on, every request is
answered 503 before anything else (and logged with fault `outage`); `time:CLASS` waits before the
handler for reads (listing, file, zip) and after it for writes (put, import, other: the request
is applied, then answered late). Import faults: `busy-*` read and discard the request body, then
answer XNAT's refusal (`costs.busy_answer`) without running the handler; `applied:STATUS` runs
the handler and replaces its answer with that status (unless the handler already streamed it).

`ServedFile` is a `FileResponse` (sendfile) that ignores `Range` and conditional headers, as
Restlet 1.1 does (xnat-api §4.1), unless the fault spec says `ranges=1`; it never substitutes a
pre-compressed sibling file.
"""

from __future__ import annotations

import asyncio
import http
import pathlib
import socket
import struct
import time

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from multidict import CIMultiDict

from xnatsync.emulator.auth import LOGIN_PAGE, SESSIONS_KEY
from xnatsync.emulator.common import (
    BODY_FAULT_KEY,
    FAULTS_KEY,
    LOG_KEY,
    USER_KEY,
    Handler,
    error_page,
)
from xnatsync.emulator.costs import BUSY_MESSAGES, busy_answer
from xnatsync.emulator.faults import BODY_KINDS, Fault, Faults
from xnatsync.emulator.requestlog import RequestRecord
from xnatsync.emulator.settings import User

CHUNK = 64 * 1024
OUTAGE = Fault("outage", 503.0)
_READ_CLASSES = frozenset({"listing", "file", "zip"})
_IGNORED = ("Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since",
            "If-Unmodified-Since", "Accept-Encoding")  # fmt: skip
_LOGIN_HTML = (
    "<!DOCTYPE html><html><head><title>XNAT</title></head><body>"
    '<form name="form1" method="post" action="/login"><input name="username"/>'
    '<input type="password" name="password"/></form></body></html>'
)


class ServedFile(web.FileResponse):
    """A file answer served with sendfile; `source_path` is public for the fault layer."""

    def __init__(
        self, path: pathlib.Path, headers: dict[str, str], *, honour_ranges: bool = False
    ) -> None:
        super().__init__(path, headers=headers)
        self.source_path = path
        self.honour_ranges = honour_ranges

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        headers = CIMultiDict(request.headers)
        for name in ("Accept-Encoding",) if self.honour_ranges else _IGNORED:
            headers.popall(name, None)
        return await super().prepare(request.clone(headers=headers))


async def strip_range_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: XNAT advertises no ranges and sends no ETag for files."""
    if isinstance(response, ServedFile) and not response.honour_ranges:
        response.headers.popall("Accept-Ranges", None)
        response.headers.popall("ETag", None)


@web.middleware
async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Decide and apply a fault, and log the request whatever happens."""
    faults = request.app[FAULTS_KEY]
    outage = faults.outages.mode() == "503"
    fault = OUTAGE if outage else faults.choose(request.method, request.path)
    status = 500
    try:
        response = await _apply(request, handler, faults, fault)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        user = request.get(USER_KEY)
        name = user.username if isinstance(user, User) else ""
        said = "outage" if fault is OUTAGE else str(fault)
        record = RequestRecord(
            request.method, request.path, request.query_string, status, name, said
        )
        request.app[LOG_KEY].add(record)


async def _apply(
    request: web.Request, handler: Handler, faults: Faults, fault: Fault
) -> web.StreamResponse:
    if fault is OUTAGE:
        return error_page(503, "Service Unavailable")
    if faults.delay and faults.matches_rates(request.method, request.path):
        await asyncio.sleep(faults.delay)
    route, seconds = _server_time(request, faults)
    if seconds and route in _READ_CLASSES:
        await asyncio.sleep(seconds)
    if fault.kind in BUSY_MESSAGES:
        return await _busy(request, fault)
    if fault.kind == "latency":
        await asyncio.sleep(fault.arg)
    elif fault.kind == "error":
        return error_page(int(fault.arg), "Internal Server Error")
    elif fault.kind == "429":
        busy = error_page(429, "Too Many Requests")
        busy.headers["Retry-After"] = f"{fault.arg:g}"
        return busy
    elif fault.kind == "expire":
        request.app[SESSIONS_KEY].invalidate(request.cookies.get("JSESSIONID", ""))
    elif fault.kind == "redirect-login":
        raise web.HTTPFound(LOGIN_PAGE)
    body_fault = fault.kind in BODY_KINDS
    request[BODY_FAULT_KEY] = body_fault or faults.watching(request.path)
    response = await handler(request)
    if seconds and route not in _READ_CLASSES:
        await asyncio.sleep(seconds)
    if fault.kind == "applied" and not response.prepared:
        return error_page(int(fault.arg), _phrase(int(fault.arg)))
    if request.method == "HEAD" or not request[BODY_FAULT_KEY]:
        return response
    return await _send_body(request, response, fault, faults)


def _server_time(request: web.Request, faults: Faults) -> tuple[str, float]:
    if not faults.server_time:
        return "", 0.0
    return faults.time_for(request.method, request.path, request.query_string)


async def _busy(request: web.Request, fault: Fault) -> web.Response:
    """XNAT's transient refusal, once the request body has been read; nothing is applied."""
    await _discard_body(request)
    stamp = time.strftime("%Y%m%d_%H%M%S")
    return error_page(*busy_answer(fault.kind, request.path, fault.arg, stamp))


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Server Error"


async def _discard_body(request: web.Request) -> None:
    """Read the request body to its end (as XNAT does before it refuses an import)."""
    async for _ in request.content.iter_chunked(CHUNK):
        pass


def _body_of(response: web.StreamResponse) -> bytes | None:
    if isinstance(response, ServedFile):
        return response.source_path.read_bytes()
    if isinstance(response, web.Response) and isinstance(response.body, bytes):
        return response.body
    return None


def _reshape(data: bytes, fault: Fault, faults: Faults, path: str) -> bytes:
    if fault.kind == "corrupt" and data:
        offset = faults.corrupt_offset(path, len(data))
        return data[:offset] + bytes([data[offset] ^ 0xFF]) + data[offset + 1 :]
    if fault.kind == "resize":
        delta = int(fault.arg)
        return data + b"\0" * delta if delta >= 0 else data[: max(0, len(data) + delta)]
    return data


async def _send_body(
    request: web.Request, response: web.StreamResponse, fault: Fault, faults: Faults
) -> web.StreamResponse:
    data = _body_of(response)
    if data is None:
        return response
    if fault.kind == "login-page":
        return web.Response(text=_LOGIN_HTML, content_type="text/html")
    if fault.kind == "drop":
        _reset(request)
        return response
    data = _reshape(data, fault, faults, request.path)
    out = web.StreamResponse(status=response.status, headers=_headers(response))
    cut = fault.cut_offset(len(data))
    if fault.kind in ("chunked-cut", "chunked-short"):
        out.enable_chunked_encoding()
    else:
        out.content_length = cut if fault.kind == "cut" else len(data)
    try:
        await out.prepare(request)
        await _body(request, out, data, cut, fault, faults)
    except ConnectionError:
        pass
    return out


async def _body(
    request: web.Request,
    out: web.StreamResponse,
    data: bytes,
    cut: int,
    fault: Fault,
    faults: Faults,
) -> None:
    path = request.path
    if fault.kind in ("reset", "truncate", "chunked-cut"):
        await _write(out, data[:cut], path, faults)
        _reset(request) if fault.kind == "reset" else _close(request)
        return
    if fault.kind in ("cut", "chunked-short"):
        await _write(out, data[:cut], path, faults)
    elif fault.kind == "stall":
        await _write(out, data[:cut], path, faults)
        await asyncio.sleep(fault.arg)
        await _write(out, data[cut:], path, faults, already=cut)
    else:
        pace = fault.arg if fault.kind == "slow" else None
        await _write(out, data, path, faults, pace=pace)
    await out.write_eof()


async def _write(
    out: web.StreamResponse,
    data: bytes,
    path: str,
    faults: Faults,
    *,
    already: int = 0,
    pace: float | None = None,
) -> None:
    step = min(CHUNK, max(1, int(pace / 16))) if pace else CHUNK
    sent = already
    for start in range(0, len(data), step):
        piece = data[start : start + step]
        await out.write(piece)
        sent += len(piece)
        faults.bytes_sent(path, sent)
        if pace:
            await asyncio.sleep(len(piece) / pace)


def _headers(response: web.StreamResponse) -> CIMultiDict[str]:
    headers = CIMultiDict(response.headers)
    for name in ("Content-Length", "Transfer-Encoding", "Content-Encoding"):
        headers.popall(name, None)
    return headers


def _close(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.close()


def _reset(request: web.Request) -> None:
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.close()
