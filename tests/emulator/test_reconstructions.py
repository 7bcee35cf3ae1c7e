"""Reconstructions with their OUT and IN resources (xnat-api §4.5, §9; RT
TestFileUpload.testReconUpload, testReconstructionUpload)."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.emulator.emuhelp import call, envelope, rows
from xnatsync.emulator.server import Emulator
from xnatsync.emulator.store import Store

SESSION = "/data/projects/DEMO/subjects/DEMO01/experiments/DEMO01_MR1"
OCTET = {"Content-Type": "application/octet-stream"}


async def _eid(admin: aiohttp.ClientSession) -> str:
    return (await rows(admin, "/data/projects/DEMO/experiments", label="DEMO01_MR1"))[0]["ID"]


async def _get(session: aiohttp.ClientSession, path: str) -> tuple[int, bytes]:
    async with session.get(path) as response:
        return response.status, await response.read()


async def test_put_upload_and_read_back(admin: aiohttp.ClientSession) -> None:
    recon = f"{SESSION}/reconstructions/1_MR1_2"
    status, body = await call(admin, "PUT", f"{recon}?format=xml&req_format=qs&type=LOCALIZER")
    assert (status, body) == (200, "")
    form = aiohttp.FormData()
    form.add_field("file", b"recon bytes", filename="3.dcm")
    status, _ = await call(admin, "PUT", f"{recon}/resources/TEST/files/3.dcm", data=form)
    assert status == 200
    assert await _get(admin, f"{recon}/resources/TEST/files/3.dcm") == (200, b"recon bytes")
    assert await _get(admin, f"{recon}/files/3.dcm") == (200, b"recon bytes")
    assert await _get(admin, f"{recon}/out/files/3.dcm") == (200, b"recon bytes")
    eid = await _eid(admin)
    assert await _get(admin, f"/REST/experiments/{eid}/reconstructions/1_MR1_2/files/3.dcm") == (
        200,
        b"recon bytes",
    )


async def test_listing_and_item(admin: aiohttp.ClientSession) -> None:
    eid = await _eid(admin)
    assert (await call(admin, "PUT", f"{SESSION}/reconstructions/R1?type=T1"))[0] == 200
    assert (await call(admin, "PUT", f"/data/experiments/{eid}/reconstructions/R2"))[0] == 200
    listing = await envelope(admin, f"/data/experiments/{eid}/reconstructions")
    assert listing["totalRecords"] == "2"
    first = listing["Result"][0]
    assert set(first) == {"xnat_reconstructedimagedata_id", "ID", "type", "baseScanType", "URI"}
    assert (first["ID"], first["type"]) == ("R1", "T1")
    assert first["URI"] == f"/data/experiments/{eid}/reconstructions/R1"
    async with admin.get(first["URI"], params={"format": "json"}) as response:
        assert response.status == 200
        item: dict[str, Any] = (await response.json())["items"][0]
    assert item["meta"]["xsi:type"] == "xnat:reconstructedImageData"
    assert item["data_fields"]["type"] == "T1"
    status, _ = await call(admin, "GET", f"/data/experiments/{eid}/reconstructions/NOPE")
    assert status == 404


async def test_in_and_out_resources_are_apart(admin: aiohttp.ClientSession) -> None:
    recon = f"{SESSION}/reconstructions/R3"
    await call(admin, "PUT", f"{recon}?type=T2")
    put = {"headers": OCTET}
    await call(admin, "PUT", f"{recon}/in/resources/SRC/files/in.txt", data=b"in", **put)
    await call(admin, "PUT", f"{recon}/out/resources/DST/files/out.txt", data=b"out", **put)
    assert [r["label"] for r in await rows(admin, f"{recon}/in/resources")] == ["SRC"]
    out = await rows(admin, f"{recon}/resources")
    assert [(r["label"], r["category"], r["cat_id"], r["cat_desc"]) for r in out] == [
        ("DST", "reconstructions", "R3", "T2")
    ]
    assert await _get(admin, f"{recon}/in/files/in.txt") == (200, b"in")
    assert (await _get(admin, f"{recon}/files/in.txt"))[0] == 404
    # the session's all=true inventory holds the OUT resource, and its URI downloads
    eid = await _eid(admin)
    everything = await rows(admin, f"/data/experiments/{eid}/files", all="true")
    uri = next(r["URI"] for r in everything if r["Name"] == "out.txt")
    assert uri.startswith(f"/data/experiments/{eid}/reconstructions/R3/out/resources/")
    assert await _get(admin, uri) == (200, b"out")


async def test_delete_and_persistence(admin: aiohttp.ClientSession, emu: Emulator) -> None:
    recon = f"{SESSION}/reconstructions/R4"
    await call(admin, "PUT", f"{recon}?type=T1")
    await call(admin, "PUT", f"{recon}/resources/X/files/x.txt", data=b"x", headers=OCTET)
    emu.store.save()
    reloaded = Store.open(emu.store.root)
    eid = await _eid(admin)
    kept = reloaded.experiments[eid].reconstructions["R4"]
    assert (kept.type, list(kept.resources)) == ("T1", ["X"])
    assert reloaded.owner_of(kept.resources["X"]) is kept
    assert (await call(admin, "DELETE", recon))[0] == 200
    assert (await call(admin, "GET", recon))[0] == 404
    assert await rows(admin, f"{SESSION}/reconstructions") == []


async def test_member_rights(user: aiohttp.ClientSession) -> None:
    """`user` may write DEMO (member) but not PUB (public, read-only)."""
    assert (await call(user, "PUT", f"{SESSION}/reconstructions/U1"))[0] == 200
    pub = "/data/projects/PUB/subjects/PUB01/experiments/PUB01_MR1/reconstructions/U2"
    assert (await call(user, "PUT", pub))[0] == 403
