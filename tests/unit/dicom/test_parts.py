"""dicom.send.parts: the missing instances of a study cut between scans into requests under a
byte budget, in study order; a scan over the budget goes alone, never split."""

from __future__ import annotations

from pathlib import Path

from xnatsync.dicom.instance import Instance
from xnatsync.dicom.send import Keyed, parts


def keyed(scan: str, name: str, size: int) -> Keyed:
    instance = Instance(Path(f"/x/{scan}/{name}"), size, 0, True, series_number=scan)
    return (instance, (scan, name))


def test_cut_between_scans_under_the_budget() -> None:
    missing = [keyed("1", "a", 40), keyed("1", "b", 40), keyed("2", "a", 30), keyed("3", "a", 100),
               keyed("4", "a", 10), keyed("4", "b", 10)]  # fmt: skip
    cut = parts(missing, budget=100)
    assert [[key for _, key in part] for part in cut] == [
        [("1", "a"), ("1", "b")],  # 80; with scan 2 it would be 110
        [("2", "a")],  # 30; with scan 3 130
        [("3", "a")],  # a scan of exactly the budget
        [("4", "a"), ("4", "b")],
    ]
    assert [i for part in cut for i, _ in part] == [i for i, _ in missing]  # nothing lost, in order
    assert parts([], budget=100) == []
    assert len(parts(missing, budget=10**9)) == 1
