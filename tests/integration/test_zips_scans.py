"""Zips of whole scans end to end: once a run has as many sessions due as streams, a session's
scans come as one zip (``…/scans/1,2,3/files?format=zip``), every member verified against the
catalog; before that, and when the server gives no such zip, per resource; a damaged member is
fetched alone."""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import signal
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.integration.conftest import (
    assert_invariants,
    expected_tree,
    journal_rows,
    make_config,
    part_files,
    run_cli,
    run_pull,
    start_cli,
)
from xnatsync.emulator.requestlog import RequestRecord
from xnatsync.emulator.server import Emulator, run_emulator
from xnatsync.emulator.settings import EmulatorConfig, SyntheticSpec
from xnatsync.events import Notice
from xnatsync.pull.options import PullOptions

# 3 subjects x 1 session x 3 scans x 8 files of 16 KiB: nine resources (each enough for a zip
# of its own), 72 files, a group zip of 24 files a session
SPEC = SyntheticSpec(project="GRP", subjects=3, sessions=1, scans=3, files=8, file_size=16384)
RESOURCE_ZIPS = "*/resources/*/files"
SINGLES = "*/resources/*/files/*"
GROUP_ZIPS = "*/scans/*,*/files"


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with run_emulator(EmulatorConfig(seed="synthetic", synthetic=SPEC)) as emulator:
        yield emulator


def two_streams(emu: Emulator, dest: Path) -> PullOptions:
    """Two streams: the first session due is fetched per resource, the next two whole."""
    config = make_config(emu, dest, project="GRP")
    return replace(config, limits=replace(config.limits, transfers=2))


def group_zips(emu: Emulator) -> list[RequestRecord]:
    return emu.requests.matching("GET", GROUP_ZIPS)


async def test_sessions_come_as_one_zip_once_every_stream_has_work(
    emu: Emulator, tmp_path: Path
) -> None:
    config = two_streams(emu, tmp_path)
    summary, _ = await run_pull(config)
    expected = expected_tree(emu)
    assert summary.ok
    assert (summary.files_transferred, len(expected)) == (72, 72)
    groups = group_zips(emu)
    assert [(r.path.rsplit("/", 2)[-2], r.status) for r in groups] == [("1,2,3", 200)] * 2
    assert all("format=zip" in r.query for r in groups)
    assert emu.requests.count("GET", RESOURCE_ZIPS) == 3  # the first session, per resource
    assert emu.requests.count("GET", SINGLES) == 0
    assert_invariants(tmp_path, expected)  # every byte where the layout puts it
    assert {p: row[0] for p, row in journal_rows(tmp_path).items()} == dict.fromkeys(
        expected, "done"
    )
    assert list((tmp_path / ".xnatsync").glob("tmp/*")) == []  # spools removed
    emu.requests.clear()
    again, _ = await run_pull(config)
    assert (again.files_transferred, again.files_skipped) == (0, 72)
    assert group_zips(emu) == []


async def test_with_more_streams_than_sessions_every_resource_is_its_own_zip(
    emu: Emulator, tmp_path: Path
) -> None:
    summary, _ = await run_pull(make_config(emu, tmp_path, project="GRP"))  # 8 streams
    assert summary.ok
    assert group_zips(emu) == []
    assert emu.requests.count("GET", RESOURCE_ZIPS) == 9
    assert_invariants(tmp_path, expected_tree(emu))


async def test_a_damaged_member_is_fetched_alone(emu: Emulator, tmp_path: Path) -> None:
    emu.faults.script("GET", GROUP_ZIPS, ["corrupt"])  # one byte flipped in the first group zip
    summary, events = await run_pull(two_streams(emu, tmp_path))
    assert summary.ok
    assert_invariants(tmp_path, expected_tree(emu))
    assert emu.requests.count("GET", SINGLES) == 1  # the member whose byte was flipped
    assert [r.status for r in group_zips(emu)] == [200, 200]
    notices = [n.message for n in events.of(Notice)]
    assert any("1 of 24 files" in n and "did not arrive intact" in n for n in notices), notices
    assert part_files(tmp_path) == []


async def test_a_server_without_zips_of_scans_is_asked_per_resource(tmp_path: Path) -> None:
    """Six sessions, two streams: five could come whole; the server refuses the first such
    zip (and one asked at the same time, on the other stream), and is not asked again."""
    spec = replace(SPEC, subjects=6)
    async with run_emulator(EmulatorConfig(seed="synthetic", synthetic=spec)) as emu:
        emu.faults.script("GET", GROUP_ZIPS, ["error:404"] * 10)
        summary, events = await run_pull(two_streams(emu, tmp_path))
        assert summary.ok
        assert_invariants(tmp_path, expected_tree(emu))
        assert {r.status for r in group_zips(emu)} == {404}
        assert 1 <= len(group_zips(emu)) <= 2  # at most one a stream, before the first answer
        assert emu.requests.count("GET", RESOURCE_ZIPS) == 18  # every resource, once
        assert emu.requests.count("GET", SINGLES) == 0
    notices = [n.message for n in events.of(Notice)]
    assert any("fetching per resource" in n for n in notices), notices


async def test_a_zip_of_scans_that_keeps_failing_falls_back_per_resource(
    emu: Emulator, tmp_path: Path
) -> None:
    emu.faults.script("GET", GROUP_ZIPS, ["503"] * 100)
    summary, _ = await run_pull(two_streams(emu, tmp_path))
    assert summary.ok
    assert_invariants(tmp_path, expected_tree(emu))
    assert emu.requests.count("GET", RESOURCE_ZIPS) == 9
    assert emu.requests.count("GET", SINGLES) == 0


def scan_files(emu: Emulator) -> tuple[dict[tuple[str, str], set[str]], dict[str, str]]:
    """(experiment ID, scan ID) → the local paths of that scan's files; and each file's
    request path → its local path."""
    per_scan: dict[tuple[str, str], set[str]] = {}
    local_of: dict[str, str] = {}
    store = emu.store
    for resource in store.resources.values():
        experiment = store.experiments[resource.experiment]
        subject = store.subjects[experiment.subject]
        scan = experiment.scans[resource.scan]
        local = f"GRP/{subject.label}/{experiment.label}/scans/{scan.id}-{scan.type}/resources"
        remote = f"/data/experiments/{experiment.id}/scans/{scan.id}/resources/{resource.id}"
        for name in resource.files:
            path = f"{local}/{resource.label}/files/{name}"
            per_scan.setdefault((experiment.id, scan.id), set()).add(path)
            local_of[f"{remote}/files/{name}"] = path
    return per_scan, local_of


def members_of(emu: Emulator, zip_path: str) -> set[str]:
    """The local paths of the files a zip request of scans (or of one scan resource) holds."""
    parts = zip_path.split("/")
    experiment, scans = parts[parts.index("experiments") + 1], parts[parts.index("scans") + 1]
    per_scan, _ = scan_files(emu)
    return {p for scan in scans.split(",") for p in per_scan[(experiment, scan)]}


def intact(dest: Path, expected: dict[str, tuple[int, str]]) -> set[str]:
    return {
        p for p, (_, digest) in expected.items()
        if (dest / p).is_file() and hashlib.md5((dest / p).read_bytes()).hexdigest() == digest
    }  # fmt: skip


async def test_kill_mid_zip_of_scans_then_resume(emu: Emulator, tmp_path: Path) -> None:
    """One stream, one lister: the sessions' zips of scans come in order, each held in memory.
    A kill while the second is half sent; the rerun fetches no file complete on disk."""
    args = ["pull", emu.url, "--project", "GRP", "--dest", str(tmp_path), "--no-progress",
            "--concurrency", "1", "--listings", "1"]  # fmt: skip
    second = "*/XNAT_E00002/scans/*,*/files"
    emu.faults.script("GET", second, ["stall:8@0.5"])
    half_sent = emu.faults.on_bytes_sent(second, 100_000)
    proc = await start_cli(*args)
    await asyncio.wait_for(half_sent.wait(), 30)
    proc.send_signal(signal.SIGKILL)
    assert await asyncio.wait_for(proc.wait(), 20) == -signal.SIGKILL
    expected = expected_tree(emu)
    on_disk = intact(tmp_path, expected)
    verified = {p for p, row in journal_rows(tmp_path).items() if row[0] == "done"}
    assert verified <= on_disk
    assert len(on_disk) <= 24  # at most the first session's files: the second's was in memory
    emu.faults.clear()
    emu.faults.configure("latency:0=1")  # tag the rerun's data requests
    code, _, err = await run_cli(*args)
    assert code == 0, err
    assert_invariants(tmp_path, expected)
    assert {p for p, row in journal_rows(tmp_path).items() if row[0] == "done"} == set(expected)
    assert part_files(tmp_path) == []
    rerun = [r.path for r in emu.requests.matching("GET") if r.fault.startswith("latency")]
    zips = [p for p in rerun if fnmatch.fnmatchcase(p, "*/scans/*/files")]
    assert any(fnmatch.fnmatchcase(p, second) for p in zips)  # the killed one, asked again
    for zip_path in zips:
        assert not members_of(emu, zip_path) & on_disk, zip_path
    _, local_of = scan_files(emu)
    singles = {local_of[p] for p in rerun if p in local_of}
    assert not singles & on_disk  # what was complete on disk was adopted by hashing
