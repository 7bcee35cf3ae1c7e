"""xnatpy 0.8 (`import xnat`), unmodified, against the emulator: connect (schemas and all), walk,
download, upload, create, import, search, log out."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import requests
import xnat

from xnatsync.emulator.dicom_synth import InstanceSpec, study_zip
from xnatsync.emulator.server import Emulator

pytestmark = [
    pytest.mark.compat,
]


def test_connect_builds_model_and_logs_out(emulator: Emulator) -> None:
    connection = xnat.connect(emulator.url, user="user", password="user", loglevel="ERROR")
    assert connection.logged_in_user == "user"
    assert connection.xnat_version.startswith("1.")
    assert "xnat:mrSessionData" in connection.XNAT_CLASS_LOOKUP
    assert "DEMO" in connection.projects
    jsession = connection.jsession
    connection.disconnect()
    assert jsession
    reuse = requests.get(f"{emulator.url}/data/auth", cookies={"JSESSIONID": jsession}, timeout=10)
    assert reuse.status_code == 401


def test_walk_hierarchy_and_download_with_digest(session: Any, tmp_path: Path) -> None:
    project = session.projects["DEMO"]
    subject = project.subjects["DEMO01"]
    experiment = subject.experiments["DEMO01_MR1"]
    assert experiment.project == "DEMO"
    assert experiment.subject_id == subject.id
    scans = experiment.scans
    assert sorted(scans.keys()) == ["1", "2", "3"]
    scan = scans["1"]
    assert scan.type == "T1w"
    resource = scan.resources["DICOM"]
    names = sorted(resource.files.keys())
    assert len(names) == 4
    listing = session.get_json(f"{resource.uri}/files")["ResultSet"]["Result"]
    digests = {row["Name"]: row["digest"] for row in listing}
    target = tmp_path / names[0]
    resource.files[names[0]].download(str(target))
    assert hashlib.md5(target.read_bytes()).hexdigest() == digests[names[0]]


def test_scan_zip_download(session: Any, tmp_path: Path) -> None:
    scan = session.projects["DEMO"].subjects["DEMO01"].experiments["DEMO01_MR1"].scans["2"]
    target = tmp_path / "scan.zip"
    scan.download(str(target))
    with zipfile.ZipFile(target) as archive:
        members = archive.namelist()
    assert len(members) == 4
    assert all(m.startswith("DEMO01_MR1/scans/2-T2w/resources/DICOM/files/") for m in members)


def test_walk_assessors_and_download_with_digest(session: Any, tmp_path: Path) -> None:
    experiment = session.projects["DEMO"].subjects["DEMO01"].experiments["DEMO01_MR1"]
    assessor = experiment.assessors["DEMO01_MR1_QC"]
    assert assessor.id in experiment.assessors
    assert assessor.fulluri == f"/data/experiments/{experiment.id}/assessors/{assessor.id}"
    resource = assessor.resources["QC"]
    assert sorted(resource.files.keys()) == ["report.txt", "snapshots/axial.txt"]
    listing = session.get_json(f"{resource.uri}/files")["ResultSet"]["Result"]
    digests = {row["Name"]: row["digest"] for row in listing}
    target = tmp_path / "report.txt"
    resource.files["report.txt"].download(str(target))
    assert hashlib.md5(target.read_bytes()).hexdigest() == digests["report.txt"]
    resource.download_dir(str(tmp_path / "zip"))
    unpacked = tmp_path / "zip/DEMO01_MR1/assessors/DEMO01_MR1_QC/out/resources/QC/files"
    assert (unpacked / "snapshots/axial.txt").read_text().startswith("axial snapshot")


def test_create_subject_experiment_and_upload(session: Any) -> None:
    project = session.projects["DEMO"]
    subject = session.classes.SubjectData(parent=project, label="XP_NEW")
    experiment = session.classes.MrSessionData(parent=subject, label="XP_NEW_MR")
    session.clearcache()
    experiment = session.projects["DEMO"].subjects["XP_NEW"].experiments["XP_NEW_MR"]
    resource = experiment.create_resource("OUT")
    resource.upload_data("hello from xnatpy\n", "sub/hello.txt")
    session.clearcache()
    fresh = session.projects["DEMO"].subjects["XP_NEW"].experiments["XP_NEW_MR"].resources["OUT"]
    assert list(fresh.files.keys()) == ["sub/hello.txt"]
    with fresh.files["sub/hello.txt"].open() as handle:
        assert handle.read() == b"hello from xnatpy\n"


def test_import_to_prearchive_then_archive(session: Any) -> None:
    body = study_zip(InstanceSpec(study_key="xnatpy-import"), [(7, "T1w", 2), (8, "T2w", 1)])
    prearc = session.services.import_(
        data=body,
        content_type="application/zip",
        import_handler="DICOM-zip",
        project="DEMO",
        subject="XP_IMP",
        experiment="XP_IMP_MR",
    )
    assert prearc.status == "RECEIVING"
    assert prearc.project == "DEMO"
    rows = session.prearchive.sessions(project="DEMO", allow_receiving=True)
    assert any(row.label == "XP_IMP_MR" for row in rows)
    assert sorted(prearc.scans.keys()) == ["7", "8"]
    experiment = prearc.archive()
    assert experiment.label == "XP_IMP_MR"
    session.clearcache()
    archived = session.projects["DEMO"].subjects["XP_IMP"].experiments["XP_IMP_MR"]
    dicom = archived.scans["7"].resources["DICOM"]
    assert sorted(dicom.files.keys()) == ["1.dcm", "2.dcm"]


def test_import_straight_to_archive(session: Any) -> None:
    body = study_zip(InstanceSpec(study_key="xnatpy-direct"), [(1, "T1w", 1)])
    experiment = session.services.import_(
        data=body,
        content_type="application/zip",
        import_handler="DICOM-zip",
        destination="/archive/projects/DEMO/subjects/XP_DIR/experiments/XP_DIR_MR",
    )
    assert experiment.label == "XP_DIR_MR"
    assert list(experiment.scans.keys()) == ["1"]


def test_search_query(session: Any) -> None:
    mr = session.classes.MrSessionData
    found = mr.query().filter(mr.project == "DEMO").all()
    labels = {e.label for e in found}
    assert "DEMO01_MR1" in labels
    assert all(e.project == "DEMO" for e in found)


def test_share_experiment(session: Any) -> None:
    session.put("/data/projects/XP_SHARE")
    experiment = session.projects["PUB"].experiments["PUB01_MR1"]
    experiment.share("XP_SHARE", label="PUB_IN_XP")
    session.clearcache()
    shared = session.projects["XP_SHARE"].experiments
    assert list(shared.keys()) == [experiment.id]
    assert shared[experiment.id].label == "PUB_IN_XP"
    assert shared["PUB_IN_XP"].id == experiment.id


XNATPY_SCANS = "scan={experiment}/scans/{scan}-{type}/resources/{resource}/files/{path}"


def test_a_half_finished_xnatpy_download_is_completed_not_downloaded_again(
    session: Any, emulator: Emulator, tmp_path: Path
) -> None:
    """xnatpy's download_dir lays a session out as {experiment}/scans/{scan}-{type}/…; with
    that as the scan layout, pull adopts what xnatpy left and fetches only the rest."""
    dest = tmp_path / "tree"
    experiment = session.projects["DEMO"].experiments["DEMO01_MR1"]
    experiment.download_dir(str(dest))
    by_xnatpy = sorted(p for p in dest.rglob("*") if p.is_file())
    assert by_xnatpy
    by_xnatpy[0].unlink()  # interrupted before its last file
    kept = by_xnatpy[1:]
    emulator.requests.clear()
    report = tmp_path / "report.json"
    env = {**os.environ, "XNATSYNC_USER": "admin", "XNATSYNC_PASSWORD": "admin"}
    done = subprocess.run(
        [sys.executable, "-m", "xnatsync", "pull", emulator.url, "--project", "DEMO",
         "--dest", str(dest), "--layout", XNATPY_SCANS, "--no-progress", "--no-zip",
         "--report", str(report)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(report.read_text())
    assert summary["files_verified"] == len(kept)
    ours = f"/data/experiments/{experiment.id}/scans/*/files/*"
    fetched = {r.path.rsplit("/files/", 1)[1] for r in emulator.requests.matching("GET", ours)}
    assert not {p.name for p in kept} & fetched  # nothing xnatpy left came again
    assert by_xnatpy[0].name in fetched
    assert by_xnatpy[0].is_file()
    assert (dest / "DEMO01_MR1" / "scans").is_dir()  # xnatpy's shape, completed in place
