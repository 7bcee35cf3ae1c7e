"""The store: persistence across restarts with a root, indexes, seeds (xnat-api §1.4)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import aiohttp
import pydicom
import pytest

from tests.emulator.emuhelp import rows
from xnatsync.emulator.blobs import safe_relpath
from xnatsync.emulator.server import Emulator, run_emulator
from xnatsync.emulator.settings import EmulatorConfig, SyntheticSpec
from xnatsync.emulator.store import Store


def _client(emu: Emulator) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(emu.url, headers=emu.auth())


async def test_state_survives_restart_with_root(tmp_path: Path) -> None:
    config = EmulatorConfig(root=tmp_path, seed="demo")
    async with run_emulator(config) as emu, _client(emu) as session:
        async with session.put("/data/projects/DEMO/subjects/LATE") as response:
            assert response.status == 201
        before = await rows(session, "/data/experiments", project="DEMO")
        files = await rows(session, f"/data/experiments/{before[0]['ID']}/files", all="true")
    async with run_emulator(config) as emu, _client(emu) as session:
        assert await rows(session, "/data/experiments", project="DEMO") == before
        labels = [r["label"] for r in await rows(session, "/data/projects/DEMO/subjects")]
        assert labels[-1] == "LATE"
        again = await rows(session, f"/data/experiments/{before[0]['ID']}/files", all="true")
        assert again == files
        async with session.get(files[0]["URI"]) as response:
            assert hashlib.md5(await response.read()).hexdigest() == files[0]["digest"]
        async with session.put("/data/projects/DEMO/subjects/LATER") as response:
            assert (await response.text()).endswith("_S00007")  # counters persisted too


async def test_without_root_nothing_is_left(tmp_path: Path) -> None:
    async with run_emulator(EmulatorConfig(seed="demo")) as emu:
        root = emu.store.root
        assert not (root / "metadata.json").exists()
    assert not root.exists()


def test_store_api_and_label_indexes(tmp_path: Path) -> None:
    store = Store(tmp_path, "SITE")
    store.create_project("P1", "One")
    experiment, created = store.ensure_experiment("P1", "S1", "E1", "xnat:ctSessionData")
    assert created
    assert (experiment.id, experiment.subject) == ("SITE_E00001", "SITE_S00001")
    assert store.ensure_experiment("P1", "S1", "E1") == (experiment, False)
    scan, _ = store.ensure_scan(experiment.id, "1-MR1", type="T1")
    resource, _ = store.ensure_resource(scan, "DICOM")
    assert store.add_file(resource, "a/b.dcm", b"abc")
    assert not store.add_file(resource, "a/b.dcm", b"xyz")
    assert resource.files["a/b.dcm"].digest == hashlib.md5(b"abc").hexdigest()
    assert store.resource(scan, str(resource.id)) is resource
    assert store.resource(experiment, str(resource.id)) is None  # not the session's own
    assert store.subject("P1", "S1") is store.subject("P1", "SITE_S00001")
    assert store.experiment(None, "E1") is None
    store.relabel(experiment, "E2")
    assert store.experiment("P1", "E2") is experiment
    store.save()
    loaded = Store.open(tmp_path, "SITE")
    assert loaded.experiment("P1", "E2") is not None
    assert loaded.resources[resource.id].files["a/b.dcm"].size == 3


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a/../../b", "", "a\0b", "C:x", "\\h\\s"])
def test_unsafe_paths_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="unsafe"):
        safe_relpath(bad)


async def test_demo_seed_is_real_dicom() -> None:
    async with run_emulator(EmulatorConfig(seed="demo")) as emu:
        assert emu.seed_seconds < 1.0
        experiment = emu.store.experiment("DEMO", "DEMO03_CT1")
        assert experiment is not None
        resource = experiment.scans["2"].resources["DICOM"]
        data = emu.store.file_path(resource, "2-0003.dcm").read_bytes()
    dataset = pydicom.dcmread(io.BytesIO(data))
    assert (dataset.Modality, dataset.SeriesNumber, dataset.InstanceNumber) == ("CT", 2, 3)


async def test_synthetic_seed_counts_and_determinism() -> None:
    spec = SyntheticSpec("SYN", subjects=2, sessions=2, scans=3, files=5, file_size=1000)
    digests = []
    for _ in range(2):
        async with run_emulator(EmulatorConfig(seed="synthetic", synthetic=spec)) as emu:
            entries = [
                entry
                for experiment in emu.store.experiments.values()
                for scan in experiment.scans.values()
                for resource in scan.resources.values()
                for entry in resource.files.values()
            ]
            assert len(emu.store.experiments) == 4
            assert len(entries) == 60
            assert {e.size for e in entries} == {1000}
            digests.append(sorted(e.digest for e in entries))
    assert digests[0] == digests[1]
    assert len(set(digests[0])) == 60
