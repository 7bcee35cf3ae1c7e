"""Small helpers shared by the emulator tests (reading ResultSets, finding seeded records)."""

from __future__ import annotations

from typing import Any

import aiohttp


async def rows(session: aiohttp.ClientSession, path: str, **params: str) -> list[dict[str, str]]:
    """GET a listing as JSON and return its Result rows (asserting 200 and string cells)."""
    async with session.get(path, params={"format": "json", **params}) as response:
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
    result: list[dict[str, str]] = body["ResultSet"]["Result"]
    assert all(isinstance(v, str) for row in result for v in row.values())
    return result


async def envelope(session: aiohttp.ClientSession, path: str, **params: str) -> dict[str, Any]:
    """GET a listing and return the ResultSet envelope."""
    async with session.get(path, params={"format": "json", **params}) as response:
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
    envelope: dict[str, Any] = body["ResultSet"]
    return envelope


async def call(
    session: aiohttp.ClientSession, method: str, path: str, **kwargs: Any
) -> tuple[int, str]:
    """Send one request; its status and body text."""
    async with session.request(method, path, **kwargs) as response:
        return response.status, await response.text()
