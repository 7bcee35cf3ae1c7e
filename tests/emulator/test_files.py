"""File listings and downloads (xnat-api §3.6, §3.8, §4.1, §11.15, §11.16)."""

from __future__ import annotations

import hashlib
import re

import aiohttp

from tests.emulator.emuhelp import envelope, rows
from xnatsync.emulator.server import Emulator

SUBJ = "/data/projects/DEMO/subjects/DEMO01/experiments/DEMO01_MR1"


async def _eid(session: aiohttp.ClientSession, label: str = "DEMO01_MR1") -> str:
    return (await rows(session, "/data/projects/DEMO/experiments", label=label))[0]["ID"]


async def test_resource_files_listing_shape(admin: aiohttp.ClientSession, emu: Emulator) -> None:
    eid = await _eid(admin)
    listing = await envelope(admin, f"/data/experiments/{eid}/scans/1/resources/DICOM/files")
    assert listing["title"] == "Files"
    assert listing["Columns"] == [{"key": "URI", "serverRoot": ""}]
    assert "totalRecords" not in listing
    first = listing["Result"][0]
    assert set(first) == {
        "Name", "Size", "URI", "collection", "file_tags", "file_format", "file_content",
        "cat_ID", "digest",
    }  # fmt: skip
    assert first["Name"] == "1-0001.dcm"
    assert first["collection"] == "DICOM"
    assert first["URI"] == (
        f"/data/experiments/{eid}/scans/1/resources/{first['cat_ID']}/files/1-0001.dcm"
    )
    assert re.fullmatch(r"[0-9a-f]{32}", first["digest"])


async def test_digest_and_size_match_served_bytes(admin: aiohttp.ClientSession) -> None:
    eid = await _eid(admin)
    for row in await rows(admin, f"/data/experiments/{eid}/files", all="true"):
        async with admin.get(row["URI"]) as response:
            assert response.status == 200, row["URI"]
            body = await response.read()
        assert hashlib.md5(body).hexdigest() == row["digest"]
        assert str(len(body)) == row["Size"]


async def test_subject_path_uris_keep_project_and_subject(admin: aiohttp.ClientSession) -> None:
    got = await rows(admin, f"{SUBJ}/scans/2/resources/DICOM/files")
    sid = (await rows(admin, "/data/projects/DEMO/subjects", label="DEMO01"))[0]["ID"]
    eid = await _eid(admin)
    assert got[0]["URI"].startswith(
        f"/data/projects/DEMO/subjects/{sid}/experiments/{eid}/scans/2/"
    )


async def test_multi_resource_listings(admin: aiohttp.ClientSession) -> None:
    eid = await _eid(admin)
    all_scans = await rows(admin, f"/data/experiments/{eid}/scans/ALL/files")
    assert len(all_scans) == 12
    assert {r["URI"].split("/resources/")[0] for r in all_scans} == {
        f"/data/experiments/{eid}/scans/{n}" for n in ("1", "2", "3")
    }
    by_type = await rows(admin, f"/data/experiments/{eid}/scans/T2w/files")
    assert {r["URI"].split("/")[5] for r in by_type} == {"2"}
    slash = await rows(admin, f"/data/experiments/{eid}/scans/fMRI[SLASH]rest/files")
    assert len(slash) == 4
    own = await rows(admin, f"/data/experiments/{eid}/files")
    assert sorted(r["Name"] for r in own) == ["measures.csv", "notes.txt"]
    everything = await rows(admin, f"/data/experiments/{eid}/files", all="true")
    assert len(everything) == 16  # 12 DICOM, 2 NOTES, 2 of the QC assessor
    project = await rows(admin, "/data/projects/DEMO/files")
    assert project[0]["URI"].startswith("/data/projects/DEMO/resources/")


async def test_folder_listing_filters_and_index(admin: aiohttp.ClientSession) -> None:
    eid = await _eid(admin)
    base = f"/data/experiments/{eid}/resources/NOTES/files"
    deeper = f"{base}/sub/deeper/x.txt"
    async with admin.put(deeper, data=b"x", headers={"Content-Type": "text/plain"}) as response:
        assert response.status == 200
    folder = await rows(admin, f"{base}/sub/")
    assert [r["Name"] for r in folder] == ["x.txt", "measures.csv"]
    top = await rows(admin, f"{base}/sub/", recursive="false")
    assert [r["Name"] for r in top] == ["measures.csv"]
    csv_only = await rows(admin, base, file_format="CSV")
    assert [r["Name"] for r in csv_only] == ["measures.csv"]
    async with admin.get(base, params={"file_format": "TXT", "index": "0"}) as response:
        assert await response.read() == b"Notes of DEMO01_MR1\n"
    async with admin.get(base, params={"file_format": "TXT", "index": "1"}) as response:
        assert response.status == 404


async def test_resource_by_label_and_numeric_id(admin: aiohttp.ClientSession) -> None:
    eid = await _eid(admin)
    by_label = await rows(admin, f"/data/experiments/{eid}/resources/NOTES/files")
    rid = by_label[0]["cat_ID"]
    by_id = await rows(admin, f"/data/experiments/{eid}/resources/{rid}/files")
    assert by_id == by_label


async def test_single_file_headers(admin: aiohttp.ClientSession) -> None:
    eid = await _eid(admin)
    base = f"/data/experiments/{eid}"
    async with admin.get(f"{base}/scans/1/resources/DICOM/files/1-0001.dcm") as response:
        body = await response.read()
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert response.headers["Content-Length"] == str(len(body))
        assert response.headers["Content-Disposition"] == 'attachment; filename="1-0001.dcm";'
        assert "Last-Modified" in response.headers
        assert "Accept-Ranges" not in response.headers
        assert "ETag" not in response.headers
    assert body[128:132] == b"DICM"
    async with admin.get(f"{base}/resources/NOTES/files/notes.txt") as response:
        assert response.headers["Content-Type"].startswith("text/plain")


async def test_range_and_conditionals_are_ignored(admin: aiohttp.ClientSession) -> None:
    eid = await _eid(admin)
    url = f"/data/experiments/{eid}/scans/1/resources/DICOM/files/1-0002.dcm"
    async with admin.get(url) as response:
        full = await response.read()
        modified = response.headers["Last-Modified"]
    headers = {"Range": "bytes=10-20", "If-Modified-Since": modified, "If-Range": modified}
    async with admin.get(url, headers=headers) as response:
        assert response.status == 200
        assert "Content-Range" not in response.headers
        assert await response.read() == full


async def test_head_gives_headers_without_body(admin: aiohttp.ClientSession) -> None:
    eid = await _eid(admin)
    url = f"/data/experiments/{eid}/resources/NOTES/files/notes.txt"
    async with admin.head(url) as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == str(len(b"Notes of DEMO01_MR1\n"))
        assert await response.read() == b""


async def test_missing_file_is_404_with_empty_body(admin: aiohttp.ClientSession) -> None:
    eid = await _eid(admin)
    async with admin.get(f"/data/experiments/{eid}/resources/NOTES/files/nope.txt") as response:
        assert response.status == 404
        assert await response.read() == b""
    url = f"/data/experiments/{eid}/resources/NOTES/files/nope.txt?accept-not-found=true"
    async with admin.get(url) as response:
        assert response.status == 204


async def test_file_download_needs_read_permission(user: aiohttp.ClientSession) -> None:
    async with user.get("/data/projects/PRIV/experiments/PRIV01_MR1/files?all=true") as response:
        assert response.status == 404
    got = await rows(user, "/data/projects/PUB/experiments/PUB01_MR1/files", all="true")
    assert len(got) == 12
