"""Image assessors (xnat-api §3.5, §3.6, §3.8, §4.2, §4.5, §9): create / update / list / get /
delete, ID and label addressing, OUT resources and files at assessor level, the session's
`all=true` inventories, zips, permissions, persistence and cascading deletes.

The demo seed gives DEMO01_MR1 one assessor, DEMO01_MR1_QC (xnat:qcAssessmentData), whose
OUT resource `QC` holds report.txt and snapshots/axial.txt.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from pathlib import Path

import aiohttp

from tests.emulator.emuhelp import call, envelope, rows
from xnatsync.emulator.server import Emulator, run_emulator
from xnatsync.emulator.settings import EmulatorConfig
from xnatsync.emulator.store import METADATA, Store

SESSION = "/data/projects/DEMO/subjects/DEMO01/experiments/DEMO01_MR1"
QC = f"{SESSION}/assessors/DEMO01_MR1_QC"
QC_TYPE = "xnat:qcAssessmentData"
OCTETS = {"Content-Type": "application/octet-stream"}


async def _ids(session: aiohttp.ClientSession) -> tuple[str, str]:
    """DEMO01_MR1's accession ID and its (only) assessor's."""
    [row] = await rows(session, f"{SESSION}/assessors")
    return row["URI"].split("/")[3], row["ID"]


async def _download(session: aiohttp.ClientSession, row: dict[str, str]) -> bytes:
    """GET a listed file URI and check its bytes against the row's MD5 digest and size."""
    async with session.get(row["URI"]) as response:
        assert response.status == 200, row["URI"]
        body = await response.read()
    assert hashlib.md5(body).hexdigest() == row["digest"]
    assert str(len(body)) == row["Size"]
    return body


# --- listing and single objects ------------------------------------------------------------


async def test_listing_under_every_session_path(admin: aiohttp.ClientSession) -> None:
    eid, aid = await _ids(admin)
    listing = await envelope(admin, f"/data/experiments/{eid}/assessors")
    assert listing["totalRecords"] == "1"
    [row] = listing["Result"]
    assert row == {
        "ID": aid,
        "project": "DEMO",
        "date": "2024-01-01",
        "xsiType": QC_TYPE,
        "label": "DEMO01_MR1_QC",
        "insert_date": row["insert_date"],
        "URI": f"/data/experiments/{eid}/assessors/{aid}",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+", row["insert_date"])
    for path in ("/data/projects/DEMO/experiments/DEMO01_MR1", f"/REST/experiments/{eid}", SESSION):
        assert await rows(admin, f"{path}/assessors") == [row]
    assert await rows(admin, f"/data/archive/experiments/{eid}/assessors") == [row]


async def test_listing_columns_filters_and_csv(admin: aiohttp.ClientSession) -> None:
    eid, aid = await _ids(admin)
    picked = await rows(admin, f"{SESSION}/assessors", columns="ID,session_ID,session_label")
    assert picked == [
        {
            "ID": aid,
            "session_ID": eid,
            "session_label": "DEMO01_MR1",
            "URI": f"/data/experiments/{eid}/assessors/{aid}",
        }
    ]
    assert await rows(admin, f"{SESSION}/assessors", xsiType="xnat:mrSessionData") == []
    assert len(await rows(admin, f"{SESSION}/assessors", xsiType="xnat:imageAssessorData")) == 1
    assert await rows(admin, f"{SESSION}/assessors", label="OTHER*") == []
    async with admin.get(f"{SESSION}/assessors", params={"format": "csv"}) as response:
        assert response.content_type == "text/csv"
        header, line = (await response.text()).splitlines()
    assert header == "ID,project,date,xsiType,label,insert_date,URI"
    assert line.startswith(f"{aid},DEMO,2024-01-01,{QC_TYPE},DEMO01_MR1_QC,")


async def test_get_single_by_id_and_label(admin: aiohttp.ClientSession) -> None:
    eid, aid = await _ids(admin)
    for path in (QC, f"/data/experiments/{eid}/assessors/{aid}"):
        async with admin.get(path, params={"format": "json"}) as response:
            assert response.status == 200
            [item] = (await response.json())["items"]
        assert item["meta"]["xsi:type"] == QC_TYPE
        fields = item["data_fields"]
        assert (fields["ID"], fields["label"], fields["imageSession_ID"]) == (
            aid,
            "DEMO01_MR1_QC",
            eid,
        )
        [child] = item["children"]
        assert child["field"] == "out/file"
        assert [i["data_fields"]["label"] for i in child["items"]] == ["QC"]
    async with admin.get(QC) as response:
        assert response.content_type == "text/xml"
        xml = await response.text()
    assert f'<{QC_TYPE} ID="{aid}"' in xml
    assert '<xnat:out><xnat:file label="QC"' in xml
    async with admin.get(f"{SESSION}?format=json") as response:
        session_children = (await response.json())["items"][0]["children"]
    fields = {c["field"]: c["items"] for c in session_children}
    assert [a["data_fields"]["ID"] for a in fields["assessors/assessor"]] == [aid]
    status, body = await call(admin, "GET", f"{SESSION}/assessors/NOPE")
    assert status == 404
    assert "Unable to find the specified experiment." in body


# --- create, update, delete --------------------------------------------------------------


async def test_create_update_and_delete(admin: aiohttp.ClientSession) -> None:
    base = "/data/projects/DEMO/experiments/DEMO01_MR2/assessors"
    created = f"{base}/MR2_QC?xsiType={QC_TYPE}&date=01/05/2024&note=first"
    async with admin.put(created) as response:
        assert response.status == 201
        assert response.content_type == "text/plain"
        aid = await response.text()
    assert re.fullmatch(r"XNAT_E\d{5}", aid)
    assert await call(admin, "PUT", f"{base}/MR2_QC?note=second") == (200, aid)
    assert await call(admin, "PUT", f"{base}/{aid}?type=manual") == (200, aid)
    [row] = await rows(admin, base, columns="ID,label,date,note,type,insert_user")
    assert (row["ID"], row["label"], row["date"]) == (aid, "MR2_QC", "2024-01-05")
    assert (row["note"], row["type"], row["insert_user"]) == ("second", "manual", "admin")
    assert await call(admin, "DELETE", f"{base}/{aid}") == (200, "")
    assert await rows(admin, base) == []
    assert (await call(admin, "DELETE", f"{base}/MR2_QC"))[0] == 404


async def test_accession_ids_share_the_experiment_counter(admin: aiohttp.ClientSession) -> None:
    status, eid = await call(admin, "PUT", "/data/projects/DEMO/subjects/DEMO09/experiments/X1")
    assert status == 201
    _, aid = await call(admin, "PUT", f"{SESSION}/assessors/NEXT?xsiType={QC_TYPE}")
    assert int(aid.rsplit("E", 1)[1]) == int(eid.rsplit("E", 1)[1]) + 1


async def test_create_errors(admin: aiohttp.ClientSession) -> None:
    status, body = await call(admin, "PUT", f"{SESSION}/assessors/NEW")
    assert status == 417
    assert "Need PUT Contents" in body
    assert "xsiType" in body
    session_type = f"{SESSION}/assessors/NEW?xsiType=xnat:mrSessionData"
    assert (await call(admin, "PUT", session_type))[0] == 422
    assert (await call(admin, "PUT", f"{QC}?label=RENAMED"))[0] == 400
    _, aid = await _ids(admin)
    by_label = f"{SESSION}/assessors/OTHER?xsiType={QC_TYPE}&label=DEMO01_MR1_QC"
    assert await call(admin, "PUT", by_label) == (200, aid)  # the label finds the existing one
    missing = "/data/projects/DEMO/experiments/NO_SUCH/assessors/A?xsiType=" + QC_TYPE
    assert (await call(admin, "PUT", missing))[0] == 404
    assert len(await rows(admin, f"{SESSION}/assessors")) == 1


async def test_deleting_the_session_removes_its_assessors(
    admin: aiohttp.ClientSession, emu: Emulator
) -> None:
    eid, aid = await _ids(admin)
    qc_files = await rows(admin, f"{QC}/files")
    resource_ids = {int(r["cat_ID"]) for r in qc_files}
    on_disk = [emu.store.file_path(emu.store.resources[i], "report.txt") for i in resource_ids]
    assert all(path.is_file() for path in on_disk)
    assert await call(admin, "DELETE", f"/data/experiments/{eid}") == (200, "")
    assert not resource_ids & set(emu.store.resources)
    assert not any(path.exists() for path in on_disk)
    assert (await call(admin, "GET", qc_files[0]["URI"]))[0] == 404
    assert (await call(admin, "GET", f"/data/experiments/{eid}/assessors/{aid}"))[0] == 404


# --- resources and files at assessor level -------------------------------------------------


async def test_resources_at_assessor_level(admin: aiohttp.ClientSession) -> None:
    _, aid = await _ids(admin)
    for path in (f"{QC}/resources", f"{QC}/out/resources"):
        [row] = await rows(admin, path)
        assert (row["label"], row["category"], row["cat_id"], row["cat_desc"]) == (
            "QC",
            "assessors",
            aid,
            QC_TYPE,
        )
        assert (row["file_count"], row["format"]) == ("2", "TXT")
    assert await call(admin, "PUT", f"{QC}/out/resources/FS?format=FREESURFER") == (200, "")
    assert (await call(admin, "PUT", f"{QC}/resources/FS"))[0] == 409
    async with admin.get(f"{QC}/resources/QC") as response:
        assert 'name="report.txt"' in await response.text()
    assert [r["label"] for r in await rows(admin, f"{QC}/resources")] == ["QC", "FS"]
    assert await call(admin, "DELETE", f"{QC}/out/resources/FS") == (200, "")
    assert [r["label"] for r in await rows(admin, f"{QC}/out/resources")] == ["QC"]
    # IN resources are a side of their own: empty at first, apart from the OUT ones
    assert await rows(admin, f"{QC}/in/resources") == []
    assert await call(admin, "PUT", f"{QC}/in/resources/SRC") == (200, "")
    [src] = await rows(admin, f"{QC}/in/resources")
    assert (src["label"], src["category"], src["cat_id"]) == ("SRC", "assessors", aid)
    assert [r["label"] for r in await rows(admin, f"{QC}/resources")] == ["QC"]


async def test_upload_download_and_delete_files(admin: aiohttp.ClientSession) -> None:
    data = b"Measure Brain volume, 1150000\n" * 50
    url = f"{QC}/out/resources/STATS/files/stats/aseg.stats?content=STATS"
    async with admin.put(url, data=data, headers=OCTETS) as response:
        assert response.status == 200
        assert await response.read() == b""
    [row] = await rows(admin, f"{QC}/resources/STATS/files")
    assert (row["Name"], row["digest"], row["file_content"]) == (
        "aseg.stats",
        hashlib.md5(data).hexdigest(),
        "STATS",
    )
    assert await _download(admin, row) == data
    async with admin.head(row["URI"]) as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == str(len(data))
    async with admin.put(url, data=b"other", headers=OCTETS) as response:
        assert await response.json(content_type=None) == {"duplicates": ["stats/aseg.stats"]}
    async with admin.post(f"{QC}/resources/STATS/files/b.txt", data=b"b", headers=OCTETS) as r:
        assert r.status == 200
    assert await call(admin, "DELETE", f"{QC}/out/resources/STATS/files/stats") == (200, "")
    assert [r["Name"] for r in await rows(admin, f"{QC}/out/resources/STATS/files")] == ["b.txt"]
    assert (await call(admin, "GET", row["URI"]))[0] == 404


async def test_single_resource_uris_follow_the_request_path(
    admin: aiohttp.ClientSession,
) -> None:
    eid, aid = await _ids(admin)
    sid = (await rows(admin, "/data/projects/DEMO/subjects", label="DEMO01"))[0]["ID"]
    by_id = f"/data/experiments/{eid}/assessors/{aid}"
    in_subject = f"/data/projects/DEMO/subjects/{sid}/experiments/{eid}/assessors/{aid}"
    expected = {  # request base → URI base: projects/subjects only when both were in the path
        f"{by_id}/out": f"{by_id}/out",
        f"/data/experiments/{eid}/assessors/DEMO01_MR1_QC": by_id,
        "/data/projects/DEMO/experiments/DEMO01_MR1/assessors/DEMO01_MR1_QC/out": f"{by_id}/out",
        f"{QC}/out": f"{in_subject}/out",
        QC: in_subject,
    }
    for request_base, uri_base in expected.items():
        listing = await rows(admin, f"{request_base}/resources/QC/files")
        rid = listing[0]["cat_ID"]
        assert sorted(r["URI"] for r in listing) == [
            f"{uri_base}/resources/{rid}/files/report.txt",
            f"{uri_base}/resources/{rid}/files/snapshots/axial.txt",
        ]
        for row in listing:
            await _download(admin, row)


async def test_owner_files_listing_folders_and_filters(admin: aiohttp.ClientSession) -> None:
    assert sorted(r["Name"] for r in await rows(admin, f"{QC}/files")) == [
        "axial.txt",
        "report.txt",
    ]
    folder = await rows(admin, f"{QC}/out/resources/QC/files/snapshots/")
    assert [r["Name"] for r in folder] == ["axial.txt"]
    async with admin.get(f"{QC}/resources/QC/files", params={"index": "0"}) as response:
        assert (await response.read()).startswith(b"QC report for DEMO01_MR1")


# --- the session's inventories -------------------------------------------------------------


async def test_session_all_listings_include_assessor_resources(
    admin: aiohttp.ClientSession,
) -> None:
    eid, aid = await _ids(admin)
    resources = await rows(admin, f"/data/experiments/{eid}/resources", all="true")
    assert {r["category"] for r in resources} == {"resources", "scans", "assessors"}
    [qc] = [r for r in resources if r["category"] == "assessors"]
    assert (qc["label"], qc["cat_id"], qc["cat_desc"]) == ("QC", aid, QC_TYPE)
    own = await rows(admin, f"/data/experiments/{eid}/resources")
    assert [r["label"] for r in own] == ["NOTES"]  # without all=true: the session's own
    files = await rows(admin, "/data/projects/DEMO/experiments/DEMO01_MR1/files", all="true")
    qc_uris = sorted(r["URI"] for r in files if r["cat_ID"] == qc["xnat_abstractresource_id"])
    base = f"/data/experiments/{eid}/assessors/{aid}/out/resources/{qc['xnat_abstractresource_id']}"
    assert qc_uris == [f"{base}/files/report.txt", f"{base}/files/snapshots/axial.txt"]
    for row in files:  # every listed URI routes back, bytes matching the digest
        await _download(admin, row)


async def test_zip_of_assessor_files(admin: aiohttp.ClientSession) -> None:
    listing = await rows(admin, f"{QC}/out/resources/QC/files")
    digests = {r["URI"].split("/files/", 1)[1]: r["digest"] for r in listing}
    for path in (f"{QC}/out/resources/QC/files", f"{QC}/files"):
        async with admin.get(path, params={"format": "zip"}) as response:
            assert response.status == 200
            assert response.headers["Content-Disposition"] == (
                'attachment; filename="DEMO01_MR1.zip"'
            )
            archive = zipfile.ZipFile(io.BytesIO(await response.read()))
        prefix = "DEMO01_MR1/assessors/DEMO01_MR1_QC/out/resources/QC/files/"
        assert sorted(archive.namelist()) == [
            f"{prefix}report.txt",
            f"{prefix}snapshots/axial.txt",
        ]
        for relpath, digest in digests.items():
            assert hashlib.md5(archive.read(prefix + relpath)).hexdigest() == digest


# --- permissions ---------------------------------------------------------------------------


async def _assessor_with_file(admin: aiohttp.ClientSession, session: str) -> str:
    """Create assessor QA on `session` with one file; its file URI."""
    assert (await call(admin, "PUT", f"{session}/assessors/QA?xsiType={QC_TYPE}"))[0] == 201
    url = f"{session}/assessors/QA/out/resources/R/files/f.txt"
    async with admin.put(url, data=b"qa", headers=OCTETS) as response:
        assert response.status == 200
    return (await rows(admin, f"{session}/assessors/QA/files"))[0]["URI"]


async def test_member_can_read_and_write(user: aiohttp.ClientSession) -> None:
    assert len(await rows(user, f"{SESSION}/assessors")) == 1
    assert (await call(user, "PUT", f"{SESSION}/assessors/MINE?xsiType={QC_TYPE}"))[0] == 201
    mine = f"{SESSION}/assessors/MINE/out/resources/R/files/a.txt"
    async with user.put(mine, data=b"a", headers=OCTETS) as response:
        assert response.status == 200
    assert await call(user, "DELETE", f"{SESSION}/assessors/MINE") == (200, "")


async def test_unreadable_project_hides_assessors(
    admin: aiohttp.ClientSession, user: aiohttp.ClientSession
) -> None:
    priv = "/data/projects/PRIV/subjects/PRIV01/experiments/PRIV01_MR1"
    file_uri = await _assessor_with_file(admin, priv)
    eid = file_uri.split("/")[3]
    for path in (
        f"{priv}/assessors",
        f"{priv}/assessors/QA",
        f"/data/experiments/{eid}/assessors",
        f"/data/experiments/{eid}/assessors/QA/out/resources",
        f"/data/experiments/{eid}/resources?all=true",
        file_uri,
    ):
        assert (await call(user, "GET", path))[0] == 404, path
    assert (await call(user, "PUT", f"{priv}/assessors/NEW?xsiType={QC_TYPE}"))[0] == 404
    assert (await call(user, "DELETE", f"{priv}/assessors/QA"))[0] == 404
    assert (await call(user, "PUT", f"/data/experiments/{eid}/assessors/QA/resources/X"))[0] == 404
    assert len(await rows(admin, f"{priv}/assessors")) == 1  # nothing changed


async def test_public_project_is_readable_not_writable(
    admin: aiohttp.ClientSession, user: aiohttp.ClientSession
) -> None:
    pub = "/data/projects/PUB/subjects/PUB01/experiments/PUB01_MR1"
    file_uri = await _assessor_with_file(admin, pub)
    assert [r["label"] for r in await rows(user, f"{pub}/assessors")] == ["QA"]
    assert await call(user, "GET", file_uri) == (200, "qa")
    assert (await call(user, "PUT", f"{pub}/assessors/NEW?xsiType={QC_TYPE}"))[0] == 403
    assert (await call(user, "PUT", f"{pub}/assessors/QA?note=x"))[0] == 403
    assert (await call(user, "DELETE", f"{pub}/assessors/QA"))[0] == 403
    assert (await call(user, "PUT", f"{pub}/assessors/QA/resources/X"))[0] == 403
    upload = f"{pub}/assessors/QA/out/resources/R/files/g.txt"
    async with user.put(upload, data=b"g", headers=OCTETS) as response:
        assert response.status == 403
    assert (await call(user, "DELETE", file_uri))[0] == 403
    assert len(await rows(admin, f"{pub}/assessors/QA/files")) == 1


async def test_assessors_read_through_a_share(
    admin: aiohttp.ClientSession, user: aiohttp.ClientSession
) -> None:
    priv = "/data/projects/PRIV/subjects/PRIV01/experiments/PRIV01_MR1"
    file_uri = await _assessor_with_file(admin, priv)
    assert (await call(admin, "PUT", f"{priv}/projects/DEMO?label=SHARED_MR"))[0] == 200
    shared = "/data/projects/DEMO/experiments/SHARED_MR"
    assert [r["label"] for r in await rows(user, f"{shared}/assessors")] == ["QA"]
    listed = await rows(user, f"{shared}/assessors/QA/files")
    assert [r["Name"] for r in listed] == ["f.txt"]
    assert await call(user, "GET", listed[0]["URI"]) == (200, "qa")
    assert await call(user, "GET", file_uri) == (200, "qa")  # /data/experiments/{E}/…
    # shared data is read-only where it is shared
    assert (await call(user, "PUT", f"{shared}/assessors/NEW?xsiType={QC_TYPE}"))[0] == 404
    assert (await call(user, "DELETE", f"{shared}/assessors/QA"))[0] == 404


# --- persistence ---------------------------------------------------------------------------


async def test_assessors_survive_restart_with_root(tmp_path: Path) -> None:
    config = EmulatorConfig(root=tmp_path, seed="demo")
    async with run_emulator(config) as emu, _client(emu) as session:
        _, aid = await call(session, "PUT", f"{SESSION}/assessors/LATE?xsiType=fs:fsData")
        upload = f"{SESSION}/assessors/LATE/out/resources/FS/files/x.stats"
        async with session.put(upload, data=b"stats", headers=OCTETS) as response:
            assert response.status == 200
        before = await rows(session, f"{SESSION}/assessors")
        files = await rows(session, f"{SESSION}/files", all="true")
    async with run_emulator(config) as emu, _client(emu) as session:
        assert await rows(session, f"{SESSION}/assessors") == before
        assert [r["xsiType"] for r in before] == [QC_TYPE, "fs:fsData"]
        assert await rows(session, f"{SESSION}/files", all="true") == files
        for row in files:
            await _download(session, row)
        _, later = await call(session, "PUT", f"{SESSION}/assessors/LATER?xsiType={QC_TYPE}")
        assert int(later.rsplit("E", 1)[1]) == int(aid.rsplit("E", 1)[1]) + 1


def test_metadata_from_before_assessors_loads(tmp_path: Path) -> None:
    store = Store(tmp_path, "SITE")
    store.create_project("P1")
    experiment, _ = store.ensure_experiment("P1", "S1", "E1")
    resource, _ = store.ensure_resource(experiment, "NOTES")
    store.add_file(resource, "a.txt", b"a")
    store.save()
    meta = tmp_path / METADATA
    data = json.loads(meta.read_text("utf-8"))
    for row in data["experiments"]:
        del row["assessors"]
        for res in row["resources"]:
            del res["assessor"]
    meta.write_text(json.dumps(data), "utf-8")
    loaded = Store.open(tmp_path, "SITE")
    old = loaded.experiment("P1", "E1")
    assert old is not None
    assert old.assessors == {}
    assert loaded.resources[resource.id].files["a.txt"].size == 1
    assessor, created = loaded.ensure_assessor(old, "QC")
    assert created
    assert loaded.owner_of(loaded.ensure_resource(assessor, "R")[0]) is assessor


def _client(emu: Emulator) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(emu.url, headers=emu.auth())


async def test_in_resources_survive_a_restart(admin: aiohttp.ClientSession, emu: Emulator) -> None:
    _, aid = await _ids(admin)
    put = f"{QC}/in/resources/SRC/files/source.txt"
    status, _ = await call(
        admin, "PUT", put, data=b"input", headers={"Content-Type": "application/octet-stream"}
    )
    assert status == 200
    emu.store.save()
    reloaded = Store.open(emu.store.root)
    assessor = next(
        a for e in reloaded.experiments.values() for a in e.assessors.values() if a.id == aid
    )
    assert list(assessor.inputs.resources) == ["SRC"]
    assert reloaded.owner_of(assessor.inputs.resources["SRC"]) is assessor.inputs
    assert list(assessor.resources) == ["QC"]
