"""`POST /data/search` and cached searches at `GET /data/search/{ID}` (§6.1).

Rules, from XNAT's SearchResource and CachedSearchResource:
* POST runs an `xdat:bundle` for the caller: rows only of projects the user can read. GET on
  `/data/search` → 405; unparseable or non-search XML → 422; a root type nobody may query → 403.
* `cache=true` snapshots the rows (search_cache.py) and answers the envelope with its `ID` and
  `totalRecords` = all rows, but `Result` holds only the first `limit` rows (none without
  `limit`): XNAT reads the new table back with that limit. `refresh=true` ignores an earlier
  snapshot of the same bundle `ID`; without it (and for an ID not starting with `@`), a POST
  whose bundle `ID` the caller already cached is answered from that snapshot.
* `GET /data/search/{ID}?offset=&limit=&sortBy=&sortOrder=ASC|DESC` pages and sorts a snapshot.
  Its owner only: another user's ID → 200 with an empty body (XNAT leaves the table unset and
  its representTable answers "" for that); an unknown or expired ID → 500 (XNAT fails on the
  missing view); a non-integer `offset`/`limit` → 422; a `sortBy` column the table lacks or a
  `sortOrder` other than ASC/DESC → 410 (XNAT's SQL error).
* `GET /data/search/{ID}/{column}` → each distinct value of a column with its `count` (the
  same ownership answers; an unknown column → 410).
* `sortBy`/`sortOrder` sort every search answer (empty cells last ascending, first descending,
  ties in result order), as XNAT's table representation does.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Mapping
from html import escape

from aiohttp import web

from xnatsync.emulator import common, schema
from xnatsync.emulator.search import BadSearch, Bundle, is_a, parse_bundle, run
from xnatsync.emulator.search_cache import CachedSearch, SearchCache

CACHE_KEY: web.AppKey[SearchCache] = web.AppKey("xnat_search_cache", SearchCache)
_EMPTY_TYPES = {"json": "application/json", "csv": "text/csv", "xml": "text/xml"}


def cache_of(request: web.Request) -> SearchCache:
    """The cached-search tables of the app serving `request`."""
    return request.app[CACHE_KEY]


def queryable(root: str) -> bool:
    """Whether a search may have `root` as its root element (a served type or a supertype)."""
    return any(is_a(t, root) or is_a(root, t) for t in schema.FIELDS)


def execute(
    request: web.Request, bundle: Bundle
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(Columns, rows) of `bundle` run now for the caller; 400 for an unsupported criterion."""
    records = schema.records(common.store_of(request), request)
    try:
        return run(bundle, records)
    except BadSearch as exc:
        common.fail(400, str(exc))


def int_param(request: web.Request, name: str, status: int) -> int | None:
    """An integer query parameter, None when absent; `status` names it when it is not one."""
    text = request.query.get(name)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        common.fail(status, f"Invalid {name}: {text!r} is not an integer")


def sort_rows(
    request: web.Request, rows: list[dict[str, str]], *, strict: bool = False
) -> list[dict[str, str]]:
    """`rows` sorted by `sortBy` (comma-separated keys) and `sortOrder`; unchanged without
    `sortBy`. `strict`: an unknown column or order is an error (410), else ignored."""
    sort_by = request.query.get("sortBy")
    if not sort_by:
        return rows
    order = request.query.get("sortOrder", "ASC").strip().upper()
    keys = [k.strip() for k in sort_by.split(",") if k.strip()]
    if strict:
        missing = [k for k in keys if rows and k not in rows[0]]
        if missing or order not in ("ASC", "DESC"):
            bad = f"sortBy column {missing[0]!r}" if missing else f"sortOrder {order!r}"
            page = common.error_page(410, f"Unable to sort the cached search: unknown {bad}")
            raise web.HTTPGone(text=page.text, content_type="text/html")
    keys = [k for k in keys if not rows or k in rows[0]]
    ranked = sorted(rows, key=lambda r: [(r.get(k, "") == "", r.get(k, "")) for k in keys])
    return ranked[::-1] if order == "DESC" else ranked


def _csv(rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(list(rows[0]) if rows else [])
    writer.writerows(list(r.values()) for r in rows)
    return out.getvalue()


def _html(rows: list[dict[str, str]]) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in (list(rows[0]) if rows else []))
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(v)}</td>" for v in r.values()) + "</tr>" for r in rows
    )
    return f"<html><body><table><tr>{head}</tr>{body}</table></body></html>"


def answer(
    request: web.Request,
    columns: list[dict[str, str]] | None,
    rows: list[dict[str, str]],
    params: Mapping[str, str],
) -> web.Response:
    """A search table (already sorted and paged) in the requested format: JSON carries
    `params` (ID, totalRecords, rootElementName…) and the Columns metadata; csv, xml and html
    are the bare table; any other format → 400 naming it."""
    fmt = request.query.get("format", "json").lower()
    if fmt == "csv":
        return web.Response(text=_csv(rows), content_type="text/csv")
    if fmt == "xml":
        return web.Response(
            text=common.result_xml(rows, None, titled=False), content_type="text/xml"
        )
    if fmt == "html":
        return web.Response(text=_html(rows), content_type="text/html")
    if fmt != "json":
        common.fail(400, f"Unsupported format for a search: {fmt!r} (json, csv, xml or html)")
    envelope: dict[str, object] = {"Result": rows, "totalRecords": str(len(rows)), **params}
    if columns is not None:
        envelope["Columns"] = columns
    text = json.dumps({"ResultSet": envelope})
    return web.Response(text=text, content_type="application/json")


async def _search_body(request: web.Request) -> bytes:
    if request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        part = await reader.next()
        body = await part.read() if part is not None and hasattr(part, "read") else b""
        return bytes(body)
    return await request.read()


async def post_search(request: web.Request) -> web.Response:
    """POST /data/search — run an `xdat:bundle` (text/xml body, or a multipart .xml part)."""
    try:
        bundle = parse_bundle(await _search_body(request))
    except BadSearch as exc:
        return common.error_page(422, str(exc))
    if not queryable(bundle.root):
        return common.error_page(403, f"Unable to query {bundle.root}")
    user = common.user_of(request)
    cache = cache_of(request)
    limit = int_param(request, "limit", 500)
    earlier = None
    if bundle.id and not bundle.id.startswith("@") and not common.flag(request, "refresh"):
        earlier = cache.by_search(user.username, bundle.id)
    params = {"rootElementName": bundle.root, "title": "Search"}
    if not common.flag(request, "cache"):
        columns, rows = (earlier.columns, earlier.rows) if earlier else execute(request, bundle)
        return answer(request, columns, sort_rows(request, rows), params)
    if earlier is not None:
        entry, shown = earlier, []
    else:
        entry = cache.put(user.username, bundle.id, bundle.root, *execute(request, bundle))
        shown = entry.rows[: max(limit or 0, 0)]
    params |= {"ID": entry.id, "totalRecords": str(len(entry.rows))}
    return answer(request, entry.columns, shown, params)


def _own_entry(request: web.Request) -> CachedSearch | web.Response:
    """The caller's cached search of the path, or the answer XNAT gives instead (see above)."""
    cache_id = request.match_info["cache_id"]
    entry = cache_of(request).get(cache_id)
    if entry is None:
        common.fail(500, f"No cached search {cache_id} (unknown or expired)")
    if entry.owner != common.user_of(request).username:
        fmt = request.query.get("format", "json").lower()
        return web.Response(text="", content_type=_EMPTY_TYPES.get(fmt, "text/html"))
    return entry


async def get_cached(request: web.Request) -> web.Response:
    """GET /data/search/{cache_id} — a page of the caller's cached search."""
    offset = int_param(request, "offset", 422)
    limit = int_param(request, "limit", 422)
    entry = _own_entry(request)
    if isinstance(entry, web.Response):
        return entry
    rows = sort_rows(request, entry.rows, strict=True)
    start = max(offset or 0, 0)
    rows = rows[start : start + limit] if limit is not None else rows[start:]
    return answer(request, None, rows, {"ID": entry.id})


async def get_cached_column(request: web.Request) -> web.Response:
    """GET /data/search/{cache_id}/{column} — each value of a column with its count, in value
    order (empty last); a column the table lacks → 410 (XNAT's SQL error)."""
    entry = _own_entry(request)
    if isinstance(entry, web.Response):
        return entry
    column = request.match_info["column"]
    if entry.rows and column not in entry.rows[0]:
        page = common.error_page(410, f"Unknown column of the cached search: {column}")
        raise web.HTTPGone(text=page.text, content_type="text/html")
    counts = Counter(r.get(column, "") for r in entry.rows)
    values = sorted(counts, key=lambda v: (v == "", v))
    rows = [{"values": v, "count": str(counts[v])} for v in values]
    return answer(request, None, rows, {"ID": entry.id, "COLUMN": column})


async def _search_get(request: web.Request) -> web.Response:
    return common.error_page(405, "Method Not Allowed")


def add_routes(app: web.Application) -> None:
    """Register /data/search (POST) and /data/search/{cache_id}[/{column}], after the static
    /data/search/… routes (elements, saved) so those win."""
    app[CACHE_KEY] = SearchCache()
    common.add_data_route(app, "POST", "/search", post_search)
    common.add_data_route(app, "GET", "/search", _search_get)
    common.add_data_route(app, "GET", "/search/{cache_id}", get_cached)
    common.add_data_route(app, "GET", "/search/{cache_id}/{column}", get_cached_column)
