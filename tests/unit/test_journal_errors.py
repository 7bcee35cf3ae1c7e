"""Journal errors say what is wrong and give advice that is true (issue 7, item 4).

A read-only journal is not a corrupt one: the advice to move a journal aside is given only for
damage (and is cheap now that pull adopts the files on disk by hashing them). ``status`` only
reads; ``verify`` says plainly when it cannot record what it found.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.fakes import remote_file
from xnatsync.audit import status, verify
from xnatsync.errors import JournalError
from xnatsync.journal import Journal
from xnatsync.journal_schema import journal_error


def made(tmp_path: Path) -> Path:
    path = tmp_path / ".xnatsync" / "journal.db"
    with Journal.open(path) as journal:
        run = journal.start_run("pull test")
        f = remote_file(path="a.dcm", size=1, digest="0" * 32)
        journal.mark_done(f, "a.dcm", 1, 1, "0" * 32)
        journal.finish_run(run, "ok", {})
    (tmp_path / "a.dcm").write_bytes(b"x")  # one byte, another MD5: verify finds a mismatch
    return path


def test_a_read_only_journal_is_not_called_corrupt(tmp_path: Path) -> None:
    path = made(tmp_path)
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError) as caught:
        conn.execute("CREATE TABLE t(x)")
    conn.close()
    message = str(journal_error(path, caught.value))
    assert "read-only" in message
    assert "corrupt" not in message
    assert "aside" not in message


def test_a_damaged_journal_is_called_damaged_and_moving_it_aside_is_advised(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.db"
    path.write_bytes(b"this is no SQLite database, not even close" * 100)
    with pytest.raises(JournalError) as caught:
        Journal.open(path)
    message = str(caught.value)
    assert "damaged" in message
    assert "aside" in message
    assert "hashing" in message  # what the next run does instead of downloading again


def test_status_only_reads(tmp_path: Path) -> None:
    path = made(tmp_path)
    before = {p.name: p.stat().st_mtime_ns for p in path.parent.iterdir()}
    text = status(path)
    assert "done" in text
    assert {p.name: p.stat().st_mtime_ns for p in path.parent.iterdir()} == before


def test_verify_says_plainly_when_it_cannot_record(tmp_path: Path) -> None:
    path = made(tmp_path)
    text, ok = verify(tmp_path, path, readonly=True)
    assert not ok
    assert "a.dcm" in text
    assert "not recorded" in text
    with Journal.open(path) as journal:
        assert journal.summary()["states"]["done"]["files"] == 1  # nothing was marked
