"""Files addressed through their container, `{owner}/files/{path}` (xnat-api §9; RT
TestFileUpload.testScanUpload, testTextIMGUploadWOPrecreate, testMRResourceUpload,
testSubjectResourceUpload, testProjectResourceUpload, testManQCUpload), and XNAT's
first-catalog rule when an owner has several resources (FileList.handleMultipleCatalogs)."""

from __future__ import annotations

import aiohttp
import pytest

from tests.emulator.emuhelp import call, rows

PREFIXES = ("/data", "/data/archive", "/REST")
OCTET = {"Content-Type": "application/octet-stream"}


async def _fresh(admin: aiohttp.ClientSession) -> tuple[str, str]:
    """A new project FP with subject S1, session E1 and scan 1, none with resources yet (as in
    TestFileUpload's set-up); the subject's and session's accession IDs."""
    assert (await call(admin, "PUT", "/data/projects/FP?name=Files+project"))[0] == 200
    status, sid = await call(admin, "PUT", "/data/projects/FP/subjects/S1")
    assert status == 201
    session = "/data/projects/FP/subjects/S1/experiments/E1?xsiType=xnat:mrSessionData"
    status, eid = await call(admin, "PUT", session)
    assert status == 201
    status, _ = await call(admin, "PUT", f"/data/experiments/{eid}/scans/1?xsiType=xnat:mrScanData")
    assert status == 200
    return sid, eid


def _owner_paths(owner: str, sid: str, eid: str) -> list[str]:
    """Every path form of one owner (labels and IDs, with and without the project/subject)."""
    session_forms = [
        "/projects/FP/subjects/S1/experiments/E1",
        f"/projects/FP/subjects/{sid}/experiments/{eid}",
        "/projects/FP/experiments/E1",
        f"/projects/FP/experiments/{eid}",
        f"/experiments/{eid}",
    ]
    if owner == "project":
        return ["/projects/FP"]
    if owner == "subject":
        return ["/projects/FP/subjects/S1", f"/projects/FP/subjects/{sid}", f"/subjects/{sid}"]
    if owner == "session":
        return session_forms
    scan_bases = [session_forms[0], session_forms[1], session_forms[4]]  # where scans are routed
    return [f"{base}/scans/1" for base in scan_bases]


async def _get(session: aiohttp.ClientSession, path: str) -> tuple[int, bytes]:
    async with session.get(path) as response:
        return response.status, await response.read()


@pytest.mark.parametrize("owner", ["project", "subject", "session", "scan"])
async def test_uploaded_file_reads_back_through_its_container(
    admin: aiohttp.ClientSession, owner: str
) -> None:
    sid, eid = await _fresh(admin)
    paths = _owner_paths(owner, sid, eid)
    body = f"bytes of the {owner} upload\n".encode()
    # the resource is not pre-created: the upload creates it (testScanUpload)
    status, text = await call(
        admin, "PUT", f"/data{paths[0]}/resources/UPL/files/one.dcm", data=body, headers=OCTET
    )
    assert status == 200, text
    for prefix in PREFIXES:
        for path in paths:
            assert await _get(admin, f"{prefix}{path}/resources/UPL/files/one.dcm") == (200, body)
            assert await _get(admin, f"{prefix}{path}/files/one.dcm") == (200, body), path


async def test_multipart_scan_upload_reads_back_through_the_scan(
    admin: aiohttp.ClientSession,
) -> None:
    base = "/data/projects/DEMO/subjects/DEMO01/experiments/DEMO01_MR1"
    status, _ = await call(admin, "PUT", f"{base}/scans/9?xsiType=xnat:mrScanData")
    assert status == 200
    form = aiohttp.FormData()
    form.add_field("file", b"multipart bytes", filename="3.dcm")
    status, text = await call(admin, "PUT", f"{base}/scans/9/resources/TEST/files/3.dcm", data=form)
    assert status == 200, text
    assert await _get(admin, f"{base}/scans/9/files/3.dcm") == (200, b"multipart bytes")
    listed = await rows(admin, f"{base}/scans/9/files")
    assert [r["Name"] for r in listed] == ["3.dcm"]


async def test_container_listing_lists_every_resource(admin: aiohttp.ClientSession) -> None:
    """The listing covers every resource, though a single-file GET reads only the first."""
    base = "/data/projects/DEMO"
    await call(admin, "PUT", f"{base}/resources/EXTRA/files/extra.txt", data=b"x", headers=OCTET)
    listed = await rows(admin, f"{base}/files")
    assert {(r["collection"], r["Name"]) for r in listed} == {
        ("PROTOCOLS", "protocol.txt"),
        ("EXTRA", "extra.txt"),
    }
    for row in listed:  # each listed URI downloads
        status, _ = await _get(admin, row["URI"])
        assert status == 200, row["URI"]


async def test_assessor_out_files_through_the_assessor(admin: aiohttp.ClientSession) -> None:
    base = "/data/projects/DEMO/subjects/DEMO01/experiments/DEMO01_MR1/assessors/DEMO01_MR1_QC"
    status, body = await _get(admin, f"{base}/out/files/report.txt")
    assert status == 200
    assert body.startswith(b"QC report for DEMO01_MR1")
    assert (await _get(admin, f"{base}/files/snapshots/axial.txt"))[0] == 200


async def test_same_name_in_two_resources_serves_the_older(admin: aiohttp.ClientSession) -> None:
    base = "/data/projects/DEMO/subjects/DEMO02"
    for label, body in (("FIRST", b"older copy"), ("SECOND", b"newer copy")):
        status, _ = await call(
            admin, "PUT", f"{base}/resources/{label}/files/same.txt", data=body, headers=OCTET
        )
        assert status == 200
    assert await _get(admin, f"{base}/files/same.txt") == (200, b"older copy")
    # each copy stays reachable through its own resource
    assert await _get(admin, f"{base}/resources/SECOND/files/same.txt") == (200, b"newer copy")


async def test_file_only_in_a_later_resource_is_not_found(admin: aiohttp.ClientSession) -> None:
    """XNAT looks at the first catalog only: a name it lacks ends the search (404)."""
    base = "/data/projects/DEMO/subjects/DEMO03"
    await call(admin, "PUT", f"{base}/resources/A/files/a.txt", data=b"a", headers=OCTET)
    await call(admin, "PUT", f"{base}/resources/B/files/b.txt", data=b"b", headers=OCTET)
    assert await _get(admin, f"{base}/files/a.txt") == (200, b"a")
    assert await _get(admin, f"{base}/files/b.txt") == (404, b"")
    status, _ = await call(admin, "GET", f"{base}/files/b.txt?accept-not-found=true")
    assert status == 204
    assert await _get(admin, f"{base}/resources/B/files/b.txt") == (200, b"b")


async def test_container_folder_listing(admin: aiohttp.ClientSession) -> None:
    eid = (await rows(admin, "/data/projects/DEMO/experiments", label="DEMO01_MR1"))[0]["ID"]
    listed = await rows(admin, f"/data/experiments/{eid}/files/sub/")
    assert [r["Name"] for r in listed] == ["measures.csv"]


async def test_unreadable_container_file_is_hidden(
    admin: aiohttp.ClientSession, user: aiohttp.ClientSession
) -> None:
    # `user` is no member of PRIV: its files do not exist for them (§2.4)
    path = "/data/projects/PRIV/files/secret.txt"
    await call(
        admin, "PUT", "/data/projects/PRIV/resources/R/files/secret.txt", data=b"s", headers=OCTET
    )
    assert await _get(admin, path) == (200, b"s")
    assert (await _get(user, path))[0] == 404
