"""Sharded pulls (issue 11): N processes, each ``pull --shard K/N``, against one emulator.

Together they make an exact mirror and fetch each file once (the emulator's request log);
a shard killed with -9 is rerun and fetches nothing it had verified; a change from 4 shards to
3 fetches nothing at all; ``status --dest`` says which shards have not finished, and exits 1
until all have; ``--delete-only`` deletes after the shards, which never delete."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest

from tests.fakes import Recorder
from tests.integration.conftest import (
    FILE_GETS,
    NOTES,
    done_in,
    expected_tree,
    local_files,
    make_config,
    md5,
    part_files,
    run_cli,
    run_pull,
    server_request,
    start_cli,
    wait_for,
)
from xnatsync.audit import status_of_dest
from xnatsync.emulator.server import Emulator, run_emulator
from xnatsync.emulator.settings import EmulatorConfig, SyntheticSpec
from xnatsync.errors import LockedError
from xnatsync.events import Event
from xnatsync.journal import Journal
from xnatsync.lock import DestLock
from xnatsync.pull.run import pull
from xnatsync.shards import Shard, shard_of

# 8 subjects x 1 session x 2 scans x 3 files of 32 KiB: 48 files over 8 sessions
SPEC = SyntheticSpec(project="SYN", subjects=8, sessions=1, scans=2, files=3, file_size=32768)


@pytest.fixture
async def syn() -> AsyncIterator[Emulator]:
    async with run_emulator(EmulatorConfig(seed="synthetic", synthetic=SPEC)) as emulator:
        yield emulator


def pull_args(emu: Emulator, dest: Path, project: str, *more: str) -> list[str]:
    return [
        "pull", emu.url, "--project", project, "--dest", str(dest), "--no-progress",
        "--no-zip", "--concurrency", "2", "--attempts", "3", *more,
    ]  # fmt: skip


async def run_shards(emu: Emulator, dest: Path, project: str, shards: list[str]) -> None:
    results = await asyncio.gather(
        *(run_cli(*pull_args(emu, dest, project, "--shard", s)) for s in shards)
    )
    for shard, (code, _, err) in zip(shards, results, strict=True):
        assert code == 0, f"shard {shard}: {err}"


async def status(dest: Path) -> tuple[int, str]:
    code, out, err = await run_cli("status", "--dest", str(dest))
    return code, out + err


def fetched(emu: Emulator) -> collections.Counter[str]:
    """Files served, by request path (answers that carried no file are not counted)."""
    gets = emu.requests.matching("GET", FILE_GETS)
    return collections.Counter(r.path for r in gets if r.status == 200)


def owners_in(journal: Path) -> set[str]:
    with closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True)) as db:
        return {owner for (owner,) in db.execute("SELECT DISTINCT owner FROM files")}


def assert_mirror(dest: Path, expected: dict[str, tuple[int, str]]) -> None:
    """DEST holds exactly the expected files, each with the listed size and MD5."""
    files = local_files(dest)
    assert set(files) == set(expected)
    for relpath, data in files.items():
        assert (len(data), md5(data)) == expected[relpath], relpath
    assert part_files(dest) == []


def mirror_of(emu: Emulator, project: str) -> dict[str, tuple[int, str]]:
    return {p: v for p, v in expected_tree(emu).items() if p.startswith(f"{project}/")}


async def test_four_shards_make_an_exact_mirror_fetching_each_file_once(
    emu: Emulator, tmp_path: Path
) -> None:
    expected = mirror_of(emu, "DEMO")
    emu.requests.clear()
    # shard 0 (XNAT_E00002) is told to back off twice; shard 1 (XNAT_E00001) loses its session
    assert (shard_of("XNAT_E00002", 4), shard_of("XNAT_E00001", 4)) == (0, 1)
    emu.faults.script("GET", "*/experiments/XNAT_E00002/*/files/*", ["429:0", "429:0"])
    emu.faults.script("GET", "*/experiments/XNAT_E00001/*/files/*", ["expire"])
    await run_shards(emu, tmp_path, "DEMO", ["0/4", "1/4"])
    assert emu.requests.count("GET", "*/XNAT_E00002/*/files/*") > 2
    said, complete = status_of_dest(tmp_path)
    assert not complete
    assert "shard 2/4: never ran" in said
    assert "shard 3/4: never ran" in said
    assert "incomplete: shards 2, 3 of 4" in said

    await run_shards(emu, tmp_path, "DEMO", ["2/4", "3/4"])
    assert set(local_files(tmp_path)) == set(expected)
    assert_mirror(tmp_path, expected)
    counts = fetched(emu)
    assert sum(counts.values()) == len(expected)
    assert set(counts.values()) == {1}
    faults = [r.fault for r in emu.requests.records]
    assert len([f for f in faults if f.startswith("429")]) == 2
    assert len([f for f in faults if f.startswith("expire")]) == 1
    # four logins and one more by shard 1 alone: the others kept their sessions
    assert emu.requests.count("POST", "/data/JSESSION") == 5
    assert emu.requests.count("DELETE", "/data/JSESSION") == 4  # each shard logged out

    state = tmp_path / ".xnatsync"
    for k in range(4):
        shard = Shard(k, 4)
        owners = owners_in(state / shard.journal_name)
        assert all(shard.owner_in(owner) for owner in owners), (shard, owners)
    assert "" in owners_in(state / Shard(0, 4).journal_name)  # the project's own resources

    code, said = await status(tmp_path)
    assert code == 0, said
    assert "complete: all 4 shards finished" in said
    assert f"total: {len(expected)} files done" in said


def request_paths(emu: Emulator, project: str) -> dict[str, str]:
    """Local relpath → the path the server logs for it (scan files of ``project``)."""
    store, out = emu.store, {}
    for resource in store.resources.values():
        if resource.project != project or resource.level != "scan":
            continue
        experiment = store.experiments[resource.experiment]
        subject = store.subjects[experiment.subject]
        scan = experiment.scans[resource.scan]
        local = f"{project}/{subject.label}/{experiment.label}/scans/{scan.id}-{scan.type}"
        remote = f"/data/experiments/{experiment.id}/scans/{scan.id}/resources/{resource.id}"
        for name in resource.files:
            out[f"{local}/resources/{resource.label}/files/{name}"] = f"{remote}/files/{name}"
    return out


async def test_a_killed_shard_is_rerun_and_a_new_shard_count_fetches_nothing_again(
    syn: Emulator, tmp_path: Path
) -> None:
    expected = mirror_of(syn, "SYN")
    paths = request_paths(syn, "SYN")
    assert set(paths) == set(expected)
    victim = Shard(shard_of("XNAT_E00002", 4), 4)
    name = sorted(syn.store.experiments["XNAT_E00002"].scans["2"].resources["DICOM"].files)[-1]
    stalled = f"*/XNAT_E00002/scans/2/resources/*/files/{name}"
    mine = [e for e in syn.store.experiments if victim.owns(e)]
    # the victim's files come slowly (half a second each), so it verifies some before the kill
    syn.faults.configure(f"paths={'|'.join(f'*/{e}/*/files/*' for e in mine)},slow:65536=1")
    syn.faults.script("GET", stalled, ["stall:8@0.5"])
    half_sent = syn.faults.on_bytes_sent(stalled, 8192)
    others = [f"{k}/4" for k in range(4) if k != victim.index]
    doomed = await start_cli(*pull_args(syn, tmp_path, "SYN", "--shard", str(victim)))
    rest = asyncio.gather(
        *(run_cli(*pull_args(syn, tmp_path, "SYN", "--shard", s)) for s in others)
    )
    await asyncio.wait_for(half_sent.wait(), 30)
    journal = tmp_path / ".xnatsync" / victim.journal_name
    await wait_for(lambda: done_in(journal) != set(), within=20, what="a verified file")
    doomed.send_signal(signal.SIGKILL)
    assert await asyncio.wait_for(doomed.wait(), 20) == -signal.SIGKILL
    for code, _, err in await rest:  # the other shards are not disturbed
        assert code == 0, err
    verified = done_in(journal)
    said, complete = status_of_dest(tmp_path)
    assert not complete
    assert f"shard {victim}: killed" in said

    syn.faults.clear()
    syn.faults.configure("latency:0=1")  # tags the rerun's requests (the stalled one lingers)
    code, _, err = await run_cli(*pull_args(syn, tmp_path, "SYN", "--shard", str(victim)))
    assert code == 0, err  # the dead run's lock was taken over
    assert_mirror(tmp_path, expected)
    tagged = syn.requests.matching("GET", FILE_GETS)
    again = [r.path for r in tagged if r.fault.startswith("latency")]
    assert again
    assert not {paths[p] for p in verified} & set(again)
    assert status_of_dest(tmp_path)[1]

    # from 4 shards to 3: every file is done in some journal, so nothing is fetched again
    syn.faults.clear()
    syn.requests.clear()
    for k in range(3):
        summary, _ = await run_pull(make_config(syn, tmp_path, "SYN", shard=Shard(k, 3)))
        assert summary.ok, summary.failures
    assert fetched(syn) == collections.Counter()
    state = tmp_path / ".xnatsync"
    done = [done_in(state / Shard(k, 3).journal_name) for k in range(3)]
    assert sum(len(d) for d in done) == len(expected)
    assert set().union(*done) == set(expected)
    said, complete = status_of_dest(tmp_path)
    assert complete, said
    assert "3 shards" in said
    assert "earlier shard count 4" in said


async def test_deletes_wait_for_the_shards_and_follow_the_server(
    emu: Emulator, tmp_path: Path
) -> None:
    """Shards never delete; ``--delete-only`` (unsharded) deletes what left the server, from
    what the shards recorded, and downloads nothing; the shards then hear of the delete."""
    expected = mirror_of(emu, "DEMO")
    for k in range(2):
        summary, _ = await run_pull(make_config(emu, tmp_path, shard=Shard(k, 2)))
        assert summary.ok, summary.failures
    notes = "DEMO/DEMO01/DEMO01_MR1/resources/NOTES/files/notes.txt"
    assert notes in expected
    assert await server_request(emu, "DELETE", NOTES) == 200
    other = next(p for p in expected if "/DEMO02_MR1/" in p)
    (tmp_path / other).unlink()  # missing here: --delete-only must not fetch it

    still_running = DestLock(tmp_path, name=Shard(1, 2).lock_name)
    with still_running, pytest.raises(LockedError, match="every shard has finished"):
        await run_pull(make_config(emu, tmp_path, delete_only=True))
    emu.requests.clear()
    summary, _ = await run_pull(make_config(emu, tmp_path, delete_only=True))
    assert summary.ok, summary.failures
    assert emu.requests.count("GET", FILE_GETS) == 0
    assert set(local_files(tmp_path)) == set(expected) - {notes, other}
    trashed = list((tmp_path / ".xnatsync" / "trash").rglob("notes.txt"))
    assert len(trashed) == 1

    for k in range(2):  # the shards take the delete over, and fetch the missing file
        summary, _ = await run_pull(make_config(emu, tmp_path, shard=Shard(k, 2)))
        assert summary.ok, summary.failures
    assert set(local_files(tmp_path)) == set(expected) - {notes}
    said, complete = status_of_dest(tmp_path)
    assert complete, said
    assert f"total: {len(expected) - 1} files done" in said


async def test_a_journal_on_a_network_filesystem_is_opened_without_shared_memory(
    emu: Emulator, tmp_path: Path
) -> None:
    """On Lustre (as the mount table says) the shard's journal is opened in exclusive mode:
    no ``-shm`` file at any time, the run says so, and the mirror and journal are as usual."""
    dest = tmp_path / "lustre" / "mirror"
    table = (
        "20 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
        f"21 20 0:50 / {tmp_path / 'lustre'} rw,relatime - lustre 10.0.0.1@tcp:/fs rw\n"
    )
    config = make_config(emu, dest, shard=Shard(0, 1))
    journal = dest / ".xnatsync" / Shard(0, 1).journal_name
    shm_seen: list[bool] = []

    class Watch(Recorder):
        def emit(self, event: Event) -> None:
            super().emit(event)
            shm_seen.append(Path(f"{journal}-shm").exists())

    watch = Watch()
    summary = await pull(config, watch, mount_table=table)
    assert summary.ok, summary.failures
    assert any("is on lustre" in str(e) and "exclusive" in str(e) for e in watch.events)
    assert shm_seen
    assert not any(shm_seen)
    assert_mirror(dest, mirror_of(emu, "DEMO"))
    assert done_in(journal) == set(mirror_of(emu, "DEMO"))

    local = replace(config, journal_dir=tmp_path / "local-journals")  # the other way out
    watch = Watch()
    assert (await pull(local, watch, mount_table=table)).ok
    assert not any("exclusive" in str(e) for e in watch.events)
    assert (tmp_path / "local-journals" / Shard(0, 1).journal_name).is_file()


async def test_verify_checks_every_shard_s_journal_and_the_owning_shard_repairs(
    syn: Emulator, tmp_path: Path
) -> None:
    """`verify --dest` on a sharded DEST re-hashes the files of every shard's journal; a
    damaged file is marked in the journal that holds it, and that shard's next run fetches it
    again (and only it)."""
    await run_shards(syn, tmp_path, "SYN", ["0/2", "1/2"])
    files = local_files(tmp_path)
    victim = sorted(files)[0]
    owner = next(k for k in range(2) if victim in journal_states_of(tmp_path, Shard(k, 2)))
    stamp = (tmp_path / victim).stat()
    (tmp_path / victim).write_bytes(bytes(b ^ 0xFF for b in files[victim][:1]) + files[victim][1:])
    os.utime(tmp_path / victim, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # a silent bit flip
    code, out, _ = await run_cli("verify", "--dest", str(tmp_path))
    assert code == 1, out
    assert victim in out
    assert f"verified {len(files) - 1} of {len(files)} files" in out.splitlines()[-1]
    assert victim not in journal_states_of(tmp_path, Shard(owner, 2))  # marked: not done
    syn.requests.clear()
    await run_shards(syn, tmp_path, "SYN", [f"{owner}/2"])
    assert sum(fetched(syn).values()) == 1
    assert local_files(tmp_path) == files
    code, out, _ = await run_cli("verify", "--dest", str(tmp_path))
    assert code == 0, out


def journal_states_of(dest: Path, shard: Shard) -> dict[str, str]:
    with Journal.open(dest / ".xnatsync" / shard.journal_name, readonly=True) as journal:
        return {e.relpath: e.state.value for e in journal.iter_done()}
