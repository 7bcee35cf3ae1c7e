"""The daemon's health: the status document, its file in STATE, and the HTTP endpoint.

* ``STATE/status.json`` is rewritten at most every ``status_seconds`` (temp file, then rename:
  a reader never sees half of it). It holds the queue's counts, the last error and success,
  the backlog's age, since when the server has been reachable (or not), and the verdict.
* ``--health HOST:PORT`` serves the latest document: ``GET /`` (or ``/health``) answers 200
  while healthy, 503 with the reason otherwise (``rules.verdict``). It reads nothing from
  disk and holds no secret.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

from xnatsync.errors import UsageError

STATUS = "status.json"


def write_status(state: Path, document: dict[str, Any]) -> None:
    """Replace ``STATE/status.json`` atomically (blocking)."""
    target = state / STATUS
    temp = state / f".{STATUS}.{os.getpid()}.tmp"
    temp.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", "utf-8")
    os.replace(temp, target)


class Board:
    """The latest status document, shared by the writer and the endpoint."""

    def __init__(self) -> None:
        self.document: dict[str, Any] = {"healthy": False, "reason": "starting"}


@asynccontextmanager
async def serve(board: Board, host: str, port: int) -> AsyncIterator[tuple[str, int]]:
    """Serve the board on (host, port) while the context lasts; yields where it listens."""

    async def health(request: web.Request) -> web.Response:
        document = board.document
        status = 200 if document.get("healthy") else 503
        return web.json_response(document, status=status)

    app = web.Application()
    app.router.add_get("/", health)
    app.router.add_get("/health", health)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise UsageError(f"--health {host}:{port}: cannot listen ({exc.strerror})") from exc
        address = runner.addresses[0]
        yield str(address[0]), int(address[1])
    finally:
        await runner.cleanup()
