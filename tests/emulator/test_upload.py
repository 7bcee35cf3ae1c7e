"""Writes: file uploads (in-body, multipart, extract, duplicates, overwrite), container PUTs,
relabel and DELETEs (xnat-api §4.4–§4.6, §11.9–§11.11, §11.15)."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from collections.abc import AsyncIterator

import aiohttp

from tests.emulator.emuhelp import rows
from xnatsync.emulator.server import Emulator

SESSION = "/data/projects/DEMO/subjects/DEMO01/experiments/DEMO01_MR1"
OUT = f"{SESSION}/resources/OUT/files"


async def test_in_body_upload_creates_resource_and_digest(admin: aiohttp.ClientSession) -> None:
    data = b"result\n" * 100
    async with admin.put(f"{OUT}/a/result.txt?inbody=true&content=RESULT", data=data) as response:
        assert response.status == 200
        assert await response.read() == b""
    got = await rows(admin, OUT)
    assert [(r["Name"], r["Size"], r["digest"], r["file_content"]) for r in got] == [
        ("result.txt", str(len(data)), hashlib.md5(data).hexdigest(), "RESULT")
    ]
    async with admin.get(got[0]["URI"]) as response:
        assert await response.read() == data


async def test_upload_by_numeric_resource_id(admin: aiohttp.ClientSession) -> None:
    notes = await rows(admin, f"{SESSION}/resources/NOTES/files")
    rid = notes[0]["cat_ID"]
    url = f"{SESSION}/resources/{rid}/files/extra.txt"
    async with admin.put(url, data=b"x", headers={"Content-Type": "text/plain"}) as response:
        assert response.status == 200
    names = [r["Name"] for r in await rows(admin, f"{SESSION}/resources/NOTES/files")]
    assert "extra.txt" in names
    labels = [r["label"] for r in await rows(admin, f"{SESSION}/resources")]
    assert labels == ["NOTES"]


async def test_duplicate_without_overwrite_keeps_old_bytes(admin: aiohttp.ClientSession) -> None:
    headers = {"Content-Type": "application/octet-stream"}
    async with admin.put(f"{OUT}/x.bin", data=b"old", headers=headers) as response:
        assert response.status == 200
    async with admin.put(f"{OUT}/x.bin", data=b"new!", headers=headers) as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        assert await response.json(content_type=None) == {"duplicates": ["x.bin"]}
    async with admin.get(f"{OUT}/x.bin") as response:
        assert await response.read() == b"old"
    async with admin.put(f"{OUT}/x.bin?overwrite=true", data=b"new!", headers=headers) as r:
        assert r.status == 200
        assert await r.read() == b""
    async with admin.get(f"{OUT}/x.bin") as response:
        assert await response.read() == b"new!"
    assert (await rows(admin, OUT))[0]["digest"] == hashlib.md5(b"new!").hexdigest()


async def test_in_body_needs_content_length(admin: aiohttp.ClientSession) -> None:
    headers = {"Content-Type": "application/octet-stream"}
    async with admin.put(f"{OUT}/empty.bin", data=b"", headers=headers) as response:
        assert response.status == 500

    async def chunks() -> AsyncIterator[bytes]:
        yield b"abc"

    async with admin.put(f"{OUT}/chunked.bin", data=chunks(), headers=headers) as response:
        assert response.status == 500
    bare = admin.put(f"{OUT}/nothing.bin", skip_auto_headers=["Content-Type"])
    async with bare as response:  # no type, no body: "didn't provide any data"
        assert response.status == 400


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mr_1/1.dcm", b"one")
        archive.writestr("mr_1/2.dcm", b"two")
    return buffer.getvalue()


async def test_extract_zip_in_body(admin: aiohttp.ClientSession) -> None:
    headers = {"Content-Type": "application/zip"}
    url = f"{OUT}/data.zip?extract=true&inbody=true"
    async with admin.put(url, data=_zip_bytes(), headers=headers) as response:
        assert response.status == 200
    got = await rows(admin, OUT)
    assert sorted(r["URI"].split("/files/")[1] for r in got) == ["mr_1/1.dcm", "mr_1/2.dcm"]
    async with admin.post(f"{OUT}?extract=true", data=_zip_bytes(), headers=headers) as response:
        assert await response.json(content_type=None) == {
            "duplicates": ["mr_1/1.dcm", "mr_1/2.dcm"]
        }


async def test_multipart_upload_and_tar_extract(admin: aiohttp.ClientSession) -> None:
    form = aiohttp.FormData()
    form.add_field("file", b"part bytes", filename="part.txt")
    async with admin.post(OUT, data=form) as response:
        assert response.status == 200
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("t/inner.txt")
        info.size = 5
        archive.addfile(info, io.BytesIO(b"inner"))
    form = aiohttp.FormData()
    form.add_field("file", buffer.getvalue(), filename="bundle.tgz")
    async with admin.post(f"{OUT}?extract=true", data=form) as response:
        assert response.status == 200
    names = sorted(r["URI"].split("/files/")[1] for r in await rows(admin, OUT))
    assert names == ["part.txt", "t/inner.txt"]


async def test_put_resource_then_conflict(admin: aiohttp.ClientSession) -> None:
    async with admin.put(f"{SESSION}/resources/QC?format=PDF&content=qc") as response:
        assert response.status == 200
    async with admin.put(f"{SESSION}/resources/QC") as response:
        assert response.status == 409
        assert "<h3>Specified resource already exists.</h3>" in await response.text()
    got = await rows(admin, f"{SESSION}/resources")
    assert {r["label"]: r["format"] for r in got}["QC"] == "PDF"
    async with admin.delete(f"{SESSION}/resources/QC") as response:
        assert response.status == 200
    assert "QC" not in {r["label"] for r in await rows(admin, f"{SESSION}/resources")}


async def test_put_subject_experiment_scan(admin: aiohttp.ClientSession) -> None:
    async with admin.put("/data/projects/DEMO/subjects/NEW1?gender=F") as response:
        assert response.status == 201
        sid = await response.text()
    async with admin.put("/data/projects/DEMO/subjects/NEW1") as response:
        assert response.status == 200
        assert await response.text() == sid
    url = "/data/projects/DEMO/subjects/NEW1/experiments/NEW1_MR"
    url += "?xsiType=xnat:mrSessionData&date=03/04/2024"
    async with admin.put(url) as response:
        assert response.status == 201
        eid = await response.text()
    async with admin.put(url) as response:
        assert response.status == 200
        assert await response.text() == eid
    exp = (await rows(admin, "/data/projects/DEMO/experiments", label="NEW1_MR"))[0]
    assert (exp["ID"], exp["date"]) == (eid, "2024-03-04")
    scan = f"/data/experiments/{eid}/scans/7"
    async with admin.put(f"{scan}?xsiType=xnat:mrScanData&type=DWI") as response:
        assert response.status == 200
    async with admin.put(f"{scan}?xsiType=xnat:ctScanData") as response:
        assert response.status == 409
    async with admin.put(f"/data/experiments/{eid}/scans/8") as response:
        assert response.status == 400
    got = await rows(admin, f"/data/experiments/{eid}/scans")
    assert [(r["ID"], r["type"]) for r in got] == [("7", "DWI")]


async def test_experiment_in_other_project_conflicts(admin: aiohttp.ClientSession) -> None:
    eid = (await rows(admin, "/data/projects/PUB/experiments"))[0]["ID"]
    async with admin.put(f"/data/projects/DEMO/subjects/DEMO01/experiments/{eid}") as response:
        assert response.status == 409


async def test_relabel_keeps_files_reachable(admin: aiohttp.ClientSession) -> None:
    async with admin.put(f"{SESSION}?label=RENAMED") as response:
        assert response.status == 200
    got = await rows(admin, "/data/projects/DEMO/experiments/RENAMED/resources/NOTES/files")
    assert len(got) == 2
    async with admin.get("/data/projects/DEMO/experiments/DEMO01_MR1?format=json") as response:
        assert response.status == 404
    async with admin.put("/data/projects/DEMO/subjects/DEMO02?label=DEMO02B") as response:
        assert response.status == 200
    labels = [r["label"] for r in await rows(admin, "/data/projects/DEMO/subjects")]
    assert "DEMO02B" in labels


async def test_deletes(admin: aiohttp.ClientSession, emu: Emulator) -> None:
    base = f"{SESSION}/resources/NOTES/files"
    async with admin.delete(f"{base}/sub") as response:  # a folder
        assert response.status == 200
    assert [r["Name"] for r in await rows(admin, base)] == ["notes.txt"]
    async with admin.delete(f"{base}/nope.txt") as response:
        assert response.status == 404
    async with admin.delete(f"{SESSION}/scans/3") as response:
        assert response.status == 200
    assert [r["ID"] for r in await rows(admin, f"{SESSION}/scans")] == ["1", "2"]
    async with admin.delete(f"{SESSION}?removeFiles=true") as response:
        assert response.status == 200
    async with admin.delete("/data/projects/DEMO/subjects/DEMO01") as response:
        assert response.status == 200
    labels = [r["label"] for r in await rows(admin, "/data/projects/DEMO/subjects")]
    assert labels == ["DEMO02", "DEMO03"]
    left = list((emu.store.root / "archive" / "DEMO").glob("*/1-0001.dcm"))
    assert len(left) == 2  # DEMO02_MR1 and DEMO03_CT1 remain; DEMO01's bytes are gone


async def test_projects_put(admin: aiohttp.ClientSession, user: aiohttp.ClientSession) -> None:
    async with user.put("/data/projects/MINE?name=Mine&accessibility=private") as response:
        assert response.status == 200
    assert "MINE" in {r["ID"] for r in await rows(user, "/data/projects")}
    async with admin.put("/data/projects/CLASH?secondary_ID=demo") as response:
        assert response.status == 409
    async with user.put("/data/projects/PUB?name=Hijack") as response:
        assert response.status == 403
    async with admin.put("/data/projects/DEMO?alias=DEMO_ALIAS") as response:
        assert response.status == 200
    assert len(await rows(admin, "/data/projects/DEMO_ALIAS/subjects")) == 3


async def test_write_permissions(user: aiohttp.ClientSession) -> None:
    url = "/data/projects/PUB/experiments/PUB01_MR1/resources/X/files/f.txt"
    async with user.put(url, data=b"x", headers={"Content-Type": "text/plain"}) as response:
        assert response.status == 403
    async with user.put(f"{OUT}/f.txt", data=b"x", headers={"Content-Type": "text/plain"}) as r:
        assert r.status == 200
