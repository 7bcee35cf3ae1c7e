"""Shared plumbing of the emulator's route modules: app keys, the current user, permissions,
XNAT-shaped answers (ResultSet envelope, Restlet error page, uri-list) and route registration.

Every `/data` route is registered under `/data` and `/REST`, and under `/data/archive` where
XNAT attaches that alias (the archive's records, not services, search or prearchive; §1.1);
GET routes also answer HEAD; an unrouted `/data` path gets Restlet's 404 status page.
ResultSet cells are always strings (§1.3).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import NoReturn
from urllib.parse import unquote_plus
from xml.sax.saxutils import escape

from aiohttp import web

from xnatsync.emulator.faults import Faults
from xnatsync.emulator.records import Project
from xnatsync.emulator.requestlog import RequestLog
from xnatsync.emulator.settings import EmulatorConfig, User
from xnatsync.emulator.store import Store

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STORE_KEY: web.AppKey[Store] = web.AppKey("xnat_store", Store)
CONFIG_KEY: web.AppKey[EmulatorConfig] = web.AppKey("xnat_config", EmulatorConfig)
FAULTS_KEY: web.AppKey[Faults] = web.AppKey("xnat_faults", Faults)
LOG_KEY: web.AppKey[RequestLog] = web.AppKey("xnat_request_log", RequestLog)
USER_KEY: web.RequestKey[User] = web.RequestKey("xnat_user", User)  # the authenticated user
# set by the fault middleware: this request's body will be cut, stalled, corrupted or watched,
# so a handler that streams on its own (zips) answers one body the middleware can work on
BODY_FAULT_KEY: web.RequestKey[bool] = web.RequestKey("xnat_body_fault", bool)
PREFIXES = ("/data", "/data/archive", "/REST")

_ERROR_PAGE = (
    "<html>\n<head>\n   <title>Status page</title>\n</head>\n<body>\n<h3>{message}</h3>"
    '<p>You can get technical details <a href="http://www.w3.org/Protocols/rfc2616/'
    'rfc2616-sec10.html">here</a>.<br>\nPlease continue your visit at our '
    '<a href="/">home page</a>.\n</p>\n</body>\n</html>\n'
)
_HTTP_ERRORS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    401: web.HTTPUnauthorized,
    403: web.HTTPForbidden,
    404: web.HTTPNotFound,
    409: web.HTTPConflict,
    417: web.HTTPExpectationFailed,
    422: web.HTTPUnprocessableEntity,
    500: web.HTTPInternalServerError,
}


def store_of(request: web.Request) -> Store:
    """The archive of the app serving `request`."""
    return request.app[STORE_KEY]


def config_of(request: web.Request) -> EmulatorConfig:
    """The settings of the app serving `request`."""
    return request.app[CONFIG_KEY]


def user_of(request: web.Request) -> User:
    """The authenticated user (set by the auth middleware before protected handlers run)."""
    user = request.get(USER_KEY)
    if not isinstance(user, User):
        raise halt(401, "The request requires user authentication")
    return user


def can_read(user: User, project: Project) -> bool:
    """Admins, members and anyone for public projects may read a project's data."""
    return user.admin or project.accessibility == "public" or user.username in project.members


def can_see(user: User, project: Project) -> bool:
    """Whether a project shows in listings (protected projects show without data access)."""
    return can_read(user, project) or project.accessibility == "protected"


def can_edit(user: User, project: Project) -> bool:
    """Admins, owners and members may write; collaborators only read."""
    return user.admin or project.members.get(user.username) in ("Owners", "Members")


def error_page(status: int, message: str) -> web.Response:
    """A Restlet-style HTML status page with the message in `<h3>` (§1.5)."""
    body = _ERROR_PAGE.format(message=escape(message))
    return web.Response(status=status, text=body, content_type="text/html")


def halt(status: int, message: str = "", *, empty: bool = False) -> web.HTTPException:
    """An exception to raise from a handler: the error page, or an empty body if `empty`."""
    cls = _HTTP_ERRORS.get(status, web.HTTPInternalServerError)
    if empty:
        return cls(text="", content_type="text/plain")
    return cls(text=_ERROR_PAGE.format(message=escape(message)), content_type="text/html")


UNROUTED = "The server has not found anything matching the request URI"
"""Restlet's description of a 404 for a `/data` or `/REST` path no route matches."""


@web.middleware
async def unrouted_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A `/data` or `/REST` path no route matches gets Restlet's 404 status page (XNAT's
    answer), not aiohttp's bare text; a known path with an unrouted method gets 405."""
    missed = getattr(request.match_info, "http_exception", None)
    if missed is not None and request.path.startswith(("/data/", "/REST/")):
        if isinstance(missed, web.HTTPMethodNotAllowed):
            raise web.HTTPMethodNotAllowed(
                request.method, missed.allowed_methods, content_type="text/html",
                text=_ERROR_PAGE.format(message="Method Not Allowed"),
            )  # fmt: skip
        raise halt(404, UNROUTED)
    return await handler(request)


def fail(status: int, message: str = "") -> NoReturn:
    """Raise `halt(status, message)`."""
    raise halt(status, message)


def flag(request: web.Request, name: str, default: bool = False) -> bool:
    """A boolean query parameter (`true`/`false`, case-insensitive)."""
    value = request.query.get(name)
    return default if value is None else value.lower() in ("true", "1", "yes")


# Roots XNAT attaches without the `/archive` alias (XNATApplication's attachURI, not
# attachArchiveURI): `/data/archive/search` and the like are 404 there.
_NOT_UNDER_ARCHIVE = (
    "/JSESSION", "/auth", "/search", "/prearchive", "/services", "/status", "/users",
    "/user/cache", "/version", "/config", "/workflows",
)  # fmt: skip


def archive_alias(path: str) -> bool:
    """Whether XNAT also routes `path` (as written after `/data`) under `/data/archive`."""
    return not any(path == root or path.startswith(root + "/") for root in _NOT_UNDER_ARCHIVE)


def add_data_route(app: web.Application, method: str, path: str, handler: Handler) -> None:
    """Register `path` (as written after `/data`) under `/data` and `/REST`, and under
    `/data/archive` too where XNAT has that alias (`archive_alias`)."""
    for prefix in PREFIXES if archive_alias(path) else ("/data", "/REST"):
        if method == "GET":
            app.router.add_get(prefix + path, handler, allow_head=True)
        else:
            app.router.add_route(method, prefix + path, handler)


def file_path_param(request: web.Request) -> str:
    """The ``{path}`` of a ``…/files/{path}`` request as XNAT's ``FileList`` sees it: the raw
    (still percent-encoded) rest of the URL, decoded only when it holds ``%20`` or ``%2B``
    (then as Java's ``URLDecoder``: ``+`` is a space too). So ``ü.txt`` sent as ``%C3%BC.txt``
    names a file called ``%C3%BC.txt`` on upload and on download, as on XNAT (xnat-api §4.1).
    """
    decoded = request.match_info.get("path", "")
    if not decoded:
        return ""
    raw = "/".join(request.rel_url.raw_path.split("/")[-(decoded.count("/") + 1) :])
    if "%20" not in raw and "%2B" not in raw:
        return raw
    try:
        return unquote_plus(raw, errors="strict")
    except UnicodeDecodeError:
        fail(500, "Error during service initialization")


def plain(text: str, status: int = 200) -> web.Response:
    """A text/plain answer (bare IDs of PUTs)."""
    return web.Response(status=status, text=text, content_type="text/plain")


def uri_list(uris: list[str], *, status: int = 200) -> web.Response:
    """`text/uri-list`, each URI followed by CRLF."""
    return web.Response(
        status=status, text="".join(u + "\r\n" for u in uris), content_type="text/uri-list"
    )


def _select(
    request: web.Request,
    rows: list[dict[str, str]],
    default_columns: list[str] | None,
    shortcuts: Mapping[str, str],
) -> list[dict[str, str]]:
    wanted = request.query.get("columns", "")
    if wanted and wanted != "DEFAULT":
        columns = [c.strip() for c in wanted.split(",") if c.strip()]
    elif default_columns is not None:
        columns = list(default_columns)
    else:
        return rows
    if rows and "URI" in rows[0] and "URI" not in columns:
        columns.append("URI")
    # an XML path that is a shortcut's comes back under the shortcut's name (§3.3)
    columns = [shortcuts.get(c.lower(), c) for c in columns]
    return [{_key(c, row): _cell(c, row) for c in columns} for row in rows]


def _key(column: str, row: dict[str, str]) -> str:
    # XML-path columns come back under their lower-cased path (§3.3)
    return column if column in row or "/" not in column else column.lower()


def _cell(column: str, row: dict[str, str]) -> str:
    if column in row:
        return row[column]
    lowered = column.lower()
    for key, value in row.items():
        if key.lower() == lowered or key.lower() == lowered.rsplit("/", 1)[-1]:
            return value
    return ""


def _page(request: web.Request, rows: list[dict[str, str]]) -> tuple[list[dict[str, str]], bool]:
    sort_by = request.query.get("sortBy")
    if sort_by:
        keys = sort_by.split(",")
        descending = request.query.get("sortOrder", "").upper() == "DESC"
        rows = sorted(rows, key=lambda r: [r.get(k, "") for k in keys], reverse=descending)
    offset_text, limit_text = request.query.get("offset"), request.query.get("limit")
    if offset_text is None and limit_text is None:
        return rows, False
    offset = int(offset_text) if offset_text and offset_text.isdigit() else 0
    if limit_text == "*":
        return rows[offset:], True
    limit = int(limit_text) if limit_text and limit_text.isdigit() else 100
    return rows[offset : offset + limit], True


def result_set(
    request: web.Request,
    rows: list[dict[str, str]],
    *,
    title: str | None = None,
    total: bool = True,
    columns_meta: list[dict[str, str]] | None = None,
    default_columns: list[str] | None = None,
    honour_columns: bool = True,
    shortcuts: Mapping[str, str] | None = None,
) -> web.Response:
    """The ResultSet envelope of §1.3 in the requested `format` (json default, csv, xml, html).

    `columns=` selects cells (default: `default_columns`, or every key of the rows) unless
    `honour_columns` is False (file and resource listings have fixed columns); `shortcuts`
    maps lower-case XML paths to the shortcut names they are answered under; paging with
    `offset`/`limit` drops `totalRecords`; `sortBy`/`sortOrder` sort on string values.
    """
    count = len(rows)
    if honour_columns:
        rows = _select(request, rows, default_columns, shortcuts or {})
    rows, paged = _page(request, rows)
    fmt = request.query.get("format", "json").lower()
    if fmt == "csv":
        return web.Response(text=_csv(rows), content_type="text/csv")
    if fmt == "xml":
        return web.Response(text=result_xml(rows, title), content_type="text/xml")
    if fmt == "html":
        return web.Response(text=_html(rows, title), content_type="text/html")
    envelope: dict[str, object] = {"Result": rows}
    if columns_meta is not None:
        envelope["Columns"] = columns_meta
    if total and not paged:
        envelope["totalRecords"] = str(count)
    if title is not None:
        envelope["title"] = title
    return web.json_response({"ResultSet": envelope})


def _columns(rows: list[dict[str, str]]) -> list[str]:
    return list(rows[0]) if rows else []


def _csv(rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_columns(rows))
    writer.writerows(list(r.values()) for r in rows)
    return out.getvalue()


def result_xml(rows: list[dict[str, str]], title: str | None, *, titled: bool = True) -> str:
    """A ResultSet as XNAT's XML table (`titled=False`: no `Title` attribute, as searches)."""
    head = "".join(f"<column>{escape(c)}</column>" for c in _columns(rows))
    body = "".join(
        "<row>" + "".join(f"<cell>{escape(v)}</cell>" for v in r.values()) + "</row>" for r in rows
    )
    title_attr = f'Title="{escape(title or "")}" ' if titled else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<ResultSet {title_attr}TotalRecords="{len(rows)}"><results>'
        f"<columns>{head}</columns><rows>{body}</rows></results></ResultSet>"
    )


def _html(rows: list[dict[str, str]], title: str | None) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in _columns(rows))
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(v)}</td>" for v in r.values()) + "</tr>" for r in rows
    )
    heading = f"<h3>{escape(title or '')}</h3>"
    return f"<html><body>{heading}<table><tr>{head}</tr>{body}</table></body></html>"


def json_text(
    value: object, *, content_type: str = "application/json", status: int = 200
) -> web.Response:
    """A JSON document with an explicit content type (XNAT serves some JSON as text/html)."""
    return web.Response(status=status, text=json.dumps(value), content_type=content_type)
