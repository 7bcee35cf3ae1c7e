"""temps: a run's temp names carry its tag; the ledger lists every folder holding its temps
before the first temp exists there; the sweep removes dead runs' temps and only those."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from xnatsync.temps import PART_SUFFIX, TMP_DIR, TempNames, part_tag, sweep


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"partial")
    return path


def parts(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob(f"*{PART_SUFFIX}")}


def test_a_temp_name_carries_the_run_tag_and_stays_beside_its_target(tmp_path: Path) -> None:
    final = tmp_path / "scans" / "1-T1" / "a.b.dcm"
    temp = TempNames("c0ffee", tmp_path).beside(final)
    assert temp.parent == final.parent
    assert part_tag(temp.name) == "c0ffee"
    assert part_tag("a.dcm") is None
    assert part_tag(f"odd{PART_SUFFIX}") == ""  # ours, but of no run: never live
    assert TempNames("c0ffee").beside(final) != TempNames("c0ffee").beside(final)


@pytest.mark.parametrize("tag", ["", "a.b", "a/b"])
def test_a_tag_that_would_break_the_name_is_refused(tag: str) -> None:
    with pytest.raises(ValueError, match="bad run tag"):
        TempNames(tag)


def test_the_ledger_lists_each_folder_once_from_many_threads(tmp_path: Path) -> None:
    temps = TempNames("run1", tmp_path)
    finals = [tmp_path / f"s{i % 5}" / "ünï code" / f"f{i}" for i in range(200)]
    with ThreadPoolExecutor(8) as pool:
        names = list(pool.map(temps.beside, finals))
    assert temps.ledger is not None
    lines = temps.ledger.read_text(encoding="utf-8").splitlines()
    assert sorted(lines) == sorted(f'"s{i}/\\u00fcn\\u00ef code"' for i in range(5))
    assert all(part_tag(n.name) == "run1" for n in names)
    temps.close()
    assert not temps.ledger.exists()


def test_without_a_destination_nothing_is_written(tmp_path: Path) -> None:
    temps = TempNames("run1")
    temps.beside(tmp_path / "x" / "f")
    temps.close()
    assert list(tmp_path.iterdir()) == []


def test_the_sweep_spares_live_runs_and_removes_the_dead_by_their_ledgers(
    tmp_path: Path,
) -> None:
    dead, live = TempNames("dead1", tmp_path), TempNames("live1", tmp_path)
    dead_temp = touch(dead.beside(tmp_path / "P" / "s1" / "a.dcm"))
    live_temp = touch(live.beside(tmp_path / "P" / "s1" / "b.dcm"))
    dead_spool = touch(dead.beside(tmp_path.joinpath(*TMP_DIR.parts, "batch.zip"), record=False))
    live_spool = touch(live.beside(tmp_path.joinpath(*TMP_DIR.parts, "batch.zip"), record=False))
    unlisted = touch(tmp_path / "Q" / f".c.dcm.olderrun.1234{PART_SUFFIX}")  # no ledger names Q
    keep = touch(tmp_path / "P" / "s1" / "a.dcm")
    assert sweep(tmp_path, {"live1"}) == 2
    assert [p.exists() for p in (dead_temp, dead_spool)] == [False, False]
    assert all(p.exists() for p in (live_temp, live_spool, unlisted, keep))
    assert dead.ledger is not None
    assert live.ledger is not None
    assert (dead.ledger.exists(), live.ledger.exists()) == (False, True)
    # the walk (after a run that did not end) finds what no ledger lists, sparing the live
    assert sweep(tmp_path, {"live1"}, walk=True) == 1
    assert parts(tmp_path) == {
        live_temp.relative_to(tmp_path).as_posix(),
        live_spool.relative_to(tmp_path).as_posix(),
    }


def test_a_ledger_never_leads_the_sweep_outside_dest_or_through_a_symlink(
    tmp_path: Path,
) -> None:
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    victim = touch(outside / f".x.dead1.0000{PART_SUFFIX}")
    (dest / "P").mkdir(parents=True)
    (dest / "P" / "link").symlink_to(outside)
    ledger = dest / ".xnatsync" / "runs" / "dead1.dirs"
    ledger.parent.mkdir(parents=True)
    lines = ['"../outside"', f'"{outside}"', '"P/link"', "not json", '"."', "", "[1]"]
    ledger.write_text("\n".join(lines) + "\n")
    assert sweep(dest, set()) == 0
    assert victim.exists()
    assert not ledger.exists()


def test_a_ledger_made_unreadable_is_dropped_without_harm(tmp_path: Path) -> None:
    ledger = tmp_path / ".xnatsync" / "runs" / "dead1.dirs"
    ledger.parent.mkdir(parents=True)
    ledger.write_bytes(os.urandom(64) + b"\xff\xfe")
    assert sweep(tmp_path, set()) == 0
    assert not ledger.exists()
