"""Reading an import request: its parameters, its one uploaded file, its handler (§5.1).

Parameters come from the query string, a urlencoded body or the plain fields of a multipart
body; the one file part (or the in-body upload) is spooled to disk. More than one file part →
400 "Importer is limited to one uploaded resource at a time."; an unknown `import-handler` →
404; without one, `application/dicom` means gradual-DICOM and anything else DICOM-zip.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aiohttp import BodyPartReader, web
from multidict import MultiDict

from xnatsync.emulator.dicom_import import upload_file_name

HANDLERS = ("DICOM-zip", "gradual-DICOM", "SI")
_CHUNK = 1 << 20


class ImportRefused(Exception):
    """The import cannot go on; `status` and `message` become the Restlet error page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def truthy(params: Mapping[str, str], *names: str) -> bool:
    """True if any of `names` is `true` (any case)."""
    return any(params.get(name, "").strip().lower() == "true" for name in names)


async def _spool_to(path: Path, reader: BodyPartReader | web.Request) -> int:
    size = 0
    with path.open("wb") as handle:
        if isinstance(reader, BodyPartReader):
            while chunk := await reader.read_chunk(_CHUNK):
                handle.write(chunk)
                size += len(chunk)
        else:
            async for chunk in reader.content.iter_chunked(_CHUNK):
                handle.write(chunk)
                size += len(chunk)
    return size


async def receive(request: web.Request, spool: Path) -> tuple[MultiDict[str], str | None]:
    """Merge query and form parameters, spool the one uploaded file; return (params, name)."""
    params: MultiDict[str] = MultiDict(request.query)
    content_type = request.headers.get("Content-Type", "")
    if content_type.startswith("multipart/"):
        name: str | None = None
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            if part.filename is None:
                params.add(part.name or "", await part.text())
                continue
            if name is not None:
                raise ImportRefused(400, "Importer is limited to one uploaded resource at a time.")
            await _spool_to(spool, part)
            name = part.filename or "upload"
        return params, name
    if content_type.startswith("application/x-www-form-urlencoded"):
        form = await request.post()
        params.extend((k, v) for k, v in form.items() if isinstance(v, str))
        return params, None
    size = await _spool_to(spool, request)
    return params, (upload_file_name(content_type) if size else None)


def handler_name(params: Mapping[str, str], content_type: str) -> str:
    """The import handler the request asks for (ImportRefused 404 if unknown)."""
    handler = params.get("import-handler", "").strip()
    if handler:
        if handler not in HANDLERS:
            raise ImportRefused(404, f"Unknown import handler: {handler}")
        return handler
    if content_type.split(";", 1)[0].strip().lower() == "application/dicom":
        return "gradual-DICOM"
    return "DICOM-zip"
