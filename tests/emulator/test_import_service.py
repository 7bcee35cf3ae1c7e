"""The emulator's import service, prearchive and archive routes, through HTTP (§5, §8.4, §11).

The app under test holds only the import/prearchive/archive/schema routes, a store and a stub
authentication middleware (`X-Test-User`), so these tests do not depend on the rest of the
emulator; the compatibility suite covers the assembled server.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import tarfile
import warnings
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web_exceptions import NotAppKeyWarning

from xnatsync.emulator import common, importer, schema
from xnatsync.emulator.dicom_import import as_archived, read_header
from xnatsync.emulator.dicom_synth import InstanceSpec, make_instance, make_zip, study_zip
from xnatsync.emulator.prearchive_routes import PREARCHIVE_KEY
from xnatsync.emulator.settings import User
from xnatsync.emulator.store import Store

USERS = {
    "admin": User("admin", "admin", admin=True),
    "alice": User("alice", "alice"),
    "bob": User("bob", "bob"),
}
BASE = InstanceSpec(patient_name="Doe^Jane", patient_id="PID001", study_key="s1")
ZIP_HEADERS = {"Content-Type": "application/zip"}


@web.middleware
async def _stub_auth(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    with warnings.catch_warnings():
        # common.USER_KEY may still be a plain string, which aiohttp 3.14 warns about
        warnings.simplefilter("ignore", NotAppKeyWarning)
        request[common.USER_KEY] = USERS[request.headers.get("X-Test-User", "admin")]
    return await handler(request)


class FakeClock:
    """A settable clock for the prearchive (timestamps and idle auto-build)."""

    def __init__(self) -> None:
        self.now = dt.datetime(2024, 6, 19, 9, 14, 25, 123000)

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
async def env(
    tmp_path: Path,
) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], Store, FakeClock]]:
    store = Store(tmp_path / "store")
    project = store.create_project("P1", owner="alice")
    project.members["alice"] = "Owners"
    store.create_project("P2", owner="alice").members["alice"] = "Owners"
    store.create_project("Q", owner="bob")
    app = web.Application(middlewares=[_stub_auth], client_max_size=1 << 30)
    app[common.STORE_KEY] = store
    importer.add_routes(app)
    schema.add_routes(app)
    clock = FakeClock()
    app[PREARCHIVE_KEY].clock = clock
    async with TestClient(TestServer(app)) as client:
        yield client, store, clock


Client = TestClient[web.Request, web.Application]


async def _import(
    client: Client, body: bytes, query: str, **headers: str
) -> aiohttp.ClientResponse:
    return await client.post(
        f"/data/services/import?{query}", data=body, headers=headers or ZIP_HEADERS
    )


async def test_dicom_zip_goes_to_prearchive_receiving(env: tuple[Client, Store, FakeClock]) -> None:
    client, store, _ = env
    body = study_zip(BASE, [(1, "T1w", 2), (2, "DWI b1000", 3)], folder="mr_1/")
    resp = await _import(
        client, body, "import-handler=DICOM-zip&PROJECT_ID=P1&SUBJECT_ID=S1&EXPT_LABEL=E1"
    )
    assert resp.status == 200
    assert resp.content_type == "text/uri-list"
    text = await resp.text()
    assert text == "/data/prearchive/projects/P1/20240619_091425123/E1\r\n"
    listing = await (await client.get("/data/prearchive/projects/P1?format=json")).json()
    assert "totalRecords" not in listing["ResultSet"]
    (row,) = listing["ResultSet"]["Result"]
    assert set(row) == {
        "project", "timestamp", "lastmod", "uploaded", "scan_date", "scan_time", "subject",
        "folderName", "name", "tag", "status", "url", "autoarchive", "prevent_anon",
        "prevent_auto_commit", "SOURCE", "VISIT", "PROTOCOL", "TIMEZONE",
    }  # fmt: skip
    assert row["status"] == "RECEIVING"
    assert row["url"] == "/prearchive/projects/P1/20240619_091425123/E1"
    assert row["subject"] == "S1"
    assert row["tag"] == BASE.study_uid
    assert row["scan_date"] == "2024-01-02 00:00:00.000"
    dt.datetime.strptime(row["scan_date"], "%Y-%m-%d %H:%M:%S.%f")
    dt.datetime.strptime(row["lastmod"], "%Y-%m-%d %H:%M:%S.%f")
    assert row["scan_time"] == "10:15:00"
    assert store.experiment("P1", "E1") is None


async def test_repeat_upload_same_uri_and_labels_split_sessions(
    env: tuple[Client, Store, FakeClock],
) -> None:
    client, _, clock = env
    first = study_zip(BASE, [(1, "T1w", 1)])
    second = study_zip(BASE, [(2, "T2w", 1)])
    q = "import-handler=DICOM-zip&PROJECT_ID=P1&SUBJECT_ID=S1&EXPT_LABEL=E1"
    uri1 = await (await _import(client, first, q)).text()
    clock.now += dt.timedelta(seconds=3)
    uri2 = await (await _import(client, second, q)).text()
    assert uri1 == uri2
    other = await (await _import(client, first, q.replace("EXPT_LABEL=E1", "EXPT_LABEL=E2"))).text()
    assert other != uri1
    scans = await (await client.get(uri1.strip() + "/scans?format=json")).json()
    assert sorted(r["ID"] for r in scans["ResultSet"]["Result"]) == ["1", "2"]


async def test_default_identification_from_headers(env: tuple[Client, Store, FakeClock]) -> None:
    client, _, _ = env
    spec = InstanceSpec(
        patient_name="Smith^Ann", patient_id="Visit 7", study_key="x", study_description="P2"
    )
    resp = await _import(
        client, make_zip([("a/1.dcm", make_instance(spec))]), "import-handler=DICOM-zip"
    )
    assert resp.status == 200
    assert (await resp.text()).startswith("/data/prearchive/projects/P2/")
    (row,) = (await (await client.get("/data/prearchive/projects/P2?format=json")).json())[
        "ResultSet"
    ]["Result"]
    assert (row["subject"], row["folderName"]) == ("Smith_Ann", "Visit_7")
    unknown = InstanceSpec(study_key="y", study_description="nope")
    resp = await _import(
        client, make_zip([("1.dcm", make_instance(unknown))]), "import-handler=DICOM-zip"
    )
    assert (await resp.text()).startswith("/data/prearchive/projects/Unassigned/")


async def test_non_dicom_member_is_400_unless_ignored(env: tuple[Client, Store, FakeClock]) -> None:
    client, _, _ = env
    good = make_instance(BASE)
    body = make_zip([("1.dcm", good), ("notes.txt", b"hello")])
    q = "import-handler=DICOM-zip&PROJECT_ID=P1&SUBJECT_ID=S1&EXPT_LABEL=E1"
    resp = await _import(client, body, q)
    assert resp.status == 400
    assert "<h3>unable to read DICOM object notes.txt</h3>" in await resp.text()
    rows = (await (await client.get("/data/prearchive/projects/P1?format=json")).json())[
        "ResultSet"
    ]["Result"]
    assert len(rows) == 1  # the member before the bad one stays
    resp = await _import(client, body, q + "&Ignore-Unparsable=true")
    assert resp.status == 200


async def test_archive_dest_archives_in_request(env: tuple[Client, Store, FakeClock]) -> None:
    client, store, _ = env
    body = study_zip(BASE, [(3, "T1 MPRAGE", 2), (5, "rest", 1)], folder="x/y/")
    resp = await _import(
        client,
        body,
        "import-handler=DICOM-zip&dest=/archive/projects/P1/subjects/S9/experiments/E9",
    )
    assert resp.status == 200
    assert await resp.text() == "/data/archive/projects/P1/subjects/S9/experiments/E9\r\n"
    experiment = store.experiment("P1", "E9")
    assert experiment is not None
    assert experiment.xsi_type == "xnat:mrSessionData"
    assert experiment.date == "2024-01-02"
    assert store.subjects[experiment.subject].label == "S9"
    assert sorted(experiment.scans) == ["3", "5"]
    scan = experiment.scans["3"]
    assert (scan.xsi_type, scan.type, scan.series_description) == (
        "xnat:mrScanData",
        "T1 MPRAGE",
        "T1 MPRAGE",
    )
    resource = scan.resources["DICOM"]
    assert sorted(resource.files) == ["1.dcm", "2.dcm"]
    for name, entry in resource.files.items():
        data = store.file_path(resource, name).read_bytes()
        assert entry.digest == hashlib.md5(data).hexdigest()
    assert (await (await client.get("/data/prearchive/projects/P1?format=json")).json())[
        "ResultSet"
    ]["Result"] == []
    again = await _import(
        client,
        body,
        "import-handler=DICOM-zip&dest=/archive/projects/P1/subjects/S9/experiments/E9",
    )
    assert again.status == 400  # DICOM-zip conflict: session exists, overwrite=none
    dest = "import-handler=DICOM-zip&dest=/archive/projects/P1/subjects/S9/experiments/E9"
    resent = await _import(client, body, dest + "&overwrite=append")
    assert resent.status == 400  # the same files again: duplicates, not merged (item 5)
    merged = await _import(client, body, dest + "&overwrite=append&overwrite_files=true")
    assert merged.status == 200


async def test_gradual_dicom_one_instance_per_request(env: tuple[Client, Store, FakeClock]) -> None:
    client, _, _ = env
    uris = set()
    for n in (1, 2, 3):
        data = make_instance(InstanceSpec(study_key="g", instance_number=n))
        resp = await client.post(
            "/data/services/import?PROJECT_ID=P1&SUBJECT_ID=S&EXPT_LABEL=G",
            data=data,
            headers={"Content-Type": "application/dicom"},
        )
        assert resp.status == 200
        uris.add(await resp.text())
    assert len(uris) == 1
    uri = uris.pop().strip()
    files = await (await client.get(uri + "/scans/1/resources/DICOM/files?format=json")).json()
    names = [r["Name"] for r in files["ResultSet"]["Result"]]
    assert len(names) == 3
    assert all(n.startswith(InstanceSpec(study_key="g").study_uid + "-1-") for n in names)
    changed = make_instance(
        InstanceSpec(study_key="g", instance_number=1, series_description="other")
    )
    resp = await client.post(
        "/data/services/import?import-handler=gradual-DICOM&PROJECT_ID=P1&SUBJECT_ID=S&EXPT_LABEL=G",
        data=changed,
        headers={"Content-Type": "application/dicom"},
    )
    assert resp.status == 409


async def test_multipart_tar_and_bad_requests(env: tuple[Client, Store, FakeClock]) -> None:
    client, _, _ = env
    form = aiohttp.FormData()
    form.add_field("import-handler", "DICOM-zip")
    form.add_field("PROJECT_ID", "P1")
    form.add_field("EXPT_LABEL", "M1")
    form.add_field(
        "file", study_zip(BASE, [(1, "T1", 2)]), filename="up.zip", content_type="application/zip"
    )
    resp = await client.post("/data/services/import", data=form)
    assert resp.status == 200
    assert (await resp.text()).endswith("/M1\r\n")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = make_instance(InstanceSpec(study_key="t"))
        info = tarfile.TarInfo("dir/one.dcm")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    resp = await _import(
        client,
        buffer.getvalue(),
        "import-handler=DICOM-zip&PROJECT_ID=P1",
        **{"Content-Type": "application/x-gtar"},
    )
    assert resp.status == 200
    assert (await client.get("/data/services/import")).status == 405
    assert (await client.put("/data/services/import")).status == 405
    assert (await _import(client, b"", "import-handler=DICOM-zip")).status == 400
    assert (await _import(client, b"PK", "import-handler=nope")).status == 404
    assert (await _import(client, study_zip(BASE, [(1, "T1", 1)]), "dest=/elsewhere")).status == 400
    resp = await _import(
        client, study_zip(BASE, [(1, "T1", 1)]), "format=txt&PROJECT_ID=P1&EXPT_LABEL=T"
    )
    assert resp.content_type == "text/plain"
    assert not (await resp.text()).endswith("\r\n")


async def test_commit_build_move_delete(env: tuple[Client, Store, FakeClock]) -> None:
    client, store, _ = env
    q = "import-handler=DICOM-zip&PROJECT_ID=P1&SUBJECT_ID=S1&EXPT_LABEL=E1"
    uri = (await (await _import(client, study_zip(BASE, [(1, "T1", 1)]), q)).text()).strip()
    resp = await client.post(uri + "?action=build")
    assert resp.status == 200
    assert (await (await client.get(uri + "?format=json")).json())["ResultSet"]["Result"][0][
        "status"
    ] == "READY"
    resp = await client.post(uri + "?action=commit", allow_redirects=False)
    assert resp.status == 200
    assert await resp.text() == uri  # no trailing CRLF (§11.3)
    moved = await client.post(
        uri, data={"action": "move", "newProject": "P2"}, allow_redirects=False
    )
    assert moved.status == 301
    new_uri = (await moved.text()).strip()
    assert new_uri.startswith("/data/prearchive/projects/P2/")
    assert (await client.get(uri + "?format=json")).status == 404
    resp = await client.post(new_uri + "?action=commit&AA=true", allow_redirects=False)
    assert resp.status == 301
    assert resp.content_type == "text/plain"
    assert await resp.text() == "/data/archive/projects/P2/subjects/S1/experiments/E1"
    assert "Location" not in resp.headers
    assert store.experiment("P2", "E1") is not None
    uri = (await (await _import(client, study_zip(BASE, [(1, "T1", 1)]), q)).text()).strip()
    assert (await client.delete(uri)).status == 200
    assert (await client.get(uri + "?format=json")).status == 404


async def test_archive_service_src_forms_busy_unknown(env: tuple[Client, Store, FakeClock]) -> None:
    client, store, _ = env
    q = "import-handler=DICOM-zip&PROJECT_ID=P1&SUBJECT_ID=S1&EXPT_LABEL=A1"
    uri = (await (await _import(client, study_zip(BASE, [(1, "T1", 2)]), q)).text()).strip()
    listing_url = uri.removeprefix("/data")
    assert (await client.post(uri + "?action=set-status&status=ARCHIVING")).status == 200
    busy = await client.post(f"/data/services/archive?src={listing_url}")
    assert busy.status == 403
    await client.post(uri + "?action=reset-status")
    resp = await client.post(f"/data/services/archive?src={listing_url}&auto-archive=false")
    assert resp.status == 200
    assert resp.content_type == "text/uri-list"
    assert await resp.text() == "/data/archive/projects/P1/subjects/S1/experiments/A1\r\n"
    assert (await client.post(f"/data/services/archive?src={uri}")).status == 404
    uri2 = (
        await (await _import(client, study_zip(BASE, [(1, "T1", 2)]), q.replace("A1", "A2"))).text()
    ).strip()
    resp = await client.post(f"/data/services/archive?src={uri2}")
    assert resp.status == 200
    experiment = store.experiment("P1", "A2")
    assert experiment is not None
    assert experiment.scans["1"].resources["DICOM"].files


async def test_prearchive_permissions_codes_and_batch(env: tuple[Client, Store, FakeClock]) -> None:
    client, store, clock = env
    q = "import-handler=DICOM-zip&PROJECT_ID=P1&SUBJECT_ID=S1&EXPT_LABEL=B1"
    uri = (await (await _import(client, study_zip(BASE, [(1, "T1", 1)]), q)).text()).strip()
    bob = {"X-Test-User": "bob"}
    rows = (await (await client.get("/data/prearchive/projects?format=json", headers=bob)).json())[
        "ResultSet"
    ]["Result"]
    assert rows == []
    assert (await client.get(uri + "?format=json", headers=bob)).status == 404
    refused = await _import(client, study_zip(BASE, [(1, "T1", 1)]), q, **ZIP_HEADERS, **bob)
    assert refused.status == 403
    p2 = store.project("P2")
    assert p2 is not None
    p2.prearchive_code = 4  # set through the project settings route of the full emulator
    assert await (await client.get("/data/projects/P2/prearchive_code")).text() == "4"
    resp = await client.post(
        "/data/services/prearchive/move?format=csv",
        data={"src": uri.removeprefix("/data"), "newProject": "P2", "async": "false"},
    )
    assert resp.status == 200
    assert "P2" in await resp.text()
    (row,) = (await (await client.get("/data/prearchive/projects/P2?format=json")).json())[
        "ResultSet"
    ]["Result"]
    assert row["autoarchive"] == "AutoArchive"
    clock.now += dt.timedelta(minutes=6)  # idle past the rebuilder interval → built and archived
    assert (await (await client.get("/data/prearchive/projects?format=json")).json())["ResultSet"][
        "Result"
    ] == []
    assert store.experiment("P2", "B1") is not None
    uri = (
        await (
            await _import(client, study_zip(BASE, [(1, "T1", 1)]), q + "&prevent_auto_commit=true")
        ).text()
    ).strip()
    clock.now += dt.timedelta(minutes=6)
    (row,) = (await (await client.get("/data/prearchive/projects/P1?format=json")).json())[
        "ResultSet"
    ]["Result"]
    assert (row["status"], row["prevent_auto_commit"]) == ("RECEIVING", "true")
    resp = await client.post(f"/data/services/prearchive/delete?src={uri}")
    assert resp.status == 200
    assert (await (await client.get("/data/prearchive/projects/P1?format=json")).json())[
        "ResultSet"
    ]["Result"] == []


async def test_prearchive_files_and_zip(env: tuple[Client, Store, FakeClock]) -> None:
    client, _, _ = env
    q = "import-handler=DICOM-zip&PROJECT_ID=P1&SUBJECT_ID=S1&EXPT_LABEL=F1"
    body = study_zip(BASE, [(4, "T1", 2)], folder="mr_1/")
    uri = (await (await _import(client, body, q)).text()).strip()
    res = (await (await client.get(uri + "/scans/4/resources?format=json")).json())["ResultSet"][
        "Result"
    ]
    assert res == [{"label": "DICOM", "file_count": "2", "file_size": res[0]["file_size"]}]
    files = (await (await client.get(uri + "/scans/4/resources/DICOM/files?format=json")).json())[
        "ResultSet"
    ]["Result"]
    assert [f["Name"] for f in files] == ["1.dcm", "2.dcm"]
    with zipfile.ZipFile(io.BytesIO(body)) as upload:
        original = {n.rsplit("/", 1)[1]: upload.read(n) for n in upload.namelist()}
    got = await (await client.get(files[0]["URI"])).read()
    assert got == as_archived(original["1.dcm"], read_header("1.dcm", original["1.dcm"]))
    zipped = await (await client.get(uri + "?format=zip")).read()
    assert sorted(zipfile.ZipFile(io.BytesIO(zipped)).namelist()) == [
        "F1/SCANS/4/DICOM/1.dcm",
        "F1/SCANS/4/DICOM/2.dcm",
    ]


class _Unseekable(io.RawIOBase):
    """A write-only stream: zipfile then writes each member with a data descriptor."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.data += bytes(b)
        return len(b)


async def test_stored_members_with_data_descriptors_are_refused_as_xnat_does(
    env: tuple[Client, Store, FakeClock],
) -> None:
    """XNAT reads DICOM-zips with Java's ZipInputStream, which refuses a stored entry that has
    a data descriptor; a zip streamed that way must not pass here and fail there."""
    client, store, _ = env
    sink = _Unseekable()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("1/1.dcm", make_instance(InstanceSpec(study_key="descr")))
    assert zipfile.ZipFile(io.BytesIO(bytes(sink.data))).infolist()[0].flag_bits & 0x08
    query = "import-handler=DICOM-zip&PROJECT_ID=P1&SUBJECT_ID=S1&EXPT_LABEL=S_DESCR"
    response = await _import(client, bytes(sink.data), query)
    assert response.status == 400
    listing = await (await client.get("/data/prearchive/projects/P1?format=json")).json()
    assert listing["ResultSet"]["Result"] == []
    assert store.experiment("P1", "S_DESCR") is None
