"""``pull --changed-only``: a nightly run lists in detail only the sessions whose server dates
moved since the last complete run (issue 11), counted in the emulator's request log."""

from __future__ import annotations

import fnmatch
from dataclasses import replace
from pathlib import Path

from tests.integration.conftest import make_config, run_pull, server_request
from xnatsync.emulator.server import Emulator
from xnatsync.events import Notice
from xnatsync.journal import Journal
from xnatsync.pull.changes import DAY, ChangedOnly
from xnatsync.pull.selection import Selection

ARCHIVED = "2024-03-01 10:00:00.0"  # the demo archive, as if filled long before the runs
DEMO_SESSIONS = {"DEMO01_MR1", "DEMO01_MR2", "DEMO02_MR1", "DEMO03_CT1"}
MR2 = "/data/projects/DEMO/subjects/DEMO01/experiments/DEMO01_MR2"
T0 = 1_800_000_000.0


def backdate(emu: Emulator) -> None:
    for experiment in emu.store.experiments.values():
        experiment.insert_date = experiment.last_modified = ARCHIVED
    for subject in emu.store.subjects.values():
        subject.insert_date = subject.last_modified = ARCHIVED


def listed_sessions(emu: Emulator) -> set[str]:
    """Labels of the sessions whose files were listed (``files?all=true``) since the log was
    cleared."""
    ids = {
        r.path.split("/")[3]
        for r in emu.requests.records
        if r.method == "GET"
        and fnmatch.fnmatchcase(r.path, "/data/experiments/*/files")
        and "all=true" in r.query
    }
    return {emu.store.experiments[i].label for i in ids}


def cutoff(dest: Path) -> str | None:
    with Journal.open(dest / ".xnatsync" / "journal.db") as journal:
        row = journal.cutoff("DEMO")
    return row[1] if row else None


async def change_mr2(emu: Emulator, name: str = "late.txt") -> None:
    """What a curator does: edit the session's fields (its last_modified moves) and add a file."""
    assert await server_request(emu, "PUT", f"{MR2}?note=rescanned") == 200
    url = f"{MR2}/resources/NOTES/files/{name}?inbody=true"
    assert await server_request(emu, "PUT", url, b"added later\n") == 200


async def test_a_second_run_lists_only_the_changed_session(emu: Emulator, tmp_path: Path) -> None:
    backdate(emu)
    config = make_config(emu, tmp_path, changed_only=ChangedOnly(), clock=lambda: T0)
    first, _ = await run_pull(config)
    assert first.ok
    assert listed_sessions(emu) == DEMO_SESSIONS
    assert cutoff(tmp_path) == ARCHIVED
    await change_mr2(emu)
    emu.requests.clear()
    second, events = await run_pull(config)
    assert second.ok
    assert listed_sessions(emu) == {"DEMO01_MR2"}
    late = tmp_path / "DEMO/DEMO01/DEMO01_MR2/resources/NOTES/files/late.txt"
    assert late.read_bytes() == b"added later\n"
    assert cutoff(tmp_path) == emu.store.experiments[emu_id(emu, "DEMO01_MR2")].last_modified
    said = " ".join(n.message for n in events.of(Notice))
    assert "whose server dates changed since the last complete run" in said
    assert "sessions and subjects unchanged since the last complete run were not listed" in said
    emu.requests.clear()
    third, _ = await run_pull(config)  # nothing moved since
    assert third.ok
    assert listed_sessions(emu) == set()


def emu_id(emu: Emulator, label: str) -> str:
    return next(e.id for e in emu.store.experiments.values() if e.label == label)


async def test_a_failed_run_does_not_advance_the_cutoff(emu: Emulator, tmp_path: Path) -> None:
    backdate(emu)
    config = make_config(emu, tmp_path, changed_only=ChangedOnly(), clock=lambda: T0)
    assert (await run_pull(config))[0].ok
    await change_mr2(emu)
    emu.faults.configure("paths=*/late.txt,500=1")
    failed, _ = await run_pull(config)
    assert failed.files_failed == 1
    assert cutoff(tmp_path) == ARCHIVED  # the failed run recorded nothing
    emu.faults.configure("")
    emu.requests.clear()
    again, _ = await run_pull(config)
    assert again.ok
    assert listed_sessions(emu) == {"DEMO01_MR2"}
    assert (tmp_path / "DEMO/DEMO01/DEMO01_MR2/resources/NOTES/files/late.txt").exists()
    assert cutoff(tmp_path) != ARCHIVED


async def test_a_file_added_without_a_date_moving_is_caught_by_its_workflow(
    emu: Emulator, tmp_path: Path
) -> None:
    """XNAT leaves a session's dates alone when a file is added to it, but logs a workflow on
    it, which the recent= listing shows (and the emulator does the same)."""
    backdate(emu)
    config = make_config(emu, tmp_path, changed_only=ChangedOnly(), clock=lambda: T0)
    assert (await run_pull(config))[0].ok
    url = f"{MR2}/resources/NOTES/files/quiet.txt?inbody=true"
    assert await server_request(emu, "PUT", url, b"no date moved\n") == 200
    assert emu.store.experiments[emu_id(emu, "DEMO01_MR2")].last_modified == ARCHIVED
    emu.requests.clear()
    summary, _ = await run_pull(config)
    assert summary.ok
    assert listed_sessions(emu) == {"DEMO01_MR2"}
    assert emu.requests.count("GET", "/data/experiments") == 1  # recent=, once a run
    quiet = tmp_path / "DEMO/DEMO01/DEMO01_MR2/resources/NOTES/files/quiet.txt"
    assert quiet.read_bytes() == b"no date moved\n"
    emu.requests.clear()
    assert (await run_pull(config))[0].ok  # the workflow date is kept: not listed again
    assert listed_sessions(emu) == set()


async def test_without_recent_the_run_goes_on_by_dates(emu: Emulator, tmp_path: Path) -> None:
    backdate(emu)
    config = make_config(emu, tmp_path, changed_only=ChangedOnly(), clock=lambda: T0)
    assert (await run_pull(config))[0].ok
    await change_mr2(emu)
    emu.faults.configure("paths=/data/experiments,error:404=1")
    summary, events = await run_pull(config)
    assert summary.ok
    assert any("recent= listing failed" in n.message for n in events.of(Notice))
    assert (tmp_path / "DEMO/DEMO01/DEMO01_MR2/resources/NOTES/files/late.txt").exists()


async def test_full_every_forces_a_full_listing(emu: Emulator, tmp_path: Path) -> None:
    backdate(emu)
    now = [T0]
    mode = ChangedOnly(full_every=7 * DAY)
    config = make_config(emu, tmp_path, changed_only=mode, clock=lambda: now[0])
    assert (await run_pull(config))[0].ok
    now[0] = T0 + 6 * DAY
    emu.requests.clear()
    assert (await run_pull(config))[0].ok
    assert listed_sessions(emu) == set()  # nothing changed, the full listing is not due
    now[0] = T0 + 7.5 * DAY
    emu.requests.clear()
    _, events = await run_pull(config)
    assert listed_sessions(emu) == DEMO_SESSIONS
    assert any("--full-every 7" in n.message for n in events.of(Notice))
    now[0] = T0 + 8 * DAY  # the full listing just now restarted the period
    emu.requests.clear()
    assert (await run_pull(config))[0].ok
    assert listed_sessions(emu) == set()


async def test_delete_always_lists_in_full(emu: Emulator, tmp_path: Path) -> None:
    backdate(emu)
    config = make_config(emu, tmp_path, changed_only=ChangedOnly(), clock=lambda: T0)
    assert (await run_pull(config))[0].ok
    assert await server_request(emu, "DELETE", f"{MR2}/resources/NOTES/files/notes.txt") == 200
    emu.requests.clear()
    deleting = make_config(emu, tmp_path, changed_only=ChangedOnly(), delete=True)
    summary, events = await run_pull(deleting)
    assert listed_sessions(emu) == DEMO_SESSIONS
    assert summary.files_deleted == 1
    assert not (tmp_path / "DEMO/DEMO01/DEMO01_MR2/resources/NOTES/files/notes.txt").exists()
    assert any("--delete lists every session" in n.message for n in events.of(Notice))


async def test_another_selection_lists_in_full(emu: Emulator, tmp_path: Path) -> None:
    backdate(emu)
    config = make_config(emu, tmp_path, changed_only=ChangedOnly(), clock=lambda: T0)
    assert (await run_pull(config))[0].ok
    emu.requests.clear()
    narrower = replace(config, selection=Selection(resources=frozenset({"NOTES"})))
    _, events = await run_pull(narrower)
    assert listed_sessions(emu) == DEMO_SESSIONS
    assert any("selection or layout differs" in n.message for n in events.of(Notice))
