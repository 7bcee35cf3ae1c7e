"""batching.group_scans and SessionGate: which whole scans of a session come as one zip of
several scans (through ``build_plan``), what runs instead when the run does not take them, and
when a run takes them."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from xnatsync.layout import DEFAULT_LAYOUT
from xnatsync.model import FileState, Level, LocalFile, RemoteFile
from xnatsync.pull.batching import BatchPolicy, SessionGate, resource_uri, scan_of
from xnatsync.pull.describe import format_plan
from xnatsync.pull.diff import diff
from xnatsync.pull.plan import Batch, Download, Plan, PlanOptions, ScanZip, build_plan

MD5 = hashlib.md5(b"x").hexdigest()
POLICY = BatchPolicy(min_files=3, max_mean_size=1000, max_bytes=10_000, group_bytes=2000)
SESSION = "/data/experiments/E01"


def rf(scan: str, n: int, resource: str = "7", size: int | None = 100) -> RemoteFile:
    base = f"{SESSION}/scans/{scan}/resources/{resource}{scan}"
    return RemoteFile(
        project="P", subject_id="S01", subject="sub", experiment_id="E01", experiment="sess",
        level=Level.SCAN, container=scan, container_type="T1", resource=f"R{resource}",
        path=f"{n}.dcm", uri=f"{base}/files/{n}.dcm", size=size, digest=MD5,
    )  # fmt: skip


def scan(
    scan_id: str, files: int = 3, size: int | None = 100, resource: str = "7"
) -> list[RemoteFile]:
    return [rf(scan_id, n, resource, size) for n in range(files)]


def done(remote: RemoteFile) -> LocalFile:
    rel = str(DEFAULT_LAYOUT.relpath(remote))
    return LocalFile(remote.key, rel, remote.size, 5, MD5, MD5, FileState.DONE, remote.size, 5)


def plan_of(
    remote: list[RemoteFile], local: list[LocalFile] | None = None, policy: BatchPolicy = POLICY
) -> Plan:
    changes = diff(
        sorted(remote, key=lambda f: f.key),
        sorted(local or [], key=lambda f: f.key),
        DEFAULT_LAYOUT.relpath,
    )
    return build_plan(changes, DEFAULT_LAYOUT, PlanOptions(batch=policy))


def paths(downloads: tuple[Download, ...] | list[Download]) -> list[str]:
    return sorted(d.remote.uri for d in downloads)


def test_whole_scans_of_a_session_are_one_zip_with_per_resource_parts() -> None:
    files = scan("1") + scan("2") + scan("3", files=2)
    plan = plan_of(files)
    [group] = plan.scan_zips
    assert group.uri == f"{SESSION}/scans/1,2,3"
    assert paths(group.downloads) == sorted(f.uri for f in files)
    assert (plan.batches, plan.downloads) == ((), ())
    # instead of the group zip: a zip per resource of enough files, the rest one by one
    zips = [p for p in group.parts if isinstance(p, Batch)]
    singles = [p for p in group.parts if isinstance(p, Download)]
    assert sorted(b.resource for b in zips) == [f"{SESSION}/scans/{s}/resources/7{s}" for s in "12"]
    assert paths(singles) == sorted(f.uri for f in files if scan_of(f) == (SESSION, "3"))
    assert plan.actions() == (group,)
    assert plan.without_scan_zips().actions() == group.parts
    assert plan.without_scan_zips().summary().downloads == 8
    summary = plan.summary()
    assert (summary.downloads, summary.batched, summary.batches, summary.scan_zips) == (8, 8, 1, 1)
    assert f"zip         8 files     800 B  {SESSION}/scans/1,2,3" in format_plan(plan)


def test_a_scan_not_wholly_due_stays_out_of_the_group() -> None:
    one, two, three = scan("1"), scan("2"), scan("3")
    plan = plan_of(one + two + three, [done(two[0])])
    [group] = plan.scan_zips
    assert group.uri == f"{SESSION}/scans/1,3"
    assert paths(plan.downloads) == paths_of(two[1:])  # finished file by file


def paths_of(files: list[RemoteFile]) -> list[str]:
    return sorted(f.uri for f in files)


def test_scans_of_large_or_unknown_sizes_and_odd_ids_stay_out() -> None:
    big = scan("4", size=2000)  # mean over max_mean_size
    unknown = scan("5", size=None)
    odd = [rf("6 b", n) for n in range(3)]  # an ID that is not plain cannot go in the list
    plan = plan_of(scan("1") + scan("2") + big + unknown + odd)
    [group] = plan.scan_zips
    assert group.uri == f"{SESSION}/scans/1,2"


def test_groups_are_cut_by_bytes_and_by_scan_count_in_listing_order() -> None:
    files = [f for s in "123456" for f in scan(s, files=4)]  # 400 B a scan
    by_bytes = plan_of(files)  # at most 2000 B: five scans, then one
    assert [z.uri.rsplit("/", 1)[-1] for z in by_bytes.scan_zips] == ["1,2,3,4,5"]
    assert sorted(b.resource[-2:] for b in by_bytes.batches) == ["76"]  # a lone scan: its zip
    by_count = plan_of(files, policy=BatchPolicy(min_files=3, max_mean_size=1000, group_scans=2))
    assert [z.uri.rsplit("/", 1)[-1] for z in by_count.scan_zips] == ["1,2", "3,4", "5,6"]


def test_one_resource_or_too_few_files_is_no_group() -> None:
    lone = plan_of(scan("1", files=5))  # one scan, one resource: its resource zip is as good
    assert (lone.scan_zips, len(lone.batches)) == ((), 1)
    two_resources = scan("1", files=2) + scan("1", files=2, resource="8")
    assert plan_of(two_resources).scan_zips != ()  # one scan, two resources: one request
    few = plan_of(scan("1", files=1) + scan("2", files=1))  # 2 files < min_files
    assert few.scan_zips == ()


def session_file(n: int) -> RemoteFile:
    return RemoteFile(
        project="P", subject_id="S01", subject="sub", experiment_id="E01", experiment="sess",
        level=Level.EXPERIMENT, container="", container_type="", resource="NOTES",
        path=f"{n}.txt", uri=f"{SESSION}/resources/9/files/{n}.txt", size=10, digest=MD5,
    )  # fmt: skip


def test_session_files_that_are_not_scans_are_never_grouped() -> None:
    plan = plan_of(scan("1") + scan("2") + [session_file(n) for n in range(4)])
    [group] = plan.scan_zips
    assert all(scan_of(d.remote) is not None for d in group.downloads)
    assert [b.resource for b in plan.batches] == [f"{SESSION}/resources/9"]


def test_no_groups_when_switched_off() -> None:
    off = BatchPolicy(min_files=3, max_mean_size=1000, group_scans=0)
    plan = plan_of(scan("1") + scan("2"), policy=off)
    assert plan.scan_zips == ()
    assert len(plan.batches) == 2


def test_the_gate_opens_once_as_many_groups_are_due_as_streams() -> None:
    gate = SessionGate(streams=3)
    assert [gate.admit(1), gate.admit(0), gate.admit(1)] == [False, False, False]
    assert gate.admit(1)  # the third group: every stream has one
    assert gate.admit(0)
    assert gate.admit(1)
    big = SessionGate(streams=4)
    assert big.admit(5)  # one session cut into more groups than streams


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["1", "2", "3", "x,y"]),
            st.sampled_from(["7", "8"]),
            st.integers(0, 6),
            st.integers(0, 1500),
        ),
        max_size=40,
        unique_by=lambda t: (t[0], t[1], t[2]),
    ),
    st.sets(st.integers(0, 39), max_size=8),
)
def test_every_download_is_planned_exactly_once_either_way(
    specs: list[tuple[str, str, int, int]], present: set[int]
) -> None:
    files = [rf(s, n, resource, size) for s, resource, n, size in specs]
    plan = plan_of(files, [done(f) for i, f in enumerate(files) if i in present])
    due = sorted(f.key for i, f in enumerate(files) if i not in present)
    assert sorted(d.remote.key for d in plan.all_downloads()) == due
    for chosen in (plan, plan.without_scan_zips()):
        fetched: list[str] = []
        for action in chosen.actions():
            if isinstance(action, ScanZip | Batch):
                fetched += [d.remote.key for d in action.downloads]
            elif isinstance(action, Download):
                fetched.append(action.remote.key)
        assert sorted(fetched) == due
    for group in plan.scan_zips:
        scans = {scan_of(d.remote) or ("", "") for d in group.downloads}
        assert group.uri == f"{SESSION}/scans/" + ",".join(s[1] for s in sorted(scans))
        listed = [f for f in files if scan_of(f) in scans]
        assert paths(group.downloads) == paths_of(listed)  # whole scans only
        assert len({resource_uri(d.remote) for d in group.downloads}) >= 2
