"""Import progress queues: `/data/status/{id}` (§5.1, §9), fed by `http-session-listener=<id>`.

An import sent with `http-session-listener=<id>` records its progress under `<id>`: PROCESSING
steps, then one terminal COMPLETED (`Prearchive:<uris>` or `Archive:<uris>`, `;`-joined) or
FAILED (the error message). The emulator imports synchronously, so the queue is complete when
the import answers.

Routes, as XNAT's status resource answers them:
* `GET ?format=json` → `{"msgs": [[{"status", "msg", "terminal"}, …]]}` — an array holding the
  array, also for an unknown id (`{"msgs": [[]]}`);
* `GET` otherwise → `text/plain`, `StatusLog` followed by one `<id> <STATUS>: <msg>` line each
  (` (terminal)` appended to the last), or `format=html` → an HTML table;
* `POST` (form `status`, `message`) appends a message (400 for an unknown status);
* `DELETE` drops the queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from aiohttp import web

from xnatsync.emulator import common

STATUSES = ("PROCESSING", "WARNING", "FAILED", "COMPLETED")


@dataclass(frozen=True, slots=True)
class StatusMessage:
    """One progress message."""

    status: str
    msg: str
    terminal: bool = False


@dataclass(slots=True)
class StatusQueues:
    """Every listener id's messages, oldest first."""

    queues: dict[str, list[StatusMessage]] = field(default_factory=dict)

    def add(self, listener: str, status: str, msg: str, *, terminal: bool = False) -> None:
        """Append a message to `listener`'s queue (created on first use)."""
        self.queues.setdefault(listener, []).append(StatusMessage(status, msg, terminal))

    def messages(self, listener: str) -> list[StatusMessage]:
        return list(self.queues.get(listener, []))


STATUS_KEY: web.AppKey[StatusQueues] = web.AppKey("xnat_status_queues", StatusQueues)


def queues_of(request: web.Request) -> StatusQueues:
    """The app's status queues."""
    return request.app[STATUS_KEY]


async def get_status(request: web.Request) -> web.Response:
    """GET /status/{id}."""
    listener = request.match_info["id"]
    messages = queues_of(request).messages(listener)
    fmt = request.query.get("format", "").lower()
    if fmt == "json":
        rows = [{"status": m.status, "msg": m.msg, "terminal": m.terminal} for m in messages]
        return web.json_response({"msgs": [rows]})
    if fmt == "html":
        cells = "".join(
            f"<tr><td class='s{m.status}'>{m.status}</td><td>{escape(m.msg)}</td></tr>\n"
            for m in messages
        )
        return web.Response(
            text=f"<html><body><table>{cells}</table></body></html>", content_type="text/xml"
        )
    lines = "".join(
        f"{listener} {m.status}: {m.msg}{' (terminal)' if m.terminal else ''}\n" for m in messages
    )
    return web.Response(text="StatusLog" + lines, content_type="text/plain")


async def post_status(request: web.Request) -> web.Response:
    """POST /status/{id} with `status` and `message`: append one message."""
    form = await request.post()
    status = str(form.get("status", request.query.get("status", "")))
    message = str(form.get("message", request.query.get("message", "")))
    if status not in STATUSES:
        common.fail(400, f"Invalid status: {status} is not a valid Status.")
    queues_of(request).add(request.match_info["id"], status, message)
    return web.Response(text="", content_type="text/plain")


async def delete_status(request: web.Request) -> web.Response:
    """DELETE /status/{id}: forget the queue."""
    queues_of(request).queues.pop(request.match_info["id"], None)
    return web.Response(text="", content_type="text/plain")


def add_routes(app: web.Application) -> None:
    """Create the app's status queues and route `/status/{id}`."""
    app[STATUS_KEY] = StatusQueues()
    common.add_data_route(app, "GET", "/status/{id}", get_status)
    common.add_data_route(app, "POST", "/status/{id}", post_status)
    common.add_data_route(app, "DELETE", "/status/{id}", delete_status)
