"""``Journal.adopt``: another journal's done and deleted rows of our owners, newest first; and
a journal opened ``exclusive`` (on a network filesystem)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from xnatsync.journal import Journal
from xnatsync.model import FileState, Level, RemoteFile


def remote(owner: str, name: str, project: str = "P") -> RemoteFile:
    return RemoteFile(
        project=project, subject_id="S1", subject="s1", experiment_id=owner,
        experiment=owner.lower(), level=Level.SCAN, container="1", container_type="T1",
        resource="DICOM", path=name, uri=f"/{name}", size=4, digest="d" * 32,
    )  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


def states(journal: Journal) -> dict[str, tuple[str, int | None]]:
    rows = journal._conn.execute("SELECT key, state, size FROM files").fetchall()
    return {key.split("/")[1] + "/" + key.rsplit("/", 1)[1]: (s, n) for key, s, n in rows}


def test_rows_of_our_owners_are_taken_where_newer(tmp_path: Path) -> None:
    clock = Clock()
    with Journal.open(tmp_path / "old.db", clock=clock) as old:
        old.mark_done(remote("E1", "a"), "P/a", 4, 1, "m" * 32)
        old.mark_done(remote("E1", "b"), "P/b", 4, 1, "m" * 32)
        old.mark_done(remote("E2", "c"), "P/c", 4, 1, "m" * 32)  # another shard's owner
        old.mark_failed(remote("E1", "f"), "boom")  # no evidence: never adopted
        old.mark_done(remote("E1", "q", project="Q"), "Q/q", 4, 1, "m" * 32)  # not our project
    with Journal.open(tmp_path / "new.db", clock=clock) as new:
        new.mark_in_progress(remote("E1", "b"), "P/b")  # ours says less than theirs
        new.set_fingerprint("P", "E1", "fp")
        ours = lambda project, owner: project == "P" and owner == "E1"  # noqa: E731
        assert new.adopt(tmp_path / "old.db", ours) == 2
        assert states(new) == {"E1/a": ("done", 4), "E1/b": ("done", 4)}
        assert new.fingerprint("P", "E1") is None  # its files must be looked at once
        assert new.adopt(tmp_path / "old.db", ours) == 0  # idempotent
        assert [e.key.rsplit("/", 1)[1] for e in new.iter_done()] == ["a", "b"]
        # adopted rows are not seen by this run: if its listing lacks them, they may go
        assert [e.key.rsplit("/", 1)[1] for e in new.delete_candidates(["P"], run_id=7)] == [
            "a",
            "b",
        ]


def test_the_newest_word_on_a_file_wins_deleted_included(tmp_path: Path) -> None:
    clock = Clock()
    with Journal.open(tmp_path / "mine.db", clock=clock) as mine:
        mine.mark_done(remote("E1", "a"), "P/a", 4, 1, "m" * 32)
        mine.mark_done(remote("E1", "b"), "P/b", 4, 1, "m" * 32)
    with Journal.open(tmp_path / "theirs.db", clock=clock) as theirs:
        theirs.adopt(tmp_path / "mine.db", lambda project, owner: True)
        theirs.mark_done(remote("E1", "a"), "P/a", 9, 2, "n" * 32)  # fetched again, changed
        theirs.mark_deleted(remote("E1", "b").key)  # removed by a --delete-only run
    with Journal.open(tmp_path / "mine.db", clock=clock) as mine:
        mine.set_fingerprint("P", "E1", "fp")
        assert mine.adopt(tmp_path / "theirs.db", lambda project, owner: True) == 2
        assert states(mine) == {"E1/a": ("done", 9), "E1/b": ("deleted", 4)}
        assert mine.fingerprint("P", "E1") is None
    with Journal.open(tmp_path / "theirs.db", clock=clock) as theirs:
        assert theirs.adopt(tmp_path / "mine.db", lambda project, owner: True) == 0  # nothing newer
        assert {e.state for e in theirs.iter_done()} == {FileState.DONE}


def test_an_exclusive_journal_has_no_shared_memory_file_and_is_read_after_close(
    tmp_path: Path,
) -> None:
    """The mode for a network filesystem: the WAL index stays in the process (no -shm), and
    another process cannot read the journal until the run closes it."""
    path = tmp_path / "journal.db"
    with Journal.open(path, exclusive=True) as journal:
        journal.mark_done(remote("E1", "a"), "P/a", 4, 1, "m" * 32)
        journal.flush()
        assert Path(f"{path}-wal").exists()
        assert not Path(f"{path}-shm").exists()
        other = sqlite3.connect(path, timeout=0.05)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("SELECT count(*) FROM files").fetchone()
        other.close()
    assert not Path(f"{path}-shm").exists()
    with Journal.open(path, readonly=True) as reader:
        assert [e.relpath for e in reader.iter_done()] == ["P/a"]
