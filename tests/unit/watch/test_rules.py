"""The daemon's pure decisions: settled files, hidden temps, complete studies, backoff, health."""

from __future__ import annotations

from pathlib import PurePath

import pytest

from xnatsync.errors import UsageError
from xnatsync.retry import RetryPolicy
from xnatsync.watch.rules import (
    AfterUpload,
    Look,
    Snapshot,
    complete,
    hidden,
    next_try,
    parse_address,
    parse_after_upload,
    settled,
    verdict,
)


def test_settled_needs_the_same_size_and_mtime_across_looks_far_enough_apart() -> None:
    first = Look(100, 5, at=10.0)
    assert settled(first, Look(100, 5, at=12.0), settle=2.0)
    assert not settled(first, Look(100, 5, at=11.9), settle=2.0)  # too soon to tell
    assert not settled(first, Look(101, 5, at=20.0), settle=2.0)  # grew
    assert not settled(first, Look(100, 6, at=20.0), settle=2.0)  # rewritten, same size


def test_hidden_names_anywhere_below_the_spool() -> None:
    assert hidden(PurePath(".IM1.dcm.tmp"))
    assert hidden(PurePath("study/.partial/IM1"))
    assert not hidden(PurePath("study/s1/IM1.dcm"))
    assert not hidden(PurePath("a.b/IM1"))


def test_a_study_is_complete_after_its_quiet_period() -> None:
    assert not complete(100.0, 120.0, 219.9)
    assert complete(100.0, 120.0, 220.0)


def test_backoff_doubles_and_is_capped_and_never_less_than_half() -> None:
    policy = RetryPolicy(backoff_base=5.0, backoff_max=300.0)
    assert next_try(policy, 1, 0.0, rand=0.0) == 2.5
    assert next_try(policy, 1, 0.0, rand=1.0) == 5.0
    assert next_try(policy, 3, 0.0, rand=1.0) == 20.0
    assert next_try(policy, 40, 1000.0, rand=1.0) == 1300.0  # capped at 5 minutes
    assert next_try(policy, 40, 1000.0, rand=0.0) == 1150.0


def test_after_upload_values() -> None:
    assert parse_after_upload("keep") == AfterUpload()
    assert parse_after_upload("delete") == AfterUpload("delete")
    moved = parse_after_upload("move:/srv/sent")
    assert (moved.action, moved.folder, moved.text) == ("move", PurePath("/srv/sent"),
                                                        "move:/srv/sent")  # fmt: skip
    for bad in ("move:", "remove", ""):
        with pytest.raises(UsageError, match="keep, delete or move:DIR"):
            parse_after_upload(bad)


def test_health_verdicts() -> None:
    assert verdict(Snapshot(1000.0, None, None), 60.0, 60.0) is None
    assert verdict(Snapshot(1000.0, 950.0, 990.0), 60.0, 60.0) is None
    backlog = verdict(Snapshot(1000.0, 900.0, None), 60.0, 60.0)
    assert backlog is not None
    assert "backlog" in backlog
    assert "100 s" in backlog
    down = verdict(Snapshot(1000.0, None, 500.0), 60.0, 60.0)
    assert down is not None
    assert "unreachable for 500 s" in down


def test_health_address() -> None:
    assert parse_address("127.0.0.1:8089") == ("127.0.0.1", 8089)
    assert parse_address("[::1]:0") == ("::1", 0)
    for bad in ("8089", "host:", ":80", "host:99999", "host:http"):
        with pytest.raises(UsageError, match="HOST:PORT"):
            parse_address(bad)
