"""The command line end to end, in subprocesses: exit codes, messages, config files, reports,
the destination lock (§1.9 row 22), disk errors (row 12) and secrets (row 26)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.conftest import (
    FILE_GETS,
    PYTHON,
    assert_invariants,
    cli_env,
    expected_tree,
    journal_rows,
    local_files,
    part_files,
    run_cli,
    start_cli,
)
from xnatsync.emulator.server import Emulator, run_emulator
from xnatsync.emulator.sessions import HttpSession
from xnatsync.emulator.settings import EmulatorConfig, SyntheticSpec
from xnatsync.layout import parse_layout

TARGET = "*/XNAT_E00001/scans/1/resources/*/files/1-00001.dat"
TARGET_REL = "SYNTH/SYNTH_S0001/SYNTH_S0001_MR1/scans/1-SERIES1/resources/DICOM/files/1-00001.dat"
LOGINS = "/data/JSESSION"


def names_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def pull(emu: Emulator, dest: Path, *extra: str) -> list[str]:
    return ["pull", emu.url, "--project", "SYNTH", "--dest", str(dest), "--no-progress", *extra]


# -- usage errors: exit 2, a clear message, nothing created ---------------------------------------


BASE = ["pull", "http://127.0.0.1:9", "--project", "P", "--dest", "{dest}"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pull", "--project", "P", "--dest", "{dest}"], "needs the XNAT URL"),
        (["pull", "http://127.0.0.1:9", "--dest", "{dest}"], "at least one --project"),
        (["pull", "ftp://host", "--project", "P", "--dest", "{dest}"], "not an XNAT URL"),
        (["pull", "http://u:pw@127.0.0.1:9", "--project", "P", "--dest", "{dest}"], "not the URL"),
        ([*BASE, "--concurrency", "0"], "--concurrency must be positive"),
        ([*BASE, "--concurrency", "100000"], "--concurrency 100000: at most 128"),
        ([*BASE, "--listings", "1000"], "--listings 1000: at most 64"),
        ([*BASE, "--delete", "--max-delete", "-1"], "--max-delete must be 0 or more"),
        ([*BASE, "--max-delete", "5"], "--max-delete applies only with --delete"),
        ([*BASE, "--no-trash"], "--no-trash applies only with --delete"),
        ([*BASE, "--attempts", "0"], "--attempts must be positive"),
        ([*BASE, "--since", "yesterday"], "YYYY-MM-DD"),
        ([*BASE, "--layout", "{{subject}}/{{path}}"], "so that paths stay unique"),
        ([*BASE, "--bwlimit", "fast"], "not a rate"),
        (["pull", "--config", "{dest}.toml"], "cannot read config"),
        (["pull", "--bogus-option"], "unrecognized arguments"),
    ],
)
async def test_usage_errors_exit_2_and_create_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    dest = tmp_path / "mirror"
    code, out, err = await run_cli(*(a.format(dest=dest) for a in args))
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert out == ""
    assert names_in(tmp_path) == []


async def test_bad_config_file_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "nightly.toml"
    config.write_text('url = "http://127.0.0.1:9"\n[pull]\nproject = ["P"]\nconcurency = 4\n')
    code, _, err = await run_cli("pull", "--config", str(config), "--dest", str(tmp_path / "d"))
    assert code == 2
    assert "unknown setting 'concurency'" in err
    config.write_text('url = "http://127.0.0.1:9"\nproject = "P"\n')
    code, _, err = await run_cli("pull", "--config", str(config), "--dest", str(tmp_path / "d"))
    assert code == 2
    assert "project must be a list of strings" in err
    assert names_in(tmp_path) == ["nightly.toml"]


async def test_bad_credentials_exit_3_after_one_login(synth: Emulator, tmp_path: Path) -> None:
    code, _, err = await run_cli(*pull(synth, tmp_path), env=cli_env("admin", "wrong"))
    assert code == 3
    assert "rejected" in err
    assert "check the username and password" in err
    assert synth.requests.count("POST", LOGINS) == 1  # never a loop (accounts get locked)
    assert synth.requests.count("GET", FILE_GETS) == 0
    assert local_files(tmp_path) == {}


async def test_progress_bars_only_on_a_terminal_or_when_asked(
    synth: Emulator, tmp_path: Path
) -> None:
    base = ["pull", synth.url, "--project", "SYNTH"]
    code, _, quiet = await run_cli(*base, "--dest", str(tmp_path / "a"))
    assert code == 0
    assert "files:" not in quiet  # stderr is a pipe here: no bars, only the summary line
    assert "downloaded" in quiet
    code, _, shown = await run_cli(*base, "--dest", str(tmp_path / "b"), "--progress")
    assert code == 0
    assert "files: 100%" in shown
    assert "bytes: 100%" in shown


async def test_insecure_warns_on_every_run(synth: Emulator, tmp_path: Path) -> None:
    code, _, err = await run_cli(*pull(synth, tmp_path, "--insecure"))
    assert code == 0
    assert "warning: --insecure" in err


async def test_dry_run_prints_the_plan_and_creates_nothing(synth: Emulator, tmp_path: Path) -> None:
    dest = tmp_path / "mirror"
    code, out, err = await run_cli(*pull(synth, dest, "--dry-run"))
    assert code == 0, err
    assert "download new" in out
    assert f"plan: {len(expected_tree(synth))} files to download" in out
    assert not dest.exists()


async def test_config_file_supplies_the_options(synth: Emulator, tmp_path: Path) -> None:
    dest, report = tmp_path / "mirror", tmp_path / "out" / "report.json"
    config = tmp_path / "job.toml"
    config.write_text(
        f'url = "{synth.url}"\n'
        "[pull]\n"
        'project = ["SYNTH"]\n'
        f'dest = "{dest}"\n'
        "concurrency = 2\n"
        'scan-type = ["SERIES1"]\n'
        f'report = "{report}"\n'
        "no_progress = true\n"
    )
    code, _, err = await run_cli("pull", "--config", str(config))
    assert code == 0, err
    files = local_files(dest)
    assert files
    assert all("/scans/1-SERIES1/" in p for p in files)
    data = json.loads(report.read_text())
    assert data["status"] == "ok"
    assert data["files_transferred"] == len(files) == 8
    # The command line wins over the file.
    code, _, err = await run_cli("pull", "--config", str(config), "--dest", str(tmp_path / "b"))
    assert code == 0, err
    assert len(local_files(tmp_path / "b")) == 8


async def test_report_lists_counts_and_failures(synth: Emulator, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    dest = tmp_path / "mirror"
    synth.faults.script("GET", TARGET, ["corrupt"] * 20)
    code, _, err = await run_cli(*pull(synth, dest, "--report", str(report), "--attempts", "2"))
    assert code == 1
    assert f"failed: {TARGET_REL}" in err
    data = json.loads(report.read_text())
    for key in ("files_planned", "files_transferred", "files_skipped", "files_failed",
                "bytes_transferred", "failures"):  # fmt: skip
        assert key in data
    assert data["status"] == "failed"
    assert data["files_planned"] == 16
    assert data["files_transferred"] == 15
    assert data["files_failed"] == 1
    assert data["bytes_transferred"] == 15 * 65536
    [failure] = data["failures"]
    assert failure["path"] == TARGET_REL
    assert "MD5" in failure["reason"]
    # Rerun without the fault: exit 0; only the failed file moves.
    synth.faults.clear()
    code, _, err = await run_cli(*pull(synth, dest, "--report", str(report)))
    assert code == 0, err
    data = json.loads(report.read_text())
    assert (data["files_transferred"], data["files_skipped"], data["files_failed"]) == (1, 15, 0)
    assert data["failures"] == []
    assert_invariants(dest, expected_tree(synth))


# -- the destination lock ---------------------------------------------------------------------


async def test_second_run_on_a_locked_dest_exits_2(synth: Emulator, tmp_path: Path) -> None:
    synth.faults.script("GET", TARGET, ["stall:8@0.5"])
    half_sent = synth.faults.on_bytes_sent(TARGET, 32768)
    first = await start_cli(*pull(synth, tmp_path))
    try:
        await asyncio.wait_for(half_sent.wait(), 30)
        code, _, err = await run_cli(*pull(synth, tmp_path))
        assert code == 2
        assert f"locked by host {socket.gethostname()} pid {first.pid}" in err
    finally:
        first.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(first.wait(), 20) == 130
    assert part_files(tmp_path) == []


async def test_stale_lock_of_a_dead_process_is_taken_over(synth: Emulator, tmp_path: Path) -> None:
    gone = await asyncio.create_subprocess_exec(PYTHON, "-c", "pass")
    await gone.wait()
    lock = tmp_path / ".xnatsync" / "lock"
    lock.parent.mkdir()
    info = {"host": socket.gethostname(), "pid": gone.pid, "started": "2020-01-01", "token": "x"}
    lock.write_text(json.dumps(info))
    code, _, err = await run_cli(*pull(synth, tmp_path))
    assert code == 0, err
    assert not lock.exists()
    assert set(local_files(tmp_path)) == set(expected_tree(synth))


async def test_lock_of_another_host_is_respected(synth: Emulator, tmp_path: Path) -> None:
    lock = tmp_path / ".xnatsync" / "lock"
    lock.parent.mkdir()
    info = {"host": "elsewhere.example", "pid": 1, "started": "2020-01-01", "token": "x"}
    lock.write_text(json.dumps(info))
    code, _, err = await run_cli(*pull(synth, tmp_path))
    assert code == 2
    assert "locked by host elsewhere.example pid 1" in err
    assert f"delete {lock}" in err
    assert local_files(tmp_path) == {}


# -- disk errors ------------------------------------------------------------------------------

FSIZE_LIMITED = """
import resource, runpy, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
sys.argv = ["xnatsync", *sys.argv[2:]]
runpy.run_module("xnatsync.cli", run_name="__main__")
"""


@pytest.fixture
async def synth_256k() -> AsyncIterator[Emulator]:
    spec = SyntheticSpec(
        project="SYNTH", subjects=2, sessions=1, scans=2, files=4, file_size=262144
    )
    async with run_emulator(EmulatorConfig(seed="synthetic", synthetic=spec)) as emulator:
        yield emulator


async def test_file_too_large_exits_4_without_retries(synth_256k: Emulator, tmp_path: Path) -> None:
    """EFBIG (RLIMIT_FSIZE, SIGXFSZ ignored) is the disk refusing: fatal, not retried."""
    emu = synth_256k
    proc = await asyncio.create_subprocess_exec(
        PYTHON, "-c", FSIZE_LIMITED, str(128 * 1024), *pull(emu, tmp_path, "--concurrency", "1"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=cli_env(),
    )  # fmt: skip
    _, err_bytes = await asyncio.wait_for(proc.communicate(), 60)
    err = err_bytes.decode()
    assert proc.returncode == 4, err
    assert "File too large" in err
    assert "Traceback" not in err
    assert "downloaded (" not in err  # no summary line before a fatal error (issue 7, item 7)
    assert err.strip().splitlines()[-1].startswith("xnatsync: error:")
    # one stream: the first session's scans come as one zip; no retry storm, nothing more
    zips = emu.requests.count("GET", "*/scans/*/files")  # of scans or of their resources
    data_requests = emu.requests.count("GET", FILE_GETS) + zips
    assert data_requests == 1
    assert part_files(tmp_path) == []
    assert local_files(tmp_path) == {}
    assert all(state != "done" for state, _, _ in journal_rows(tmp_path).values())


# -- secrets ------------------------------------------------------------------------------------

SENTINEL = "Sentinel-Pa55-7f3c9e1d"
WRONG = "Wrong-Sentinel-0b8a44"


@pytest.fixture
async def guarded() -> AsyncIterator[Emulator]:
    spec = SyntheticSpec(project="SYNTH", subjects=2, sessions=1, scans=2, files=4, file_size=65536)
    config = EmulatorConfig(seed="synthetic", synthetic=spec, admin_password=SENTINEL)
    async with run_emulator(config) as emulator:
        yield emulator


def secrets_in(blob: bytes) -> list[str]:
    forms = [SENTINEL, WRONG]
    forms += [base64.b64encode(f"admin:{s}".encode()).decode() for s in (SENTINEL, WRONG)]
    return [f for f in forms if f.encode() in blob]


def record_session_ids(emu: Emulator) -> list[str]:
    """Every JSESSIONID the emulator hands out (session ids are secrets too)."""
    issued: list[str] = []
    create = emu.sessions.create

    def recording(username: str) -> HttpSession:
        session = create(username)
        issued.append(session.id)
        return session

    emu.sessions.create = recording  # type: ignore[method-assign]
    return issued


def dest_bytes(dest: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(dest.rglob("*")) if p.is_file())


async def test_no_secret_in_any_output(guarded: Emulator, tmp_path: Path) -> None:
    dest, report = tmp_path / "mirror", tmp_path / "report.json"
    sessions = record_session_ids(guarded)
    # Exercise the error paths too: a retry, a re-login, a failed file.
    guarded.faults.script("GET", FILE_GETS, ["503", "expire", "ok", "reset"])
    guarded.faults.script("GET", TARGET, ["corrupt"] * 20)
    args = pull(guarded, dest, "--log-json", "--report", str(report), "--attempts", "2")
    code, out, err = await run_cli(*args, env=cli_env("admin", SENTINEL))
    assert code == 1, err  # the corrupt file failed; the rest is done
    assert '"event": "FileDone"' in err
    assert '"event": "FileRetry"' in err
    assert guarded.requests.count("POST", LOGINS) == len(sessions) == 2
    for blob in (out.encode(), err.encode(), report.read_bytes(), dest_bytes(dest)):
        assert secrets_in(blob) == []
        assert not [s for s in sessions if s.encode() in blob]

    report.unlink()
    code, out, err = await run_cli(*args, env=cli_env("admin", WRONG))
    assert code == 3
    assert guarded.requests.count("POST", LOGINS) == 3  # one attempt, no loop
    for blob in (out.encode(), err.encode(), report.read_bytes(), dest_bytes(dest)):
        assert secrets_in(blob) == []
    assert json.loads(report.read_text())["status"] == "error"


def test_help_has_an_example() -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "xnatsync.cli", "pull", "--help"], capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0
    assert "xnatsync pull https://" in done.stdout


# -- the other commands ---------------------------------------------------------------------------


async def test_status_and_verify_read_the_journal(synth: Emulator, tmp_path: Path) -> None:
    code, _, err = await run_cli(*pull(synth, tmp_path))
    assert code == 0, err
    code, out, _ = await run_cli("status", "--dest", str(tmp_path))
    assert code == 0
    files = len(expected_tree(synth))
    assert re.search(rf"\bdone\s+{files} files", out), out
    assert "→ ok" in out
    code, out, _ = await run_cli("verify", "--dest", str(tmp_path))
    assert (code, out.splitlines()[0]) == (0, f"verified {files} of {files} files")
    victim = tmp_path / TARGET_REL
    victim.write_bytes(b"not what was verified")
    code, out, _ = await run_cli("verify", "--dest", str(tmp_path))
    assert code == 1
    assert TARGET_REL in out
    code, _, err = await run_cli(*pull(synth, tmp_path))
    assert code == 0, err
    assert_invariants(tmp_path, expected_tree(synth))


async def test_status_without_a_journal_is_a_usage_error(tmp_path: Path) -> None:
    code, _, err = await run_cli("status", "--dest", str(tmp_path))
    assert code == 2
    assert "no journal" in err
    assert names_in(tmp_path) == []


async def test_demo_pulls_twice_and_the_second_pull_does_nothing(tmp_path: Path) -> None:
    code, out, err = await run_cli("demo", "--dest", str(tmp_path / "mirror"), deadline=120)
    assert code == 0, err
    first, second = out.split("== ")[1:3]
    assert " downloaded" in first
    assert "0 failed" in first
    assert second.splitlines()[1].startswith("0 downloaded")
    assert "DEMO/DEMO01/DEMO01_MR1/scans/1-T1w/resources/DICOM/files/" in out
    assert (tmp_path / "mirror" / ".xnatsync" / "journal.db").is_file()


def test_help_shows_defaults_and_its_layout_example_parses() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "xnatsync", "pull", "--help"], capture_output=True, text=True,
        check=True, env={**os.environ, "COLUMNS": "200"},
    ).stdout  # fmt: skip
    for option, default in [("--concurrency", "8"), ("--listings", "4"), ("--attempts", "5"),
                            ("--read-timeout", "60"), ("--connect-timeout", "30")]:  # fmt: skip
        entry = help_text.split(f"\n  {option} ", 1)[1].split("\n  -", 1)[0]
        assert f"(default: {default})" in " ".join(entry.split()), entry
    example = re.search(r"--layout '([^']+)'", help_text)
    assert example is not None, help_text
    parse_layout(example.group(1))


async def test_retries_is_still_accepted_as_the_old_name_of_attempts(
    synth: Emulator, tmp_path: Path
) -> None:
    code, _, err = await run_cli(*pull(synth, tmp_path / "a", "--retries", "2"))
    assert code == 0, err
    code, _, err = await run_cli(*pull(synth, tmp_path / "b", "--attempts", "2"))
    assert code == 0, err
