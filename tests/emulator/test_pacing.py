"""The per-connection bandwidth cap (`stream=RATE`) on the wire: downloads, uploads, zips and
listings are paced, two connections do not share a rate, faults still reach the client, and the
cap is off by default. Times are measured with a lower bound of N/RATE and generous upper bounds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from xnatsync.emulator.outage import SiteListener
from xnatsync.emulator.pacing import ShapingProxy
from xnatsync.emulator.server import Emulator, run_emulator
from xnatsync.emulator.settings import EmulatorConfig

RATE = 1024 * 1024  # stream=1M
SIZE = 512 * 1024  # half a second on the capped wire
SLACK = 10.0
DROPPED = (aiohttp.ClientPayloadError, aiohttp.ClientOSError, aiohttp.ServerDisconnectedError)
RESOURCE = "/data/projects/DEMO/subjects/DEMO01/experiments/DEMO01_MR1/resources/PACE"


@pytest.fixture
async def capped() -> AsyncIterator[Emulator]:
    """A demo emulator whose connections are capped at 1 MiB/s, with PACE/files/half.bin."""
    async with run_emulator(EmulatorConfig(seed="demo", faults="stream=1M")) as emulator:
        experiment = emulator.store.experiment("DEMO", "DEMO01_MR1")
        assert experiment is not None
        resource, _ = emulator.store.ensure_resource(experiment, "PACE")
        emulator.store.add_file(resource, "half.bin", bytes(range(256)) * (SIZE // 256))
        yield emulator


def _client(emu: Emulator) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(emu.url, headers=emu.auth())


async def _timed_get(emu: Emulator, path: str) -> tuple[float, float, bytes]:
    """(start, end, body) of one GET on a connection of its own."""
    async with _client(emu) as client:
        started = time.monotonic()
        async with client.get(path) as response:
            assert response.status == 200
            body = await response.read()
        return started, time.monotonic(), body


async def test_a_download_takes_at_least_size_over_rate(capped: Emulator) -> None:
    started, ended, body = await _timed_get(capped, RESOURCE + "/files/half.bin")
    assert body == bytes(range(256)) * (SIZE // 256)
    assert SIZE / RATE <= ended - started < SIZE / RATE + SLACK


async def test_an_upload_body_is_read_at_the_rate(capped: Emulator) -> None:
    data = b"u" * SIZE
    async with _client(capped) as client:
        started = time.monotonic()
        async with client.post(RESOURCE + "/files/up.bin", data=data) as response:
            assert response.status == 200
        elapsed = time.monotonic() - started
    assert SIZE / RATE <= elapsed < SIZE / RATE + SLACK
    _, _, back = await _timed_get(capped, RESOURCE + "/files/up.bin")
    assert back == data


async def test_zips_and_listings_are_paced_too(capped: Emulator) -> None:
    started, ended, body = await _timed_get(capped, RESOURCE + "/files?format=zip")
    assert body[:2] == b"PK"
    assert len(body) > SIZE
    assert len(body) / RATE <= ended - started < len(body) / RATE + SLACK
    started, ended, listing = await _timed_get(capped, "/data/projects?format=json")
    assert ended - started >= len(listing) / RATE


async def test_two_connections_each_get_the_full_rate(capped: Emulator) -> None:
    path = RESOURCE + "/files/half.bin"
    first, second = await asyncio.gather(_timed_get(capped, path), _timed_get(capped, path))
    for started, ended, body in (first, second):
        assert len(body) == SIZE
        assert ended - started >= SIZE / RATE
    overall = max(first[1], second[1]) - min(first[0], second[0])
    assert overall < 0.95 * 2 * SIZE / RATE  # a shared rate would need twice SIZE / RATE


async def test_faults_still_reach_the_client_through_the_cap(capped: Emulator) -> None:
    capped.faults.script("GET", "*/half.bin", ["reset@0.25", "truncate@0.5", "503"])
    async with _client(capped) as client:
        for _ in range(2):
            with pytest.raises(DROPPED):
                async with client.get(RESOURCE + "/files/half.bin") as response:
                    await response.read()
        async with client.get(RESOURCE + "/files/half.bin") as response:
            assert response.status == 503


async def test_the_cap_is_off_by_default(emu: Emulator) -> None:
    assert emu.faults.stream_rate is None
    assert isinstance(emu.keeper.listener, SiteListener)


async def test_a_refuse_outage_closes_the_capped_port_too(capped: Emulator) -> None:
    assert isinstance(capped.keeper.listener, ShapingProxy)
    await capped.outage(mode="refuse")
    async with _client(capped) as client:
        with pytest.raises(aiohttp.ClientConnectorError):
            await client.get("/data/projects")
    await capped.end_outage()
    _, _, body = await _timed_get(capped, RESOURCE + "/files/half.bin")
    assert len(body) == SIZE


async def test_a_changed_rate_applies_to_new_connections(capped: Emulator) -> None:
    capped.faults.configure("stream=256M")
    started, ended, body = await _timed_get(capped, RESOURCE + "/files/half.bin")
    assert len(body) == SIZE
    assert ended - started < SIZE / RATE  # no longer 1 MiB/s
    capped.faults.clear()  # no rate: the proxy passes bytes through unpaced
    started, ended, body = await _timed_get(capped, RESOURCE + "/files/half.bin")
    assert len(body) == SIZE
    assert ended - started < SIZE / RATE
