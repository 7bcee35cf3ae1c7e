"""Fault injection: the SPEC grammar and decisions (pure), and every fault kind as a raw aiohttp
client sees it (reliability-performance §1.9 items 1–11, 16, 24, 25)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time

import aiohttp
import pytest

from xnatsync.emulator.faults import Fault, Faults, parse_fault
from xnatsync.emulator.server import Emulator

BIG = 1 << 20
DROPPED = (aiohttp.ClientPayloadError, aiohttp.ClientOSError, aiohttp.ServerDisconnectedError)


@pytest.fixture
async def big(emu: Emulator) -> tuple[str, bytes]:
    """URL and bytes of a 1 MiB file in DEMO01_MR1's resource BIG."""
    experiment = emu.store.experiment("DEMO", "DEMO01_MR1")
    assert experiment is not None
    resource, _ = emu.store.ensure_resource(experiment, "BIG")
    data = bytes(range(256)) * (BIG // 256)
    emu.store.add_file(resource, "big.bin", data)
    return f"/data/experiments/{experiment.id}/resources/BIG/files/big.bin", data


# --- pure: grammar and decisions ------------------------------------------------------------


def test_parse_fault_tokens() -> None:
    assert parse_fault("503") == Fault("error", 503.0)
    assert parse_fault("429:7") == Fault("429", 7.0)
    assert parse_fault("reset@0.25").cut_offset(1000) == 250
    assert parse_fault("truncate@100").cut_offset(1000) == 100
    assert parse_fault("stall:3@0.5") == Fault("stall", 3.0, 0.5)
    assert parse_fault("json-cut").kind == "cut"
    with pytest.raises(ValueError, match="unknown fault kind"):
        parse_fault("explode")


def test_spec_options_and_validation() -> None:
    faults = Faults("seed=5;paths=*/a/*|*/b/*,methods=GET|PUT,delay=0.1,session-max-age=30")
    assert (faults.seed, faults.paths, faults.methods) == (5, ["*/a/*", "*/b/*"], {"GET", "PUT"})
    assert (faults.delay, faults.session_max_age) == (0.1, 30.0)
    with pytest.raises(ValueError, match="more than 1"):
        Faults("reset=0.7,503=0.7")
    with pytest.raises(ValueError, match="lacks"):
        Faults("reset")


def test_rates_are_deterministic_per_seed_and_independent_of_interleaving() -> None:
    paths = [f"/data/x/files/{n}.dcm" for n in range(200)]

    def run(seed: int, order: list[str]) -> dict[str, str]:
        faults = Faults(f"seed={seed},reset=0.2,503=0.1")
        return {p: faults.choose("GET", p).kind for p in order}

    first = run(1, paths)
    assert first == run(1, list(reversed(paths)))
    assert first != run(2, paths)
    kinds = list(first.values())
    assert 20 < kinds.count("reset") < 60
    assert 5 < kinds.count("error") < 40
    assert Faults("seed=1,reset=1").choose("GET", "/data/projects").kind == "ok"  # not a file


def test_scripts_take_precedence_then_rates_resume() -> None:
    faults = Faults("reset=1")
    faults.script("GET", "*/files/a.dcm", ["503", "ok"])
    got = [faults.choose("GET", "/data/r/files/a.dcm").kind for _ in range(3)]
    assert got == ["error", "ok", "reset"]
    assert faults.choose("PUT", "/data/r/files/a.dcm").kind == "ok"


# --- on the wire ----------------------------------------------------------------------------


async def test_latency(emu: Emulator, admin: aiohttp.ClientSession, big: tuple[str, bytes]) -> None:
    emu.faults.script("GET", "*/big.bin", ["latency:0.3"])
    started = time.monotonic()
    async with admin.get(big[0]) as response:
        assert await response.read() == big[1]
    assert time.monotonic() - started >= 0.3


async def test_server_errors_and_429(
    emu: Emulator, admin: aiohttp.ClientSession, big: tuple[str, bytes]
) -> None:
    emu.faults.script("GET", "*/big.bin", ["503", "429:7", "ok"])
    async with admin.get(big[0]) as response:
        assert response.status == 503
        assert response.content_type == "text/html"
    async with admin.get(big[0]) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == "7"
    async with admin.get(big[0]) as response:
        assert await response.read() == big[1]
    assert [r.status for r in emu.requests.matching("GET", "*/big.bin")] == [503, 429, 200]


@pytest.mark.parametrize("kind", ["reset", "truncate", "chunked-cut", "reset@0", "reset@1048575"])
async def test_broken_bodies_raise(
    emu: Emulator, admin: aiohttp.ClientSession, big: tuple[str, bytes], kind: str
) -> None:
    emu.faults.script("GET", "*/big.bin", [kind])
    with pytest.raises(DROPPED):
        async with admin.get(big[0]) as response:
            await response.read()


async def test_chunked_short_ends_cleanly_but_short(
    emu: Emulator, admin: aiohttp.ClientSession, big: tuple[str, bytes]
) -> None:
    emu.faults.script("GET", "*/big.bin", ["chunked-short@0.5"])
    async with admin.get(big[0]) as response:
        assert "Content-Length" not in response.headers
        assert await response.read() == big[1][: BIG // 2]


async def test_truncated_json_listing(emu: Emulator, admin: aiohttp.ClientSession) -> None:
    emu.faults.script("GET", "/data/projects/DEMO/subjects", ["json-cut@0.5"])
    async with admin.get("/data/projects/DEMO/subjects?format=json") as response:
        body = await response.read()
        assert response.status == 200
        assert response.headers["Content-Length"] == str(len(body))
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)


async def test_stall_trips_a_read_timeout_and_resumes_otherwise(
    emu: Emulator, admin: aiohttp.ClientSession, big: tuple[str, bytes]
) -> None:
    emu.faults.script("GET", "*/big.bin", ["stall:3@0.5", "stall:0.3@0.5"])
    timeout = aiohttp.ClientTimeout(sock_read=0.3)
    with pytest.raises(asyncio.TimeoutError):
        async with admin.get(big[0], timeout=timeout) as response:
            await response.read()
    started = time.monotonic()
    async with admin.get(big[0]) as response:
        assert await response.read() == big[1]
    assert time.monotonic() - started >= 0.3


async def test_slow_body_arrives_intact(
    emu: Emulator, admin: aiohttp.ClientSession, big: tuple[str, bytes]
) -> None:
    emu.faults.script("GET", "*/big.bin", ["slow:4194304"])
    started = time.monotonic()
    async with admin.get(big[0]) as response:
        assert await response.read() == big[1]
    assert time.monotonic() - started >= 0.2


async def test_corrupt_flips_one_byte(
    emu: Emulator, admin: aiohttp.ClientSession, big: tuple[str, bytes]
) -> None:
    emu.faults.script("GET", "*/big.bin", ["corrupt"])
    async with admin.get(big[0]) as response:
        got = await response.read()
    assert len(got) == BIG
    assert hashlib.md5(got).hexdigest() != hashlib.md5(big[1]).hexdigest()
    differ = [i for i in range(BIG) if got[i] != big[1][i]]
    assert differ == [emu.faults.corrupt_offset(big[0], BIG)]


async def test_resize_disagrees_with_listing(
    emu: Emulator, admin: aiohttp.ClientSession, big: tuple[str, bytes]
) -> None:
    emu.faults.script("GET", "*/big.bin", ["resize:16", "resize:-10"])
    for expected in (BIG + 16, BIG - 10):
        async with admin.get(big[0]) as response:
            assert response.headers["Content-Length"] == str(expected)
            assert len(await response.read()) == expected


async def test_login_page_and_redirect(
    emu: Emulator, admin: aiohttp.ClientSession, big: tuple[str, bytes]
) -> None:
    emu.faults.script("GET", "*/big.bin", ["login-page", "redirect-login"])
    async with admin.get(big[0]) as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        assert "<form" in await response.text()
    async with admin.get(big[0], allow_redirects=False) as response:
        assert response.status == 302
        assert response.headers["Location"] == "/app/template/Login.vm"


async def test_expire_invalidates_the_session(
    emu: Emulator, anon: aiohttp.ClientSession, big: tuple[str, bytes]
) -> None:
    async with anon.get("/data/JSESSION", headers=emu.auth()) as response:
        assert response.status == 200
    emu.faults.script("GET", "*/big.bin", ["expire"])
    async with anon.get(big[0]) as response:
        assert response.status == 401
    async with anon.get(big[0], headers=emu.auth()) as response:
        assert await response.read() == big[1]  # re-login with Basic works


async def test_session_max_age(emu: Emulator, anon: aiohttp.ClientSession) -> None:
    now = [5_000.0]
    emu.sessions.clock = lambda: now[0]
    emu.faults.configure("session-max-age=10")
    emu.faults.session_max_age = 10.0
    async with anon.get("/data/JSESSION", headers=emu.auth()) as response:
        assert response.status == 200
    now[0] += 5
    async with anon.get("/data/projects") as response:
        assert response.status == 200
    now[0] += 6  # 11 s after creation, 6 s idle
    async with anon.get("/data/projects") as response:
        assert response.status == 401


async def test_drop_applies_the_upload_then_resets(
    emu: Emulator, admin: aiohttp.ClientSession
) -> None:
    emu.faults.script("POST", "*/dropped.txt", ["drop"])
    url = "/data/projects/DEMO/experiments/DEMO01_MR1/resources/OUT/files/dropped.txt"
    headers = {"Content-Type": "text/plain", **emu.auth()}
    # POST (not PUT): aiohttp silently retries idempotent requests after a disconnect
    with pytest.raises(DROPPED):
        async with admin.post(url, data=b"once", headers=headers) as response:
            await response.read()
    async with admin.get(url) as response:
        assert await response.read() == b"once"


async def test_rates_from_spec_hit_file_downloads_only(
    emu: Emulator, admin: aiohttp.ClientSession, big: tuple[str, bytes]
) -> None:
    emu.faults.configure("seed=1,503=1")
    async with admin.get(big[0]) as response:
        assert response.status == 503
    async with admin.get("/data/projects/DEMO/experiments/DEMO01_MR1/files?format=json") as r:
        assert r.status == 200


async def test_bytes_sent_event(
    emu: Emulator, admin: aiohttp.ClientSession, big: tuple[str, bytes]
) -> None:
    event = emu.faults.on_bytes_sent("*/big.bin", 512 * 1024)
    emu.faults.script("GET", "*/big.bin", ["stall:5@0.75"])
    async with admin.get(big[0]) as response:
        head = await response.content.readexactly(600 * 1024)
        assert event.is_set()
        assert head == big[1][: 600 * 1024]
        response.close()


async def test_request_log(emu: Emulator, user: aiohttp.ClientSession) -> None:
    emu.requests.clear()
    async with user.get("/data/projects?format=json") as response:
        assert response.status == 200
    async with user.get("/data/projects/PRIV?format=json") as response:
        assert response.status == 404
    records = emu.requests.matching("GET", "/data/projects*")
    assert [(r.path, r.status, r.user, r.query) for r in records] == [
        ("/data/projects", 200, "user", "format=json"),
        ("/data/projects/PRIV", 404, "user", "format=json"),
    ]
    assert emu.requests.count("GET", "/data/JSESSION") == 0


async def test_ranges_honoured_on_request_and_if_match_detects_change(
    emu: Emulator, admin: aiohttp.ClientSession, big: tuple[str, bytes]
) -> None:
    emu.faults.configure("ranges=1")
    async with admin.get(big[0], headers={"Range": "bytes=10-19"}) as response:
        assert response.status == 206
        assert response.headers["Accept-Ranges"] == "bytes"
        assert await response.read() == big[1][10:20]
        etag = response.headers["ETag"]
    experiment = emu.store.experiment("DEMO", "DEMO01_MR1")
    assert experiment is not None
    emu.store.add_file(experiment.resources["BIG"], "big.bin", b"changed", overwrite=True)
    headers = {"Range": "bytes=10-19", "If-Match": etag}
    async with admin.get(big[0], headers=headers) as response:
        assert response.status == 412


async def test_body_faults_apply_to_zips_too(
    emu: Emulator, admin: aiohttp.ClientSession, big: tuple[str, bytes]
) -> None:
    url, _ = big
    zip_url = url.rsplit("/", 1)[0] + "?format=zip"
    zip_path = url.rsplit("/", 1)[0]
    async with admin.get(zip_url) as response:
        whole = await response.read()
    emu.faults.script("GET", zip_path, ["truncate@0.5", "corrupt"])
    async with admin.get(zip_url) as response:
        assert response.headers["Content-Length"] == str(len(whole))  # one body, announced
        with pytest.raises(DROPPED):
            await response.read()
    async with admin.get(zip_url) as response:
        damaged = await response.read()
    assert len(damaged) == len(whole)
    assert sum(a != b for a, b in zip(damaged, whole, strict=True)) == 1
