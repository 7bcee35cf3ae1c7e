"""The emulator command in a subprocess: first stdout line, serving, SIGTERM → exit 0."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from xnatsync.emulator.faults import Faults


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


async def _fails(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "xnatsync.emulator", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("item", ["seed=x", "stall:2@=0.1", "reset=lots", "delay=soon"])
async def test_a_bad_fault_item_is_named(item: str) -> None:
    code, _, err = await _fails("--port", "0", "--faults", f"seed=1,{item}")
    assert code == 2
    assert repr(item) in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


async def test_a_root_that_is_a_file_is_one_clear_line(tmp_path: Path) -> None:
    root = tmp_path / "a-file"
    root.write_text("not a folder")
    code, out, err = await _fails("--port", "0", "--root", str(root))
    assert code == 2
    assert "is not a directory" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert out == ""


async def test_a_port_in_use_is_one_clear_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err = await _fails("--port", str(port))
    assert code == 2
    assert f"127.0.0.1:{port}" in err
    assert "in use" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert out == ""


async def test_the_banner_then_the_demo_logins() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "xnatsync.emulator", "--port", "0", "--seed", "demo",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    first = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    second = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    assert re.fullmatch(r"XNAT emulator at http://127\.0\.0\.1:\d+\n", first)
    assert "admin/admin" in second
    assert await _stop(process) == 0


def test_default_fault_paths_cover_file_downloads_and_zips_not_listings() -> None:
    faults = Faults("reset=1")
    assert faults.matches_rates("GET", "/data/experiments/E1/scans/1/resources/7/files/a.dcm")
    assert faults.matches_rates("GET", "/data/experiments/E1/scans/1/resources/7/files")
    assert not faults.matches_rates("GET", "/data/experiments/E1/files")
    assert not faults.matches_rates("GET", "/data/projects/P/experiments")
