"""A journal written by an earlier xnatsync keeps working: no re-download, no duplicate rows."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.integration.conftest import journal_rows, make_config, run_pull
from xnatsync.emulator.server import Emulator

BEFORE_RESHAPE = Path(__file__).parents[1] / "data" / "journal-before-reshape.db"


async def test_a_journal_from_before_the_reshape_vouches_for_an_intact_mirror(
    emu: Emulator, tmp_path: Path
) -> None:
    """Today's code makes the tree; the old journal replaces its own. The old rows must be read
    as they were meant: same keys, same places, same MD5s, so every file is re-hashed and
    confirmed (its mtime differs from the one recorded) and not one byte is fetched."""
    config = make_config(emu, tmp_path)
    made, _ = await run_pull(config)
    assert made.files_transferred == 59
    ours = journal_rows(tmp_path)
    journal = tmp_path / ".xnatsync" / "journal.db"
    for leftover in journal.parent.glob("journal.db*"):
        leftover.unlink()
    shutil.copyfile(BEFORE_RESHAPE, journal)
    old = journal_rows(tmp_path)
    assert set(old) == set(ours)
    assert {p: row[2] for p, row in old.items()} == {p: row[2] for p, row in ours.items()}

    summary, _ = await run_pull(config)
    assert summary.ok
    assert summary.files_transferred == 0
    assert summary.files_verified == 59
    assert set(journal_rows(tmp_path)) == set(ours)

    again, _ = await run_pull(config)
    assert again.files_transferred == again.files_verified == 0
    assert again.files_skipped == 59
