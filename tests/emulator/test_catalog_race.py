"""`catalog-race=1`: concurrent writes to one resource race as in XNAT 1.8 (xnat-api §7, §12).

The upload whose catalog write comes second answers 500 and its files stay out of the catalog;
in-body bodies hold the window open while they stream, multipart bodies only open it once they
arrived. Timing is driven by events (a body generator the test paces, and the fault hooks
`on_catalog_read` / `hold_catalog_write`), never by sleeping.
"""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.emulator.emuhelp import call, rows
from xnatsync.emulator.faults import Faults
from xnatsync.emulator.server import Emulator

RACE = "/data/projects/DEMO/resources/RACE/files"
OCTET = {"Content-Type": "application/octet-stream"}
WAIT = 10.0  # seconds before a missed event fails the test instead of hanging it


class PacedBody:
    """A request body sent in two halves: the second waits for `go`; `started` is set once
    the first half went out."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.started = asyncio.Event()
        self.go = asyncio.Event()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body, paced."""
        half = len(self.data) // 2
        yield self.data[:half]
        self.started.set()
        await self.go.wait()
        yield self.data[half:]


async def names(session: aiohttp.ClientSession, files: str = RACE) -> list[str]:
    """The catalogued paths of a resource, sorted."""
    return sorted(r["URI"].split("/files/", 1)[1] for r in await rows(session, files))


async def until(event: asyncio.Event) -> None:
    """Wait for an event the emulator or the client sets."""
    await asyncio.wait_for(event.wait(), WAIT)


def start(session: aiohttp.ClientSession, method: str, path: str, **kw: Any) -> asyncio.Task[Any]:
    """Send a request in the background; the task gives (status, text)."""
    return asyncio.create_task(call(session, method, path, **kw))


@pytest.fixture
async def race(emu: Emulator, admin: aiohttp.ClientSession) -> Emulator:
    """The emulator with `catalog-race=1` and an empty project resource RACE."""
    emu.faults.configure("catalog-race=1")
    async with admin.put("/data/projects/DEMO/resources/RACE") as response:
        assert response.status == 200
    return emu


async def _in_body_race(emu: Emulator, admin: aiohttp.ClientSession) -> tuple[int, str]:
    """A slow in-body upload of slow.bin, overtaken by fast.bin; the slow one's answer."""
    read = emu.faults.on_catalog_read("*/RACE/files/slow.bin")
    body = PacedBody(b"s" * 4096)
    headers = {**OCTET, "Content-Length": str(len(body.data))}
    slow = start(admin, "PUT", f"{RACE}/slow.bin", data=body.chunks(), headers=headers)
    if emu.faults.catalog_race:  # the hook reports windows, which only the race has
        await until(read)
    await until(body.started)
    assert await call(admin, "PUT", f"{RACE}/fast.bin", data=b"fast", headers=OCTET) == (200, "")
    body.go.set()
    result: tuple[int, str] = await slow
    return result


async def test_in_body_upload_writing_its_catalog_second_fails_and_stays_uncatalogued(
    race: Emulator, admin: aiohttp.ClientSession
) -> None:
    status, text = await _in_body_race(race, admin)
    assert status == 500
    assert "ConcurrentModificationException" in text
    assert await names(admin) == ["fast.bin"]
    assert (await call(admin, "GET", f"{RACE}/slow.bin"))[0] == 404
    # sending again without overwrite: XNAT finds the bytes on disk, calls them a duplicate
    # and still does not catalogue them
    again = await call(admin, "PUT", f"{RACE}/slow.bin", data=b"again", headers=OCTET)
    assert again == (200, '{"duplicates": ["slow.bin"]}')
    assert await names(admin) == ["fast.bin"]
    # overwrite=true writes and catalogues it
    put = await call(admin, "PUT", f"{RACE}/slow.bin?overwrite=true", data=b"new", headers=OCTET)
    assert put == (200, "")
    assert await names(admin) == ["fast.bin", "slow.bin"]
    assert await call(admin, "GET", f"{RACE}/slow.bin") == (200, "new")


async def test_switch_off_serialises_overlapping_uploads(
    emu: Emulator, admin: aiohttp.ClientSession
) -> None:
    status, _ = await _in_body_race(emu, admin)
    assert status == 200
    assert await names(admin) == ["fast.bin", "slow.bin"]


async def test_overlapping_uploads_to_different_resources_both_succeed(
    race: Emulator, admin: aiohttp.ClientSession
) -> None:
    other = "/data/projects/DEMO/resources/OTHER/files"
    read = race.faults.on_catalog_read("*/RACE/files/slow.bin")
    body = PacedBody(b"s" * 4096)
    headers = {**OCTET, "Content-Length": str(len(body.data))}
    slow = start(admin, "PUT", f"{RACE}/slow.bin", data=body.chunks(), headers=headers)
    await until(read)
    assert await call(admin, "PUT", f"{other}/fast.bin", data=b"fast", headers=OCTET) == (200, "")
    body.go.set()
    assert await slow == (200, "")
    assert await names(admin) == ["slow.bin"]
    assert await names(admin, other) == ["fast.bin"]


async def test_racing_uploads_to_a_new_resource(
    race: Emulator, admin: aiohttp.ClientSession
) -> None:
    fresh = "/data/projects/DEMO/resources/FRESH/files"
    read = race.faults.on_catalog_read("*/FRESH/files/slow.bin")
    body = PacedBody(b"s" * 4096)
    headers = {**OCTET, "Content-Length": str(len(body.data))}
    slow = start(admin, "PUT", f"{fresh}/slow.bin", data=body.chunks(), headers=headers)
    await until(read)
    assert await call(admin, "PUT", f"{fresh}/fast.bin", data=b"fast", headers=OCTET) == (200, "")
    body.go.set()
    assert (await slow)[0] == 500
    assert await names(admin, fresh) == ["fast.bin"]


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


async def test_extracted_zip_losing_the_race_leaves_no_member_catalogued(
    race: Emulator, admin: aiohttp.ClientSession
) -> None:
    archive = _zip({"z/1.dcm": b"one" * 500, "z/2.dcm": b"two" * 500})
    read = race.faults.on_catalog_read("*/RACE/files/up.zip")
    body = PacedBody(archive)
    zipped = {"Content-Type": "application/zip"}
    url = f"{RACE}/up.zip?extract=true"
    slow = start(admin, "PUT", url, data=body.chunks(), headers=zipped)
    await until(read)
    assert await call(admin, "PUT", f"{RACE}/fast.bin", data=b"fast", headers=OCTET) == (200, "")
    body.go.set()
    assert (await slow)[0] == 500
    assert await names(admin) == ["fast.bin"]
    again = await call(admin, "PUT", url, data=archive, headers=zipped)
    assert again == (200, '{"duplicates": ["z/1.dcm", "z/2.dcm"]}')
    assert await names(admin) == ["fast.bin"]
    assert await call(admin, "PUT", url + "&overwrite=true", data=archive, headers=zipped) == (
        200,
        "",
    )
    assert await names(admin) == ["fast.bin", "z/1.dcm", "z/2.dcm"]


def _multipart(files: dict[str, Any]) -> aiohttp.MultipartWriter:
    writer = aiohttp.MultipartWriter("form-data")
    for name, data in files.items():
        part = writer.append(data, {"Content-Type": "application/octet-stream"})
        part.set_content_disposition("form-data", name="file", filename=name)
    return writer


async def test_multipart_window_opens_only_after_the_body_arrived(
    race: Emulator, admin: aiohttp.ClientSession
) -> None:
    body = PacedBody(b"m" * 4096)
    slow = start(admin, "POST", RACE, data=_multipart({"m1.bin": body.chunks()}))
    await until(body.started)
    assert await call(admin, "PUT", f"{RACE}/fast.bin", data=b"fast", headers=OCTET) == (200, "")
    body.go.set()
    assert await slow == (200, "")
    assert await names(admin) == ["fast.bin", "m1.bin"]


async def test_multipart_losing_the_race_fails_with_all_its_files(
    race: Emulator, admin: aiohttp.ClientSession
) -> None:
    hold = race.faults.hold_catalog_write("*/RACE/files")
    slow = start(admin, "POST", RACE, data=_multipart({"a1.txt": b"a1", "a2.txt": b"a2"}))
    await until(hold.reached)
    assert await call(admin, "PUT", f"{RACE}/b.txt", data=b"b", headers=OCTET) == (200, "")
    hold.release.set()
    status, text = await slow
    assert status == 500
    assert "ConcurrentModificationException" in text
    assert await names(admin) == ["b.txt"]
    retry = await call(admin, "POST", RACE, data=_multipart({"a1.txt": b"a1", "a2.txt": b"a2"}))
    assert retry == (200, '{"duplicates": ["a1.txt", "a2.txt"]}')


async def test_a_held_writer_alone_succeeds(race: Emulator, admin: aiohttp.ClientSession) -> None:
    hold = race.faults.hold_catalog_write("*/RACE/files/solo.bin")
    solo = start(admin, "PUT", f"{RACE}/solo.bin", data=b"solo", headers=OCTET)
    await until(hold.reached)
    hold.release.set()
    assert await solo == (200, "")
    assert await names(admin) == ["solo.bin"]


def test_catalog_race_switch_parses_and_rejects_bad_values() -> None:
    assert Faults("catalog-race=1").catalog_race
    assert not Faults("catalog-race=off").catalog_race
    assert not Faults().catalog_race
    with pytest.raises(ValueError, match="catalog-race=maybe"):
        Faults("catalog-race=maybe")
    faults = Faults("catalog-race=yes")
    faults.clear()
    assert not faults.catalog_race
