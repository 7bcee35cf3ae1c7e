"""What XNAT's import service answers under load (xnat-api §12), as fault kinds, through real
DICOM-zip imports into the assembled emulator; the server state is read back through REST:
`busy-*` refuse before anything is applied (a retry succeeds); `applied:5xx` and `drop` answer
an error or reset AFTER the import was applied (the session is there: look before resending)."""

from __future__ import annotations

import re
import time
from http import HTTPStatus

import aiohttp
import pytest

from xnatsync.emulator.dicom_synth import InstanceSpec, study_zip
from xnatsync.emulator.server import Emulator

from .emuhelp import rows

SPEC = InstanceSpec(patient_name="Load^Test", patient_id="LOAD01", study_key="under-load")
LABEL = "LOAD01_MR1"
IMPORT = "/data/services/import"
QUERY = {
    "import-handler": "DICOM-zip",
    "PROJECT_ID": "DEMO",
    "SUBJECT_ID": "LOAD01",
    "EXPT_LABEL": LABEL,
}
ZIP = {"Content-Type": "application/zip"}
DROPPED = (aiohttp.ClientPayloadError, aiohttp.ClientOSError, aiohttp.ServerDisconnectedError)
BUSY = {  # the phrase clients match (§12), in lower case
    "busy-processing": "session processing in progress",
    "busy-concurrent": "concurrent modification is discouraged",
    "busy-duplicate": "duplicate archive attempt",
    "busy-in-use": "destination session in use",
}


def _zip() -> bytes:
    return study_zip(SPEC, [(1, "T1w", 2), (2, "rest", 1)])


async def _import(admin: aiohttp.ClientSession, **extra: str) -> tuple[int, str]:
    params = {**QUERY, **extra}
    async with admin.post(IMPORT, params=params, data=_zip(), headers=ZIP) as response:
        return response.status, await response.text()


async def _prearchived(admin: aiohttp.ClientSession) -> list[dict[str, str]]:
    return [r for r in await rows(admin, "/data/prearchive/projects/DEMO") if r["name"] == LABEL]


async def _archived(admin: aiohttp.ClientSession) -> list[str]:
    listing = await rows(admin, "/data/projects/DEMO/experiments")
    return [r["label"] for r in listing if r["label"] == LABEL]


@pytest.mark.parametrize("kind", sorted(BUSY))
async def test_busy_answers_come_before_the_import_and_a_retry_succeeds(
    emu: Emulator, admin: aiohttp.ClientSession, kind: str
) -> None:
    emu.faults.script("POST", "*/services/import", [kind])
    status, body = await _import(admin)
    assert status == 400
    assert BUSY[kind] in body.lower()
    assert await _prearchived(admin) == []
    status, body = await _import(admin)
    assert status == 200
    (session,) = await _prearchived(admin)
    assert body == f"/data{session['url']}\r\n"
    scans = await rows(admin, f"/data{session['url']}/scans")
    assert sorted(r["ID"] for r in scans) == ["1", "2"]


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_errors_after_the_import_leave_it_applied(
    emu: Emulator, admin: aiohttp.ClientSession, status: int
) -> None:
    emu.faults.script("POST", "*/services/import", [f"applied:{status}"])
    answered, body = await _import(admin)
    assert answered == status
    assert f"<h3>{HTTPStatus(status).phrase}</h3>" in body  # an error page, not a URI list
    (session,) = await _prearchived(admin)  # the data is there although the client saw an error
    scans = await rows(admin, f"/data{session['url']}/scans")
    assert sorted(r["ID"] for r in scans) == ["1", "2"]


async def test_error_after_an_archiving_import_leaves_the_session_archived(
    emu: Emulator, admin: aiohttp.ClientSession
) -> None:
    emu.faults.script("POST", "*/services/import", ["applied:504"])
    dest = f"/archive/projects/DEMO/subjects/LOAD01/experiments/{LABEL}"
    status, _ = await _import(admin, dest=dest)
    assert status == 504
    assert await _archived(admin) == [LABEL]


async def test_a_reset_after_the_body_was_stored_leaves_the_import_applied(
    emu: Emulator, admin: aiohttp.ClientSession
) -> None:
    emu.faults.script("POST", "*/services/import", ["drop"])
    with pytest.raises(DROPPED):  # POST: aiohttp does not silently retry it
        await _import(admin)
    (session,) = await _prearchived(admin)
    assert session["subject"] == "LOAD01"
    assert [r.fault for r in emu.requests.matching("POST", IMPORT)] == ["drop:0@0.5"]


async def test_busy_on_the_archive_service_leaves_the_session_in_the_prearchive(
    emu: Emulator, admin: aiohttp.ClientSession
) -> None:
    status, _ = await _import(admin)
    assert status == 200
    (session,) = await _prearchived(admin)
    emu.faults.script("POST", "*/services/archive", ["busy-in-use", "applied:502"])
    archive = {"src": session["url"]}
    async with admin.post("/data/services/archive", params=archive) as response:
        assert response.status == 423  # the archiver's own status: Locked
        assert "<h3>Duplicate archive attempt.  Destination session in use.</h3>" in (
            await response.text()
        )
    assert len(await _prearchived(admin)) == 1
    assert await _archived(admin) == []
    async with admin.post("/data/services/archive", params=archive) as response:
        assert response.status == 502
    assert await _archived(admin) == [LABEL]
    assert await _prearchived(admin) == []


async def test_import_faults_from_rates(emu: Emulator, admin: aiohttp.ClientSession) -> None:
    emu.faults.configure("methods=POST,paths=*/services/import,busy-duplicate=1")
    status, body = await _import(admin)
    assert status == 400
    assert "<h3>Duplicate archive attempt.  Prearchive session already archiving.</h3>" in body
    assert await _prearchived(admin) == []
    emu.faults.configure("methods=POST,paths=*/services/import,busy-processing:409=1")
    status, body = await _import(admin)
    assert status == 409
    assert re.search(r"<h3>Session processing in progress: \d{8}_\d{6}\.  Concurrent", body)
    emu.faults.configure("methods=POST,paths=*/services/import,applied:502=1")
    status, _ = await _import(admin)
    assert status == 502
    assert len(await _prearchived(admin)) == 1


async def test_server_time_for_imports(emu: Emulator, admin: aiohttp.ClientSession) -> None:
    emu.faults.configure("time:import=0.3,time:put=30")
    started = time.monotonic()
    status, _ = await _import(admin)
    assert status == 200
    assert 0.3 <= time.monotonic() - started < 10
    assert len(await _prearchived(admin)) == 1


async def test_applied_error_on_a_file_upload_leaves_the_file(
    emu: Emulator, admin: aiohttp.ClientSession
) -> None:
    url = "/data/projects/DEMO/experiments/DEMO01_MR1/resources/OUT/files/late.txt"
    emu.faults.script("PUT", "*/late.txt", ["applied:502"])
    async with admin.put(url, data=b"stored") as response:
        assert response.status == 502
    async with admin.get(url) as response:
        assert await response.read() == b"stored"
