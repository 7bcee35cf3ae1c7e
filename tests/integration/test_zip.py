"""Zip batches end to end: whole resources of small files come as one zip each, every member
verified against the catalog; anything a zip does not deliver intact is fetched file by file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.integration.conftest import (
    assert_invariants,
    expected_tree,
    journal_rows,
    local_files,
    make_config,
    part_files,
    run_pull,
)
from xnatsync.emulator.server import Emulator, run_emulator
from xnatsync.emulator.settings import EmulatorConfig, SyntheticSpec
from xnatsync.events import Notice

# 2 subjects x 1 session x 2 scans x 12 files of 16 KiB: four resources, 48 files
SPEC = SyntheticSpec(project="ZIP", subjects=2, sessions=1, scans=2, files=12, file_size=16384)
ZIPS = "*/resources/*/files"
SINGLES = "*/resources/*/files/*"


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with run_emulator(EmulatorConfig(seed="synthetic", synthetic=SPEC)) as emulator:
        yield emulator


def notices(events: object) -> list[str]:
    return [n.message for n in events.of(Notice)]  # type: ignore[attr-defined]


async def test_whole_resources_of_small_files_come_as_one_zip_each(
    emu: Emulator, tmp_path: Path
) -> None:
    config = make_config(emu, tmp_path, project="ZIP")
    summary, _ = await run_pull(config)
    expected = expected_tree(emu)
    assert summary.ok
    assert (summary.files_transferred, len(expected)) == (48, 48)
    assert (emu.requests.count("GET", ZIPS), emu.requests.count("GET", SINGLES)) == (4, 0)
    assert_invariants(tmp_path, expected)
    assert {p: row[0] for p, row in journal_rows(tmp_path).items()} == dict.fromkeys(
        expected, "done"
    )
    assert list((tmp_path / ".xnatsync").glob("tmp/*")) == []  # spools removed
    emu.requests.clear()
    again, _ = await run_pull(config)
    assert (again.files_transferred, again.files_skipped) == (0, 48)
    assert emu.requests.count("GET", ZIPS) == 0


async def test_a_failing_zip_falls_back_to_single_files(emu: Emulator, tmp_path: Path) -> None:
    emu.faults.script("GET", ZIPS, ["500"] * 100)
    summary, events = await run_pull(make_config(emu, tmp_path, project="ZIP"))
    assert summary.ok
    assert emu.requests.count("GET", SINGLES) == 48
    assert_invariants(tmp_path, expected_tree(emu))
    assert any("one by one" in n for n in notices(events))


async def test_server_side_damage_is_caught_member_by_member(emu: Emulator, tmp_path: Path) -> None:
    resource = next(iter(emu.store.resources.values()))
    entry = next(iter(resource.files.values()))
    stored = emu.store.file_path(resource, entry.relpath)
    stored.write_bytes(bytes(b ^ 0xFF for b in stored.read_bytes()))  # same size, other bytes
    summary, events = await run_pull(make_config(emu, tmp_path, project="ZIP"))
    assert summary.files_failed == 1
    assert summary.files_transferred == 47
    [failure] = summary.failures
    assert "MD5" in failure["reason"]
    damaged = [p for p in expected_tree(emu) if p.endswith(f"/files/{entry.relpath}")]
    rows = journal_rows(tmp_path)
    assert [rows[p][0] for p in damaged if "/" + resource.label + "/" in p][:1] == ["failed"]
    assert not any((tmp_path / p).exists() for p in damaged if rows[p][0] == "failed")
    assert any("did not arrive intact" in n for n in notices(events))
    assert part_files(tmp_path) == []


async def test_no_zip_fetches_file_by_file(emu: Emulator, tmp_path: Path) -> None:
    summary, _ = await run_pull(make_config(emu, tmp_path, project="ZIP", batch=None))
    assert summary.ok
    assert (emu.requests.count("GET", ZIPS), emu.requests.count("GET", SINGLES)) == (0, 48)


async def test_a_partly_present_resource_is_finished_file_by_file(
    emu: Emulator, tmp_path: Path
) -> None:
    config = make_config(emu, tmp_path, project="ZIP")
    await run_pull(config)
    gone = sorted(local_files(tmp_path))[:3]  # three files of one resource
    for relpath in gone:
        (tmp_path / relpath).unlink()
    emu.requests.clear()
    summary, _ = await run_pull(config)
    assert summary.files_transferred == 3
    assert (emu.requests.count("GET", ZIPS), emu.requests.count("GET", SINGLES)) == (0, 3)
    assert_invariants(tmp_path, expected_tree(emu))


@pytest.mark.parametrize("fault", ["reset", "truncate", "chunked-cut", "stall:5@0.5"])
async def test_a_zip_cut_once_is_fetched_again_whole(
    emu: Emulator, tmp_path: Path, fault: str
) -> None:
    emu.faults.script("GET", ZIPS, [fault])
    config = make_config(emu, tmp_path, project="ZIP")
    if fault.startswith("stall"):
        config = replace(config, timeouts=replace(config.timeouts, read_stall=1.0))
    summary, _ = await run_pull(config)
    assert summary.ok
    assert summary.retries == 1  # the cut zip, asked for once more
    assert emu.requests.count("GET", SINGLES) == 0  # (a stalled answer is logged when it ends)
    assert_invariants(tmp_path, expected_tree(emu))
    assert list((tmp_path / ".xnatsync").glob("tmp/*")) == []


async def test_a_corrupted_zip_costs_only_the_damaged_member(emu: Emulator, tmp_path: Path) -> None:
    emu.faults.script("GET", ZIPS, ["corrupt"])  # one byte flipped somewhere in the first zip
    summary, events = await run_pull(make_config(emu, tmp_path, project="ZIP"))
    assert summary.ok
    assert_invariants(tmp_path, expected_tree(emu))
    singles = emu.requests.count("GET", SINGLES)
    # a flipped member byte fails that member's CRC/MD5 (fetched alone); a flipped header byte
    # may spoil the whole zip, which is then fetched again or file by file
    assert singles <= 12
    assert singles == 0 or any("one by one" in n for n in notices(events))
