"""Import service, prearchive and archive routes of the emulator (placeholder until built)."""

from __future__ import annotations

from aiohttp import web


def add_routes(app: web.Application) -> None:
    """Register /data/services/import, /data/prearchive…, /data/services/archive routes."""
