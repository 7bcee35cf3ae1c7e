"""End-to-end pulls against the emulator: full, no-op, selection, layout, dry run, deletes."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import replace
from pathlib import Path

import aiohttp

from tests.integration.conftest import (
    NOTES,
    expected_tree,
    journal_rows,
    journal_states,
    local_files,
    make_config,
    md5,
    run_pull,
    server_request,
)
from xnatsync.audit import verify
from xnatsync.emulator.server import Emulator
from xnatsync.events import FileDeleted, Notice, PlanShown
from xnatsync.journal import Journal
from xnatsync.layout import parse_layout
from xnatsync.pull.selection import Selection
from xnatsync.xnat.auth import Credentials


async def server_digests(emu: Emulator, project: str = "DEMO") -> dict[str, str]:
    """Every file of every experiment of ``project`` as the server lists it: URI → digest."""
    out: dict[str, str] = {}
    async with aiohttp.ClientSession(emu.url, headers=emu.auth()) as http:
        async with http.get(f"/data/projects/{project}/experiments?format=json") as r:
            experiments = (await r.json())["ResultSet"]["Result"]
        for exp in experiments:
            url = f"/data/experiments/{exp['ID']}/files?all=true&format=json"
            async with http.get(url) as r:
                for row in (await r.json())["ResultSet"]["Result"]:
                    out[row["URI"]] = row["digest"]
    return out


async def test_full_pull_mirrors_every_listed_file_verified(emu: Emulator, tmp_path: Path) -> None:
    summary, _ = await run_pull(make_config(emu, tmp_path))
    files = local_files(tmp_path)
    digests = await server_digests(emu)
    session_files = [p for p in files if "/scans/" in p or "/DEMO0" in p.split("resources")[0]]
    assert summary.ok
    assert summary.files_transferred == len(files) > 0
    assert sorted(md5(b) for p, b in files.items() if p in session_files) == sorted(
        d for d in digests.values()
    )
    assert any(p.endswith(".dcm") and "/scans/1-T1w/resources/DICOM/files/" in p for p in files)
    assert set(journal_states(tmp_path).values()) == {"done"}
    assert set(journal_states(tmp_path)) == set(files)


async def test_second_pull_transfers_nothing(emu: Emulator, tmp_path: Path) -> None:
    config = make_config(emu, tmp_path)
    await run_pull(config)
    before = {p: (tmp_path / p).stat().st_mtime_ns for p in local_files(tmp_path)}
    emu.requests.clear()
    summary, _ = await run_pull(config)
    assert summary.files_transferred == 0
    assert summary.files_skipped == len(before)
    assert emu.requests.count("GET", "*/files/*.*") == 0
    assert {p: (tmp_path / p).stat().st_mtime_ns for p in local_files(tmp_path)} == before


async def test_changed_remote_file_is_fetched_again(emu: Emulator, tmp_path: Path) -> None:
    config = make_config(emu, tmp_path)
    await run_pull(config)
    url = NOTES + "?overwrite=true&inbody=true"
    assert await server_request(emu, "PUT", url, b"new notes\n") == 200
    summary, _ = await run_pull(config)
    assert summary.files_transferred == 1
    path = tmp_path / "DEMO/DEMO01/DEMO01_MR1/resources/NOTES/files/notes.txt"
    assert path.read_bytes() == b"new notes\n"


async def test_selection_limits_the_pull(emu: Emulator, tmp_path: Path) -> None:
    selection = Selection(
        experiments=frozenset({"DEMO01_MR1"}),
        scan_types=("T1*",),
        resources=frozenset({"DICOM"}),
        project_resources=False,
        subject_resources=False,
    )
    summary, _ = await run_pull(make_config(emu, tmp_path, selection=selection))
    files = local_files(tmp_path)
    assert summary.ok
    assert files
    assert all(p.startswith("DEMO/DEMO01/DEMO01_MR1/scans/1-T1w/resources/DICOM/") for p in files)


async def test_since_selects_by_server_dates(emu: Emulator, tmp_path: Path) -> None:
    future = Selection(since=dt.date(2999, 1, 1), project_resources=False, subject_resources=False)
    summary, _ = await run_pull(make_config(emu, tmp_path, selection=future))
    assert summary.files_planned == 0
    assert local_files(tmp_path) == {}


async def test_layout_change_moves_files_without_downloading(emu: Emulator, tmp_path: Path) -> None:
    await run_pull(make_config(emu, tmp_path))
    contents = sorted(local_files(tmp_path).values())
    emu.requests.clear()
    flat = parse_layout("scan={project}/{experiment}/{scan}/{resource}/{path}")
    summary, _ = await run_pull(make_config(emu, tmp_path, layout=flat))
    files = local_files(tmp_path)
    assert emu.requests.count("GET", "*/files/*.*") == 0
    assert summary.files_moved > 0
    assert summary.files_transferred == 0
    assert sorted(files.values()) == contents
    assert "DEMO/DEMO01_MR1/1/DICOM/1-0001.dcm" in files


async def test_dry_run_changes_nothing(emu: Emulator, tmp_path: Path) -> None:
    dest = tmp_path / "mirror"
    _, events = await run_pull(make_config(emu, dest, dry_run=True))
    shown = {e.title: e.text for e in events.of(PlanShown)}
    assert not dest.exists()
    assert "files to download" in shown["plan"]
    assert "download new" in shown["DEMO/DEMO01_MR1"]


async def test_delete_trashes_files_that_left_the_server(emu: Emulator, tmp_path: Path) -> None:
    config = make_config(emu, tmp_path)
    await run_pull(config)
    gone = "DEMO/DEMO01/DEMO01_MR1/resources/NOTES/files/notes.txt"
    assert await server_request(emu, "DELETE", NOTES) == 200
    _, events = await run_pull(replace(config, delete=True))
    deleted = events.of(FileDeleted)
    assert [d.relpath for d in deleted] == [gone]
    assert not (tmp_path / gone).exists()
    trashed = deleted[0].trashed_to
    assert trashed is not None
    assert (tmp_path / trashed).is_file()


async def test_deletes_over_the_cap_are_refused_whole(emu: Emulator, tmp_path: Path) -> None:
    config = make_config(emu, tmp_path)
    await run_pull(config)
    before = local_files(tmp_path)
    session = "/data/projects/DEMO/subjects/DEMO01/experiments/DEMO01_MR1"
    assert await server_request(emu, "DELETE", session) == 200
    _, events = await run_pull(replace(config, delete=True, max_delete=2))
    assert events.of(FileDeleted) == []
    assert any("refused" in n.message for n in events.of(Notice))
    assert local_files(tmp_path) == before


async def test_no_deletes_after_a_failed_listing(emu: Emulator, tmp_path: Path) -> None:
    config = make_config(emu, tmp_path)
    await run_pull(config)
    before = local_files(tmp_path)
    assert await server_request(emu, "DELETE", "/data/projects/DEMO/subjects/DEMO02") == 200
    emu.faults.script("GET", "*/experiments/*/files", ["500"] * 10)
    summary, events = await run_pull(replace(config, delete=True, max_delete=1000))
    assert summary.listing_failures
    assert events.of(FileDeleted) == []
    assert local_files(tmp_path) == before


async def test_unchanged_listing_still_notices_local_damage(emu: Emulator, tmp_path: Path) -> None:
    config = make_config(emu, tmp_path)
    await run_pull(config)
    files = local_files(tmp_path)
    with Journal.open(tmp_path / ".xnatsync" / "journal.db") as journal:
        assert journal.fingerprint("DEMO", "") is not None  # every owner came out clean
    removed, grown, touched = sorted(f for f in files if f.endswith(".dcm"))[:3]
    (tmp_path / removed).unlink()
    (tmp_path / grown).write_bytes(files[grown] + b"x")
    os.utime(tmp_path / touched, ns=(1, 1))  # same bytes, other mtime: re-hashed, not fetched
    emu.requests.clear()
    summary, _ = await run_pull(config)
    assert summary.files_transferred == 2
    assert summary.files_verified == 1
    assert emu.requests.count("GET", "*/files/*.dcm") == 2
    assert local_files(tmp_path) == files


async def test_verify_finds_damage_and_the_next_pull_repairs_it(
    emu: Emulator, tmp_path: Path
) -> None:
    config = make_config(emu, tmp_path)
    await run_pull(config)
    files = local_files(tmp_path)
    victim = sorted(f for f in files if f.endswith(".dcm"))[0]
    data = bytearray(files[victim])
    data[-1] ^= 0xFF
    stamp = (tmp_path / victim).stat()
    (tmp_path / victim).write_bytes(bytes(data))
    os.utime(tmp_path / victim, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # a silent bit flip
    report, ok = verify(tmp_path, config.journal_file)
    assert not ok
    assert victim in report
    summary, _ = await run_pull(config)
    assert summary.files_transferred == 1
    assert local_files(tmp_path) == files
    assert verify(tmp_path, config.journal_file)[1]


async def test_dry_run_on_a_mirror_plans_deletes_and_writes_nothing(
    emu: Emulator, tmp_path: Path
) -> None:
    config = make_config(emu, tmp_path)
    await run_pull(config)
    assert await server_request(emu, "DELETE", NOTES) == 200
    state = tmp_path / ".xnatsync"
    before = {p.name: p.read_bytes() for p in state.iterdir() if p.is_file()}
    files = local_files(tmp_path)
    _, events = await run_pull(replace(config, dry_run=True, delete=True))
    shown = {e.title: e.text for e in events.of(PlanShown)}
    assert "delete   trash" in shown["deletes"]
    assert "notes.txt" in shown["deletes"]
    assert "1 to delete" in shown["plan"]
    assert local_files(tmp_path) == files
    assert {p.name: p.read_bytes() for p in state.iterdir() if p.is_file()} == before


async def test_the_journal_records_each_run_with_its_outcome_and_counts(
    emu: Emulator, tmp_path: Path
) -> None:
    config = make_config(emu, tmp_path)
    emu.faults.script("GET", "*/files/1-0001.dcm", ["corrupt"] * 20)
    summary, _ = await run_pull(config)
    with Journal.open(config.journal_file) as journal:
        last = journal.summary()["last_run"]
    assert last["status"] == "failed"
    failed = summary.files_failed
    assert failed > 0  # one file in each session's first scan
    assert last["counts"]["files_failed"] == failed
    assert last["counts"]["files_transferred"] == summary.files_transferred
    emu.faults.clear()
    await run_pull(config)
    with Journal.open(config.journal_file) as journal:
        last = journal.summary()["last_run"]
    assert (last["status"], last["counts"]["files_transferred"]) == ("ok", failed)


PRIV_SUBJECT = "/data/projects/PRIV/subjects/PRIV01"


async def share_priv_session_into_demo(emu: Emulator, *, subject_label: str = "") -> None:
    """Share PRIV01_MR1 (project PRIV, which `user` cannot read) into DEMO as SHARED_MR."""
    if subject_label:
        url = f"{PRIV_SUBJECT}/projects/DEMO?label={subject_label}"
        assert await server_request(emu, "PUT", url) == 200
    url = f"{PRIV_SUBJECT}/experiments/PRIV01_MR1/projects/DEMO?label=SHARED_MR"
    assert await server_request(emu, "PUT", url) == 200


def under(files: dict[str, bytes], prefix: str) -> dict[str, bytes]:
    return {p.removeprefix(prefix): b for p, b in files.items() if p.startswith(prefix)}


async def test_shared_experiments_are_mirrored_under_the_sharing_project(
    emu: Emulator, tmp_path: Path
) -> None:
    await share_priv_session_into_demo(emu, subject_label="SHARED01")
    # a member of DEMO only: the shared session is read through DEMO
    as_user = make_config(emu, tmp_path / "user", credentials=Credentials("user", "user"))
    summary, _ = await run_pull(as_user)
    shared = under(local_files(tmp_path / "user"), "DEMO/SHARED01/SHARED_MR/")
    assert summary.ok
    assert sorted(md5(b) for b in shared.values()) == sorted(
        (await server_digests(emu, "PRIV")).values()
    )
    # both projects into one destination: two copies, each with its own journal rows
    dest = tmp_path / "admin"
    config = make_config(emu, dest, projects=("DEMO", "PRIV"))
    summary, _ = await run_pull(config)
    files = local_files(dest)
    assert summary.ok
    assert under(files, "PRIV/PRIV01/PRIV01_MR1/") == under(files, "DEMO/SHARED01/SHARED_MR/")
    states = {p: row[0] for p, row in journal_rows(dest).items()}
    assert states == dict.fromkeys(files, "done")
    again, _ = await run_pull(config)
    assert (again.files_transferred, again.files_skipped) == (0, len(files))


async def test_an_unshared_experiment_leaves_the_mirror_on_delete(
    emu: Emulator, tmp_path: Path
) -> None:
    await share_priv_session_into_demo(emu)  # its subject is not shared: labelled as in PRIV
    config = make_config(emu, tmp_path, max_delete=1000)
    await run_pull(config)
    prefix = "DEMO/PRIV01/SHARED_MR/"
    before = local_files(tmp_path)
    assert under(before, prefix)
    assert await server_request(emu, "DELETE", "/data/projects/DEMO/experiments/SHARED_MR") == 200
    _, events = await run_pull(replace(config, delete=True))
    assert {d.relpath for d in events.of(FileDeleted)} == {
        p for p in before if p.startswith(prefix)
    }
    assert local_files(tmp_path) == {p: b for p, b in before.items() if not p.startswith(prefix)}
    assert await server_request(emu, "GET", f"{PRIV_SUBJECT}/experiments/PRIV01_MR1") == 200


async def test_assessor_files_are_mirrored_unless_excluded(emu: Emulator, tmp_path: Path) -> None:
    summary, _ = await run_pull(make_config(emu, tmp_path / "all"))
    qc = {p: b for p, b in local_files(tmp_path / "all").items() if "/assessors/" in p}
    [assessor] = emu.store.experiments["XNAT_E00001"].assessors.values()
    prefix = f"DEMO/DEMO01/DEMO01_MR1/assessors/{assessor.id}/resources/QC/files/"
    assert summary.ok
    assert sorted(qc) == [prefix + "report.txt", prefix + "snapshots/axial.txt"]
    demo = {p for p in expected_tree(emu) if p.startswith("DEMO/")}
    assert demo == set(local_files(tmp_path / "all"))
    without = Selection(assessors=False)
    summary, _ = await run_pull(make_config(emu, tmp_path / "none", selection=without))
    assert summary.ok
    assert not any("/assessors/" in p for p in local_files(tmp_path / "none"))
