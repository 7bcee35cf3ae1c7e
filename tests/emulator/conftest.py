"""Fixtures: a demo-seeded emulator per test, and raw aiohttp sessions logged in as its users."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from xnatsync.emulator.server import Emulator, run_emulator
from xnatsync.emulator.settings import EmulatorConfig


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """A running emulator with the demo seed, in a temporary directory."""
    async with run_emulator(EmulatorConfig(seed="demo")) as emulator:
        yield emulator


@pytest.fixture
async def admin(emu: Emulator) -> AsyncIterator[aiohttp.ClientSession]:
    """A client sending the administrator's Basic credentials (keeps no cookies)."""
    async with aiohttp.ClientSession(emu.url, headers=emu.auth()) as session:
        yield session


@pytest.fixture
async def user(emu: Emulator) -> AsyncIterator[aiohttp.ClientSession]:
    """A client for the unprivileged `user` (member of DEMO only)."""
    async with aiohttp.ClientSession(emu.url, headers=emu.auth("user")) as session:
        yield session


@pytest.fixture
async def anon(emu: Emulator) -> AsyncIterator[aiohttp.ClientSession]:
    """A client without credentials that keeps cookies from 127.0.0.1."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(emu.url, cookie_jar=jar) as session:
        yield session
