"""Outages: the port really refuses connections (`refuse`) or every request gets 503 (`503`) for a
while, then the server comes back on the same URL with its data; started now from a test
(`Emulator.outage`) or scheduled by the SPEC (`outage[:MODE]=START+DURATION`) on an injected
clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from xnatsync.emulator.server import Emulator, run_emulator
from xnatsync.emulator.settings import EmulatorConfig

from .emuhelp import call

FILE = "/data/projects/DEMO/experiments/DEMO01_MR1/resources/OUT/files/kept.txt"
REFUSED = (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


class Clock:
    """A settable monotonic clock."""

    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(emu: Emulator) -> Clock:
    """The emulator's outage schedule on a fake clock, restarted at its time 50."""
    fake = Clock()
    emu.faults.outages.clock = fake
    emu.faults.outages.restart()
    return fake


async def _refused(emu: Emulator) -> None:
    async with aiohttp.ClientSession(emu.url, headers=emu.auth()) as fresh:
        with pytest.raises(REFUSED):
            await fresh.get("/data/projects")


async def test_refuse_outage_closes_the_port_then_the_data_is_back(
    emu: Emulator, admin: aiohttp.ClientSession
) -> None:
    assert (await call(admin, "PUT", FILE, data=b"before"))[0] == 200
    await emu.outage(mode="refuse")
    await _refused(emu)
    with pytest.raises(REFUSED):  # the open keep-alive connection was dropped too
        await call(admin, "GET", FILE)
    await emu.end_outage()
    assert emu.keeper.reopened.is_set()
    assert await call(admin, "GET", FILE) == (200, "before")


async def test_503_outage_answers_everything_and_applies_nothing(
    emu: Emulator, admin: aiohttp.ClientSession
) -> None:
    await emu.outage(mode="503")
    assert (await call(admin, "GET", "/data/projects?format=json"))[0] == 503
    status, body = await call(admin, "PUT", FILE, data=b"during")
    assert status == 503
    assert "<h3>Service Unavailable</h3>" in body
    assert {r.fault for r in emu.requests.matching()} == {"outage"}
    await emu.end_outage()
    assert (await call(admin, "GET", FILE))[0] == 404
    assert (await call(admin, "GET", "/data/projects?format=json"))[0] == 200


async def test_outage_for_a_time_ends_on_the_clock(
    emu: Emulator, admin: aiohttp.ClientSession, clock: Clock
) -> None:
    await emu.outage(5, "503")
    assert (await call(admin, "GET", "/data/projects"))[0] == 503
    clock.now += 5
    assert (await call(admin, "GET", "/data/projects"))[0] == 200


async def test_spec_503_window_counts_from_the_start(
    emu: Emulator, admin: aiohttp.ClientSession, clock: Clock
) -> None:
    emu.faults.configure("outage:503=10+5")
    statuses = []
    for at in (0, 10, 14.5, 15):
        clock.now = 50 + at
        statuses.append((await call(admin, "GET", "/data/projects"))[0])
    assert statuses == [200, 503, 503, 200]


async def test_spec_refuse_window_closes_and_reopens_the_port(
    emu: Emulator, admin: aiohttp.ClientSession, clock: Clock
) -> None:
    assert (await call(admin, "PUT", FILE, data=b"kept"))[0] == 200
    emu.faults.configure("outage=10+5")
    clock.now = 60
    await emu.keeper.apply()
    await _refused(emu)
    clock.now = 65
    await emu.keeper.apply()
    assert await call(admin, "GET", FILE) == (200, "kept")


@pytest.fixture
async def down_at_start() -> AsyncIterator[Emulator]:
    """An emulator whose SPEC refuses connections for its first 0.2 s (real time)."""
    async with run_emulator(EmulatorConfig(seed="demo", faults="outage=0+0.2")) as emulator:
        yield emulator


async def test_spec_outage_on_the_real_clock_ends_by_itself(down_at_start: Emulator) -> None:
    emu = down_at_start
    assert not emu.keeper.listening  # closed before the emulator was handed over
    await asyncio.wait_for(emu.keeper.reopened.wait(), 10)  # set only when a closed port reopens
    async with aiohttp.ClientSession(emu.url, headers=emu.auth()) as client:
        assert (await call(client, "GET", "/data/projects"))[0] == 200


def test_outage_modes_are_checked(emu: Emulator) -> None:
    with pytest.raises(ValueError, match="unknown outage mode 'down'"):
        emu.faults.outages.begin(1, "down")
