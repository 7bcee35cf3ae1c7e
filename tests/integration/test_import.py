"""import against the emulator: a folder of studies becomes one archived session per study;
every attempt looks before it sends, so retries after errors that came after the import was
applied, reruns, lost journals and grown studies send only what is missing."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from tests.integration.conftest import cli_env, done_in, run_cli, start_cli, wait_for
from tests.unit.dicom.dicomfiles import spec, write, write_instance
from xnatsync.dicom.labels import Naming, parse_template
from xnatsync.dicom.options import ImportOptions
from xnatsync.dicom.run import import_dicom
from xnatsync.emulator.server import Emulator, run_emulator
from xnatsync.emulator.settings import EmulatorConfig
from xnatsync.errors import ProjectNotFoundError
from xnatsync.journal import Journal
from xnatsync.limits import Limits
from xnatsync.model import Experiment, RemoteFile
from xnatsync.report import Summary
from xnatsync.retry import RetryPolicy
from xnatsync.xnat.auth import Credentials
from xnatsync.xnat.client import XnatClient
from xnatsync.xnat.routes import prearchive_sessions

IMPORTS = "/data/services/import"
FAST = RetryPolicy(attempts=4, backoff_base=0.0, backoff_max=0.0)


def export(root: Path) -> Path:
    """Two studies of patient PX1 (A: series 1 and 2; B: series 4) and a note."""
    for series, number in ((1, 1), (1, 2), (2, 1)):
        write_instance(
            root / f"A/s{series}/IM{number}", spec("A", series, number, patient_id="PX1")
        )
    write_instance(root / "B/001.dcm", spec("B", 4, 1, patient_id="PX1", study_date="20240105"))
    write(root / "README.txt", b"from the scanner\n")
    return root


def options(emu: Emulator, source: Path, tmp_path: Path, **changes: object) -> ImportOptions:
    naming = Naming(subject=parse_template("{PatientID}"),
                    session=parse_template("{PatientID}_{StudyDate}"))  # fmt: skip
    base = ImportOptions(emu.url, "DEMO", (source,), Credentials("admin", "admin"), naming=naming,
                         retry=FAST)  # fmt: skip
    return base if not changes else ImportOptions(**{**base.__dict__, **changes})


async def run(emu: Emulator, source: Path, tmp_path: Path, **changes: object) -> Summary:
    return await import_dicom(options(emu, source, tmp_path, **changes), tmp_path / "state")


async def archived(emu: Emulator) -> dict[str, set[tuple[str, str]]]:
    """Session label → {(scan, file)} of DEMO's sessions of patient PX1."""
    async with XnatClient(emu.url, Credentials("admin", "admin")) as client:
        out = {}
        for experiment in await client.list_experiments("DEMO"):
            if experiment.label.startswith("PX1_"):
                files = await client.list_experiment_files("DEMO", experiment)
                out[experiment.label] = {(f.container, f.path) for f in files}
        return out


def posts(emu: Emulator) -> int:
    return emu.requests.count("POST", IMPORTS)


async def test_two_studies_become_two_sessions_and_a_rerun_sends_nothing(
    emu: Emulator, tmp_path: Path
) -> None:
    source = export(tmp_path / "export")
    summary = await run(emu, source, tmp_path)
    assert (summary.ok, summary.files_transferred) == (True, 4), summary.failures
    assert any("not DICOM" in n for n in summary.notices)
    sessions = await archived(emu)
    assert sorted(sessions) == ["PX1_20240102", "PX1_20240105"]
    assert {scan for scan, _ in sessions["PX1_20240102"]} == {"1", "2"}
    assert sessions["PX1_20240105"] == {("4", "001.dcm")}
    assert posts(emu) == 2
    again = await run(emu, source, tmp_path)
    assert (again.ok, again.files_transferred, again.files_skipped, posts(emu)) == (True, 0, 4, 2)


async def test_without_its_journal_a_rerun_looks_and_sends_nothing(
    emu: Emulator, tmp_path: Path
) -> None:
    source = export(tmp_path / "export")
    assert (await run(emu, source, tmp_path)).ok
    for leftover in (tmp_path / "state").glob("journal.db*"):
        leftover.unlink()
    again = await run(emu, source, tmp_path)
    assert (again.ok, again.files_transferred, posts(emu)) == (True, 0, 2)


async def test_a_grown_study_is_appended_to_its_session(emu: Emulator, tmp_path: Path) -> None:
    source = export(tmp_path / "export")
    assert (await run(emu, source, tmp_path)).ok
    write_instance(source / "A/s3/IM1", spec("A", 3, 1, patient_id="PX1"))  # a late series
    summary = await run(emu, source, tmp_path)
    assert (summary.ok, summary.files_transferred, posts(emu)) == (True, 1, 3)
    sessions = await archived(emu)
    assert sorted(sessions) == ["PX1_20240102", "PX1_20240105"]  # no second session
    assert ("3", "IM1") in sessions["PX1_20240102"]


async def test_an_error_after_the_import_was_applied_is_resolved_by_looking(
    emu: Emulator, tmp_path: Path
) -> None:
    source = export(tmp_path / "export")
    emu.faults.script("POST", IMPORTS, ["applied:502", "busy-processing", "ok"])
    summary = await run(emu, source, tmp_path)
    assert summary.ok, summary.failures
    # the study answered 502 after it was stored was not sent again; the one refused as busy
    # (before anything was applied) went a second time
    assert posts(emu) == 3
    sessions = await archived(emu)
    assert sum(len(files) for files in sessions.values()) == 4


async def test_a_missing_project_is_refused_before_anything_is_sent(
    emu: Emulator, tmp_path: Path
) -> None:
    source = export(tmp_path / "export")
    with pytest.raises(ProjectNotFoundError, match="NOPE"):
        await run(emu, source, tmp_path, project="NOPE")
    assert posts(emu) == 0


async def test_a_read_only_project_exits_3_with_nothing_sent(emu: Emulator, tmp_path: Path) -> None:
    source = export(tmp_path / "export")
    emu.store.projects["DEMO"].members["user"] = "Collaborators"  # may read, not add data
    args = ["import", emu.url, "--project", "DEMO", "--source", str(source), "--state",
            str(tmp_path / "state"), "--no-progress"]  # fmt: skip
    code, _, err = await run_cli(*args, env=cli_env("user", "user"))
    assert code == 3, err
    assert "may not add data" in err
    assert posts(emu) == 0
    assert await archived(emu) == {}
    emu.store.projects["DEMO"].members["user"] = "Members"  # as a member, the same import sends
    summary = await run(emu, source, tmp_path, credentials=Credentials("user", "user"))
    assert summary.ok, summary.failures
    assert posts(emu) == 2


async def test_kill_during_import_then_rerun_sends_only_what_is_missing(
    emu: Emulator, tmp_path: Path
) -> None:
    source = tmp_path / "export"
    for study in range(6):
        for number in (1, 2):
            write_instance(source / f"st{study}" / f"IM{number}",
                           spec(f"K{study}", 1, number, patient_id=f"PK{study}"))  # fmt: skip
    emu.faults.configure("time:import=0.4")  # each import answered 0.4 s after it was applied
    state = tmp_path / "state"
    args = ["import", emu.url, "--project", "DEMO", "--source", str(source), "--state",
            str(state), "--no-progress", "--concurrency", "2"]  # fmt: skip
    proc = await start_cli(*args)
    await wait_for(
        lambda: len(done_in(state / "journal.db")) >= 2, within=60, what="2 studies done"
    )
    proc.send_signal(signal.SIGKILL)
    assert await asyncio.wait_for(proc.wait(), 20) == -signal.SIGKILL
    done_at_kill = done_in(state / "journal.db")
    before = len(emu.requests.matching("POST", IMPORTS))
    emu.faults.clear()
    code, _, err = await run_cli(*args)
    assert code == 0, err
    rerun = emu.requests.matching("POST", IMPORTS)[before:]
    sessions_done = {label.rsplit("/", 1)[1] for label in done_at_kill}
    sent_again = {parse_qs(r.query)["dest"][0].rsplit("/", 1)[1] for r in rerun}
    assert not sent_again & sessions_done  # no study checked before the kill went again
    assert len(rerun) <= 6 - len(done_at_kill)
    async with XnatClient(emu.url, Credentials("admin", "admin")) as client:
        labels = sorted(
            e.label for e in await client.list_experiments("DEMO") if e.label.startswith("PK")
        )
    assert labels == [f"PK{n}" for n in range(6)]  # one session per study, none twice


async def test_a_study_over_the_part_size_goes_in_parts_into_one_session(
    emu: Emulator, tmp_path: Path
) -> None:
    source = export(tmp_path / "export")
    one = next(source.rglob("IM1")).stat().st_size
    summary = await run(emu, source, tmp_path, part_bytes=one)  # at most a scan per request
    assert (summary.ok, summary.files_transferred) == (True, 4), summary.failures
    # study A: scan 1 (two instances, over the budget, alone) then scan 2; study B: one
    assert posts(emu) == 3
    sessions = await archived(emu)
    assert sorted(sessions) == ["PX1_20240102", "PX1_20240105"]
    assert len(sessions["PX1_20240102"]) == 3


async def test_to_the_prearchive_and_a_rerun_without_journal_looks_there(
    emu: Emulator, tmp_path: Path
) -> None:
    source = export(tmp_path / "export")
    summary = await run(emu, source, tmp_path, to_prearchive=True)
    assert (summary.ok, summary.files_transferred, posts(emu)) == (True, 4, 2), summary.failures
    assert await archived(emu) == {}  # nothing archived: left for review
    async with XnatClient(emu.url, Credentials("admin", "admin")) as client:
        rows = await client.list_rows(prearchive_sessions("DEMO"))
    assert sorted(r["name"] for r in rows) == ["PX1_20240102", "PX1_20240105"]
    for leftover in (tmp_path / "state").glob("journal.db*"):
        leftover.unlink()
    again = await run(emu, source, tmp_path, to_prearchive=True)
    assert (again.ok, again.files_transferred, posts(emu)) == (True, 0, 2)


async def test_a_study_archived_under_another_label_is_found_by_its_uid(
    emu: Emulator, tmp_path: Path
) -> None:
    source = export(tmp_path / "export")
    assert (await run(emu, source, tmp_path)).ok
    write_instance(source / "A/s3/IM1", spec("A", 3, 1, patient_id="PX1"))  # a late series
    renamed = Naming(subject=parse_template("{PatientID}"),
                     session=parse_template("{PatientID}_{Modality}_{StudyDate}"))  # fmt: skip
    summary = await run(emu, source, tmp_path, naming=renamed)
    assert (summary.ok, summary.files_transferred) == (True, 1), summary.failures
    assert posts(emu) == 3  # only study A's late instance went, into its old session
    sessions = await archived(emu)
    assert sorted(sessions) == ["PX1_20240102", "PX1_20240105"]  # no session under a new label
    assert ("3", "IM1") in sessions["PX1_20240102"]
    moved = [n for n in summary.notices if "no second session" in n]
    assert len(moved) == 2
    assert "PX1_MR_20240102" in " ".join(moved)


async def test_a_label_holding_another_study_is_refused_before_sending(
    emu: Emulator, tmp_path: Path
) -> None:
    source = export(tmp_path / "export")
    assert (await run(emu, source, tmp_path)).ok
    other = tmp_path / "other"
    write_instance(other / "C/IM1", spec("C", 1, 1, patient_id="PX1"))  # same label, new study
    summary = await run(emu, other, tmp_path)
    assert not summary.ok
    assert posts(emu) == 2
    assert "already holds another study" in " ".join(str(f) for f in summary.failures)
    assert len((await archived(emu))["PX1_20240102"]) == 3  # nothing merged into it


class Damaging(XnatClient):
    """The emulator's client, except that the catalog lists another size and MD5 for one
    archived file (what an anonymization script editing files as they arrive looks like)."""

    async def list_experiment_files(self, project: str, experiment: Experiment) -> list[RemoteFile]:
        files = await super().list_experiment_files(project, experiment)
        return [replace(f, size=1, digest="0" * 32) if (f.container, f.path) == ("2", "IM1")
                else f for f in files]  # fmt: skip


async def test_archived_files_are_checked_by_name_not_bytes_and_nothing_is_resent(
    emu: Emulator, tmp_path: Path
) -> None:
    """XNAT writes every object anew as it archives it (its own file meta, the header
    re-encoded; a site script may edit more): a file with other bytes under the right name is
    archived, not failed, not sent again, and not reported (it would be, for every study)."""
    source = export(tmp_path / "export")
    client = Damaging(emu.url, Credentials("admin", "admin"), retry=FAST)
    summary = await import_dicom(options(emu, source, tmp_path), tmp_path / "state", client=client)
    assert (summary.ok, summary.files_transferred) == (True, 4), summary.failures
    assert posts(emu) == 2
    assert not [n for n in summary.notices if "instances" in n or "MD5" in n]  # nothing said
    with Journal.open(tmp_path / "state" / "journal.db") as journal:
        done = {e.relpath for e in journal.iter_done("DEMO")}
    assert len(done) == 2
    again = await import_dicom(options(emu, source, tmp_path), tmp_path / "state", client=client)
    assert (again.ok, again.files_transferred, posts(emu)) == (True, 0, 2)


async def test_a_server_without_digests_imports_the_same(tmp_path: Path) -> None:
    async with run_emulator(EmulatorConfig(seed="demo", checksums=False)) as emu:
        source = export(tmp_path / "export")
        summary = await run(emu, source, tmp_path)
        assert (summary.ok, summary.files_transferred) == (True, 4), summary.failures
        assert not [n for n in summary.notices if "MD5" in n or "size" in n]
        async with XnatClient(emu.url, Credentials("admin", "admin")) as client:
            experiments = await client.list_experiments("DEMO")
            files = await client.list_experiment_files(
                "DEMO", next(e for e in experiments if e.label == "PX1_20240102")
            )
        assert files
        assert {f.digest for f in files} == {None}


# What XNAT's import service answers under load (xnat-api §5, §12), on the first import of a
# run: (fault, imports the run makes for its two studies, the status the server logged)
IMPORT_FAULTS = {
    "busy-processing": (3, 400),  # the four transient 400s: refused before anything was
    "busy-concurrent": (3, 400),  # applied, sent again after a delay
    "busy-duplicate": (3, 400),
    "busy-in-use": (3, 400),
    "429:0": (3, 429),  # rate limited, then backoff
    "503": (3, 503),
    "applied:500": (2, 500),  # errors AFTER the import was applied: found by looking,
    "applied:502": (2, 502),  # never sent again
    "applied:504": (2, 504),
    "drop": (2, 200),  # applied (logged 200), then the connection reset before an answer
    "expire": (3, 401),  # the session expired: log in again, the body streamed afresh
}


@pytest.mark.parametrize("fault", sorted(IMPORT_FAULTS))
async def test_import_side_faults_end_with_one_complete_session_per_study(
    emu: Emulator, tmp_path: Path, fault: str
) -> None:
    expected_posts, status = IMPORT_FAULTS[fault]
    source = export(tmp_path / "export")
    logins = emu.requests.count("POST", "/data/JSESSION")
    emu.faults.script("POST", IMPORTS, [fault])
    # one import at a time: an expired session would otherwise fail both imports in flight
    summary = await run(emu, source, tmp_path, limits=Limits(transfers=1))
    assert (summary.ok, summary.files_transferred) == (True, 4), summary.failures
    if fault == "expire":  # one login more than the run's own
        assert emu.requests.count("POST", "/data/JSESSION") == logins + 2
    records = emu.requests.matching("POST", IMPORTS)
    assert len(records) == expected_posts
    assert [r.status for r in records if r.fault != "ok"] == [status]
    sessions = await archived(emu)
    assert {label: len(files) for label, files in sessions.items()} == {
        "PX1_20240102": 3, "PX1_20240105": 1,
    }  # fmt: skip


async def test_a_file_cut_inside_its_pixel_data_is_reported_and_sent_once_whole(
    emu: Emulator, tmp_path: Path
) -> None:
    source = export(tmp_path / "export")
    damaged = source / "A/s2/IM1"
    whole = damaged.read_bytes()
    damaged.write_bytes(whole[:-10])
    summary = await run(emu, source, tmp_path)
    assert not summary.ok
    assert "pixel data" in " ".join(str(f) for f in summary.failures)
    assert ("2", "IM1") not in (await archived(emu))["PX1_20240102"]  # not archived broken
    damaged.write_bytes(whole)  # repaired: the rerun sends just that file into the session
    again = await run(emu, source, tmp_path)
    assert (again.ok, again.files_transferred, posts(emu)) == (True, 1, 3)
    assert len((await archived(emu))["PX1_20240102"]) == 3


async def test_to_archive_is_one_request_per_study_on_a_1_7_server(tmp_path: Path) -> None:
    """An explicit archive ``dest`` is archived by the DICOM-zip request itself on every version
    (no Direct-Archive, which 1.7 lacks, and no commit step)."""
    async with run_emulator(EmulatorConfig(seed="demo", xnat_version="1.7.6")) as emu:
        summary = await run(emu, export(tmp_path / "export"), tmp_path)
        assert (summary.ok, summary.files_transferred) == (True, 4), summary.failures
        assert posts(emu) == 2
        assert emu.requests.count("POST", "/data/prearchive/*") == 0
        assert emu.requests.count("POST", "/data/services/archive") == 0
        assert sorted(await archived(emu)) == ["PX1_20240102", "PX1_20240105"]
        queries = [parse_qs(r.query) for r in emu.requests.matching("POST", IMPORTS)]
        assert all(
            "Direct-Archive" not in q and q["dest"][0].startswith("/archive/") for q in queries
        )


async def test_an_instance_without_preamble_is_imported_as_xnat_takes_it(
    emu: Emulator, tmp_path: Path
) -> None:
    """Found by its tags, sent as it is, and taken by the importer (dcm4che reads a dataset
    with no preamble by guessing its encoding, as the emulator now does)."""
    source = tmp_path / "export"
    write_instance(source / "IM1", spec("A", 1, 1, patient_id="PX1"))
    write_instance(source / "raw.bin", spec("A", 1, 2, patient_id="PX1"), preamble=False)
    summary = await run(emu, source, tmp_path)
    assert (summary.ok, summary.files_transferred) == (True, 2), summary.failures
    assert await archived(emu) == {"PX1_20240102": {("1", "IM1"), ("1", "raw.bin")}}
