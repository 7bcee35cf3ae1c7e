"""``pull.changes``: which owners a ``--changed-only`` run lists, and when it lists in full."""

from __future__ import annotations

from xnatsync.pull.changes import (
    DAY,
    RECENT_LIMIT,
    ChangedOnly,
    Cutoff,
    Since,
    decide,
    newest,
    recent_window,
    shape_of,
    stamps_of,
    workflow_dates,
)
from xnatsync.pull.selection import Selection

KEPT = stamps_of("2023-09-27 17:31:21.352", "2023-10-01 08:00:00.1")


def test_an_owner_is_listed_unless_its_dates_are_the_kept_ones() -> None:
    since = Since({"E1": KEPT, "E2": stamps_of("2023-09-27 17:31:21.352", "")})
    assert not since.wants("E1", KEPT)
    assert since.wants("E1", stamps_of("2023-09-27 17:31:21.352", "2023-10-01 08:00:00.2"))
    # an earlier date is a change too: a transaction that committed late, a clock set back
    assert since.wants("E1", stamps_of("2023-09-27 17:31:21.352", "2023-09-30 08:00:00.1"))
    assert since.wants("E2", KEPT)  # last_modified appeared
    assert since.wants("E3", KEPT)  # never mirrored whole here (new, shared in, or failed)
    assert since.wants("E1", "")  # the server gave no dates: nothing to compare


def test_the_newest_server_date() -> None:
    dates = ["2023-09-27 17:31:21.352", "", "2023-09-27 17:31:21.4", "2023-01-01 00:00:00.0"]
    assert newest(dates) == "2023-09-27 17:31:21.4"
    assert newest(["2023-09-27 17:31:21.35", "2023-09-27 17:31:21.352"]) == (
        "2023-09-27 17:31:21.352"
    )
    assert newest(["", ""]) == ""


def test_the_shape_follows_selection_and_layout_not_set_order() -> None:
    a = Selection(experiments=frozenset({"E1", "E2", "E3"}), resources=frozenset({"DICOM"}))
    b = Selection(experiments=frozenset({"E3", "E1", "E2"}), resources=frozenset({"DICOM"}))
    assert shape_of(a, "L") == shape_of(b, "L")
    assert shape_of(a, "L") != shape_of(a, "M")
    assert shape_of(a, "L") != shape_of(Selection(experiments=a.experiments), "L")
    searched = Selection(search_ids=frozenset({"E1"}))
    assert shape_of(searched, "L") != shape_of(Selection(), "L")


def test_decide_lists_in_full_for_every_reason_it_must() -> None:
    mode = ChangedOnly(full_every=7 * DAY)
    record = Cutoff("S", "2023-10-01 08:00:00.1", full_at=1000.0, done_at=1000.0)
    assert decide(None, record, "S", 1000.0, delete=False) == (False, "")
    by_change, why = decide(mode, record, "S", 1000.0 + 6 * DAY, delete=False)
    assert by_change
    assert "2023-10-01 08:00:00.1" in why
    cases = {
        "--delete": decide(mode, record, "S", 1000.0, delete=True),
        "no complete run": decide(mode, None, "S", 1000.0, delete=False),
        "selection or layout": decide(mode, record, "T", 1000.0, delete=False),
        "--full-every 7": decide(mode, record, "S", 1000.0 + 7 * DAY, delete=False),
        "--full-every 0": decide(ChangedOnly(full_every=0), record, "S", 1000.0, delete=False),
    }
    for words, (by_change, why) in cases.items():
        assert not by_change, words
        assert words in why


def test_a_session_leaving_the_recent_window_keeps_its_workflow_date() -> None:
    kept = stamps_of("2023-09-27 17:31:21.352", "2023-10-01 08:00:00.1", "2023-10-02 09:00:00.5")
    since = Since({"E1": kept})
    unseen = stamps_of("2023-09-27 17:31:21.352", "2023-10-01 08:00:00.1")  # not in recent=
    assert since.settle("E1", unseen) == kept
    assert not since.wants("E1", since.settle("E1", unseen))
    newer = stamps_of("2023-09-27 17:31:21.352", "2023-10-01 08:00:00.1", "2023-10-03 10:00:00.0")
    assert since.wants("E1", since.settle("E1", newer))  # a file changed: a new workflow
    edited = stamps_of("2023-09-27 17:31:21.352", "2023-10-04 08:00:00.1")
    assert since.settle("E1", edited) == edited  # its own dates moved: nothing carried over
    assert since.wants("E1", since.settle("E1", edited))


def test_the_recent_window_reaches_back_to_the_last_complete_run() -> None:
    assert recent_window(0.0, 0.5 * DAY) == (2, RECENT_LIMIT)
    assert recent_window(0.0, 3.2 * DAY) == (5, RECENT_LIMIT)
    assert recent_window(0.0, 58.5 * DAY) == (61, RECENT_LIMIT)  # XNAT ignores 60
    assert RECENT_LIMIT != 60
    rows = [{"id": "E1", "workflow_date": "2023-10-02 09:00:00.5"}, {"id": "E2"}, {"label": "x"}]
    assert workflow_dates(rows, limit=5) == {"E1": "2023-10-02 09:00:00.5", "E2": ""}
    assert workflow_dates(rows, limit=3) is None  # as many rows as asked for: maybe cut short
