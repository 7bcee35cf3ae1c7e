"""Fixtures for end-to-end pulls against the emulator (in-process, on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import sys
import time
import unicodedata
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fakes import Recorder
from xnatsync.emulator.server import Emulator, run_emulator
from xnatsync.emulator.settings import EmulatorConfig, SyntheticSpec
from xnatsync.events import Fanout
from xnatsync.journal import Journal
from xnatsync.layout import sanitize_type
from xnatsync.limits import Timeouts
from xnatsync.pull.options import PullOptions
from xnatsync.pull.run import pull
from xnatsync.report import Summary
from xnatsync.retry import RetryPolicy
from xnatsync.xnat.auth import Credentials
from xnatsync.xnat.client import XnatClient

FAST_RETRY = RetryPolicy(attempts=4, backoff_base=0.01, backoff_max=0.05, retry_after_max=0.2)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with run_emulator(EmulatorConfig(seed="demo")) as emulator:
        yield emulator


@pytest.fixture
async def synth() -> AsyncIterator[Emulator]:
    """A small synthetic project SYNTH: 2 subjects x 1 session x 2 scans x 4 files of 64 KiB."""
    spec = SyntheticSpec(project="SYNTH", subjects=2, sessions=1, scans=2, files=4, file_size=65536)
    async with run_emulator(EmulatorConfig(seed="synthetic", synthetic=spec)) as emulator:
        yield emulator


def make_config(emu: Emulator, dest: Path, project: str = "DEMO", **changes: Any) -> PullOptions:
    config = PullOptions(
        url=emu.url,
        projects=(project,),
        dest=dest,
        credentials=Credentials("admin", "admin"),
        retry=FAST_RETRY,
        timeouts=Timeouts(connect=5, read_stall=5),
    )
    return replace(config, **changes)


async def run_pull(
    config: PullOptions, client: XnatClient | None = None
) -> tuple[Summary, Recorder]:
    summary, recorder = Summary(), Recorder()
    reporter = Fanout(summary, recorder)
    await pull(config, reporter, client=client)
    reporter.close()
    return summary, recorder


def local_files(dest: Path) -> dict[str, bytes]:
    """Every file under dest except the journal's folder, by relative path."""
    return {
        str(p.relative_to(dest)): p.read_bytes()
        for p in sorted(dest.rglob("*"))
        if p.is_file() and ".xnatsync" not in p.relative_to(dest).parts
    }


def journal_states(dest: Path) -> dict[str, str]:
    with Journal.open(dest / ".xnatsync" / "journal.db") as journal:
        return {e.relpath: e.state.value for p in ("DEMO", "SYNTH") for e in _all(journal, p)}


def _all(journal: Journal, project: str) -> list[Any]:
    return list(journal.iter_done(project))


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


NOTES = "/data/projects/DEMO/subjects/DEMO01/experiments/DEMO01_MR1/resources/NOTES/files/notes.txt"


async def server_request(emu: Emulator, method: str, url: str, data: bytes | None = None) -> int:
    """One request as the administrator; returns the status."""
    async with (
        aiohttp.ClientSession(emu.url, headers=emu.auth()) as http,
        http.request(method, url, data=data) as response,
    ):
        await response.read()
        return response.status


async def server_json(emu: Emulator, url: str) -> list[dict[str, str]]:
    """The rows of a ResultSet listing, as the administrator."""
    async with (
        aiohttp.ClientSession(emu.url, headers=emu.auth()) as http,
        http.get(url) as response,
    ):
        assert response.status == 200, url
        body = await response.json()
        rows: list[dict[str, str]] = body["ResultSet"]["Result"]
        return rows


# -- fault, crash and CLI scenarios ----------------------------------------------------------

PART_SUFFIX = ".xnatsync-part"
FILE_GETS = "*/files/*.*"


def expected_tree(emu: Emulator) -> dict[str, tuple[int, str]]:
    """What the server holds, by relative path under the default layout: (size, MD5).

    Read from the emulator's store (not through the client under test)."""
    store = emu.store
    out: dict[str, tuple[int, str]] = {}
    for resource in store.resources.values():
        project = resource.project
        if resource.level == "project":
            base = project
        elif resource.level == "subject":
            base = f"{project}/{store.subjects[resource.subject].label}"
        else:
            experiment = store.experiments[resource.experiment]
            subject = store.subjects[experiment.subject]
            base = f"{project}/{subject.label}/{experiment.label}"
            if resource.level == "scan":
                scan = experiment.scans[resource.scan]
                kind = sanitize_type(scan.type.strip())
                base += f"/scans/{scan.id}-{kind}" if kind else f"/scans/{scan.id}"
            elif resource.level == "assessor":
                base += f"/assessors/{resource.assessor}"  # the default layout names it by ID
        for entry in resource.files.values():
            relpath = f"{base}/resources/{resource.label}/files/{entry.relpath}"
            out[unicodedata.normalize("NFC", relpath)] = (entry.size, entry.digest)
    return out


def journal_rows(dest: Path) -> dict[str, tuple[str, int | None, str | None]]:
    """Every journal row by relpath: (state, size, md5). Read-only, with plain sqlite3."""
    path = dest / ".xnatsync" / "journal.db"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT relpath, state, size, md5 FROM files").fetchall()
    return {relpath: (state, size, md5_) for relpath, state, size, md5_ in rows}


def part_files(root: Path) -> list[Path]:
    return list(root.rglob(f"*{PART_SUFFIX}"))


def assert_invariants(
    dest: Path, expected: dict[str, tuple[int, str]], *, completed: bool = True
) -> None:
    """§1.9: final files match the listing; no temps after a completed run (a killed one may
    leave its own); the journal never over-reports."""
    files = {p: b for p, b in local_files(dest).items() if not p.endswith(PART_SUFFIX)}
    for relpath, data in files.items():
        assert relpath in expected, f"unexpected file {relpath}"
        assert (len(data), md5(data)) == expected[relpath], f"{relpath} differs from the listing"
    if completed:
        assert part_files(dest) == []
    for relpath, (state, size, digest) in journal_rows(dest).items():
        if state == "done":
            assert relpath in files, f"journal says done for missing {relpath}"
            data = files[relpath]
            assert (len(data), md5(data)) == (size, digest) == expected[relpath]


async def assert_clean_rerun(
    config: PullOptions, emu: Emulator, expected: dict[str, tuple[int, str]]
) -> Summary:
    """A fault-free run fetches exactly the files that were missing, and ends clean."""
    emu.faults.clear()
    had = set(local_files(config.dest))
    emu.requests.clear()
    summary, _ = await run_pull(config)
    assert summary.ok, summary.failures
    assert summary.files_failed == 0
    assert summary.files_transferred == len(set(expected) - had)
    assert emu.requests.count("GET", FILE_GETS) == len(set(expected) - had)
    assert_invariants(config.dest, expected)
    assert set(local_files(config.dest)) == set(expected)
    return summary


# -- subprocess runs of the CLI ----------------------------------------------------------------

PYTHON = sys.executable


def cli_env(user: str = "admin", password: str = "admin") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XNATSYNC_")}
    env.update(XNATSYNC_USER=user, XNATSYNC_PASSWORD=password, HOME=env.get("HOME", "/nonexistent"))
    return env


async def start_cli(
    *args: str, env: dict[str, str] | None = None, **kwargs: Any
) -> asyncio.subprocess.Process:
    """``python -m xnatsync.cli ARGS`` with piped stdout/stderr (the test loop keeps serving)."""
    return await asyncio.create_subprocess_exec(
        PYTHON, "-m", "xnatsync.cli", *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env if env is not None else cli_env(),
        **kwargs,
    )  # fmt: skip


async def run_cli(
    *args: str, env: dict[str, str] | None = None, deadline: float = 60, **kwargs: Any
) -> tuple[int, str, str]:
    """Run the CLI to completion: (exit code, stdout, stderr)."""
    proc = await start_cli(*args, env=env, **kwargs)
    out, err = await asyncio.wait_for(proc.communicate(), deadline)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def wait_for(condition: Callable[[], bool], within: float = 20, what: str = "") -> None:
    """Poll ``condition`` until true; fail after ``within`` seconds (a deadline, not a sleep)."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        await asyncio.sleep(0.02)


def done_in(journal: Path) -> set[str]:
    """The relpaths a journal file records ``done`` (none while it is absent or being made)."""
    try:
        with sqlite3.connect(journal) as db:
            rows = db.execute("SELECT relpath FROM files WHERE state='done'").fetchall()
    except sqlite3.Error:
        return set()
    return {r for (r,) in rows}
