"""The per-user cache, `/data/user/cache/resources/{X}/files/{F}` (xnat-api §9, §12)."""

from __future__ import annotations

import io
import zipfile

import aiohttp

from tests.emulator.emuhelp import call, envelope, rows

CACHE = "/data/user/cache/resources"


async def test_create_upload_list_download_delete(admin: aiohttp.ClientSession) -> None:
    assert (await call(admin, "PUT", f"{CACHE}/up1"))[0] == 200
    assert (await call(admin, "PUT", f"{CACHE}/up1"))[0] == 412
    status, _ = await call(
        admin, "PUT", f"{CACHE}/up1/files/sub/a.bin?inbody=true", data=b"in-body bytes"
    )
    assert status == 200
    form = aiohttp.FormData()
    form.add_field("file", b"multipart bytes", filename="ignored.bin")
    assert (await call(admin, "PUT", f"{CACHE}/up1/files/b.bin", data=form))[0] == 200
    async with admin.get(f"{CACHE}/up1/files/sub/a.bin") as response:
        assert (response.status, await response.read()) == (200, b"in-body bytes")
    listing = await envelope(admin, f"{CACHE}/up1/files")
    assert listing["totalRecords"] == "2"
    assert [(r["Name"], r["Size"]) for r in listing["Result"]] == [
        ("b.bin", "15"),
        ("sub/a.bin", "13"),
    ]
    assert listing["Result"][0]["URI"] == f"{CACHE}/up1/files/b.bin"
    assert [r["Resource"] for r in await rows(admin, CACHE)] == ["up1"]
    async with admin.get(f"{CACHE}/up1/files", params={"format": "zip"}) as response:
        assert response.status == 200
        names = zipfile.ZipFile(io.BytesIO(await response.read())).namelist()
    assert sorted(names) == ["b.bin", "sub/a.bin"]
    assert (await call(admin, "DELETE", f"{CACHE}/up1/files/b.bin"))[0] == 200
    assert (await call(admin, "GET", f"{CACHE}/up1/files/b.bin"))[0] == 404
    assert (await call(admin, "DELETE", f"{CACHE}/up1/files/b.bin"))[0] == 404
    assert (await call(admin, "DELETE", f"{CACHE}/up1"))[0] == 200
    assert (await call(admin, "GET", f"{CACHE}/up1/files"))[0] == 404


async def test_post_multipart_and_refusals(admin: aiohttp.ClientSession) -> None:
    form = aiohttp.FormData()
    form.add_field("one", b"1", filename="one.txt")
    form.add_field("two", b"22", filename="two.txt")
    status, text = await call(admin, "POST", "/REST/user/cache/resources/up2/files", data=form)
    assert (status, text) == (201, "File(s) successfully uploaded")
    assert {r["Name"] for r in await rows(admin, f"{CACHE}/up2/files")} == {"one.txt", "two.txt"}
    status, text = await call(admin, "POST", f"{CACHE}/up2/files/x.txt", data=b"x")
    assert status == 400
    assert "PUT" in text
    status, text = await call(
        admin, "PUT", f"{CACHE}/up2/files/x.txt", data=b"x", headers={"Content-Type": "text/plain"}
    )
    assert status == 400
    assert "inbody" in text
    assert (await call(admin, "GET", f"/data/archive{CACHE[5:]}"))[0] == 404  # not an archive route


async def test_each_user_has_their_own(
    admin: aiohttp.ClientSession, user: aiohttp.ClientSession
) -> None:
    await call(admin, "PUT", f"{CACHE}/mine/files/f.txt?inbody=true", data=b"admin's")
    assert await rows(user, CACHE) == []
    assert (await call(user, "GET", f"{CACHE}/mine/files/f.txt"))[0] == 404
