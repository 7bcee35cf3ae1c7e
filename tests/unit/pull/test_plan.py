"""plan: actions per change kind, per-file errors, collisions, the delete cap, the text form."""

from __future__ import annotations

import hashlib
import random
from dataclasses import replace
from pathlib import PurePosixPath

from hypothesis import given
from hypothesis import strategies as st

from tests.fakes import remote_file
from xnatsync.errors import UnsafePathError
from xnatsync.layout import DEFAULT_LAYOUT, Layout, parse_layout
from xnatsync.model import FileState, Level, LocalFile, RemoteFile
from xnatsync.pull.deletes import TRASH_DIR, build_delete_plan, default_max_delete
from xnatsync.pull.describe import format_plan
from xnatsync.pull.diff import Change, ChangeKind, diff
from xnatsync.pull.plan import (
    Plan,
    PlanOptions,
    PlanSummary,
    build_plan,
)

MD5 = hashlib.md5(b"x").hexdigest()
OPTS = PlanOptions()
PREFIX = "P/sub/sess/scans/1-T1/resources/DICOM/files"


def rf(path: str = "1.dcm", size: int | None = 10, level: Level = Level.SCAN) -> RemoteFile:
    return remote_file(path=path, size=size, level=level, digest=MD5)


def done(remote: RemoteFile, relpath: str | None = None, **kw: object) -> LocalFile:
    rel = relpath if relpath is not None else str(DEFAULT_LAYOUT.relpath(remote))
    local = LocalFile(remote.key, rel, remote.size, 5, MD5, MD5, FileState.DONE, remote.size, 5)
    return replace(local, **kw)  # type: ignore[arg-type]


def plan_of(
    remote: list[RemoteFile], local: list[LocalFile], layout: Layout = DEFAULT_LAYOUT
) -> Plan:
    remote = sorted(remote, key=lambda f: f.key)
    local = sorted(local, key=lambda f: f.key)
    return build_plan(diff(remote, local, layout.relpath), layout, OPTS)


def test_each_kind_becomes_its_action() -> None:
    new, same, gone, moved, touched, failed, unlisted = (
        rf(f"{n}.dcm") for n in ("new", "same", "gone", "moved", "touched", "failed", "unlisted")
    )
    plan = plan_of(
        [new, same, gone, moved, touched, failed],
        [
            done(same),
            done(gone, disk_size=None, disk_mtime_ns=None),
            done(moved, relpath="old/moved.dcm"),
            done(touched, disk_mtime_ns=6),
            done(failed, state=FileState.FAILED),
            done(unlisted),
        ],
    )
    assert [(d.remote.path, d.kind, str(d.relpath)) for d in plan.downloads] == [
        ("failed.dcm", ChangeKind.RETRY, f"{PREFIX}/failed.dcm"),
        ("gone.dcm", ChangeKind.MISSING, f"{PREFIX}/gone.dcm"),
        ("new.dcm", ChangeKind.NEW, f"{PREFIX}/new.dcm"),
    ]
    assert [(str(m.src), str(m.dst)) for m in plan.moves] == [
        ("old/moved.dcm", f"{PREFIX}/moved.dcm")
    ]
    [verify] = plan.verifies
    assert (str(verify.current), verify.expected_md5, verify.expected_size) == (
        f"{PREFIX}/touched.dcm",
        MD5,
        10,
    )
    assert [s.key for s in plan.skips] == [same.key]
    assert plan.unlisted == 1
    assert plan.deletes == ()
    assert plan.errors == ()


def test_same_without_layout_in_diff_still_moves() -> None:
    remote = rf()
    changes = [Change(ChangeKind.SAME, remote, done(remote, relpath="old/1.dcm"))]
    plan = build_plan(changes, DEFAULT_LAYOUT, OPTS)
    assert [str(m.dst) for m in plan.moves] == [f"{PREFIX}/1.dcm"]


def test_unsafe_files_are_errors_and_the_rest_proceeds() -> None:
    good, evil = rf("ok.dcm"), rf("../../etc/passwd")
    plan = plan_of([good, evil], [])
    assert [d.remote.key for d in plan.downloads] == [good.key]
    [error] = plan.errors
    assert error.key == evil.key
    assert "unsafe" in error.reason


def test_unsafe_journal_relpath_is_an_error() -> None:
    remote = rf()
    plan = plan_of([remote], [done(remote, relpath="../outside")])
    assert plan.moves == ()
    assert [e.key for e in plan.errors] == [remote.key]


def test_case_collision_errors_both_files_on_every_run() -> None:
    upper, lower, other = rf("A.dcm"), rf("a.dcm"), rf("b.dcm")
    first = plan_of([upper, lower, other], [])
    # the next run: one of them was downloaded earlier (say by an older version); same verdict
    second = plan_of([lower, upper, other], [done(lower)])
    for plan in (first, second):
        assert sorted(e.key for e in plan.errors) == sorted([upper.key, lower.key])
        assert [d.remote.key for d in plan.downloads] == [other.key]
        assert plan.skips == ()
    assert first.errors == second.errors
    assert "a.dcm" in first.errors[0].reason or "A.dcm" in first.errors[0].reason


def test_file_and_folder_of_one_name_collide() -> None:
    as_file, below = rf("x"), rf("X/y.dcm")
    plan = plan_of([as_file, below, rf("z.dcm")], [])
    assert sorted(e.key for e in plan.errors) == sorted([as_file.key, below.key])
    assert len(plan.downloads) == 1


def test_case_clash_with_unlisted_local_file_errors_the_listed_one() -> None:
    renamed, old = rf("SCAN.dcm"), rf("scan.dcm")
    plan = plan_of([renamed], [done(old)])
    assert [e.key for e in plan.errors] == [renamed.key]
    assert "unlisted" in plan.errors[0].reason
    assert plan.unlisted == 1


def test_same_relpath_as_unlisted_key_is_a_plain_download() -> None:
    fresh = rf("x.dcm")
    old_key = replace(done(fresh), key="P/E00/scan/1/DICOM/x.dcm")
    plan = plan_of([fresh], [old_key])
    assert [d.remote.key for d in plan.downloads] == [fresh.key]
    assert plan.errors == ()


def test_flat_template_collision_between_levels_is_caught() -> None:
    flat = parse_layout("{project}/{subject}/{experiment}/{container}/{resource}/{path}")
    scan, session = rf("f.dcm"), rf("1/DICOM/f.dcm", level=Level.EXPERIMENT)
    session = replace(session, resource="x")
    clash = replace(scan, resource="DICOM")
    assert flat.relpath(session) != flat.relpath(clash)
    session_res_1 = replace(rf("DICOM/f.dcm", level=Level.EXPERIMENT), resource="1")
    plan = plan_of([clash, session_res_1], [], flat)
    assert flat.relpath(clash) == flat.relpath(session_res_1)
    assert len(plan.errors) == 2


def test_conflicting_spellings_are_errors() -> None:
    remote = rf("café.dcm")
    plan = build_plan([Change(ChangeKind.CONFLICT, remote, None)], DEFAULT_LAYOUT, OPTS)
    assert [e.key for e in plan.errors] == [remote.key]
    assert "Unicode" in plan.errors[0].reason


def test_summary_counts_and_bytes() -> None:
    a, b, c = rf("a.dcm", 100), rf("b.dcm", None), rf("c.dcm", 7)
    s = plan_of([a, b, c], [done(c)]).summary()
    assert (s.downloads, s.download_bytes, s.unknown_size, s.skips, s.skip_bytes) == (
        2,
        100,
        1,
        1,
        7,
    )
    total = s + s
    assert total.downloads == 4
    assert total.as_dict()["skip_bytes"] == 14
    assert PlanSummary() + s == s


# -- deletes --------------------------------------------------------------------------------------


def candidates(n: int) -> list[LocalFile]:
    return [done(rf(f"{i:03d}.dcm")) for i in range(n)]


def test_deletes_need_a_request_and_a_complete_listing() -> None:
    assert build_delete_plan(candidates(1), 100, PlanOptions()).delete_refused
    plan = build_delete_plan(candidates(1), 100, PlanOptions(delete=True))
    assert plan.deletes == ()
    assert "incomplete" in plan.delete_refused


def test_deletes_go_to_trash_of_the_run() -> None:
    opts = PlanOptions(delete=True, listing_complete=True, run_id=42)
    plan = build_delete_plan(candidates(3), 100, opts)
    assert [str(d.trash) for d in plan.deletes] == [
        str(TRASH_DIR / "42" / d.relpath) for d in plan.deletes
    ]
    assert plan.deletes[0].relpath == PurePosixPath(f"{PREFIX}/000.dcm")
    assert plan.summary().delete_bytes == 30
    assert plan.delete_refused == ""
    purge = build_delete_plan(candidates(3), 100, replace(opts, purge=True))
    assert all(d.trash is None for d in purge.deletes)


def test_over_the_cap_nothing_is_deleted() -> None:
    opts = PlanOptions(delete=True, listing_complete=True)
    assert default_max_delete(1000) == 100
    assert default_max_delete(5) == 10
    assert len(build_delete_plan(candidates(100), 1000, opts).deletes) == 100
    refused = build_delete_plan(candidates(101), 1000, opts)
    assert refused.deletes == ()
    assert "more than 100" in refused.delete_refused
    explicit = build_delete_plan(candidates(3), 1000, replace(opts, max_delete=2))
    assert explicit.deletes == ()
    assert "--max-delete" in explicit.delete_refused
    assert "deletes refused" in format_plan(refused)


def test_unsafe_candidate_relpath_is_an_error_not_a_delete() -> None:
    opts = PlanOptions(delete=True, listing_complete=True)
    bad = replace(candidates(1)[0], relpath="../../home/x")
    plan = build_delete_plan([bad, *candidates(2)], 100, opts)
    assert len(plan.deletes) == 2
    assert [e.key for e in plan.errors] == [bad.key]


def test_format_plan_lists_actions_and_summary() -> None:
    a, b = rf("a.dcm", 2048), rf("../bad")
    text = format_plan(plan_of([a, b], []))
    assert f"download new        2.0 KiB  {PREFIX}/a.dcm" in text
    assert "error" in text
    assert "summary: 1 to download (2.0 KiB)" in text


# -- properties -----------------------------------------------------------------------------------

NAMES = st.text(alphabet="aAbB/._é", min_size=1, max_size=6)
STATES = st.sampled_from([None, *FileState])


@given(
    files=st.lists(st.tuples(NAMES, STATES, st.booleans()), max_size=20), seed=st.integers(0, 99)
)
def test_property_every_listed_file_in_exactly_one_bucket_order_independent(
    files: list[tuple[str, FileState | None, bool]], seed: int
) -> None:
    remote = {f.key: f for f in (rf(n) for n, _, _ in files)}
    local = []
    for name, state, on_disk in files:
        f = rf(name)
        if state is not None and f.key in remote:
            try:
                rel = str(DEFAULT_LAYOUT.relpath(f))
            except UnsafePathError:
                rel = "x"
            local.append(done(f, rel, state=state, disk_size=10 if on_disk else None))
    local = list({lf.key: lf for lf in local}.values())
    plan = plan_of(list(remote.values()), local)
    buckets = [
        *(d.remote.key for d in plan.downloads),
        *(v.remote.key for v in plan.verifies),
        *(m.remote.key for m in plan.moves),
        *(s.key for s in plan.skips),
        *(e.key for e in plan.errors),
    ]
    assert sorted(buckets) == sorted(remote)
    shuffled = diff(
        sorted(remote.values(), key=lambda f: f.key), sorted(local, key=lambda f: f.key)
    )
    random.Random(seed).shuffle(shuffled)
    again = build_plan(shuffled, DEFAULT_LAYOUT, OPTS)
    assert {e.key for e in again.errors} == {e.key for e in plan.errors}
    targets = [str(d.relpath) for d in plan.downloads] + [str(s.relpath) for s in plan.skips]
    assert len({t.casefold() for t in targets}) == len(targets)
