"""The watch daemon against the emulator, in the test's loop: studies trickling in are each
archived once after their quiet period; growing files wait; a late series is appended; bad
files are quarantined; an outage leaves a backlog that drains; after-upload acts only on
checked files; the health endpoint says 200 or 503."""

from __future__ import annotations

import asyncio
import time
from functools import partial
from pathlib import Path

import aiohttp

from tests.integration.conftest import wait_for
from tests.integration.watchhelp import (
    IMPORTS,
    NAMING,
    QUIET,
    archived,
    instance,
    instances,
    options,
    queue_rows,
    running,
    sends_by_session,
    status_file,
    study_states,
    until_done,
)
from tests.unit.dicom.dicomfiles import spec, write, write_instance
from xnatsync.dicom.headers import read_found
from xnatsync.dicom.instance import Instance
from xnatsync.emulator.dicom_synth import make_instance
from xnatsync.emulator.server import Emulator
from xnatsync.watch.options import Reloadable
from xnatsync.watch.queue import QUEUE, Queue
from xnatsync.watch.rules import AfterUpload

SESSION_A, SESSION_B = "PA_20240102", "PB_20240102"


async def test_trickling_studies_each_archived_once_after_their_quiet_period(
    emu: Emulator, tmp_path: Path
) -> None:
    spool, state = tmp_path / "spool", tmp_path / "state"
    async with running(options(emu, spool), state):
        instance(spool, "A", 1, 1)
        await wait_for(lambda: instances(state) == 1, what="study A queued")
        instance(spool, "B", 1, 1)
        for number in (2, 3):  # A keeps growing: not sent while instances keep coming
            await wait_for(partial(_at_least, state, number), what=f"instance {number}")
            instance(spool, "A", 2, number)
            last_a = time.monotonic()
        await until_done(state, {SESSION_A, SESSION_B})
        assert time.monotonic() - last_a >= QUIET  # A waited its quiet period after its last file
    assert sends_by_session(emu) == {SESSION_A: 1, SESSION_B: 1}
    sessions = await archived(emu)
    assert sessions == {
        SESSION_A: {("1", "IM1.dcm"), ("2", "IM2.dcm"), ("2", "IM3.dcm")},
        SESSION_B: {("1", "IM1.dcm")},
    }
    assert sorted(p.name for p in spool.rglob("*.dcm")) == ["IM1.dcm", "IM1.dcm", "IM2.dcm",
                                                            "IM3.dcm"]  # fmt: skip


async def test_a_file_still_growing_is_not_read_until_it_settles(
    emu: Emulator, tmp_path: Path
) -> None:
    spool, state = tmp_path / "spool", tmp_path / "state"
    data = make_instance(spec("G", 1, 1, patient_id="PG"))
    target = spool / "G" / "IM1.dcm"
    async with running(options(emu, spool, settle_seconds=0.4), state):
        target.parent.mkdir(parents=True)
        with target.open("wb") as sink:  # a slow copy: a header cut short until the end
            for start in range(0, len(data), 64):
                sink.write(data[start : start + 64])
                sink.flush()
                await asyncio.sleep(0.02)  # the scenario (a slow writer), not synchronisation
                assert instances(state) == 0, "read before its size stopped changing"
        await until_done(state, {"PG_20240102"})
    assert not (state / "quarantine").exists()
    assert await archived(emu, "PG") == {"PG_20240102": {("1", "IM1.dcm")}}


async def test_a_late_series_is_appended_to_the_archived_session(
    emu: Emulator, tmp_path: Path
) -> None:
    spool, state = tmp_path / "spool", tmp_path / "state"
    async with running(options(emu, spool), state):
        instance(spool, "A", 1, 1)
        await until_done(state, {SESSION_A})
        instance(spool, "A", 3, 1, name="late.dcm")
        await wait_for(lambda: sends_by_session(emu).get(SESSION_A) == 2, what="the append")
        await until_done(state, {SESSION_A})
    assert sends_by_session(emu) == {SESSION_A: 2}
    assert await archived(emu) == {SESSION_A: {("1", "IM1.dcm"), ("3", "late.dcm")}}


async def test_bad_files_are_quarantined_with_a_reason_and_the_rest_flows_on(
    emu: Emulator, tmp_path: Path
) -> None:
    spool, state = tmp_path / "spool", tmp_path / "state"
    good = make_instance(spec("A", 1, 1, patient_id="PA"))
    async with running(options(emu, spool), state):
        write(spool / "notes.txt", b"not an image\n")
        write(spool / "cut" / "IM9.dcm", good[:300])  # a Part-10 header cut short
        write(spool / ".incoming.tmp", good[:300])  # a writer's temp: never touched
        instance(spool, "A", 1, 1)
        await until_done(state, {SESSION_A})
        await wait_for(lambda: len(list((state / "quarantine").rglob("*.reason"))) == 2,
                       what="two reasons")  # fmt: skip
    quarantine = state / "quarantine"
    assert (quarantine / "notes.txt").read_bytes() == b"not an image\n"
    assert "not DICOM" in (quarantine / "notes.txt.reason").read_text()
    assert (quarantine / "cut" / "IM9.dcm").read_bytes() == good[:300]
    assert "truncated" in (quarantine / "cut" / "IM9.dcm.reason").read_text()
    assert not (spool / "notes.txt").exists()
    assert (spool / ".incoming.tmp").exists()
    assert await archived(emu) == {SESSION_A: {("1", "IM1.dcm")}}


async def test_server_down_the_backlog_waits_then_drains(emu: Emulator, tmp_path: Path) -> None:
    spool, state = tmp_path / "spool", tmp_path / "state"
    await emu.outage()
    async with running(options(emu, spool, max_unreachable=0.0), state):
        instance(spool, "A", 1, 1)
        instance(spool, "B", 1, 1)
        await wait_for(lambda: _tried(state) >= 2, what="both studies tried and waiting")
        await wait_for(lambda: "unreachable" in str(status_file(state).get("reason")),
                       what="unhealthy")  # fmt: skip
        status = status_file(state)
        counts = status["studies"]
        assert (counts["pending"] + counts["sending"], counts["done"]) == (2, 0)
        assert status["unreachable_since"] is not None
        await emu.end_outage()
        await until_done(state, {SESSION_A, SESSION_B})
        await wait_for(lambda: status_file(state).get("healthy") is True, what="healthy again")
    assert sends_by_session(emu) == {SESSION_A: 1, SESSION_B: 1}
    assert sorted(await archived(emu)) == [SESSION_A, SESSION_B]


def _at_least(state: Path, n: int) -> bool:
    return instances(state) >= n


def _tried(state: Path) -> int:
    rows = queue_rows(state, "SELECT count(*) FROM studies WHERE attempts>0 AND"
                      " state='pending' AND last_error IS NOT NULL")  # fmt: skip
    return int(rows[0][0]) if rows else 0


async def test_files_are_moved_only_after_their_study_was_checked(
    emu: Emulator, tmp_path: Path
) -> None:
    spool, state, sent = tmp_path / "spool", tmp_path / "state", tmp_path / "sent"
    emu.faults.script("POST", IMPORTS, ["500", "500"])  # the first try of the study fails
    live = Reloadable(quiet_seconds=QUIET, naming=NAMING,
                      after_upload=AfterUpload("move", sent))  # fmt: skip
    async with running(options(emu, spool, live=live), state):
        first = instance(spool, "A", 1, 1)
        await wait_for(lambda: _tried(state) == 1, what="a failed first try")
        assert first.exists()  # not checked: not touched
        assert not sent.exists()
        await until_done(state, {SESSION_A})
        await wait_for(lambda: (sent / "A/s1/IM1.dcm").exists(), what="moved")
    assert not first.exists()
    assert await archived(emu) == {SESSION_A: {("1", "IM1.dcm")}}


async def test_files_are_deleted_after_the_check(emu: Emulator, tmp_path: Path) -> None:
    spool, state = tmp_path / "spool", tmp_path / "state"
    live = Reloadable(quiet_seconds=QUIET, naming=NAMING, after_upload=AfterUpload("delete"))
    async with running(options(emu, spool, live=live), state):
        kept_elsewhere = instance(spool, "A", 1, 1)
        await until_done(state, {SESSION_A})
        await wait_for(lambda: not kept_elsewhere.exists(), what="deleted")
        instance(spool, "A", 2, 1)  # a late series after its first files were deleted
        await wait_for(lambda: sends_by_session(emu).get(SESSION_A) == 2, what="the append")
        await until_done(state, {SESSION_A})
    assert await archived(emu) == {SESSION_A: {("1", "IM1.dcm"), ("2", "IM1.dcm")}}
    assert list(spool.rglob("*.dcm")) == []


async def test_health_endpoint_200_while_healthy_503_with_the_reason(
    emu: Emulator, tmp_path: Path
) -> None:
    spool, state = tmp_path / "spool", tmp_path / "state"
    opts = options(emu, spool, health=("127.0.0.1", 0), max_unreachable=0.0)
    async with running(opts, state) as (control, _), aiohttp.ClientSession() as http:
        await wait_for(lambda: control.health is not None, what="the endpoint")
        assert control.health is not None
        url = f"http://127.0.0.1:{control.health[1]}/health"

        async def get() -> tuple[int, dict[str, object]]:
            async with http.get(url) as response:
                return response.status, await response.json()

        await wait_for(lambda: status_file(state).get("healthy") is True, what="healthy")
        status, body = await get()
        assert (status, body["healthy"]) == (200, True)
        await emu.outage()
        instance(spool, "A", 1, 1)
        await wait_for(lambda: "unreachable" in str(status_file(state).get("reason")),
                       what="unhealthy")  # fmt: skip
        status, body = await get()
        assert status == 503
        assert "unreachable" in str(body["reason"])
        await emu.end_outage()
        await until_done(state, {SESSION_A})
        await wait_for(lambda: status_file(state).get("healthy") is True, what="healthy")
        assert (await get())[0] == 200


async def test_a_crash_between_the_check_and_the_after_upload_is_finished_at_start(
    emu: Emulator, tmp_path: Path
) -> None:
    spool, state = tmp_path / "spool", tmp_path / "state"
    path = instance(spool, "A", 1, 1)
    found = read_found(path)
    assert isinstance(found, Instance)
    with Queue.open(state / QUEUE) as queue:  # what a kill right after the check leaves
        queue.observe([(path, found.size, found.mtime_ns)], now=0.0)
        queue.record_instance(found, now=0.0)
        queue.begin(found.study_uid, now=1.0)
        assert queue.finish(found.study_uid, [path], now=2.0) == "done"
    live = Reloadable(quiet_seconds=QUIET, naming=NAMING, after_upload=AfterUpload("delete"))
    async with running(options(emu, spool, live=live), state):
        await wait_for(lambda: not path.exists(), what="deleted at start")
    assert queue_rows(state, "SELECT state FROM files") == [("deleted",)]
    assert sends_by_session(emu) == {}  # nothing sent again


async def test_a_session_lost_while_the_server_is_away_is_replaced_by_a_fresh_login(
    emu: Emulator, tmp_path: Path
) -> None:
    spool, state = tmp_path / "spool", tmp_path / "state"
    async with running(options(emu, spool), state):
        await wait_for(lambda: status_file(state).get("reachable_since") is not None,
                       what="logged in")  # fmt: skip
        logins = emu.requests.count("POST", "/data/JSESSION")
        # the session expires (XNAT's idle timeout, a restart); the re-login meets a 503 twice
        emu.faults.script("POST", IMPORTS, ["expire"])
        emu.faults.script("POST", "/data/JSESSION", ["503", "503"])
        instance(spool, "A", 1, 1)
        await until_done(state, {SESSION_A})
    assert emu.requests.count("POST", "/data/JSESSION") == logins + 3  # 2 refused, 1 fresh
    assert await archived(emu) == {SESSION_A: {("1", "IM1.dcm")}}
    assert sends_by_session(emu) == {SESSION_A: 2}  # the one refused with 401, then the send


async def test_a_study_xnat_refuses_fails_with_the_reason_until_it_grows(
    emu: Emulator, tmp_path: Path
) -> None:
    spool, state = tmp_path / "spool", tmp_path / "state"
    emu.faults.script("POST", IMPORTS, ["error:400"])  # refused: no retry will cure it
    async with running(options(emu, spool, poll=True), state):
        instance(spool, "A", 1, 1)
        await wait_for(lambda: study_states(state).get(SESSION_A) == "failed", what="failed")
        await wait_for(lambda: "400" in str(status_file(state).get("last_error")),
                       what="the reason in the status")  # fmt: skip
        assert status_file(state)["studies"]["failed"] == 1
        assert sends_by_session(emu) == {SESSION_A: 1}  # not retried
        outside = tmp_path / "elsewhere" / "A2"
        instance(outside.parent, "A2", 1, 1)  # a new series, moved in as a whole folder
        write_instance(outside / "s2/IM1.dcm", spec("A", 2, 1, patient_id="PA"))
        (outside / "s1").rename(tmp_path / "unused")  # keep only study A's series
        outside.rename(spool / "A2")
        await until_done(state, {SESSION_A})
    assert await archived(emu) == {SESSION_A: {("1", "IM1.dcm"), ("2", "IM1.dcm")}}
