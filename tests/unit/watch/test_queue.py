"""The durable queue's state machine: files seen, settled, read; studies pending, sent, grown,
recovered after a crash; session labels unique; history kept in SQLite, not memory."""

from __future__ import annotations

from pathlib import Path

from xnatsync.dicom.instance import Instance
from xnatsync.watch.queue import Queue, describe


def instance(path: str, study: str = "1.2.3", sop: str = "1.2.3.1", series: str = "1") -> Instance:
    return Instance(Path(path), 10, 7, True, study_uid=study, sop_uid=sop, series_number=series,
                    sop_class_uid="1.2.840.10008.5.1.4.1.1.4", patient_id="P1")  # fmt: skip


def states(queue: Queue) -> dict[str, str]:
    rows = queue._read("SELECT path, state FROM files")
    return {str(row[0]): str(row[1]) for row in rows}


def test_files_are_seen_relooked_and_seen_again_when_they_change(tmp_path: Path) -> None:
    with Queue.open(tmp_path / "q.db") as queue:
        assert queue.observe([(Path("/s/a"), 1, 1), (Path("/s/b"), 10, 7)], now=10.0) == 2
        assert queue.observe([(Path("/s/a"), 1, 1)], now=11.0) == 0  # unchanged: nothing
        assert [r.path.name for r in queue.unsettled(10.0, 10)] == ["a", "b"]
        assert queue.unsettled(9.0, 10) == []  # looked at too recently
        queue.relook([(Path("/s/a"), 5, 5)], now=12.0)  # still growing
        assert [r.path.name for r in queue.unsettled(11.0, 10)] == ["b"]
        queue.record_instance(instance("/s/b"), now=13.0)
        queue.finish("1.2.3", [Path("/s/b")], now=14.0)
        queue.set_files([Path("/s/b")], "kept", now=14.0)
        assert queue.observe([(Path("/s/b"), 10, 7)], now=15.0) == 0  # kept and unchanged
        assert queue.observe([(Path("/s/b"), 10, 8)], now=15.0) == 1  # rewritten: read again
        assert states(queue)["/s/b"] == "unstable"


def test_a_study_waits_its_quiet_period_and_a_late_instance_makes_it_pending_again(
    tmp_path: Path,
) -> None:
    with Queue.open(tmp_path / "q.db") as queue:
        queue.observe([(Path("/s/a"), 10, 7), (Path("/s/late"), 10, 7)], now=0.0)
        queue.record_instance(instance("/s/a"), now=100.0)
        assert queue.ready(quiet=120.0, now=219.0, limit=5) == []
        assert queue.ready(quiet=120.0, now=220.0, limit=5) == ["1.2.3"]
        queue.begin("1.2.3", now=220.0)
        assert queue.ready(quiet=120.0, now=500.0, limit=5) == []  # being sent
        queue.record_instance(instance("/s/late", sop="1.2.3.2", series="2"), now=221.0)
        assert queue.finish("1.2.3", [Path("/s/a")], now=222.0) == "pending"  # arrived meanwhile
        assert queue.ready(quiet=120.0, now=340.0, limit=5) == []
        assert queue.ready(quiet=120.0, now=341.0, limit=5) == ["1.2.3"]
        queue.begin("1.2.3", now=341.0)
        assert queue.finish("1.2.3", [Path("/s/late")], now=342.0) == "done"
        assert {i.path.name: s for i, s in queue.instances_of("1.2.3")} == {
            "a": "sent", "late": "sent"}  # fmt: skip
        queue.record_instance(instance("/s/later", sop="1.2.3.3"), now=400.0)  # grown again
        assert queue.study("1.2.3").state == "pending"  # type: ignore[union-attr]


def test_a_crash_while_sending_leaves_the_study_to_be_looked_at_again(tmp_path: Path) -> None:
    with Queue.open(tmp_path / "q.db") as queue:
        queue.observe([(Path("/s/a"), 10, 7)], now=0.0)
        queue.set_files([Path("/s/a")], "stable", now=1.0)
        queue.observe([(Path("/s/b"), 10, 7)], now=0.0)
        queue.record_instance(instance("/s/b"), now=1.0)
        queue.begin("1.2.3", now=200.0)
    with Queue.open(tmp_path / "q.db") as queue:  # the next start
        queue.recover(now=300.0)
        assert queue.study("1.2.3").state == "pending"  # type: ignore[union-attr]
        assert states(queue)["/s/a"] == "unstable"  # handed to a reader that died: look again


def test_retries_count_and_a_failure_is_kept_until_the_study_grows(tmp_path: Path) -> None:
    with Queue.open(tmp_path / "q.db") as queue:
        queue.observe([(Path("/s/a"), 10, 7)], now=0.0)
        queue.record_instance(instance("/s/a"), now=0.0)
        queue.begin("1.2.3", now=1.0)
        assert queue.retry_later("1.2.3", "HTTP 503 at https://u:secret@x/", 60.0, now=2.0) == 1
        row = queue.study("1.2.3")
        assert row is not None
        assert (row.state, row.attempts) == ("pending", 1)
        assert "secret" not in str(row.last_error)
        assert queue.ready(quiet=0.0, now=59.0, limit=5) == []  # backing off
        assert queue.ready(quiet=0.0, now=60.0, limit=5) == ["1.2.3"]
        queue.fail("1.2.3", "HTTP 400: refused", now=61.0)
        assert queue.ready(quiet=0.0, now=1e9, limit=5) == []
        text = describe(tmp_path / "q.db", now=100.0)
        assert "0 pending, 0 sending, 0 done, 1 failed" in text
        assert "HTTP 400: refused" in text
        queue.record_instance(instance("/s/b", sop="1.2.3.9"), now=200.0)
        row = queue.study("1.2.3")
        assert row is not None
        assert (row.state, row.attempts) == ("pending", 0)


def test_session_labels_are_fixed_and_unique_across_studies(tmp_path: Path) -> None:
    with Queue.open(tmp_path / "q.db") as queue:
        for n, study in enumerate(("1.1", "1.2", "1.3")):
            queue.record_instance(instance(f"/s/{n}", study=study, sop=f"{study}.1"), now=0.0)
        assert queue.label("1.1", "P1", "P1_MR") == "P1_MR"
        assert queue.label("1.2", "P1", "p1_mr") == "p1_mr_2"  # XNAT labels ignore case
        assert queue.label("1.3", "P1", "P1_MR") == "P1_MR_3"
        assert queue.label("1.1", "P1", "P1_MR") == "P1_MR"  # its own label is no clash


def test_files_gone_from_the_spool_are_forgotten_after_a_while(tmp_path: Path) -> None:
    with Queue.open(tmp_path / "q.db") as queue:
        queue.observe([(Path(f"/s/{n}"), 10, 7) for n in range(4)], now=0.0)
        queue.set_files([Path("/s/0")], "moved", now=10.0)
        queue.set_files([Path("/s/1")], "deleted", now=10.0)
        queue.set_files([Path("/s/2")], "kept", now=10.0)
        queue.set_files([Path("/s/3")], "moved", now=50.0)
        assert queue.prune(before=20.0) == 2
        assert states(queue) == {"/s/2": "kept", "/s/3": "moved"}  # kept: still in the spool
        assert queue.summary()["files"]["unstable"] == 0
