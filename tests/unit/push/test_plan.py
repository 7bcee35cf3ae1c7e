"""push.plan: skip what the catalog holds, send what it lacks, replace or report what differs;
one action per resource."""

from __future__ import annotations

from xnatsync.model import Level
from xnatsync.push.plan import NO_ZIPS, Listed, LocalEntry, ZipRule, plan
from xnatsync.push.tree import Target
from xnatsync.xnat.routes import url_keeps_name


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


def test_many_small_new_files_go_as_zips_and_replacements_and_empty_files_alone() -> None:
    rule = ZipRule(min_files=3, max_mean_size=100, max_bytes=25)
    files = [entry("R", f"f{n}", size=10) for n in range(5)]
    empty, replaced = entry("R", "empty", size=0), entry("R", "old", size=10)
    catalog = {replaced.target.key: Listed(11, None)}
    result = plan([*files, empty, replaced], catalog, overwrite=True, zips=rule)
    (upload,) = result.uploads
    # at most 25 bytes a zip: 2 + 2 + 1 files, in key order
    assert [[f.target.path for f in z] for z in upload.zips] == [
        ["f0", "f1"], ["f2", "f3"], ["f4"],
    ]  # fmt: skip
    assert [f.target.path for f in upload.files] == ["empty", "old"]
    assert (upload.replace, result.files, upload.size) == (frozenset({replaced.target.key}), 7, 60)


def test_few_or_large_files_go_one_by_one() -> None:
    rule = ZipRule(min_files=3, max_mean_size=100, max_bytes=1000)
    few = [entry("R", f"f{n}", size=10) for n in range(2)]
    large = [entry("L", f"f{n}", size=101) for n in range(5)]
    result = plan([*few, *large], {}, overwrite=False, zips=rule)
    assert [(u.target.resource, len(u.zips), len(u.files)) for u in result.uploads] == [
        ("L", 0, 5), ("R", 0, 2),
    ]  # fmt: skip


def test_names_xnat_reads_wrongly_from_a_url_are_zipped_even_alone_and_with_no_zip() -> None:
    odd, spaced, plain = entry("R", "ü.txt"), entry("R", "a é.txt"), entry("R", "p.txt")
    empty_odd = entry("R", "ø", size=0)
    for rule in (NO_ZIPS, ZipRule()):
        (upload,) = plan([odd, spaced, plain, empty_odd], {}, overwrite=False, zips=rule).uploads
        assert [[f.target.path for f in z] for z in upload.zips] == [["ø", "ü.txt"]]
        assert [f.target.path for f in upload.files] == ["a é.txt", "p.txt"]
    assert [url_keeps_name(n) for n in ("a.txt", "ü.txt", "a%b", "a b%c", "x+ü", "(1),2")] == [
        True, False, False, True, True, True,
    ]  # fmt: skip
