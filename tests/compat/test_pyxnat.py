"""pyxnat, unmodified, against the emulator: connect, walk, download, upload, create, import
(raw POST, pyxnat has no import API), prearchive, search, log out."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any

import pytest
from pyxnat import Interface

from xnatsync.emulator.dicom_synth import InstanceSpec, study_zip
from xnatsync.emulator.server import Emulator

pytestmark = [
    pytest.mark.compat,
]


def test_connect_list_and_logout(emulator: Emulator) -> None:
    connection = Interface(server=emulator.url, user="user", password="user")
    projects = connection.select.projects().get()
    assert "DEMO" in projects
    assert "PRIV" not in projects
    connection.disconnect()


def test_walk_and_download_with_digest(interface: Any, tmp_path: Path) -> None:
    project = interface.select.project("DEMO")
    assert project.exists()
    assert len(project.subjects().get()) == 3
    assert project.subject("DEMO01").exists()
    experiment = project.subject("DEMO01").experiment("DEMO01_MR1")
    assert experiment.exists()
    assert sorted(experiment.scans().get()) == ["1", "2", "3"]
    resource = experiment.scan("1").resource("DICOM")
    names = sorted(resource.files().get())
    assert len(names) == 4
    listing = interface._get_json(resource._uri + "/files?format=json")
    digests = {row["Name"]: row["digest"] for row in listing}
    target = resource.file(names[0]).get(str(tmp_path / names[0]))
    assert hashlib.md5(Path(target).read_bytes()).hexdigest() == digests[names[0]]


def test_resource_zip_download(interface: Any, tmp_path: Path) -> None:
    scan = interface.select.project("DEMO").subject("DEMO01").experiment("DEMO01_MR1").scan("2")
    paths = scan.resource("DICOM").get(str(tmp_path), extract=False)
    archive = Path(paths if isinstance(paths, str) else paths[0])
    with zipfile.ZipFile(archive) as handle:
        assert len(handle.namelist()) == 4


def test_create_and_upload(interface: Any, tmp_path: Path) -> None:
    subject = interface.select.project("DEMO").subject("PX_NEW")
    subject.create()
    assert subject.exists()
    experiment = subject.experiment("PX_NEW_MR")
    experiment.create(experiments="xnat:mrSessionData")
    assert experiment.exists()
    source = tmp_path / "result.txt"
    source.write_bytes(b"pyxnat was here\n")
    experiment.resource("OUT").file("result.txt").insert(str(source), format="TXT")
    fetched = experiment.resource("OUT").file("result.txt").get(str(tmp_path / "back.txt"))
    assert Path(fetched).read_bytes() == b"pyxnat was here\n"


def test_import_prearchive_and_archive(interface: Any) -> None:
    body = study_zip(InstanceSpec(study_key="pyxnat-import"), [(4, "T1w", 2)])
    response = interface.post(
        "/data/services/import?import-handler=DICOM-zip&PROJECT_ID=DEMO&SUBJECT_ID=PX_IMP"
        "&EXPT_LABEL=PX_IMP_MR",
        data=body,
        headers={"Content-Type": "application/zip"},
    )
    assert response.status_code == 200
    uri = response.text.strip()
    project, timestamp, folder = uri.rsplit("/", 3)[1:]
    prearchive = interface.manage.prearchive
    assert [project, timestamp, folder] in prearchive.get()
    assert prearchive.status([project, timestamp, folder]) == "RECEIVING"
    assert prearchive.get_scans([project, timestamp, folder]) == "4"  # one row: a bare value
    assert prearchive.get_resources([project, timestamp, folder], "4") == "DICOM"
    assert sorted(prearchive.get_files([project, timestamp, folder], "4", "DICOM")) == [
        "1.dcm",
        "2.dcm",
    ]
    prearchive.reset([project, timestamp, folder])
    assert prearchive.status([project, timestamp, folder]) == "READY"
    archived = interface.post(f"/data/services/archive?src={uri}")
    assert archived.status_code == 200
    assert archived.text == "/data/archive/projects/DEMO/subjects/PX_IMP/experiments/PX_IMP_MR\r\n"
    experiment = interface.select.project("DEMO").subject("PX_IMP").experiment("PX_IMP_MR")
    assert experiment.scan("4").resource("DICOM").files().get() == ["1.dcm", "2.dcm"]


def test_prearchive_code_and_delete(interface: Any) -> None:
    project = interface.select.project("PUB")
    project.set_prearchive_code("4")  # pyxnat joins the code into the URI: it must be a str
    assert project.prearchive_code() == 4
    project.set_prearchive_code("0")
    body = study_zip(InstanceSpec(study_key="pyxnat-delete"), [(1, "T1w", 1)])
    response = interface.post(
        "/data/services/import?import-handler=DICOM-zip&PROJECT_ID=DEMO&EXPT_LABEL=PX_DEL",
        data=body,
        headers={"Content-Type": "application/zip"},
    )
    triple = response.text.strip().rsplit("/", 3)[1:]
    url = interface.manage.prearchive.get_uri(triple)
    interface.manage.prearchive.delete(url)
    assert triple not in interface.manage.prearchive.get()


def test_search(interface: Any) -> None:
    table = interface.select(
        "xnat:mrSessionData", ["xnat:mrSessionData/LABEL", "xnat:mrSessionData/PROJECT"]
    ).where([("xnat:mrSessionData/PROJECT", "=", "DEMO"), "AND"])
    labels = {row["label"] for row in table}
    assert "DEMO01_MR1" in labels
    assert {row["project"] for row in table} == {"DEMO"}
    assert "xnat:mrSessionData" in interface.inspect.datatypes()


def test_share_and_unshare(interface: Any) -> None:
    target = interface.select.project("PX_SHARE")
    target.create()
    experiment = interface.select.project("PUB").subject("PUB01").experiment("PUB01_MR1")
    experiment.share("PX_SHARE", label="PUB_IN_PX")
    assert target.experiments().get() == [experiment.id()]
    assert target.experiment("PUB_IN_PX").id() == experiment.id()
    rows = interface.array.experiments(project_id="PUB", columns=["label"]).data
    assert [(r["ID"], r["label"]) for r in rows] == [(experiment.id(), "PUB01_MR1")]
    experiment.unshare("PX_SHARE")
    assert target.experiments().get() == []
    assert experiment.exists()


def test_stored_search_save_list_run_and_delete(interface: Any) -> None:
    """pyxnat's manage.search: PUT /search/saved/{name}?inbody=true, the list, csv results."""
    search = interface.manage.search
    assert "MR sessions of DEMO" in search.saved()  # the demo seed (listed by brief description)
    seeded = {row["label"] for row in search.get("MR sessions of DEMO")}
    assert {"DEMO01_MR1", "DEMO01_MR2", "DEMO02_MR1"} <= seeded  # other tests import more
    columns = ["xnat:mrSessionData/LABEL", "xnat:mrSessionData/DATE"]
    criteria = [("xnat:mrSessionData/PROJECT", "=", "DEMO"), "AND"]
    search.save("px_mr", "xnat:mrSessionData", columns, criteria, description="DEMO MR")
    assert ("px_mr", "DEMO MR") in search.saved(with_description=True)
    assert {row["label"] for row in search.get("px_mr")} == seeded
    query = search.get("px_mr", out_format="query")
    assert query["row"] == "xnat:mrSessionData"
    assert query["columns"] == columns
    assert query["users"] == ["admin"]
    search.delete("px_mr")
    assert "px_mr" not in search.saved()
