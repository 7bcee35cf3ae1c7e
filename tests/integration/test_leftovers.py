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
from xnatsync.lock import DestLock
from xnatsync.shards import Shard
from xnatsync.temps import TMP_DIR, TempNames
from xnatsync.xnat.auth import Credentials

PART = ".xnatsync-part"


def record_last_run_as(dest: Path, status: str, journal: str = "journal.db") -> None:
    with sqlite3.connect(dest / ".xnatsync" / journal) as db:
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


@pytest.mark.parametrize("last", ["ok", "error"])
async def test_a_live_run_s_temps_are_spared_and_a_dead_run_s_are_swept(
    emu: Emulator, tmp_path: Path, last: str
) -> None:
    """Two shards on one DEST: the second one's start removes the temps of a run killed
    earlier, and none of the live one's, whether or not its journal says its last run ended
    (with "error" the whole tree is walked as well)."""
    config = make_config(emu, tmp_path, shard=Shard(0, 2))
    await run_pull(config)
    record_last_run_as(tmp_path, last, Shard(0, 2).journal_name)
    scan = next((tmp_path / "DEMO").rglob("*.dcm")).parent
    killed = TempNames("deadbeef0001", tmp_path)  # its lock is gone; its ledger stayed
    dead = [killed.beside(scan / "x.dcm"), killed.beside(tmp_path / TMP_DIR / "b.zip")]
    with DestLock(tmp_path, name=Shard(1, 2).lock_name) as other:
        working = TempNames(other.tag, tmp_path)
        alive = [working.beside(scan / "y.dcm"), working.beside(tmp_path / TMP_DIR / "b.zip")]
        for path in dead + alive:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"half")
        summary, _ = await run_pull(config)
        assert summary.ok
        assert [p.exists() for p in dead + alive] == [False, False, True, True]
    assert not (tmp_path / ".xnatsync" / "runs" / "deadbeef0001.dirs").exists()


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
