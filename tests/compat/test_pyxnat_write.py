"""pyxnat's write side, unmodified, against the emulator: creating a project, subjects, sessions
and scans with attributes, putting files one by one, as a folder and as a zip extracted on the
server, and overwriting. Each test reads the result back through the server."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.compat]


def listed(interface: Any, resource: Any) -> dict[str, tuple[int, str]]:
    """A resource's files as the server lists them: path in the resource → (size, digest)."""
    rows = interface._get_json(resource._uri + "/files?format=json")
    return {row["URI"].split("/files/", 1)[1]: (int(row["Size"]), row["digest"]) for row in rows}


def digests(tree: dict[str, bytes]) -> dict[str, tuple[int, str]]:
    return {name: (len(data), hashlib.md5(data).hexdigest()) for name, data in tree.items()}


def write_tree(root: Path, tree: dict[str, bytes]) -> None:
    for name, data in tree.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def test_create_a_project_subject_session_and_scan_with_attributes(interface: Any) -> None:
    project = interface.select.project("PXW")
    project.create()
    assert project.exists()
    subject = project.subject("PXW01")
    subject.create()
    experiment = subject.experiment("PXW01_MR1")
    experiment.create(experiments="xnat:mrSessionData")
    experiment.attrs.set("xnat:mrSessionData/date", "2001-02-03")
    scan = experiment.scan("5")
    scan.create(scans="xnat:mrScanData")
    scan.attrs.set("xnat:mrScanData/type", "T1w")
    fresh = interface.select.project("PXW").subject("PXW01").experiment("PXW01_MR1")
    assert fresh.attrs.get("xnat:mrSessionData/date") == "2001-02-03"
    assert fresh.scans().get() == ["5"]
    assert fresh.scan("5").attrs.get("xnat:mrScanData/type") == "T1w"


def test_put_files_then_overwrite_one(interface: Any, tmp_path: Path) -> None:
    experiment = interface.select.project("DEMO").subject("DEMO02").experiment("DEMO02_MR1")
    resource = experiment.resource("PXW_FILES")
    tree = {"a.txt": b"alpha\n", "b.txt": b"beta\n"}
    write_tree(tmp_path, tree)
    resource.put([str(tmp_path / n) for n in tree], format="TXT")
    assert listed(interface, resource) == digests(tree)
    (tmp_path / "a.txt").write_bytes(b"alpha, again\n")
    resource.file("a.txt").put(str(tmp_path / "a.txt"), overwrite=True)
    assert listed(interface, resource) == digests(
        {"a.txt": b"alpha, again\n", "b.txt": tree["b.txt"]}
    )


def test_put_dir_and_put_zip_are_extracted_on_the_server(interface: Any, tmp_path: Path) -> None:
    experiment = interface.select.project("DEMO").subject("DEMO03").experiment("DEMO03_MR1")
    tree = {"top.txt": b"top\n", "sub/leaf.bin": bytes(range(256)) * 8}
    write_tree(tmp_path / "src", tree)
    by_dir = experiment.resource("PXW_DIR")
    by_dir.put_dir(str(tmp_path / "src"))
    assert listed(interface, by_dir) == digests(tree)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in tree.items():
            archive.writestr(name, data)
    (tmp_path / "bundle.zip").write_bytes(buffer.getvalue())
    by_zip = experiment.resource("PXW_ZIP")
    by_zip.put_zip(str(tmp_path / "bundle.zip"), extract=True)
    assert listed(interface, by_zip) == digests(tree)
