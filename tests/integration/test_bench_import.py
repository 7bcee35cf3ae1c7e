"""The import benchmark's pieces: the synthetic studies say in their headers what their folders
say (so the baselines, which read the folders, and xnatsync, which reads the headers, make the
same sessions), and the zip POST baseline archives every instance it is given."""

from __future__ import annotations

import zipfile
from pathlib import Path

import aiohttp
import pydicom

from benchmarks.dicomsynth import write_studies
from benchmarks.reference import import_zips
from benchmarks.run import archived
from benchmarks.studyzip import study_folders, write_zip
from tests.integration.conftest import server_request
from xnatsync.emulator.server import Emulator


def test_synthesised_studies_carry_their_folders_labels_and_the_asked_size(
    tmp_path: Path,
) -> None:
    studies = write_studies(tmp_path / "a", studies=2, series=2, instances=3, matrix=16)
    assert [(s.subject, s.session) for s in studies] == [
        ("BENCH001", "BENCH001_20240102"),
        ("BENCH002", "BENCH002_20240102"),
    ]
    uids: dict[str, set[str]] = {}
    for subject, session, folder in study_folders(tmp_path / "a"):
        files = sorted(folder.rglob("*.dcm"))
        assert len(files) == 6
        for path in files:
            ds = pydicom.dcmread(path)
            assert ds.PatientID == subject
            assert f"{ds.PatientID}_{ds.StudyDate}" == session  # the bench's label templates
            assert str(ds.SeriesNumber) == path.parent.name
            assert (ds.Rows, ds.Columns, len(ds.PixelData)) == (16, 16, 16 * 16 * 2)
            uids.setdefault(session, set()).add(ds.StudyInstanceUID)
    assert all(len(u) == 1 for u in uids.values())  # one study per folder, two studies
    assert len(set().union(*uids.values())) == 2
    again = write_studies(tmp_path / "b", studies=2, series=2, instances=3, matrix=16)
    first = studies[1].folder / "2" / "3.dcm"
    assert (again[1].folder / "2" / "3.dcm").read_bytes() == first.read_bytes()


def test_study_zip_is_stored_with_series_folders(tmp_path: Path) -> None:
    (study,) = write_studies(tmp_path / "src", studies=1, series=2, instances=2, matrix=8)
    assert write_zip(study.folder, tmp_path / "s.zip") == 4
    with zipfile.ZipFile(tmp_path / "s.zip") as archive:
        infos = archive.infolist()
        assert sorted(i.filename for i in infos) == ["1/1.dcm", "1/2.dcm", "2/1.dcm", "2/2.dcm"]
        assert {i.compress_type for i in infos} == {zipfile.ZIP_STORED}
        assert archive.read("2/1.dcm") == (study.folder / "2" / "1.dcm").read_bytes()


async def test_zip_post_baseline_archives_every_study_under_its_labels(
    emu: Emulator, tmp_path: Path
) -> None:
    write_studies(tmp_path / "src", studies=3, series=2, instances=2, matrix=8)
    assert await server_request(emu, "PUT", "/data/projects/BENCHT") in (200, 201)
    await import_zips(emu.url, "admin", "admin", tmp_path / "src", "BENCHT", 2)
    assert await archived(emu.url, "BENCHT") == (3, 12)  # the bench's own check after a run
    async with (
        aiohttp.ClientSession(emu.url, headers=emu.auth()) as http,
        http.get("/data/projects/BENCHT/experiments", params={"format": "json"}) as r,
    ):
        rows = (await r.json())["ResultSet"]["Result"]
    assert sorted(row["label"] for row in rows) == [
        "BENCH001_20240102", "BENCH002_20240102", "BENCH003_20240102"
    ]  # fmt: skip
