"""xnatpy's write side, unmodified, against the emulator: resource uploads (single files, whole
folders by each of xnatpy's methods, extract), the import service with each `overwrite` value
and into the prearchive, the prearchive API, and a catalog refresh. Each test reads the result
back through the server, not through xnatpy's cache."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from xnat.exceptions import XNATUploadError

from xnatsync.emulator.dicom_synth import InstanceSpec, study_zip

pytestmark = [pytest.mark.compat]


def listed(session: Any, resource_uri: str) -> dict[str, tuple[int, str]]:
    """A resource's files as the server lists them: path in the resource → (size, digest)."""
    rows = session.get_json(f"{resource_uri}/files")["ResultSet"]["Result"]
    return {row["URI"].split("/files/", 1)[1]: (int(row["Size"]), row["digest"]) for row in rows}


def new_session(session: Any, subject: str, label: str) -> Any:
    project = session.projects["DEMO"]
    parent = session.classes.SubjectData(parent=project, label=subject)
    session.classes.MrSessionData(parent=parent, label=label)
    session.clearcache()
    return session.projects["DEMO"].subjects[subject].experiments[label]


def test_resource_upload_of_a_file_and_its_overwrite(session: Any, tmp_path: Path) -> None:
    experiment = new_session(session, "XW_UP", "XW_UP_MR")
    resource = experiment.create_resource("NOTES")
    first = tmp_path / "a.txt"
    first.write_bytes(b"first\n")
    resource.upload(str(first), "a.txt")
    first.write_bytes(b"second, longer\n")
    resource.upload(str(first), "a.txt", overwrite=True)
    assert listed(session, resource.uri) == {
        "a.txt": (15, hashlib.md5(b"second, longer\n").hexdigest())
    }


@pytest.mark.parametrize("method", ["per_file", "tar_file", "tgz_file", "tgz_memory"])
def test_upload_dir_by_each_method(session: Any, tmp_path: Path, method: str) -> None:
    experiment = new_session(session, "XW_DIR", f"XW_DIR_{method}")
    resource = experiment.create_resource("DERIVED")
    tree = {"top.txt": b"top\n", "sub/deep/leaf.bin": bytes(range(256)) * 40}
    for name, data in tree.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    resource.upload_dir(str(tmp_path), method=method)
    expected = {n: (len(d), hashlib.md5(d).hexdigest()) for n, d in tree.items()}
    assert listed(session, resource.uri) == expected


def test_import_with_each_overwrite_value(session: Any) -> None:
    dest = "/archive/projects/DEMO/subjects/XW_OVR/experiments/XW_OVR_MR"
    spec = InstanceSpec(study_key="xnatpy-overwrite")
    first = session.services.import_(
        data=study_zip(spec, [(1, "T1w", 2)]), content_type="application/zip",
        import_handler="DICOM-zip", destination=dest,
    )  # fmt: skip
    assert sorted(first.scans.keys()) == ["1"]
    # overwrite=none (the default) on an existing session
    with pytest.raises(XNATUploadError, match="already exists"):
        session.services.import_(
            data=study_zip(spec, [(2, "T2w", 1)]), content_type="application/zip",
            import_handler="DICOM-zip", destination=dest, overwrite="none",
        )  # fmt: skip
    session.services.import_(
        data=study_zip(spec, [(2, "T2w", 1)]), content_type="application/zip",
        import_handler="DICOM-zip", destination=dest, overwrite="append",
    )  # fmt: skip
    session.clearcache()
    experiment = session.projects["DEMO"].subjects["XW_OVR"].experiments["XW_OVR_MR"]
    assert sorted(experiment.scans.keys()) == ["1", "2"]
    session.services.import_(
        data=study_zip(spec, [(1, "T1w", 3)]), content_type="application/zip",
        import_handler="DICOM-zip", destination=dest, overwrite="delete",
    )  # fmt: skip
    uri = f"/data/experiments/{experiment.id}/scans/1/resources/DICOM"
    assert sorted(listed(session, uri)) == ["1.dcm", "2.dcm", "3.dcm"]


def test_prearchive_api_sessions_scans_files_archive_and_delete(session: Any) -> None:
    spec = InstanceSpec(study_key="xnatpy-prearchive", patient_name="XW_PRE", patient_id="XW_P1")
    kept = session.services.import_(
        data=study_zip(spec, [(3, "T1w", 2)]), content_type="application/zip",
        import_handler="DICOM-zip", destination="/prearchive/projects/DEMO",
    )  # fmt: skip
    gone_spec = InstanceSpec(study_key="xnatpy-prearc-del", patient_name="XW_DEL")
    gone = session.services.import_(
        data=study_zip(gone_spec, [(1, "T1w", 1)]), content_type="application/zip",
        import_handler="DICOM-zip", destination="/prearchive/projects/DEMO",
    )  # fmt: skip
    rows = session.prearchive.sessions(project="DEMO", allow_receiving=True)
    assert {kept.uri, gone.uri} <= {row.uri for row in rows}
    [scan] = kept.scans
    assert scan.id == "3"
    assert sorted(f.name for f in scan.files) == ["1.dcm", "2.dcm"]
    gone.delete(asynchronous=False)
    rows = session.prearchive.sessions(project="DEMO", allow_receiving=True)
    assert gone.uri not in {row.uri for row in rows}
    experiment = kept.archive(subject="XW_PRE_S", experiment="XW_PRE_MR")
    assert experiment.label == "XW_PRE_MR"
    uri = f"/data/experiments/{experiment.id}/scans/3/resources/DICOM"
    assert sorted(listed(session, uri)) == ["1.dcm", "2.dcm"]


def test_refresh_catalog_of_a_resource(session: Any) -> None:
    experiment = new_session(session, "XW_REF", "XW_REF_MR")
    resource = experiment.create_resource("REF")
    resource.upload_data("refresh me\n", "r.txt")
    session.services.refresh_catalog(resource, checksum=True, append=True, populate_stats=True)
    assert listed(session, resource.uri) == {
        "r.txt": (11, hashlib.md5(b"refresh me\n").hexdigest())
    }
