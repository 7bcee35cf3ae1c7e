"""journal.entries: an owner's rows read while other owners' writes are still buffered (no
commit for them), and with its own writes buffered (committed first, so the read sees them)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.fakes import remote_file
from xnatsync.journal import Journal
from xnatsync.model import FileState, RemoteFile

MD5 = "0" * 32


def rf(path: str, exp: str) -> RemoteFile:
    return remote_file(project="P", experiment_id=exp, path=path, size=3, digest=MD5)


def committed(path: Path) -> set[str]:
    """Keys another connection sees: what is committed."""
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT key FROM files")}


def test_reading_one_owner_leaves_other_owners_writes_buffered(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with Journal.open(path) as journal:
        journal.mark_done(rf("a.dcm", "E01"), "E01/a.dcm", 3, 7, MD5)
        journal.mark_seen([rf("b.dcm", "E01").key], 1)
        assert journal.entries("P", "E02") == []
        assert journal.entries("P", "E0") == []  # a prefix of another owner's ID is not it
        assert committed(path) == set()  # nothing of E01 had to be committed for E02's read
        [row] = journal.entries("P", "E01")  # its own pending write: committed, then read
        assert (row.key, row.state) == (rf("a.dcm", "E01").key, FileState.DONE)
        assert committed(path) == {row.key}


def test_each_kind_of_pending_write_is_seen_by_its_owner_read(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with Journal.open(path) as journal:
        one, two = rf("a.dcm", "E01"), rf("b.dcm", "E01")
        journal.mark_done(one, "E01/a.dcm", 3, 7, MD5)
        journal.mark_in_progress(two, "E01/b.dcm")
        journal.flush()
        journal.mark_failed(two, "cut", "E01/b.dcm")
        journal.mark_corrupt(one.key, "changed on disk")
        states = {e.key: e.state for e in journal.entries("P", "E01")}
        assert states == {one.key: FileState.FAILED, two.key: FileState.FAILED}
        journal.mark_deleted(one.key)
        states = {e.key: e.state for e in journal.entries("P", "E01")}
        assert states[one.key] is FileState.DELETED
