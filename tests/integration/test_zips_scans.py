"""Zips of whole scans end to end: once a run has as many sessions due as streams, a session's
scans come as one zip (``…/scans/1,2,3/files?format=zip``), every member verified against the
catalog; before that, and when the server gives no such zip, per resource; a damaged member is
fetched alone."""

from __future__ import annotations

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
    run_pull,
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


async def test_a_server_without_zips_of_scans_is_asked_per_resource(
    emu: Emulator, tmp_path: Path
) -> None:
    emu.faults.script("GET", GROUP_ZIPS, ["error:404"] * 10)
    summary, events = await run_pull(two_streams(emu, tmp_path))
    assert summary.ok
    assert_invariants(tmp_path, expected_tree(emu))
    assert [r.status for r in group_zips(emu)] == [404]  # asked once, then not again
    assert emu.requests.count("GET", RESOURCE_ZIPS) == 9
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
