"""Every import, prearchive, archive and status route of xnat-api §9 answers as the spec says,
under `/data` and `/REST`, and none falls through to aiohttp's bare 404. XNAT attaches these
routes without the `/data/archive` alias (XNATApplication's attachURI): there they are 404."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import aiohttp
import pytest

from tests.emulator.emuhelp import call, rows
from xnatsync.emulator.common import UNROUTED
from xnatsync.emulator.dicom_synth import InstanceSpec, study_zip
from xnatsync.emulator.server import Emulator

SPEC = InstanceSpec(patient_name="Sweep^One", patient_id="SW1", study_key="sweep-1")


async def _send(
    client: aiohttp.ClientSession, method: str, path: str, **kwargs: Any
) -> tuple[int, str, str, bytes]:
    """One request: status, content type, text (if decodable) and raw body; never unrouted."""
    async with client.request(method, path, allow_redirects=False, **kwargs) as response:
        body = await response.read()
        text = body.decode("utf-8", "replace")
        assert UNROUTED not in text, f"{method} {path} is not routed"
        if response.status == 404:
            assert "<h3>" in text or text == "", f"{method} {path}: {text[:80]}"
        return response.status, response.content_type, text, body


@pytest.fixture
async def session_url(emu: Emulator, admin: aiohttp.ClientSession) -> str:
    """A prearchive session in project SWP (manual archive), scan 1 with two files."""
    assert (await _send(admin, "PUT", "/data/projects/SWP"))[0] == 200
    status, _, text, _ = await _send(
        admin,
        "POST",
        "/data/services/import",
        params={"import-handler": "DICOM-zip", "PROJECT_ID": "SWP", "EXPT_LABEL": "E1"},
        data=study_zip(SPEC, [(1, "T1w", 2)]),
        headers={"Content-Type": "application/zip"},
    )
    assert status == 200, text
    return text.strip().removeprefix("/data")


@pytest.mark.parametrize("prefix", ["/data", "/REST"])
async def test_prearchive_reads(
    admin: aiohttp.ClientSession, session_url: str, prefix: str
) -> None:
    url = prefix + session_url
    for path in (f"{prefix}/prearchive", f"{prefix}/prearchive/projects"):
        status, _, text, _ = await _send(admin, "GET", path, params={"format": "json"})
        assert status == 200
        assert session_url in text
    listing = await rows(admin, f"{prefix}/prearchive/projects/SWP")
    assert [r["url"] for r in listing] == [session_url]
    assert (await rows(admin, url))[0]["status"] == "RECEIVING"
    status, _, text, _ = await _send(admin, "GET", url)  # not built: no session document yet
    assert (status, "session document" in text) == (404, True)
    scans = await rows(admin, url + "/scans")
    assert [(r["ID"], r["xsiType"]) for r in scans] == [("1", "xnat:mrScanData")]
    status, ctype, _, body = await _send(admin, "GET", url + "/scans/1", params={"format": "zip"})
    assert (status, ctype) == (200, "application/zip")
    assert sorted(zipfile.ZipFile(io.BytesIO(body)).namelist()) == [
        "1/DICOM/1.dcm",
        "1/DICOM/2.dcm",
    ]
    assert (await _send(admin, "GET", url + "/scans/1"))[0] == 400  # only zip is offered
    assert (await _send(admin, "GET", url + "/scans/9", params={"format": "zip"}))[0] == 404
    (resource,) = await rows(admin, url + "/scans/1/resources")
    assert (resource["label"], resource["file_count"]) == ("DICOM", "2")
    files = await rows(admin, url + "/scans/1/resources/DICOM/files")
    assert [f["Name"] for f in files] == ["1.dcm", "2.dcm"]
    status, _, _, body = await _send(admin, "GET", files[0]["URI"])
    assert status == 200
    assert body[128:132] == b"DICM"
    assert await rows(admin, url + "/resources") == []
    assert (await _send(admin, "GET", url + "/resources/SNAP"))[0] == 404
    assert (await _send(admin, "GET", url + "/resources/SNAP/files"))[0] == 404


async def test_prearchive_actions_and_batch_services(
    admin: aiohttp.ClientSession, session_url: str
) -> None:
    url = "/data" + session_url
    status, ctype, text, _ = await _send(admin, "POST", url, params={"action": "build"})
    assert (status, ctype, text) == (200, "text/uri-list", url + "\r\n")
    status, ctype, text, _ = await _send(admin, "GET", url)
    assert (status, ctype) == (200, "text/xml")
    assert 'label="E1"' in text
    rebuilt = await _send(admin, "POST", "/data/services/prearchive/rebuild", params={"src": url})
    assert rebuilt[0] == 200
    assert (await _send(admin, "PUT", "/data/projects/SWQ"))[0] == 200
    moved = await _send(
        admin,
        "POST",
        "/data/services/prearchive/move",
        params={"src": session_url, "newProject": "SWQ", "async": "false"},
    )
    assert moved[0] == 200
    (row,) = await rows(admin, "/data/prearchive/projects/SWQ")
    deleted = await _send(
        admin, "POST", "/REST/services/prearchive/delete", params={"src": row["url"]}
    )
    assert deleted[0] == 200
    assert await rows(admin, "/data/prearchive/projects/SWQ") == []
    unknown = await _send(admin, "POST", "/data/services/prearchive/delete", params={"src": url})
    assert unknown[0] == 404


async def test_import_archive_and_validate_services(
    admin: aiohttp.ClientSession, session_url: str
) -> None:
    assert (await _send(admin, "GET", "/data/services/import"))[0] == 405
    assert (await _send(admin, "PUT", "/REST/services/import"))[0] == 405
    status, _, text, _ = await _send(admin, "POST", "/data/services/import")
    assert (status, "Unable to identify upload format." in text) == (400, True)
    validate = "/data/services/validate-archive"
    async with admin.post(validate, params={"src": session_url, "format": "json"}) as response:
        assert response.status == 200
        assert (await response.json())["ResultSet"]["Result"] == []  # nothing in the way
    two = await _send(admin, "POST", validate, params=[("src", session_url), ("src", session_url)])
    assert two[0] == 400
    assert (await _send(admin, "POST", validate, params={"src": "/prearchive/projects/SWP/1/X"}))[
        0
    ] == 404
    assert (await _send(admin, "POST", "/data/services/archive"))[0] == 400
    missing = await _send(
        admin, "POST", "/data/services/archive", params={"src": "/prearchive/projects/SWP/1/X"}
    )
    assert missing[0] == 404
    status, _, text, _ = await _send(
        admin, "POST", "/REST/services/archive", params={"src": session_url}
    )
    assert (status, text) == (
        200,
        "/data/archive/projects/SWP/subjects/Sweep_One/experiments/E1\r\n",
    )
    # the same study again: validating it now reports the existing session as a conflict
    again = await _send(
        admin,
        "POST",
        "/data/services/import",
        params={"import-handler": "DICOM-zip", "PROJECT_ID": "SWP", "EXPT_LABEL": "E1"},
        data=study_zip(SPEC, [(1, "T1w", 2)]),
        headers={"Content-Type": "application/zip"},
    )
    src = again[2].strip()
    async with admin.post(validate, params={"src": src, "format": "json"}) as response:
        notices = (await response.json())["ResultSet"]["Result"]
    assert [(n["code"], n["type"]) for n in notices] == [("1", "CONFLICT"), ("16", "CONFLICT")]
    assert (await _send(admin, "DELETE", src))[0] == 200


async def test_status_queue_routes(admin: aiohttp.ClientSession) -> None:
    status, ctype, text, _ = await _send(
        admin, "GET", "/data/status/tx1", params={"format": "json"}
    )
    assert (status, ctype, text) == (200, "application/json", '{"msgs": [[]]}')
    posted = await _send(
        admin, "POST", "/REST/status/tx1", data={"status": "PROCESSING", "message": "half way"}
    )
    assert posted[0] == 200
    assert (await _send(admin, "POST", "/data/status/tx1", data={"status": "NOPE"}))[0] == 400
    async with admin.get("/REST/status/tx1", params={"format": "json"}) as response:
        assert (await response.json()) == {
            "msgs": [[{"status": "PROCESSING", "msg": "half way", "terminal": False}]]
        }
    status, ctype, text, _ = await _send(admin, "GET", "/data/status/tx1")
    assert (status, ctype, text) == (200, "text/plain", "StatusLogtx1 PROCESSING: half way\n")
    assert (await _send(admin, "DELETE", "/data/status/tx1"))[0] == 200
    assert (await _send(admin, "GET", "/data/status/tx1", params={"format": "json"}))[2] == (
        '{"msgs": [[]]}'
    )


@pytest.mark.parametrize(
    "path",
    ["/prearchive", "/prearchive/projects/SWP", "/services/import", "/services/archive",
     "/services/validate-archive", "/services/prearchive/delete", "/status/tx1"],
)  # fmt: skip
async def test_services_and_prearchive_are_not_under_data_archive(
    admin: aiohttp.ClientSession, path: str
) -> None:
    for method in ("GET", "POST"):
        status, text = await call(admin, method, "/data/archive" + path)
        assert (status, UNROUTED in text) == (404, True)  # Restlet's page, as XNAT answers
