"""push.plan: skip what the catalog holds, send what it lacks, replace or report what differs;
one action per resource."""

from __future__ import annotations

from xnatsync.model import Level
from xnatsync.push.plan import Listed, LocalEntry, plan
from xnatsync.push.tree import Target


def entry(resource: str, path: str, md5: str | None = "a" * 32, size: int = 10) -> LocalEntry:
    target = Target(Level.SCAN, "S", "E", "1", "T1w", resource, path)
    return LocalEntry(f"P/S/E/scans/1-T1w/resources/{resource}/files/{path}", target, size, 1, md5)


def test_skip_send_conflict_and_grouping() -> None:
    same, new, other, sized = (
        entry("R", "same"),
        entry("R", "new", None),
        entry("R2", "x"),
        entry("R", "s"),
    )
    catalog = {
        same.target.key: Listed(10, "a" * 32),
        other.target.key: Listed(10, "b" * 32),
        sized.target.key: Listed(10, None),  # no digest listed: size decides
    }
    result = plan([same, new, other, sized], catalog, overwrite=False)
    assert (set(result.skipped), result.by_size_only) == ({same, sized}, 1)
    assert [c.entry for c in result.conflicts] == [other]
    assert [(u.target.resource, [f.target.path for f in u.files]) for u in result.uploads] == [
        ("R", ["new"])
    ]
    assert result.files == 4


def test_overwrite_replaces_and_keeps_one_action_per_resource() -> None:
    a, b, c = entry("R", "a"), entry("R", "b"), entry("R2", "c")
    catalog = {a.target.key: Listed(11, None)}
    result = plan([c, b, a], catalog, overwrite=True)
    assert [(u.target.resource, len(u.files), sorted(u.replace)) for u in result.uploads] == [
        ("R", 2, [a.target.key]), ("R2", 1, []),
    ]  # fmt: skip
    assert result.conflicts == ()


def test_an_unhashed_file_is_never_taken_for_the_listed_one() -> None:
    unhashed = entry("R", "u", None)
    result = plan([unhashed], {unhashed.target.key: Listed(10, "a" * 32)}, overwrite=False)
    assert [c.entry for c in result.conflicts] == [unhashed]
