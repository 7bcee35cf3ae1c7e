"""Which kind of work a request asks of the server: the route classes of the `time:` switch.

`route_class(method, path, query)` is pure and is the only place requests are classified:

    class     requests
    import    POST /services/import and POST /services/archive (any method, to be safe)
    zip       GET/HEAD of a file listing (`…/files`, `…/files/FOLDER/`) with `format=zip`
    file      GET/HEAD of one file (`…/files/NAME`, or a listing with `index=N`)
    put       PUT/POST of a file or a resource (`…/files…`, `…/resources/NAME`): an upload
    listing   any other GET/HEAD: JSON/XML listings and single objects
    other     any other request (DELETE, metadata PUT/POST such as creating a subject)

Paths may carry any of the `/data`, `/data/archive` or `/REST` prefixes; the query is the raw
query string or a mapping of parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl

CLASSES = ("listing", "file", "put", "zip", "import", "other")
_READS = frozenset({"GET", "HEAD"})
_WRITES = frozenset({"PUT", "POST"})


def _params(query: str | Mapping[str, str]) -> dict[str, str]:
    if isinstance(query, str):
        return {k.lower(): v for k, v in parse_qsl(query, keep_blank_values=True)}
    return {k.lower(): v for k, v in query.items()}


def _segments(path: str) -> list[str]:
    parts = [p for p in path.split("/") if p]
    for prefix in (["data", "archive"], ["data"], ["REST"]):
        if parts[: len(prefix)] == prefix:
            return parts[len(prefix) :]
    return parts


_COLLECTIONS = frozenset(
    {"projects", "subjects", "experiments", "scans", "resources", "assessors", "reconstructions"}
)


def _collection(parts: list[str], name: str) -> int:
    """Index of the first segment `name` that is a collection, not an id: one that follows
    `COLLECTION/ID` or an assessor's `out`/`in` (so a project or resource called `files` is an
    id, not a files collection); -1 if absent."""
    for i, part in enumerate(parts):
        if part != name or i < 2:
            continue
        if parts[i - 1] in ("out", "in") or parts[i - 2] in _COLLECTIONS:
            return i
    return -1


def route_class(method: str, path: str, query: str | Mapping[str, str] = "") -> str:
    """The route class of one request (see the module docstring)."""
    method = method.upper()
    parts = _segments(path)
    if parts[:1] == ["services"] and parts[1:2] in (["import"], ["archive"]):
        return "import"
    files_at = _collection(parts, "files")
    if method in _WRITES:
        is_resource = 0 <= _collection(parts, "resources") == len(parts) - 2
        return "put" if files_at >= 0 or is_resource else "other"
    if method not in _READS:
        return "other"
    if files_at < 0:
        return "listing"
    params = _params(query)
    folder = files_at == len(parts) - 1 or path.endswith("/")
    if not folder or "index" in params:
        return "file"
    return "zip" if params.get("format", "").lower() == "zip" else "listing"
