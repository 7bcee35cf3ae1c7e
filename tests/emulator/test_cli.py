"""The emulator command in a subprocess: first stdout line, serving, SIGTERM → exit 0."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import time
from pathlib import Path

import aiohttp


async def _start(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "xnatsync.emulator", "--port", "0", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    match = re.fullmatch(r"XNAT emulator at (http://127\.0\.0\.1:\d+)\n", line)
    assert match, line
    return process, match.group(1)


async def _stop(process: asyncio.subprocess.Process, signum: int = signal.SIGTERM) -> int:
    process.send_signal(signum)
    return await asyncio.wait_for(process.wait(), 30)


async def test_cli_serves_demo_and_exits_zero_on_sigterm() -> None:
    started = time.monotonic()
    process, url = await _start("--seed", "demo", "--user", "boss", "--password", "pw")
    auth = {"Authorization": aiohttp.encode_basic_auth("boss", "pw")}
    listing = "/data/projects/DEMO/experiments?format=json"
    async with (
        aiohttp.ClientSession(url, headers=auth) as session,
        session.get(listing) as response,
    ):
        assert response.status == 200
        assert len((await response.json())["ResultSet"]["Result"]) == 4
    assert time.monotonic() - started < 10
    assert await _stop(process) == 0


async def test_cli_sigint_and_persistent_root(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    process, url = await _start("--root", str(root), "--seed", "demo")
    auth = {"Authorization": aiohttp.encode_basic_auth("admin", "admin")}
    path = "/data/projects/DEMO/experiments/DEMO02_MR1/resources/OUT/files/kept.txt"
    text = {"Content-Type": "text/plain"}
    session = aiohttp.ClientSession(url, headers=auth)
    async with session, session.put(path, data=b"kept", headers=text) as response:
        assert response.status == 200
    assert await _stop(process, signal.SIGINT) == 0
    process, url = await _start("--root", str(root), "--seed", "demo")
    async with aiohttp.ClientSession(url, headers=auth) as session, session.get(path) as response:
        assert await response.read() == b"kept"
    assert await _stop(process) == 0


async def test_cli_rejects_a_bad_fault_spec() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "xnatsync.emulator", "--port", "0", "--faults", "explode=1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert b"unknown fault kind" in err
