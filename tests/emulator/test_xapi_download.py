"""The XAPI bulk download, `POST /xapi/archive/download` then `GET …/{id}/zip` (xnat-api §4.2)."""

from __future__ import annotations

import io
import json
import zipfile

import aiohttp

from tests.emulator.emuhelp import call, rows

JSON = {"Content-Type": "application/json"}


async def _session(admin: aiohttp.ClientSession) -> str:
    row = (await rows(admin, "/data/projects/DEMO/experiments", label="DEMO01_MR1"))[0]
    sid = (await rows(admin, "/data/projects/DEMO/subjects", label="DEMO01"))[0]["ID"]
    return f"DEMO:{sid}:DEMO01_MR1:{row['ID']}"


async def _catalog(session: aiohttp.ClientSession, selection: dict[str, list[str]]) -> str:
    status, text = await call(
        session, "POST", "/xapi/archive/download", data=json.dumps(selection), headers=JSON
    )
    assert status == 200, text
    return text


async def test_selection_zips_chosen_scans_and_resources(admin: aiohttp.ClientSession) -> None:
    scans = await rows(admin, "/data/projects/DEMO/subjects/DEMO01/experiments/DEMO01_MR1/scans")
    scan1 = next(s for s in scans if s["ID"] == "1")
    selection = {
        "sessions": [await _session(admin)],
        "scan_types": [scan1["type"]],
        "scan_formats": ["DICOM"],
        "resources": ["NOTES"],
    }
    catalog = await _catalog(admin, selection)
    async with admin.get(f"/xapi/archive/download/{catalog}/zip") as response:
        assert response.status == 200
        names = sorted(zipfile.ZipFile(io.BytesIO(await response.read())).namelist())
    folder = f"DEMO01_MR1/scans/1-{scan1['type']}/resources/DICOM/files/"
    same_type = [s["ID"] for s in scans if s["type"] == scan1["type"]]
    assert sum(n.startswith("DEMO01_MR1/scans/") for n in names) == 4 * len(same_type)
    assert f"{folder}1-0001.dcm" in names
    assert "DEMO01_MR1/resources/NOTES/files/sub/measures.csv" in names
    async with admin.get(f"/xapi/archive/download/{catalog}") as response:
        assert response.status == 200
        assert f'name="{folder}1-0001.dcm"' in await response.text()


async def test_without_types_and_formats_no_scans(admin: aiohttp.ClientSession) -> None:
    catalog = await _catalog(admin, {"sessions": [await _session(admin)], "resources": ["NOTES"]})
    async with admin.get(f"/xapi/archive/download/{catalog}/zip") as response:
        names = zipfile.ZipFile(io.BytesIO(await response.read())).namelist()
    assert all(n.startswith("DEMO01_MR1/resources/NOTES/") for n in names)


async def test_refusals(admin: aiohttp.ClientSession, user: aiohttp.ClientSession) -> None:
    post = "/xapi/archive/download"
    assert (await call(admin, "POST", post, data="[1]", headers=JSON))[0] == 400
    status, text = await call(admin, "POST", post, data='{"sessionz": []}', headers=JSON)
    assert (status, "sessionz" in text) == (400, True)
    assert (await call(admin, "POST", post, data="{}", headers=JSON))[0] == 204
    bad = json.dumps({"sessions": ["DEMO:only-two"]})
    assert (await call(admin, "POST", post, data=bad, headers=JSON))[0] == 400
    priv = (await rows(admin, "/data/projects/PRIV/experiments"))[0]["ID"]
    secret = json.dumps({"sessions": [f"PRIV:x:y:{priv}"], "resources": ["NOTES"]})
    assert (await call(user, "POST", post, data=secret, headers=JSON))[0] == 403
    catalog = await _catalog(admin, {"sessions": [await _session(admin)], "resources": ["NOTES"]})
    assert (await call(user, "GET", f"/xapi/archive/download/{catalog}/zip"))[0] == 404
    assert (await call(admin, "GET", "/xapi/archive/download/nope/zip"))[0] == 404


async def test_with_size(admin: aiohttp.ClientSession) -> None:
    selection = {"sessions": [await _session(admin)], "resources": ["NOTES"]}
    async with admin.post(
        "/xapi/archive/downloadwithsize", data=json.dumps(selection), headers=JSON
    ) as response:
        assert response.status == 200
        body = await response.json()
    listed = await rows(
        admin, "/data/projects/DEMO/subjects/DEMO01/experiments/DEMO01_MR1/resources/NOTES/files"
    )
    assert body["size"] == str(sum(int(r["Size"]) for r in listed))
