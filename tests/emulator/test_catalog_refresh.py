"""Catalog refresh, `POST /data/services/refresh/catalog` and `PUT /xapi/archive/catalogs/refresh`
(xnat-api §4.3, §4.7): append, checksum and delete bring a catalog in line with the disk."""

from __future__ import annotations

import hashlib
import json

import aiohttp

from tests.emulator.emuhelp import call, rows
from xnatsync.emulator.server import Emulator

NOTES = "/data/projects/DEMO/subjects/DEMO01/experiments/DEMO01_MR1/resources/NOTES"


async def _eid(admin: aiohttp.ClientSession) -> str:
    return (await rows(admin, "/data/projects/DEMO/experiments", label="DEMO01_MR1"))[0]["ID"]


async def test_delete_append_and_checksum(admin: aiohttp.ClientSession, emu: Emulator) -> None:
    eid = await _eid(admin)
    resource = emu.store.experiments[eid].resources["NOTES"]
    root = emu.store.file_path(resource, "")
    (root / "notes.txt").unlink()  # bytes lost behind the catalog's back
    (root / "late.txt").write_bytes(b"arrived late")  # bytes the catalog does not know
    resource.files["sub/measures.csv"].digest = ""  # a digest never computed
    status, text = await call(
        admin,
        "POST",
        "/data/services/refresh/catalog",
        params={"resource": f"/archive/experiments/{eid}"},
    )
    assert (status, text) == (200, "")
    listed = {r["Name"]: r for r in await rows(admin, f"{NOTES}/files")}
    assert set(listed) == {"measures.csv", "late.txt"}
    assert listed["late.txt"]["digest"] == hashlib.md5(b"arrived late").hexdigest()
    measures = (root / "sub" / "measures.csv").read_bytes()
    assert listed["measures.csv"]["digest"] == hashlib.md5(measures).hexdigest()


async def test_only_the_asked_operation_runs(admin: aiohttp.ClientSession, emu: Emulator) -> None:
    eid = await _eid(admin)
    resource = emu.store.experiments[eid].resources["NOTES"]
    root = emu.store.file_path(resource, "")
    (root / "notes.txt").unlink()
    (root / "late.txt").write_bytes(b"x")
    path = "/archive/projects/DEMO/subjects/DEMO01/experiments/DEMO01_MR1/resources/NOTES"
    status, _ = await call(
        admin,
        "POST",
        "/data/services/refresh/catalog",
        params={"resource": path, "options": "append"},
    )
    assert status == 200
    names = {r["Name"] for r in await rows(admin, f"{NOTES}/files")}
    assert names == {"notes.txt", "measures.csv", "late.txt"}  # nothing deleted


async def test_xapi_twin(admin: aiohttp.ClientSession, emu: Emulator) -> None:
    eid = await _eid(admin)
    resource = emu.store.experiments[eid].resources["NOTES"]
    (emu.store.file_path(resource, "") / "notes.txt").unlink()
    body = json.dumps([f"/archive/experiments/{eid}"])
    headers = {"Content-Type": "application/json"}
    status, _ = await call(
        admin, "PUT", "/xapi/archive/catalogs/refresh/Delete", data=body, headers=headers
    )
    assert status == 200
    assert {r["Name"] for r in await rows(admin, f"{NOTES}/files")} == {"measures.csv"}
    status, text = await call(
        admin, "PUT", "/xapi/archive/catalogs/refresh/Shuffle", data=body, headers=headers
    )
    assert status == 400
    assert "Shuffle" in text


async def test_bad_paths_and_rights(
    admin: aiohttp.ClientSession, user: aiohttp.ClientSession
) -> None:
    service = "/data/services/refresh/catalog"
    status, text = await call(
        admin, "POST", service, params={"resource": "/archive/experiments/NOPE"}
    )
    assert status == 400
    assert "NOPE" in text
    assert (await call(admin, "POST", service))[0] == 400
    assert (await call(user, "POST", service, params={"resource": "/archive/projects/PUB"}))[
        0
    ] == 403
    assert (await call(user, "POST", service, params={"resource": "/archive/projects/PRIV"}))[
        0
    ] == 404
    assert (await call(user, "POST", service, params={"resource": "/archive/projects/DEMO"}))[
        0
    ] == 200
