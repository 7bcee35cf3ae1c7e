"""Fixtures for end-to-end pulls against the emulator (in-process, on 127.0.0.1)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from xnatsync.config import RetryPolicy, Timeouts
from xnatsync.emulator.server import Emulator, run_emulator
from xnatsync.emulator.settings import EmulatorConfig, SyntheticSpec
from xnatsync.events import Event, Fanout
from xnatsync.journal import Journal
from xnatsync.pull import PullConfig, pull
from xnatsync.report import Summary
from xnatsync.xnat.auth import Credentials

FAST_RETRY = RetryPolicy(attempts=4, backoff_base=0.01, backoff_max=0.05, retry_after_max=0.2)


class Recorder:
    """Keeps every event, for assertions on what the engine reported."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


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


def make_config(emu: Emulator, dest: Path, project: str = "DEMO", **changes: Any) -> PullConfig:
    config = PullConfig(
        url=emu.url,
        projects=(project,),
        dest=dest,
        journal_path=dest / ".xnatsync" / "journal.db",
        credentials=Credentials("admin", "admin"),
        retry=FAST_RETRY,
        timeouts=Timeouts(connect=5, read_stall=5),
    )
    return replace(config, **changes)


async def run_pull(config: PullConfig) -> tuple[Summary, Recorder]:
    summary, recorder = Summary(), Recorder()
    reporter = Fanout(summary, recorder)
    await pull(config, reporter)
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
