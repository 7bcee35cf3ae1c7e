"""XSD schemas served at /xapi/schemas, and /data/search routes (placeholder until built)."""

from __future__ import annotations

from aiohttp import web


def add_routes(app: web.Application) -> None:
    """Register /xapi/schemas, /xapi/schemas/{name}, /data/search/elements, POST /data/search."""
