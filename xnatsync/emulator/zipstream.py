"""Streamed zip downloads (xnat-api §4.2, §8.3): chunked, no Content-Length, STORED unless
`compression=8`, entries laid out as XNAT's default `structure`.

Members are written through `zipfile` into an unseekable in-memory sink that is drained to the
socket after every 1 MiB, so memory stays bounded whatever the archive size (except under a
body fault, where the zip is answered as one body for the fault middleware to work on).
"""

from __future__ import annotations

import pathlib
import re
import time
import zipfile
from collections.abc import Iterator

from aiohttp import web

from xnatsync.emulator.common import BODY_FAULT_KEY, fail, flag
from xnatsync.emulator.records import Experiment, FileEntry, Resource
from xnatsync.emulator.store import Store

BLOCK = 1 << 20
_NON_WORD = re.compile(r"\W")
Member = tuple[str, pathlib.Path, FileEntry]


class _Sink:
    """A write-only, unseekable file object; `zipfile` then uses data descriptors."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def write(self, data: bytes) -> int:
        self.buffer += data
        return len(data)

    def flush(self) -> None:
        """Nothing to flush: `take` hands the bytes over."""

    def close(self) -> None:
        """Nothing to release."""

    def take(self) -> bytes:
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


def arcname(store: Store, resource: Resource, relpath: str, scans_in_request: bool) -> str:
    """The member path XNAT gives a file: its URI cut before the session ID, with session ID →
    label, scan ID → `{scan}-{type}` (scans in the request), assessor ID → label, resource id
    → label; project and subject resources start with the project ID or subject label."""
    tail = f"resources/{resource.label}/files/{relpath}"
    if resource.level == "project":
        return f"{resource.project}/{tail}"
    if resource.level == "subject":
        return f"{store.subjects[resource.subject].label}/{tail}"
    experiment = store.experiments[resource.experiment]
    return f"{experiment.label}/{_below_session(experiment, resource, scans_in_request)}{tail}"


def _below_session(experiment: Experiment, resource: Resource, scans_in_request: bool) -> str:
    if resource.level == "assessor":
        # inferred by analogy with scans: §4.2 confirms only scan and session-resource layouts
        return f"assessors/{experiment.assessors[resource.assessor].label}/out/"
    if resource.level != "scan":
        return ""
    scan = experiment.scans[resource.scan]
    folder = scan.id
    if scans_in_request and scan.type:
        folder = f"{scan.id}-{_NON_WORD.sub('_', scan.type)}"
    return f"scans/{folder}/"


def zip_name(store: Store, resources: list[Resource]) -> str:
    """Download name: the session label, subject label or project ID, else `various`."""
    tokens = set()
    for res in resources:
        if res.experiment:
            tokens.add(store.experiments[res.experiment].label)
        elif res.subject:
            tokens.add(store.subjects[res.subject].label)
        else:
            tokens.add(res.project)
    return f"{tokens.pop() if len(tokens) == 1 else 'various'}.zip"


async def send_zip(
    request: web.Request, members: list[Member], filename: str
) -> web.StreamResponse:
    """Stream `members` as a zip; an empty selection → 404 (204 with accept-not-found).

    When a body fault is decided for the request, the zip is built in memory and answered as
    one body, so that the fault middleware cuts, stalls or corrupts it as it does any file.
    """
    if not members:
        if flag(request, "accept-not-found"):
            return web.Response(status=204)
        fail(404, "No matching files")
    method = zipfile.ZIP_DEFLATED if request.query.get("compression") == "8" else zipfile.ZIP_STORED
    headers = {
        "Content-Type": "application/zip",
        "Content-Disposition": f'attachment; filename="{filename}"',
    }
    if request.get(BODY_FAULT_KEY):
        return web.Response(body=b"".join(_zip_chunks(members, method)), headers=headers)
    response = web.StreamResponse(headers=headers)
    response.enable_chunked_encoding()
    await response.prepare(request)
    if request.method != "HEAD":
        for chunk in _zip_chunks(members, method):
            await response.write(chunk)
    await response.write_eof()
    return response


def _zip_chunks(members: list[Member], method: int) -> Iterator[bytes]:
    """The zip's bytes, a block at a time (members read from disk as the zip is written)."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=method, allowZip64=True) as archive:
        for name, path, entry in members:
            info = zipfile.ZipInfo(name, date_time=time.localtime(entry.mtime)[:6])
            info.compress_type = method
            info.file_size = entry.size
            zip64 = entry.size > 0x7FFFFFFF
            with archive.open(info, "w", force_zip64=zip64) as dest, path.open("rb") as source:
                while block := source.read(BLOCK):
                    dest.write(block)
                    yield sink.take()
            yield sink.take()
    yield sink.take()
