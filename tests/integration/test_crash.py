"""Kill and resume (§1.9 rows 13, 15): the CLI in a subprocess, the emulator in the test's loop.

Kill points are made deterministic by the emulator: a `stall` holds one body half-sent (and
`on_bytes_sent` says when), a `slow` rate paces every file, a stalled listing holds the
listing stage. After each kill the same command runs again and must finish clean, without
fetching a file the journal held verified at the time of the kill.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import os
import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.conftest import (
    FILE_GETS,
    PART_SUFFIX,
    assert_invariants,
    expected_tree,
    journal_rows,
    local_files,
    part_files,
    run_cli,
    start_cli,
    wait_for,
)
from xnatsync.emulator.server import Emulator, run_emulator
from xnatsync.emulator.settings import EmulatorConfig, SyntheticSpec

# 4 subjects x 1 session x 4 scans x 12 files of 64 KiB: 192 files, 12 MiB, plus large.dat.
SPEC = SyntheticSpec(project="BIG", subjects=4, sessions=1, scans=4, files=12, file_size=65536)
STALLED = "*/XNAT_E00002/scans/3/resources/*/files/large.dat"
LISTING = "*/experiments/*/files"


@pytest.fixture
async def big() -> AsyncIterator[Emulator]:
    async with run_emulator(EmulatorConfig(seed="synthetic", synthetic=SPEC)) as emulator:
        # one file larger than a write block, so part of it is on disk (its temp) mid-stream
        resource = emulator.store.experiments["XNAT_E00002"].scans["3"].resources["DICOM"]
        emulator.store.add_file(resource, "large.dat", os.urandom(3 << 20))
        yield emulator


def pull_args(emu: Emulator, dest: Path) -> list[str]:
    return [
        "pull",
        emu.url,
        "--project",
        "BIG",
        "--dest",
        str(dest),
        "--no-progress",
        "--concurrency",
        "4",
        "--attempts",
        "3",
        "--no-zip",
    ]  # fmt: skip  (file by file: the kill points are per-file faults)


def request_paths(emu: Emulator) -> dict[str, str]:
    """Local relpath → the request path the server logs for it (scan files of the seed)."""
    store, out = emu.store, {}
    for resource in store.resources.values():
        experiment = store.experiments[resource.experiment]
        subject = store.subjects[experiment.subject]
        scan = experiment.scans[resource.scan]
        local = f"BIG/{subject.label}/{experiment.label}/scans/{scan.id}-{scan.type}"
        remote = f"/data/experiments/{experiment.id}/scans/{scan.id}/resources/{resource.id}"
        for name in resource.files:
            out[f"{local}/resources/DICOM/files/{name}"] = f"{remote}/files/{name}"
    return out


def done_rows(dest: Path) -> set[str]:
    try:
        return {p for p, row in journal_rows(dest).items() if row[0] == "done"}
    except sqlite3.Error:  # not created yet, or mid-creation
        return set()


def intact(dest: Path, expected: dict[str, tuple[int, str]]) -> set[str]:
    """Files at their places with the listed content (done in the journal or not)."""
    return {
        p for p, (_, digest) in expected.items()
        if (dest / p).is_file() and hashlib.md5((dest / p).read_bytes()).hexdigest() == digest
    }  # fmt: skip


async def resume(emu: Emulator, dest: Path, verified: set[str]) -> None:
    """Rerun the same command: exit 0, every file correct, nothing verified fetched again, and
    nothing fetched that was complete on disk at the kill (adopted by hashing instead)."""
    on_disk = intact(dest, expected_tree(emu))
    assert verified <= on_disk
    emu.faults.clear()
    # The killed run's last requests may still be answered (a stalled handler sleeps on), so
    # the rerun's file requests are tagged: a zero latency fault shows in their log records.
    emu.faults.configure("latency:0=1")
    code, _, err = await run_cli(*pull_args(emu, dest))
    assert code == 0, err
    expected = expected_tree(emu)
    assert set(local_files(dest)) == set(expected)
    assert_invariants(dest, expected)
    assert done_rows(dest) == set(expected)
    tagged = emu.requests.matching("GET", FILE_GETS)
    fetched = [r.path for r in tagged if r.fault.startswith("latency")]
    paths = request_paths(emu)
    assert [p for p in on_disk if paths[p] in fetched] == []
    assert sorted(fetched) == sorted(paths[p] for p in set(expected) - on_disk)


async def killed(proc: asyncio.subprocess.Process, signum: int = signal.SIGKILL) -> int:
    proc.send_signal(signum)
    return await asyncio.wait_for(proc.wait(), 20)


@pytest.mark.parametrize("journal", ["kept", "deleted"])
async def test_kill_mid_file_then_resume(big: Emulator, tmp_path: Path, journal: str) -> None:
    """The killed run's temp is swept at the next start, also when nothing records that a
    run was killed (the journal deleted: the temps ledger of the dead run tells)."""
    big.faults.script("GET", STALLED, ["stall:8@0.8"])
    half_sent = big.faults.on_bytes_sent(STALLED, 2 << 20)
    proc = await start_cli(*pull_args(big, tmp_path))
    await asyncio.wait_for(half_sent.wait(), 30)

    # Wait for the stalled file's own temp: other files' temps come and go meanwhile.
    def stalled_temps() -> list[Path]:
        return [p for p in part_files(tmp_path) if p.name.startswith(".large.dat.")]

    await wait_for(lambda: stalled_temps() != [], within=10, what="the stalled file's temp")
    assert await killed(proc) == -signal.SIGKILL
    assert stalled_temps() != []  # left by the kill
    verified = done_rows(tmp_path)
    [stalled] = [p for p, u in request_paths(big).items() if fnmatch.fnmatchcase(u, STALLED)]
    assert stalled not in verified
    assert not (tmp_path / stalled).exists()  # the final name is never partial
    if journal == "deleted":
        for name in ("journal.db", "journal.db-wal", "journal.db-shm"):
            (tmp_path / ".xnatsync" / name).unlink(missing_ok=True)
        verified = set()
    await resume(big, tmp_path, verified)
    assert part_files(tmp_path) == []


async def test_kill_after_some_files_then_resume(big: Emulator, tmp_path: Path) -> None:
    big.faults.configure("slow:1048576=1")  # every file at 1 MiB/s: ~60 files/s in all
    proc = await start_cli(*pull_args(big, tmp_path))
    await wait_for(lambda: len(done_rows(tmp_path)) >= 30, within=30, what="30 files done")
    assert await killed(proc) == -signal.SIGKILL
    verified = done_rows(tmp_path)
    assert 30 <= len(verified) < len(expected_tree(big))
    assert_invariants(tmp_path, expected_tree(big), completed=False)  # right after a kill
    await resume(big, tmp_path, verified)


async def test_kill_during_listing_then_resume(big: Emulator, tmp_path: Path) -> None:
    big.faults.script("GET", LISTING, ["stall:8@0.5"])
    listing_half_sent = big.faults.on_bytes_sent(LISTING, 1)
    proc = await start_cli(*pull_args(big, tmp_path))
    await asyncio.wait_for(listing_half_sent.wait(), 30)
    assert await killed(proc) == -signal.SIGKILL
    verified = done_rows(tmp_path)
    await resume(big, tmp_path, verified)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_interrupt_cleans_up_and_resumes(
    big: Emulator, tmp_path: Path, signum: signal.Signals
) -> None:
    big.faults.script("GET", STALLED, ["stall:8@0.5"])
    half_sent = big.faults.on_bytes_sent(STALLED, 32768)
    proc = await start_cli(*pull_args(big, tmp_path))
    await asyncio.wait_for(half_sent.wait(), 30)
    assert await killed(proc, signum) == 130
    assert proc.stderr is not None
    err = (await proc.stderr.read()).decode()
    assert "interrupted" in err
    assert "Traceback" not in err
    assert part_files(tmp_path) == []  # own temps removed on the way out
    assert not (tmp_path / ".xnatsync" / "lock").exists()
    expected = expected_tree(big)
    assert_invariants(tmp_path, expected)
    with sqlite3.connect(tmp_path / ".xnatsync" / "journal.db") as conn:
        [(status,)] = conn.execute("SELECT status FROM runs").fetchall()
    assert status == "interrupted"
    await resume(big, tmp_path, done_rows(tmp_path))


ZIP_STALLED = "*/XNAT_E00002/scans/3/resources/*/files"  # the scan with large.dat, as one zip


def spools(dest: Path) -> list[Path]:
    return list((dest / ".xnatsync" / "tmp").glob(f"*{PART_SUFFIX}"))


async def test_kill_mid_zip_then_resume(big: Emulator, tmp_path: Path) -> None:
    big.faults.script("GET", ZIP_STALLED, ["stall:8@0.6"])
    half_sent = big.faults.on_bytes_sent(ZIP_STALLED, 2 << 20)
    zip_args = [a for a in pull_args(big, tmp_path) if a != "--no-zip"]
    proc = await start_cli(*zip_args)
    await asyncio.wait_for(half_sent.wait(), 30)
    await wait_for(lambda: spools(tmp_path) != [], within=10, what="the stalled zip's spool")
    assert await killed(proc) == -signal.SIGKILL
    assert spools(tmp_path) != []  # left by the kill
    verified = done_rows(tmp_path)
    expected = expected_tree(big)
    on_disk = intact(tmp_path, expected)
    assert verified <= on_disk
    assert_invariants(tmp_path, expected, completed=False)
    big.faults.clear()
    big.faults.configure("paths=*/files|*/files/*,latency:0=1")  # tag the rerun's requests
    code, _, err = await run_cli(*zip_args)
    assert code == 0, err
    assert set(local_files(tmp_path)) == set(expected)
    assert_invariants(tmp_path, expected)
    assert done_rows(tmp_path) == set(expected)
    assert spools(tmp_path) == []
    assert part_files(tmp_path) == []
    # nothing complete on disk at the kill came again: a zip of the rerun is of a resource
    # with none of its files on disk, and a single GET is of a file that was not there
    paths = request_paths(big)
    rerun = [
        r.path for r in big.requests.matching("GET", "*/files*") if r.fault.startswith("latency")
    ]
    assert any(fnmatch.fnmatchcase(p, ZIP_STALLED) for p in rerun)  # the killed one, again
    local_of = {remote: local for local, remote in paths.items()}
    for zip_path in (p for p in rerun if fnmatch.fnmatchcase(p, "*/resources/*/files")):
        members = {local for local, remote in paths.items() if remote.startswith(zip_path + "/")}
        assert members, zip_path
        assert not members & on_disk, zip_path
    singles = {local_of[p] for p in rerun if fnmatch.fnmatchcase(p, FILE_GETS) and p in local_of}
    assert not singles & on_disk
