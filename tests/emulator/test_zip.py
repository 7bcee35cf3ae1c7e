"""Zip downloads (xnat-api §4.2, §8.3): streamed, member layout, STORED vs DEFLATED, CRCs."""

from __future__ import annotations

import hashlib
import io
import zipfile

import aiohttp

from tests.emulator.emuhelp import rows


async def _zip(session: aiohttp.ClientSession, path: str, **params: str) -> zipfile.ZipFile:
    async with session.get(path, params={"format": "zip", **params}) as response:
        assert response.status == 200, await response.text()
        assert response.content_type == "application/zip"
        assert "Content-Length" not in response.headers
        assert response.headers["Transfer-Encoding"] == "chunked"
        assert response.headers["Content-Disposition"] == 'attachment; filename="DEMO01_MR1.zip"'
        archive = zipfile.ZipFile(io.BytesIO(await response.read()))
    assert archive.testzip() is None  # every CRC checks out
    return archive


async def test_scan_zip_layout_and_content(admin: aiohttp.ClientSession) -> None:
    listing = await rows(admin, "/data/projects/DEMO/experiments", label="DEMO01_MR1")
    eid = listing[0]["ID"]
    archive = await _zip(admin, f"/data/experiments/{eid}/scans/ALL/files")
    names = archive.namelist()
    assert len(names) == 12
    assert "DEMO01_MR1/scans/1-T1w/resources/DICOM/files/1-0001.dcm" in names
    assert "DEMO01_MR1/scans/3-fMRI_rest/resources/DICOM/files/3-0004.dcm" in names
    assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}
    files = await rows(admin, f"/data/experiments/{eid}/scans/1/resources/DICOM/files")
    digest = {r["Name"]: r["digest"] for r in files}
    member = archive.read("DEMO01_MR1/scans/1-T1w/resources/DICOM/files/1-0003.dcm")
    assert hashlib.md5(member).hexdigest() == digest["1-0003.dcm"]


async def test_deflated_on_request(admin: aiohttp.ClientSession) -> None:
    base = "/data/projects/DEMO/subjects/DEMO01/experiments/DEMO01_MR1"
    archive = await _zip(admin, f"{base}/scans/1,2/resources/DICOM/files", compression="8")
    assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    assert len(archive.namelist()) == 8


async def test_session_resource_and_folder_zip(admin: aiohttp.ClientSession) -> None:
    base = "/data/projects/DEMO/experiments/DEMO01_MR1/resources/NOTES/files"
    archive = await _zip(admin, base)
    assert sorted(archive.namelist()) == [
        "DEMO01_MR1/resources/NOTES/files/notes.txt",
        "DEMO01_MR1/resources/NOTES/files/sub/measures.csv",
    ]
    folder = await _zip(admin, f"{base}/sub/")
    assert folder.namelist() == ["DEMO01_MR1/resources/NOTES/files/sub/measures.csv"]


async def test_all_files_zip_without_scans_in_request(admin: aiohttp.ClientSession) -> None:
    archive = await _zip(admin, "/data/projects/DEMO/experiments/DEMO01_MR1/files", all="true")
    assert "DEMO01_MR1/scans/1/resources/DICOM/files/1-0001.dcm" in archive.namelist()
    assert "DEMO01_MR1/assessors/DEMO01_MR1_QC/out/resources/QC/files/report.txt" in (
        archive.namelist()
    )
    assert len(archive.namelist()) == 16  # 12 DICOM, 2 NOTES, 2 of the QC assessor


async def test_empty_selection_is_404(admin: aiohttp.ClientSession) -> None:
    url = "/data/projects/DEMO/experiments/DEMO01_MR1/scans/NOSUCH/files?format=zip"
    async with admin.get(url) as response:
        assert response.status == 404
