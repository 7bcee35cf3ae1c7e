"""batching: which downloads become one zip per resource (through ``build_plan``), and the
plan's text and counts for them."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from xnatsync.layout import DEFAULT_LAYOUT
from xnatsync.model import FileState, Level, LocalFile, RemoteFile
from xnatsync.pull.batching import BatchPolicy, resource_uri
from xnatsync.pull.describe import format_plan
from xnatsync.pull.diff import diff
from xnatsync.pull.plan import Plan, PlanOptions, build_plan

MD5 = hashlib.md5(b"x").hexdigest()
POLICY = BatchPolicy(min_files=3, max_mean_size=1000, max_bytes=10_000, group_scans=0)


def rf(path: str, resource: str = "7", size: int | None = 100, scan: str = "1") -> RemoteFile:
    base = f"/data/experiments/E01/scans/{scan}/resources/{resource}"
    return RemoteFile(
        project="P", subject_id="S01", subject="sub", experiment_id="E01", experiment="sess",
        level=Level.SCAN, container=scan, container_type="T1", resource=f"R{resource}",
        path=path, uri=f"{base}/files/{path}", size=size, digest=MD5,
    )  # fmt: skip


def done(remote: RemoteFile) -> LocalFile:
    rel = str(DEFAULT_LAYOUT.relpath(remote))
    size = remote.size
    return LocalFile(remote.key, rel, size, 5, MD5, MD5, FileState.DONE, size, 5)


def plan_of(remote: list[RemoteFile], local: list[LocalFile] | None = None) -> Plan:
    remote = sorted(remote, key=lambda f: f.key)
    local = sorted(local or [], key=lambda f: f.key)
    changes = diff(remote, local, DEFAULT_LAYOUT.relpath)
    return build_plan(changes, DEFAULT_LAYOUT, PlanOptions(batch=POLICY))


def test_a_whole_resource_of_small_files_is_one_zip() -> None:
    files = [rf(f"{n}.dcm") for n in range(4)]
    plan = plan_of(files)
    [batch] = plan.batches
    assert batch.resource == "/data/experiments/E01/scans/1/resources/7"
    assert sorted(d.remote.path for d in batch.downloads) == [f"{n}.dcm" for n in range(4)]
    assert plan.downloads == ()
    summary = plan.summary()
    assert (summary.downloads, summary.batched, summary.batches) == (4, 4, 1)
    assert summary.download_bytes == 400
    text = format_plan(plan)
    assert "zip         4 files" in text
    assert "4 to download (400 B, 4 of them in 1 zips)" in text


def test_a_partly_present_resource_is_finished_file_by_file() -> None:
    files = [rf(f"{n}.dcm") for n in range(5)]
    plan = plan_of(files, [done(files[0])])
    assert plan.batches == ()
    assert len(plan.downloads) == 4


def test_thresholds_keep_files_single() -> None:
    few = [rf(f"{n}.dcm") for n in range(2)]
    assert plan_of(few).batches == ()
    big = [rf(f"{n}.dcm", size=2000) for n in range(4)]
    assert plan_of(big).batches == ()  # mean over max_mean_size
    many = [rf(f"{n}.dcm", size=900) for n in range(12)]
    assert plan_of(many).batches == ()  # total over max_bytes
    unknown = [rf(f"{n}.dcm", size=None if n == 0 else 100) for n in range(4)]
    plan = plan_of(unknown)
    assert plan.batches == ()  # one size unknown: the resource is not whole among candidates
    assert len(plan.downloads) == 4


def test_batches_are_per_resource() -> None:
    one = [rf(f"{n}.dcm", resource="7") for n in range(3)]
    two = [rf(f"{n}.dcm", resource="8", scan="2") for n in range(2)]
    plan = plan_of(one + two)
    assert [b.resource.rsplit("/", 1)[-1] for b in plan.batches] == ["7"]
    assert sorted(d.remote.path for d in plan.downloads) == ["0.dcm", "1.dcm"]


def test_without_a_policy_nothing_is_batched() -> None:
    files = [rf(f"{n}.dcm") for n in range(10)]
    changes = diff(sorted(files, key=lambda f: f.key), [], DEFAULT_LAYOUT.relpath)
    plan = build_plan(changes, DEFAULT_LAYOUT, PlanOptions())
    assert plan.batches == ()
    assert len(plan.downloads) == 10


def test_resource_uri_needs_a_files_segment() -> None:
    assert resource_uri(rf("a/b.dcm")) == "/data/experiments/E01/scans/1/resources/7"
    assert resource_uri(replace(rf("x"), uri="/data/elsewhere/x")) is None


@given(
    st.lists(
        st.tuples(st.sampled_from(["7", "8", "9"]), st.integers(0, 30), st.integers(0, 1500)),
        max_size=40,
        unique_by=lambda t: (t[0], t[1]),
    ),
    st.sets(st.integers(0, 39), max_size=10),
)
def test_every_download_is_planned_exactly_once(
    specs: list[tuple[str, int, int]], present: set[int]
) -> None:
    files = [rf(f"{n}.dcm", resource=r, size=size, scan=r) for r, n, size in specs]
    local = [done(f) for i, f in enumerate(files) if i in present]
    plan = plan_of(files, local)
    planned = [d.remote.key for d in plan.all_downloads()]
    assert sorted(planned) == sorted(f.key for i, f in enumerate(files) if i not in present)
    for batch in plan.batches:
        bases = {resource_uri(d.remote) for d in batch.downloads}
        assert bases == {batch.resource}
        listed = [f for f in files if resource_uri(f) == batch.resource]
        assert len(batch.downloads) == len(listed) >= POLICY.min_files  # whole resources only
