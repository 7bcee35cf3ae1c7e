"""Gradual-DICOM sessions are built once idle for the session idle time (`--session-idle-seconds`,
XNAT's "Session Idle Time", 5 minutes by default; xnat-api §5.2), then auto-archived per their
project. Driven by the prearchive's injected clock."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest

from tests.emulator.emuhelp import call, rows
from xnatsync.emulator import cli
from xnatsync.emulator.dicom_synth import InstanceSpec, make_instance
from xnatsync.emulator.prearchive_routes import PREARCHIVE_KEY
from xnatsync.emulator.server import run_emulator
from xnatsync.emulator.settings import EmulatorConfig

LISTING = "/data/prearchive/projects/IDLE"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = dt.datetime(2024, 6, 19, 9, 0, 0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@asynccontextmanager
async def _site(config: EmulatorConfig) -> AsyncIterator[tuple[aiohttp.ClientSession, Clock]]:
    clock = Clock()
    async with (
        run_emulator(config) as emu,
        aiohttp.ClientSession(emu.url, headers=emu.auth()) as admin,
    ):
        emu.app[PREARCHIVE_KEY].clock = clock
        assert (await call(admin, "PUT", "/data/projects/IDLE"))[0] == 200
        yield admin, clock


async def _send(admin: aiohttp.ClientSession, label: str, *extra: tuple[str, str]) -> None:
    """Two instances of one series, one request each (gradual-DICOM)."""
    for number in (1, 2):
        data = make_instance(InstanceSpec(study_key=label, instance_number=number))
        params = [("PROJECT_ID", "IDLE"), ("SUBJECT_ID", "S1"), ("EXPT_LABEL", label), *extra]
        status, text = await call(
            admin,
            "POST",
            "/data/services/import",
            params=params,
            data=data,
            headers={"Content-Type": "application/dicom"},
        )
        assert status == 200, text


async def _statuses(admin: aiohttp.ClientSession) -> list[str]:
    return [r["status"] for r in await rows(admin, LISTING)]


async def test_session_is_built_after_the_configured_idle_time() -> None:
    async with _site(EmulatorConfig(session_idle_seconds=30)) as (admin, clock):
        await _send(admin, "G1")
        clock.advance(29)
        assert await _statuses(admin) == ["RECEIVING"]
        await _send(admin, "G1")  # new data: idle again from now
        clock.advance(29)
        assert await _statuses(admin) == ["RECEIVING"]
        clock.advance(1)
        assert await _statuses(admin) == ["READY"]
        assert (await call(admin, "GET", "/data/projects/IDLE/experiments/G1"))[0] == 404


async def test_default_idle_time_is_five_minutes() -> None:
    assert EmulatorConfig().session_idle_seconds == 300
    async with _site(EmulatorConfig()) as (admin, clock):
        await _send(admin, "G2")
        clock.advance(299)
        assert await _statuses(admin) == ["RECEIVING"]
        clock.advance(1)
        assert await _statuses(admin) == ["READY"]


async def test_idle_session_of_an_auto_archive_project_is_archived() -> None:
    async with _site(EmulatorConfig(session_idle_seconds=10)) as (admin, clock):
        assert (await call(admin, "PUT", "/data/projects/IDLE/prearchive_code/4"))[0] == 200
        await _send(admin, "G3")
        await _send(admin, "G4", ("prevent_auto_commit", "true"))
        clock.advance(100)
        (row,) = await rows(admin, LISTING)  # prevent_auto_commit waits for an explicit commit
        assert (row["name"], row["status"]) == ("G4", "RECEIVING")
        files = "/data/projects/IDLE/subjects/S1/experiments/G3/scans/1/resources/DICOM/files"
        assert len(await rows(admin, files)) == 2


def test_negative_idle_time_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="idle"):
        EmulatorConfig(session_idle_seconds=-1)
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert cli.run(parser.parse_args(["--session-idle-seconds", "-5"])) == 2
    err = capsys.readouterr().err
    assert "--session-idle-seconds" in err
    assert err.count("\n") == 1
