"""Files already at their place are adopted by hashing, not fetched again (issue 7, item 2).

A file at its target path with the catalog's size is hashed locally; if its MD5 is the server's
digest it becomes ``done`` with no byte transferred, otherwise it is fetched as before. That
covers a lost journal, a tree copied from elsewhere, and a kill between a file's rename and its
journal row (zip extraction journals a zip's members together, at the end).
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.integration.conftest import (
    FILE_GETS,
    expected_tree,
    journal_rows,
    local_files,
    make_config,
    run_cli,
    run_pull,
    start_cli,
    wait_for,
)
from xnatsync.emulator.server import Emulator, run_emulator
from xnatsync.emulator.settings import EmulatorConfig, SyntheticSpec
from xnatsync.events import Notice

ZIPS = "*/resources/*/files"


def forget_journal(dest: Path) -> None:
    for path in (dest / ".xnatsync").glob("journal.db*"):
        path.unlink()


def done(dest: Path) -> set[str]:
    return {p for p, row in journal_rows(dest).items() if row[0] == "done"}


async def test_a_lost_journal_costs_a_hash_of_the_tree_and_no_transfer(
    synth: Emulator, tmp_path: Path
) -> None:
    config = make_config(synth, tmp_path, "SYNTH")
    first, _ = await run_pull(config)
    expected = {p: v for p, v in expected_tree(synth).items() if p.startswith("SYNTH/")}
    assert first.files_transferred == len(expected)
    forget_journal(tmp_path)
    synth.requests.clear()

    summary, _ = await run_pull(config)
    assert summary.ok
    assert summary.files_transferred == summary.bytes_transferred == 0
    assert summary.files_verified == len(expected)
    assert synth.requests.count("GET", FILE_GETS) == 0
    assert synth.requests.count("GET", ZIPS) == 0
    assert done(tmp_path) == set(expected)


async def test_a_copied_tree_is_completed_and_its_damage_repaired(
    synth: Emulator, tmp_path: Path
) -> None:
    """A tree made elsewhere (rsync, a copy): some files missing, one with the right size but
    other bytes. Only those are fetched; every intact file is adopted."""
    config = make_config(synth, tmp_path, "SYNTH")
    await run_pull(config)
    forget_journal(tmp_path)
    files = sorted(local_files(tmp_path))
    missing, damaged = files[::3], files[1]
    for relpath in missing:
        (tmp_path / relpath).unlink()
    size = (tmp_path / damaged).stat().st_size
    (tmp_path / damaged).write_bytes(b"\0" * size)
    synth.requests.clear()

    summary, _ = await run_pull(replace(config, batch=None))
    assert summary.ok
    assert summary.files_transferred == len(missing) + 1
    assert summary.files_verified == len(files) - len(missing) - 1
    assert synth.requests.count("GET", FILE_GETS) == len(missing) + 1
    tree = local_files(tmp_path)
    assert {p: hashlib.md5(b).hexdigest() for p, b in tree.items()} == {
        p: digest for p, (_, digest) in expected_tree(synth).items() if p.startswith("SYNTH/")
    }


async def test_without_a_server_digest_a_file_is_adopted_only_when_asked(
    synth: Emulator, tmp_path: Path
) -> None:
    for resource in synth.store.resources.values():
        for entry in resource.files.values():
            entry.digest = ""  # a site whose catalogs carry no checksums
    config = make_config(synth, tmp_path, "SYNTH")
    first, _ = await run_pull(config)
    forget_journal(tmp_path)

    again, events = await run_pull(config)
    assert again.files_transferred == first.files_transferred
    assert any("--adopt-by-size" in n.message for n in events.of(Notice))

    forget_journal(tmp_path)
    synth.requests.clear()
    adopted, _ = await run_pull(replace(config, adopt_by_size=True))
    assert adopted.files_transferred == 0
    assert adopted.files_verified == first.files_transferred
    assert synth.requests.count("GET", FILE_GETS) == 0


# -- a kill between extraction and the journal ---------------------------------------------

# one scan of 1,500 small files: one zip, whose extraction (with --fsync) takes seconds
ONE_BIG_ZIP = SyntheticSpec(project="Z", subjects=1, sessions=1, scans=1, files=1500,
                            file_size=2048)  # fmt: skip


@pytest.fixture
async def zipped() -> AsyncIterator[Emulator]:
    async with run_emulator(EmulatorConfig(seed="synthetic", synthetic=ONE_BIG_ZIP)) as emu:
        yield emu


async def test_kill_during_zip_extraction_then_rerun_fetches_only_what_is_missing(
    zipped: Emulator, tmp_path: Path
) -> None:
    args = ["pull", zipped.url, "--project", "Z", "--dest", str(tmp_path), "--no-progress",
            "--fsync"]  # fmt: skip
    expected = {p: v for p, v in expected_tree(zipped).items() if p.startswith("Z/")}
    folder = tmp_path / next(iter(expected)).rsplit("/", 1)[0]
    proc = await start_cli(*args)

    def extracting() -> bool:
        return folder.is_dir() and sum(1 for _ in folder.iterdir()) >= 20

    await wait_for(extracting, within=60, what="the zip's first members at their places")
    proc.send_signal(signal.SIGKILL)
    await asyncio.wait_for(proc.wait(), 20)
    intact = {
        p for p, (_, digest) in expected.items()
        if (tmp_path / p).is_file()
        and hashlib.md5((tmp_path / p).read_bytes()).hexdigest() == digest
    }  # fmt: skip
    assert intact - done(tmp_path), "the kill came after the journal rows: nothing to adopt"
    zipped.requests.clear()

    code, _, err = await run_cli(*args)
    assert code == 0, err
    assert set(local_files(tmp_path)) == set(expected)
    assert done(tmp_path) == set(expected)
    fetched = zipped.requests.count("GET", FILE_GETS) + 1500 * zipped.requests.count("GET", ZIPS)
    assert fetched <= len(expected) - len(intact)
