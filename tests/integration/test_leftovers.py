"""Nothing is left behind (issue 7, item 3): temps and spools of runs that ended badly are
swept at the next start, and a run that fails before transferring anything changes nothing."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from tests.integration.conftest import make_config, run_pull
from xnatsync.emulator.server import Emulator
from xnatsync.errors import AuthError
from xnatsync.xnat.auth import Credentials

PART = ".xnatsync-part"


def record_last_run_as(dest: Path, status: str) -> None:
    with sqlite3.connect(dest / ".xnatsync" / "journal.db") as db:
        db.execute("UPDATE runs SET status=? WHERE id=(SELECT max(id) FROM runs)", (status,))


@pytest.mark.parametrize("status", ["error", "interrupted", "running"])
async def test_temps_and_spools_of_a_run_that_ended_badly_are_swept(
    emu: Emulator, tmp_path: Path, status: str
) -> None:
    config = make_config(emu, tmp_path)
    await run_pull(config)
    spool = tmp_path / ".xnatsync" / "tmp" / f"batch.4242.0badc0de.zip{PART}"
    spool.parent.mkdir(parents=True, exist_ok=True)
    spool.write_bytes(b"PK half a zip")
    scan = next((tmp_path / "DEMO").rglob("*.dcm")).parent
    temp = scan / f".1-0009.dcm.4242.0badc0de{PART}"
    temp.write_bytes(b"half a file")
    record_last_run_as(tmp_path, status)

    summary, _ = await run_pull(config)
    assert summary.ok
    assert not spool.exists()
    assert not temp.exists()


async def test_a_spool_is_swept_even_after_a_clean_run(emu: Emulator, tmp_path: Path) -> None:
    config = make_config(emu, tmp_path)
    await run_pull(config)
    spool = tmp_path / ".xnatsync" / "tmp" / f"batch.4242.0badc0de.zip{PART}"
    spool.parent.mkdir(parents=True, exist_ok=True)
    spool.write_bytes(b"PK")
    await run_pull(config)
    assert not spool.exists()


@pytest.mark.parametrize("exists", [False, True])
async def test_a_run_that_cannot_log_in_leaves_the_destination_as_it_was(
    emu: Emulator, tmp_path: Path, exists: bool
) -> None:
    dest = tmp_path / "mirror"
    if exists:
        dest.mkdir()
    config = replace(make_config(emu, dest), credentials=Credentials("admin", "wrong"))
    with pytest.raises(AuthError):
        await run_pull(config)
    assert dest.exists() == exists
    if exists:
        assert list(dest.iterdir()) == []
