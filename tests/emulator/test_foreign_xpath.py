"""An XML path of another data type's element on a PUT is ignored (RT
TestScans.testImplicitScanTypeChangeValidation: `xnat:ctScanData/note=test` on an MR scan → 200,
the scan stays MR and its note stays empty); the record's own type's paths still set fields."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.emulator.emuhelp import call, rows

SESSION = "/data/projects/DEMO/subjects/DEMO01/experiments/DEMO01_MR1"


async def _scan(admin: aiohttp.ClientSession, scan: str = "1") -> dict[str, str]:
    return next(r for r in await rows(admin, f"{SESSION}/scans") if r["ID"] == scan)


async def _fields(admin: aiohttp.ClientSession, path: str) -> dict[str, Any]:
    async with admin.get(path, params={"format": "json"}) as response:
        assert response.status == 200
        body: dict[str, Any] = await response.json()
    fields: dict[str, Any] = body["items"][0]["data_fields"]
    return fields


async def test_foreign_scan_xpath_changes_nothing(admin: aiohttp.ClientSession) -> None:
    before = await _scan(admin)
    status, _ = await call(admin, "PUT", f"{SESSION}/scans/1?xnat:ctScanData/note=test")
    assert status == 200
    after = await _scan(admin)
    assert after["xsiType"] == "xnat:mrScanData"
    assert after["note"] == ""
    assert after == before
    status, _ = await call(admin, "PUT", f"{SESSION}/scans/1?xnat:ctScanData/type=CTTYPE")
    assert status == 200
    assert (await _scan(admin))["type"] == before["type"]


async def test_own_and_abstract_scan_xpaths_set_fields(admin: aiohttp.ClientSession) -> None:
    status, _ = await call(admin, "PUT", f"{SESSION}/scans/1?xnat:mrScanData/note=own")
    assert status == 200
    assert (await _scan(admin))["note"] == "own"
    status, _ = await call(admin, "PUT", f"{SESSION}/scans/2?xnat:imageScanData/note=abstract")
    assert status == 200
    assert (await _scan(admin, "2"))["note"] == "abstract"
    status, _ = await call(admin, "PUT", f"{SESSION}/scans/3?xnat:mrScanData/type=T1w&note=short")
    assert status == 200
    assert ((await _scan(admin, "3"))["type"], (await _scan(admin, "3"))["note"]) == (
        "T1w",
        "short",
    )


async def test_foreign_experiment_xpath_is_ignored(admin: aiohttp.ClientSession) -> None:
    status, _ = await call(admin, "PUT", f"{SESSION}?xnat:petSessionData/note=pet")
    assert status == 200
    assert (await _fields(admin, SESSION)).get("note", "") == ""
    for own in ("xnat:mrSessionData", "xnat:experimentData"):
        status, _ = await call(admin, "PUT", f"{SESSION}?{own}/note={own}")
        assert status == 200
        assert (await _fields(admin, SESSION))["note"] == own


async def test_foreign_subject_xpath_is_ignored(admin: aiohttp.ClientSession) -> None:
    subject = "/data/projects/DEMO/subjects/DEMO02"
    status, _ = await call(admin, "PUT", f"{subject}?xnat:mrSessionData/gender=female")
    assert status == 200
    assert (await _fields(admin, subject)).get("gender", "") == ""
    status, _ = await call(admin, "PUT", f"{subject}?xnat:subjectData/gender=male")
    assert status == 200
    assert (await _fields(admin, subject))["gender"] == "male"


async def test_foreign_assessor_xpath_is_ignored(admin: aiohttp.ClientSession) -> None:
    assessor = f"{SESSION}/assessors/DEMO01_MR1_QC"
    status, _ = await call(admin, "PUT", f"{assessor}?xnat:mrScanData/note=scan")
    assert status == 200
    assert (await _fields(admin, assessor)).get("note", "") == ""
    status, _ = await call(admin, "PUT", f"{assessor}?xnat:qcAssessmentData/note=qc")
    assert status == 200
    assert (await _fields(admin, assessor))["note"] == "qc"
