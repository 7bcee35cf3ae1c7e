"""``xnatsync watch`` as a process: kill -9 mid-queue then restart sends nothing twice and loses
nothing; SIGTERM lets the send under way finish and exits 0 with the journal consistent; SIGHUP
reloads the config; ``xnatsync status`` shows the queue."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import signal
from functools import partial
from pathlib import Path

import anyio
import pytest

from tests.integration.conftest import cli_env, done_in, run_cli, start_cli, wait_for
from tests.integration.test_examples import PLACEHOLDER, REPO, workdir
from tests.integration.watchhelp import (
    archived,
    instance,
    queue_rows,
    sends_by_session,
    status_file,
)
from xnatsync.cli.main import build_parser, main
from xnatsync.cli.settings import merged
from xnatsync.cli.watch import DEFAULTS, WATCH_EXAMPLE, listen_from, options_from
from xnatsync.emulator.server import Emulator
from xnatsync.watch.daemon import Control, watch


def args(emu: Emulator, spool: Path, state: Path, *more: str) -> list[str]:
    return ["watch", emu.url, "--project", "DEMO", "--spool", str(spool), "--state", str(state),
            "--settle-seconds", "0.05", "--poll-seconds", "0.1",
            "--subject-label", "{PatientID}", "--session-label", "{PatientID}_{StudyDate}",
            *more]  # fmt: skip


def done_studies(state: Path) -> set[str]:
    return {s for (s,) in queue_rows(state, "SELECT session FROM studies WHERE state='done'")}


async def stop(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_kill_9_mid_queue_then_restart_sends_nothing_twice_and_loses_nothing(
    emu: Emulator, tmp_path: Path
) -> None:
    spool, state = tmp_path / "spool", tmp_path / "state"
    for study in "CDEFGH":
        for number in (1, 2):
            instance(spool, study, 1, number)
    sessions = {f"P{s}_20240102" for s in "CDEFGH"}
    emu.faults.configure("time:import=0.3")  # each import answered 0.3 s after it was applied
    proc = await start_cli(*args(emu, spool, state, "--quiet-seconds", "0.1"))
    await wait_for(lambda: len(done_studies(state)) >= 2, within=30, what="2 studies done")
    proc.send_signal(signal.SIGKILL)
    assert await asyncio.wait_for(proc.wait(), 20) == -signal.SIGKILL
    done_at_kill = done_studies(state)
    sent_at_kill = sends_by_session(emu)
    emu.faults.clear()
    proc = await start_cli(*args(emu, spool, state, "--quiet-seconds", "0.1"))
    await wait_for(lambda: done_studies(state) == sessions, within=30, what="every study done")
    code, err = await stop(proc)
    assert code == 0, err
    sent = sends_by_session(emu)
    for session in done_at_kill:  # checked before the kill: never sent again
        assert sent[session] == sent_at_kill[session] == 1
    for session in sessions - done_at_kill:  # one send, or a send cut by the kill then one more
        assert sent[session] <= sent_at_kill.get(session, 0) + 1
    got = await archived(emu)
    assert set(got) == sessions  # one session per study, none twice
    assert all(files == {("1", "IM1.dcm"), ("1", "IM2.dcm")} for files in got.values())
    assert {r.rsplit("/", 1)[-1] for r in done_in(state / "journal.db")} == sessions


async def test_sigterm_lets_the_send_under_way_finish_and_exits_0(
    emu: Emulator, tmp_path: Path
) -> None:
    spool, state = tmp_path / "spool", tmp_path / "state"
    emu.faults.configure("time:import=0.5")
    proc = await start_cli(*args(emu, spool, state, "--quiet-seconds", "0.1", "--log-json"))
    instance(spool, "A", 1, 1)
    await wait_for(lambda: bool(queue_rows(state, "SELECT 1 FROM studies WHERE state='sending'")),
                   what="a study being sent")  # fmt: skip
    code, err = await stop(proc)
    assert code == 0, err
    records = [json.loads(line) for line in err.splitlines()]  # JSON lines only
    notices = [r["message"] for r in records if r["event"] == "Notice"]
    assert f"state (queue, journal, quarantine, status.json) in {state}" in notices[0]
    assert any(n.startswith("stopping") for n in notices)
    assert any("PA/PA_20240102: 1 new instances archived and checked" in n for n in notices)
    assert done_studies(state) == {"PA_20240102"}
    assert {r.rsplit("/", 1)[-1] for r in done_in(state / "journal.db")} == {"PA_20240102"}
    runs = queue_rows_journal(state)
    assert runs[-1] == "stopped"
    code, out, _ = await run_cli("status", "--journal", str(state / "journal.db"))
    assert code == 0
    assert "watch queue" in out
    assert "0 pending, 0 sending, 1 done, 0 failed" in out


def queue_rows_journal(state: Path) -> list[str]:
    import sqlite3

    with sqlite3.connect(state / "journal.db") as db:
        return [s for (s,) in db.execute("SELECT status FROM runs ORDER BY id")]


async def test_sighup_reloads_the_quiet_period(emu: Emulator, tmp_path: Path) -> None:
    spool, state, config = tmp_path / "spool", tmp_path / "state", tmp_path / "scanner.toml"
    config.write_text("[watch]\nquiet_seconds = 3600\n")
    proc = await start_cli(*args(emu, spool, state, "--config", str(config)))
    instance(spool, "A", 1, 1)
    await wait_for(lambda: bool(queue_rows(state, "SELECT 1 FROM studies")), what="queued")
    config.write_text("[watch]\nquiet_seconds = 0.1\nafter_upload = 'delete'\n")
    proc.send_signal(signal.SIGHUP)
    await wait_for(lambda: done_studies(state) == {"PA_20240102"}, what="sent after the reload")
    await wait_for(lambda: not list(spool.rglob("*.dcm")), what="deleted after the reload")
    code, err = await stop(proc)
    assert code == 0, err
    assert "SIGHUP: reloaded quiet-seconds=0.1, after-upload=delete" in err


async def test_the_scanner_config_runs_as_written(emu: Emulator, tmp_path: Path) -> None:
    """configs/scanner.toml with the emulator's URL; only the quiet period is shortened."""
    work = workdir(tmp_path, emu.url)
    first = instance(work / "spool", "A", 1, 1)
    proc = await start_cli("watch", "--config", "configs/scanner.toml", "--quiet-seconds", "0.1",
                           "--settle-seconds", "0.05", cwd=work)  # fmt: skip
    state = work / "watch-state"
    await wait_for(lambda: (work / "sent" / "A/s1/IM1.dcm").exists(), what="sent, then moved")
    code, err = await stop(proc)
    assert code == 0, err
    assert not first.exists()
    assert done_studies(state) == {"PA_20240102"}
    assert await archived(emu) == {"PA_20240102": {("1", "IM1.dcm")}}
    status = json.loads((state / "status.json").read_text())
    assert status["studies"]["done"] == 1
    assert status["reason"] == "stopped"


def commands(text: str) -> list[list[str]]:
    """The ``xnatsync ...`` lines of an example text, continuations joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", "", text)
    lines = [line.split("#", 1)[0].strip() for line in joined.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("xnatsync ")]


async def test_the_readme_and_help_examples_run_as_written(
    emu: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each ``xnatsync watch`` example parsed as the command line does, run in this process
    until it is healthy, then stopped; the ``status`` example after them."""
    work = workdir(tmp_path, emu.url)
    (work / "spool").mkdir()
    monkeypatch.chdir(work)
    readme = next(b for b in re.findall(r"```sh\n(.*?)```", (REPO / "README.md").read_text(),
                                        re.S) if "xnatsync watch" in b)  # fmt: skip
    examples = commands(readme.replace(PLACEHOLDER, emu.url))
    examples += commands(WATCH_EXAMPLE.replace(PLACEHOLDER, emu.url))
    assert [e[0] for e in examples] == ["watch", "watch", "status", "watch", "watch", "watch"]
    for example in examples:
        if example[0] == "status":
            assert main(example) == 0
            assert "0 pending, 0 sending, 0 done, 0 failed" in capsys.readouterr().out
            continue
        args = build_parser().parse_args(example)
        settings = merged(args, "watch", DEFAULTS)
        options = options_from(settings, cli_env())
        listen = listen_from(settings, options.spool)  # its receiver: test_watch_listen
        assert listen is None or (listen.port, listen.allowed_aes) == (11112, ("SCANNER1",))
        control = Control(options.live)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(partial(watch, options, Path("watch-state"), control=control))
            await wait_for(lambda: status_file(work / "watch-state").get("healthy") is True,
                           what=f"{example} running")  # fmt: skip
            control.stop()
        assert options.live.after_upload.folder == (work / "sent" if listen is None else None)
        (work / "watch-state" / "status.json").unlink()
