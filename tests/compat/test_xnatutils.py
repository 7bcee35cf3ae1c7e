"""xnatutils (xnat-ls, xnat-get, xnat-put), unmodified, against the
emulator: the calls its users script, with credentials passed explicitly (no ~/.netrc)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import xnatutils

from xnatsync.emulator.server import Emulator

pytestmark = [pytest.mark.compat]


@pytest.fixture(scope="module")
def login(emulator: Emulator) -> dict[str, Any]:
    return {"server": emulator.url, "user": "admin", "password": "admin", "use_netrc": False}


def test_ls_projects_subjects_sessions_and_scans(login: dict[str, Any]) -> None:
    assert "DEMO" in xnatutils.ls(datatype="project", **login)
    assert {"DEMO01", "DEMO02", "DEMO03"} <= set(xnatutils.ls("DEMO", datatype="subject", **login))
    sessions = xnatutils.ls(datatype="session", project_id="DEMO", subject_id="DEMO01", **login)
    assert "DEMO01_MR1" in sessions
    assert xnatutils.ls("DEMO01_MR1", datatype="scan", **login) != []


def test_put_creates_the_session_and_get_brings_the_file_back(
    login: dict[str, Any], tmp_path: Path
) -> None:
    folder = tmp_path / "t1"  # a folder: xnat-put sends a single file as a tar of a symlink
    folder.mkdir()
    source = folder / "t1.nii.gz"
    source.write_bytes(b"\x1f\x8b not really a nifti, but bytes all the same")
    xnatutils.put(
        "DEMO_XU01_MR01", "t1_mprage", str(folder), create_session=True,
        resource_name="NIFTI_GZ", **login,
    )  # fmt: skip
    assert xnatutils.ls("DEMO_XU01_MR01", datatype="scan", **login) == ["t1_mprage"]
    out = tmp_path / "out"
    out.mkdir()
    xnatutils.get("DEMO_XU01_MR01", str(out), scans="t1_mprage", **login)
    fetched = [p for p in out.rglob("*") if p.is_file()]
    assert [hashlib.md5(p.read_bytes()).hexdigest() for p in fetched] == [
        hashlib.md5(source.read_bytes()).hexdigest()
    ]
