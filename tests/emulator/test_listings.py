"""Hierarchy listings and single objects: shapes, aliases, ID/label addressing, columns, csv,
paging, sorting and the experiment filters (xnat-api §1.3, §1.4, §3, §8.2, §8.3)."""

from __future__ import annotations

import csv
import io

import aiohttp
import pytest

from tests.emulator.emuhelp import envelope, rows
from xnatsync.emulator.server import Emulator


async def test_projects_listing_shape(admin: aiohttp.ClientSession) -> None:
    result = await envelope(admin, "/data/projects")
    assert result["totalRecords"] == "3"
    demo = next(r for r in result["Result"] if r["ID"] == "DEMO")
    assert set(demo) == {
        "ID", "secondary_ID", "name", "description", "pi_firstname", "pi_lastname", "URI"
    }  # fmt: skip
    assert demo["URI"] == "/data/projects/DEMO"


@pytest.mark.parametrize("prefix", ["/data", "/data/archive", "/REST"])
async def test_prefix_aliases_answer_the_same(admin: aiohttp.ClientSession, prefix: str) -> None:
    got = await rows(admin, f"{prefix}/projects/DEMO/subjects")
    assert [r["label"] for r in got] == ["DEMO01", "DEMO02", "DEMO03"]


async def test_listing_without_format_is_json(admin: aiohttp.ClientSession) -> None:
    async with admin.get("/data/projects") as response:
        assert response.content_type == "application/json"
        assert (await response.json())["ResultSet"]["totalRecords"] == "3"


async def test_subjects_columns_paging_sorting_csv(admin: aiohttp.ClientSession) -> None:
    got = await rows(admin, "/data/projects/DEMO/subjects")
    assert set(got[0]) == {"ID", "project", "label", "insert_date", "insert_user", "URI"}
    assert got[0]["URI"] == f"/data/subjects/{got[0]['ID']}"
    assert got[0]["insert_date"][10] == " "
    narrow = await rows(admin, "/data/projects/DEMO/subjects", columns="label")
    assert narrow[0] == {"label": "DEMO01", "URI": got[0]["URI"]}
    page = await envelope(admin, "/data/projects/DEMO/subjects", offset="1", limit="1")
    assert "totalRecords" not in page
    assert [r["label"] for r in page["Result"]] == ["DEMO02"]
    desc = await rows(admin, "/data/projects/DEMO/subjects", sortBy="label", sortOrder="DESC")
    assert [r["label"] for r in desc] == ["DEMO03", "DEMO02", "DEMO01"]
    async with admin.get("/data/projects/DEMO/subjects?format=csv") as response:
        assert response.content_type == "text/csv"
        table = list(csv.DictReader(io.StringIO(await response.text())))
    assert [r["label"] for r in table] == ["DEMO01", "DEMO02", "DEMO03"]


async def test_site_subjects_are_permission_filtered(user: aiohttp.ClientSession) -> None:
    got = await rows(user, "/data/subjects")
    assert {r["project"] for r in got} == {"DEMO", "PUB"}


async def test_project_experiments_shape(admin: aiohttp.ClientSession) -> None:
    got = await rows(admin, "/data/projects/DEMO/experiments")
    assert [r["label"] for r in got] == ["DEMO01_MR1", "DEMO01_MR2", "DEMO02_MR1", "DEMO03_CT1"]
    first = got[0]
    assert set(first) == {
        "ID", "project", "date", "xsiType", "label", "insert_date",
        "xnat:subjectassessordata/id", "URI",
    }  # fmt: skip
    assert first["xnat:subjectassessordata/id"] == first["ID"]
    assert first["date"] == "2024-01-01"
    assert first["xsiType"] == "xnat:mrSessionData"
    assert first["URI"] == f"/data/experiments/{first['ID']}"


async def test_subject_experiments_and_extra_columns(admin: aiohttp.ClientSession) -> None:
    got = await rows(
        admin,
        "/data/projects/DEMO/subjects/DEMO01/experiments",
        columns="ID,label,subject_ID,subject_label,last_modified,insert_date",
    )
    assert [r["label"] for r in got] == ["DEMO01_MR1", "DEMO01_MR2"]
    assert {r["subject_label"] for r in got} == {"DEMO01"}
    assert set(got[0]) == {
        "ID", "label", "subject_ID", "subject_label", "last_modified", "insert_date", "URI"
    }  # fmt: skip


async def test_site_experiments_filters(admin: aiohttp.ClientSession) -> None:
    listing = await envelope(admin, "/data/experiments", project="DEMO")
    assert listing["title"] == "Matching experiments"
    assert listing["totalRecords"] == "4"
    ct = await rows(admin, "/data/experiments", xsiType="xnat:ctSessionData")
    assert [r["label"] for r in ct] == ["DEMO03_CT1"]
    assert {"subject_ID", "subject_label"} <= set(ct[0])
    both = await rows(admin, "/data/experiments", xsiType="xnat:ctSessionData,xnat:mrSessionData")
    assert len(both) == 6  # a comma list does not filter
    labels = await rows(admin, "/data/experiments", label="DEMO01_*,DEMO03_CT1")
    assert [r["label"] for r in labels] == ["DEMO01_MR1", "DEMO01_MR2", "DEMO03_CT1"]
    dated = await rows(admin, "/data/experiments", project="DEMO", date="20240102-01/03/2024")
    assert [r["label"] for r in dated] == ["DEMO01_MR2", "DEMO02_MR1"]
    path_filter = await rows(
        admin, "/data/experiments", **{"xnat:mrSessionData/subject_label": "DEMO02"}
    )
    assert [r["label"] for r in path_filter] == ["DEMO02_MR1"]


async def test_experiments_filtered_by_permission(user: aiohttp.ClientSession) -> None:
    got = await rows(user, "/data/experiments")
    assert {r["project"] for r in got} == {"DEMO", "PUB"}


async def test_recent_experiments(admin: aiohttp.ClientSession) -> None:
    got = await envelope(admin, "/data/experiments", recent="7", limit="500")
    assert got["title"] == "Recent Experiments"
    assert {"id", "label", "action_date", "last_modified"} <= set(got["Result"][0])
    assert len(got["Result"]) == 6


async def test_experiment_id_and_label_addressing(admin: aiohttp.ClientSession) -> None:
    listing = await rows(admin, "/data/projects/DEMO/experiments", label="DEMO02_MR1")
    eid = listing[0]["ID"]
    for path in (
        f"/data/experiments/{eid}",
        "/data/projects/DEMO/experiments/DEMO02_MR1",
        f"/data/projects/DEMO/experiments/{eid}",
        "/data/projects/DEMO/subjects/DEMO02/experiments/DEMO02_MR1",
        "/REST/projects/DEMO/subjects/DEMO02/experiments/DEMO02_MR1",
    ):
        async with admin.get(path, params={"format": "json"}) as response:
            assert response.status == 200, path
            item = (await response.json())["items"][0]
        assert item["data_fields"]["ID"] == eid
        assert item["meta"]["xsi:type"] == "xnat:mrSessionData"
        assert item["meta"]["isHistory"] is False
        scans = next(c for c in item["children"] if c["field"] == "scans/scan")["items"]
        assert [s["data_fields"]["ID"] for s in scans] == ["1", "2", "3"]
    async with admin.get("/data/experiments/DEMO02_MR1?format=json") as response:
        assert response.status == 404  # site-level lookup is by accession ID only
    async with admin.get("/data/projects/DEMO/subjects/DEMO01/experiments/DEMO02_MR1") as r:
        assert r.status == 404
    async with admin.get(f"/data/experiments/{eid}?format=xml") as response:
        assert response.content_type == "text/xml"
        assert 'label="DEMO02_MR1"' in await response.text()


async def test_project_and_subject_objects(admin: aiohttp.ClientSession) -> None:
    async with admin.get("/data/projects/DEMO?format=json") as response:
        item = (await response.json())["items"][0]
    assert item["data_fields"]["ID"] == "DEMO"
    async with admin.get("/data/projects/DEMO/subjects/DEMO01?format=json") as response:
        item = (await response.json())["items"][0]
    sid = item["data_fields"]["ID"]
    async with admin.get(f"/data/subjects/{sid}?format=json") as response:
        assert (await response.json())["items"][0]["data_fields"]["label"] == "DEMO01"
    async with admin.get("/data/projects/NOPE?format=json") as response:
        assert response.status == 404
        assert "<h3>" in await response.text()


async def test_scans_listing(admin: aiohttp.ClientSession) -> None:
    exp = (await rows(admin, "/data/projects/DEMO/experiments", label="DEMO01_MR1"))[0]
    got = await rows(admin, f"/data/experiments/{exp['ID']}/scans")
    assert [r["ID"] for r in got] == ["1", "2", "3"]
    first = got[0]
    assert set(first) == {
        "xnat_imagescandata_id", "ID", "type", "quality", "xsiType", "note",
        "series_description", "URI",
    }  # fmt: skip
    assert first["xnat_imagescandata_id"].isdigit()
    assert first["URI"] == f"/data/experiments/{exp['ID']}/scans/1"
    assert first["type"] == "T1w"
    same = await rows(admin, "/data/projects/DEMO/subjects/DEMO01/experiments/DEMO01_MR1/scans")
    assert same == got


async def test_resources_listings(admin: aiohttp.ClientSession, emu: Emulator) -> None:
    base = "/data/projects/DEMO/experiments/DEMO01_MR1"
    own = await envelope(admin, f"{base}/resources")
    assert own["title"] == "Resources"
    assert [r["label"] for r in own["Result"]] == ["NOTES"]
    notes = own["Result"][0]
    assert notes["file_count"] == "2"
    assert notes["element_name"] == "xnat:resourceCatalog"
    assert notes["category"] == "resources"
    everything = await rows(admin, f"{base}/resources", all="true")
    scans = [r for r in everything if r["category"] == "scans"]
    assert [(r["cat_id"], r["cat_desc"], r["label"]) for r in scans] == [
        ("1", "T1w", "DICOM"), ("2", "T2w", "DICOM"), ("3", "fMRI/rest", "DICOM")
    ]  # fmt: skip
    assert "URI" not in everything[0]
    async with admin.get(f"{base}/scans/1/resources") as response:
        assert response.status == 404  # scans hang only under …/subjects/{S}/experiments/{E}
    subject_path = "/data/projects/DEMO/subjects/DEMO01/experiments/DEMO01_MR1"
    scan_level = await rows(admin, f"{subject_path}/scans/1/resources")
    assert scan_level[0]["file_count"] == "4"
    project_level = await rows(admin, "/data/projects/DEMO/resources")
    assert [r["label"] for r in project_level] == ["PROTOCOLS"]


async def test_abstract_xsi_type_roots_and_shortcut_paths(admin: aiohttp.ClientSession) -> None:
    """pyxnat's array API asks for `xsiType=xnat:subjectAssessorData` and reads `subject_ID`
    back from the column it requested as `xnat:subjectAssessorData/subject_id`."""
    columns = "ID,project,xnat:subjectAssessorData/subject_id,xnat:subjectData/label"
    got = await rows(
        admin, "/data/experiments", xsiType="xnat:subjectAssessorData", project="DEMO",
        columns=columns,
    )  # fmt: skip
    assert len(got) == 4
    assert set(got[0]) == {"ID", "project", "subject_ID", "subject_label", "URI"}
    assert got[0]["subject_ID"].startswith("XNAT_S")
    assert got[0]["subject_label"] == "DEMO01"
    images = await rows(admin, "/data/experiments", xsiType="xnat:imageSessionData", project="DEMO")
    assert len(images) == 4
    mr = await rows(
        admin, "/data/experiments", xsiType="xnat:mrSessionData", project="DEMO",
        columns="ID,xnat:mrSessionData/subject_id",
    )  # fmt: skip
    assert len(mr) == 3
    assert mr[0]["xnat:mrsessiondata/subject_id"] == got[0]["subject_ID"]  # not a shortcut's path
