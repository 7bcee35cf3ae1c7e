"""Faults on the wire (§1.9 rows 1–11, 24, 25), each through a real pull against the emulator.

Every scenario ends with the §1.9 invariants (`assert_invariants`) and a fault-free rerun that
fetches only what is missing (`assert_clean_rerun`).
"""

from __future__ import annotations

import itertools
import time
import unicodedata
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from tests.integration.conftest import (
    FAST_RETRY,
    FILE_GETS,
    assert_clean_rerun,
    assert_invariants,
    expected_tree,
    journal_rows,
    local_files,
    make_config,
    part_files,
    run_pull,
    wait_for,
)
from xnatsync.emulator.server import Emulator
from xnatsync.events import FileDeleted, FileFailed, FileRetry, ListingFailed, Notice
from xnatsync.limits import Timeouts
from xnatsync.model import Experiment
from xnatsync.pull.options import PullOptions
from xnatsync.xnat.client import XnatClient
from xnatsync.xnat.http import OwnerListing

# One file of the SYNTH fixture (64 KiB): its request path glob and its local path.
TARGET = "*/XNAT_E00001/scans/1/resources/*/files/1-00001.dat"
TARGET_REL = "SYNTH/SYNTH_S0001/SYNTH_S0001_MR1/scans/1-SERIES1/resources/DICOM/files/1-00001.dat"
SIZE = 65536
FILE_LISTING = "*/experiments/XNAT_E00001/files"


def gets(emu: Emulator, glob: str = TARGET) -> int:
    return emu.requests.count("GET", glob)


@pytest.mark.parametrize(
    "fault",
    [
        "truncate",
        "truncate@0",
        "reset@0",
        "reset@1",
        "reset@0.5",
        f"reset@{SIZE - 1}",
        "chunked-cut",
        "chunked-short",
        "chunked-short@0",
        "corrupt",
        "resize",
        "resize:-16",
        "login-page",
        "500",
        "502",
        "503",
        "504",
    ],
)
async def test_one_fault_then_success(synth: Emulator, tmp_path: Path, fault: str) -> None:
    expected = expected_tree(synth)
    synth.faults.script("GET", TARGET, [fault])
    summary, events = await run_pull(make_config(synth, tmp_path, "SYNTH"))
    assert summary.ok, summary.failures
    assert gets(synth) == 2
    assert [r.relpath for r in events.of(FileRetry)] == [TARGET_REL]
    assert local_files(tmp_path).keys() == expected.keys()
    assert_invariants(tmp_path, expected)
    assert journal_rows(tmp_path)[TARGET_REL][0] == "done"
    await assert_clean_rerun(make_config(synth, tmp_path, "SYNTH"), synth, expected)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("corrupt", "MD5"),
        ("resize", "bytes"),
        ("truncate", "body incomplete"),
        ("chunked-short", "bytes"),
        ("503", "503"),
        ("login-page", "bytes"),
    ],
)
async def test_persistent_fault_fails_the_file_only(
    synth: Emulator, tmp_path: Path, fault: str, reason: str
) -> None:
    expected = expected_tree(synth)
    config = make_config(synth, tmp_path, "SYNTH")
    synth.faults.script("GET", TARGET, [fault] * 20)
    summary, events = await run_pull(config)
    assert not summary.ok
    assert summary.files_failed == 1
    assert summary.files_transferred == len(expected) - 1
    [failed] = events.of(FileFailed)
    assert failed.relpath == TARGET_REL
    assert reason in failed.reason
    assert gets(synth) == config.retry.attempts  # bounded: the policy's attempts, no more
    assert TARGET_REL not in local_files(tmp_path)
    assert journal_rows(tmp_path)[TARGET_REL][0] == "failed"
    assert_invariants(tmp_path, expected)
    await assert_clean_rerun(config, synth, expected)


async def test_stall_times_out_and_retries(synth: Emulator, tmp_path: Path) -> None:
    expected = expected_tree(synth)
    config = make_config(synth, tmp_path, "SYNTH", timeouts=Timeouts(connect=5, read_stall=0.5))
    synth.faults.script("GET", TARGET, ["stall:3@0.5"])
    started = time.monotonic()
    summary, events = await run_pull(config)
    assert time.monotonic() - started < 2.5  # the read-stall timeout fired, not the 3 s stall
    assert summary.ok
    # The log holds answered requests: the stalled one is still asleep on the server.
    assert [r.fault for r in synth.requests.matching("GET", TARGET)] == ["ok"]
    [retry] = events.of(FileRetry)
    assert retry.relpath == TARGET_REL
    assert "read stall" in retry.reason
    assert_invariants(tmp_path, expected)
    await assert_clean_rerun(config, synth, expected)


async def test_slow_but_progressing_body_does_not_time_out(synth: Emulator, tmp_path: Path) -> None:
    expected = expected_tree(synth)
    config = make_config(synth, tmp_path, "SYNTH", timeouts=Timeouts(connect=5, read_stall=0.5))
    synth.faults.script("GET", TARGET, ["slow:65536"])  # 64 KiB in ~1 s, a piece every 62 ms
    started = time.monotonic()
    summary, events = await run_pull(config)
    assert time.monotonic() - started >= 0.9  # longer than read_stall in total
    assert summary.ok
    assert events.of(FileRetry) == []
    # The server logs a request once its handler returns, a moment after the last byte.
    await wait_for(lambda: gets(synth) == 1, within=5, what="the slow request in the log")
    assert_invariants(tmp_path, expected)


@pytest.mark.parametrize(("retry_after", "floor"), [("0.3", 0.3), ("86400", 1.0)])
async def test_429_retry_after_is_honoured_and_capped(
    synth: Emulator, tmp_path: Path, retry_after: str, floor: float
) -> None:
    expected = expected_tree(synth)
    config = make_config(synth, tmp_path, "SYNTH")
    config = replace(config, retry=replace(config.retry, retry_after_max=1.0))
    synth.faults.script("GET", TARGET, [f"429:{retry_after}"])
    started = time.monotonic()
    summary, events = await run_pull(config)
    elapsed = time.monotonic() - started
    assert summary.ok
    [retry] = events.of(FileRetry)
    assert retry.delay == pytest.approx(floor, abs=0.06)  # jitter ≤ backoff_max = 0.05
    assert elapsed >= floor
    assert elapsed < floor + 3  # an absurd Retry-After is capped, never obeyed
    assert gets(synth) == 2
    assert_invariants(tmp_path, expected)


@pytest.mark.parametrize("fault", ["expire", "redirect-login"])
async def test_stale_session_on_a_download_logs_in_again(
    synth: Emulator, tmp_path: Path, fault: str
) -> None:
    """401 or a 302 to the login page: one re-login, the same request again, no file retry."""
    expected = expected_tree(synth)
    synth.faults.script("GET", TARGET, [fault])
    summary, events = await run_pull(make_config(synth, tmp_path, "SYNTH"))
    assert summary.ok, summary.failures
    assert synth.requests.count("POST", "/data/JSESSION") == 2
    assert gets(synth) == 2
    assert events.of(FileRetry) == []
    assert_invariants(tmp_path, expected)
    await assert_clean_rerun(make_config(synth, tmp_path, "SYNTH"), synth, expected)


async def test_session_expiry_mid_run_logs_in_once(synth: Emulator, tmp_path: Path) -> None:
    """The session dies while many transfers are in flight: one re-login serves them all."""
    expected = expected_tree(synth)
    synth.faults.script("GET", FILE_GETS, ["ok", "ok", "expire"])
    summary, _ = await run_pull(make_config(synth, tmp_path, "SYNTH"))
    assert summary.ok, summary.failures
    assert synth.requests.count("POST", "/data/JSESSION") == 2
    assert synth.requests.count("*", "*") - synth.requests.count("*", "/data/JSESSION") > len(
        expected
    )
    assert any(r.status == 401 for r in synth.requests.records)
    assert set(local_files(tmp_path)) == set(expected)
    assert_invariants(tmp_path, expected)


async def test_session_max_age_one_relogin_per_stale_session(
    synth: Emulator, tmp_path: Path
) -> None:
    """Sessions die every 0.3 s during a ~1.5 s run: each dead session costs one login."""
    expected = expected_tree(synth)
    synth.faults.configure("delay=0.08")  # file GETs only (the default paths)
    synth.faults.session_max_age = 0.3
    config = make_config(synth, tmp_path, "SYNTH", limits=replace(make_config(
        synth, tmp_path).limits, transfers=2), batch=None)  # fmt: skip
    summary, _ = await run_pull(config)  # a GET per file (no zips): a run long enough
    assert summary.ok, summary.failures
    records = list(synth.requests.records)
    logins = [i for i, r in enumerate(records) if r.method == "POST" and "JSESSION" in r.path]
    assert len(logins) >= 3  # the sessions really expired
    # Single flight: between two logins some request was rejected (why log in again) and
    # none of the logins was a duplicate for the same stale session.
    for a, b in itertools.pairwise(logins):
        between = records[a + 1 : b]
        assert any(r.status == 401 for r in between), "a login no request asked for"
    assert set(local_files(tmp_path)) == set(expected)
    assert_invariants(tmp_path, expected)


async def test_listing_5xx_is_retried(synth: Emulator, tmp_path: Path) -> None:
    expected = expected_tree(synth)
    synth.faults.script("GET", FILE_LISTING, ["500", "503"])
    synth.faults.script("GET", "*/projects/SYNTH/experiments", ["502"])
    summary, _ = await run_pull(make_config(synth, tmp_path, "SYNTH"))
    assert summary.ok
    assert synth.requests.count("GET", FILE_LISTING) == 3
    assert set(local_files(tmp_path)) == set(expected)
    assert_invariants(tmp_path, expected)


async def test_truncated_listing_is_retried_and_never_leads_to_deletes(
    synth: Emulator, tmp_path: Path
) -> None:
    config = make_config(synth, tmp_path, "SYNTH", delete=True, max_delete=1000)
    await run_pull(config)
    before = local_files(tmp_path)
    experiment = synth.store.experiments["XNAT_E00001"]
    gone = experiment.scans["2"].resources["DICOM"]
    synth.store.remove_files(gone, ["2-00001.dat"])
    # Cut short on every attempt: this owner's listing fails, and nothing is deleted.
    synth.faults.script("GET", FILE_LISTING, ["cut@0.6"] * FAST_RETRY.attempts)
    summary, events = await run_pull(config)
    assert events.of(FileDeleted) == []
    assert local_files(tmp_path) == before
    [failure] = events.of(ListingFailed)
    assert not summary.ok
    assert "SYNTH_S0001_MR1" in failure.what
    assert "JSON" in failure.reason
    # Cut short once: the JSON document is fetched again, and the delete happens.
    synth.faults.clear()
    synth.requests.clear()
    synth.faults.script("GET", FILE_LISTING, ["cut@0.6"])
    summary, events = await run_pull(config)
    assert summary.ok
    assert synth.requests.count("GET", FILE_LISTING) == 2  # the cut one, then a whole one
    assert [d.relpath for d in events.of(FileDeleted)] == [
        "SYNTH/SYNTH_S0001/SYNTH_S0001_MR1/scans/2-SERIES2/resources/DICOM/files/2-00001.dat"
    ]
    assert_invariants(tmp_path, expected_tree(synth))


# -- hostile names and local paths (§1.9 rows 18–21) --------------------------------------------

ESCAPE = f"escaped-{uuid.uuid4().hex}.txt"
HOSTILE_PATHS = [
    "../" * 14 + ESCAPE,
    f"/tmp/{ESCAPE}",
    f"sub/../../../../../../../../../../../../../{ESCAPE}",
    f"..\\..\\..\\{ESCAPE}",
    f"C:{ESCAPE}",
    f"a\0{ESCAPE}",
    f"bell\x07{ESCAPE}",
    "..",
    "",
]


class HostileLister(XnatClient):
    """The real client, plus listing rows a malicious or broken server could send."""

    def __init__(self, config: PullOptions, paths: list[str], labels: list[str]) -> None:
        super().__init__(
            config.url, config.credentials, limits=config.limits, timeouts=config.timeouts,
            retry=config.retry,
        )  # fmt: skip
        self.paths = paths
        self.labels = labels

    async def experiment_listing(self, project: str, experiment: Experiment) -> OwnerListing:
        listing = await super().experiment_listing(project, experiment)
        if experiment.label != "SYNTH_S0001_MR1":
            return listing
        files = listing.files()
        real = files[0]  # hostile rows point at a real file, so a fetch would succeed
        extra = [replace(real, path=p) for p in self.paths]
        extra += [
            replace(real, experiment=label, path=f"label{i}.dat")
            for i, label in enumerate(self.labels)
        ]
        return OwnerListing(listing.fingerprint, lambda: files + extra)


def tree_outside(root: Path, inside: Path) -> set[Path]:
    return {p for p in root.rglob("*") if inside not in p.parents and p != inside}


async def test_hostile_names_fail_alone_and_write_nothing_outside(
    synth: Emulator, tmp_path: Path
) -> None:
    dest = tmp_path / "mirror"
    expected = expected_tree(synth)
    config = make_config(synth, dest, "SYNTH")
    labels = ["..", "a/../../b", "c\\d"]
    around = tmp_path.parent
    before = tree_outside(around, dest)
    for _ in range(2):  # the verdict is stable
        summary, events = await run_pull(
            config, client=HostileLister(config, HOSTILE_PATHS, labels)
        )
        failed = events.of(FileFailed)
        assert len(failed) == len(HOSTILE_PATHS) + len(labels)
        assert all("unsafe" in f.reason for f in failed), [f.reason for f in failed]
        assert not summary.ok
        assert set(local_files(dest)) == set(expected)  # the rest of the pull completed
        assert_invariants(dest, expected)
    assert tree_outside(around, dest) == before
    assert not any((p / ESCAPE).exists() for p in dest.parents)
    assert not (Path("/tmp") / ESCAPE).exists()
    assert all(row[0] != "done" for rel, row in journal_rows(dest).items() if rel not in expected)


async def test_symlinked_session_folder_is_refused(synth: Emulator, tmp_path: Path) -> None:
    dest, outside = tmp_path / "mirror", tmp_path / "outside"
    outside.mkdir()
    session = dest / "SYNTH/SYNTH_S0001/SYNTH_S0001_MR1"
    session.parent.mkdir(parents=True)
    session.symlink_to(outside, target_is_directory=True)
    dangling = dest / "SYNTH/SYNTH_S0002/SYNTH_S0002_MR1/scans/1-SERIES1/resources/DICOM/files"
    dangling.mkdir(parents=True)
    (dangling / "1-00001.dat").symlink_to(outside / "planted.dat")
    expected = expected_tree(synth)
    config = make_config(synth, dest, "SYNTH")
    for _ in range(2):
        summary, events = await run_pull(config)
        failed = {f.relpath: f.reason for f in events.of(FileFailed)}
        refused = {p for p in expected if p.startswith("SYNTH/SYNTH_S0001/")}
        refused.add(str((dangling / "1-00001.dat").relative_to(dest)))
        assert set(failed) == refused
        assert all("symlink" in reason for reason in failed.values())
        assert list(outside.iterdir()) == []  # nothing written through either link
        assert not (outside / "planted.dat").exists()
        assert summary.files_failed == len(refused)
        assert part_files(tmp_path) == []
    rows = journal_rows(dest)
    assert all(rows[p][0] == "failed" for p in refused)


async def test_case_collision_is_a_stable_error(synth: Emulator, tmp_path: Path) -> None:
    resource = synth.store.experiments["XNAT_E00002"].scans["1"].resources["DICOM"]
    synth.store.add_file(resource, "Notes.TXT", b"upper\n")
    synth.store.add_file(resource, "notes.txt", b"lower\n")
    config = make_config(synth, tmp_path, "SYNTH")
    verdicts = []
    for _ in range(2):
        summary, events = await run_pull(config)
        verdicts.append(sorted((f.relpath, f.reason) for f in events.of(FileFailed)))
        assert not summary.ok
    assert verdicts[0] == verdicts[1]
    assert [Path(p).name for p, _ in verdicts[0]] == ["Notes.TXT", "notes.txt"]
    assert all("collides" in reason for _, reason in verdicts[0])
    assert not [p for p in local_files(tmp_path) if p.lower().endswith("notes.txt")]
    assert_invariants(tmp_path, expected_tree(synth))


async def test_nfd_name_is_fetched_once(synth: Emulator, tmp_path: Path) -> None:
    resource = synth.store.experiments["XNAT_E00002"].scans["1"].resources["DICOM"]
    nfd = unicodedata.normalize("NFD", "résumé.txt")
    synth.store.add_file(resource, nfd, b"accents\n")
    expected = expected_tree(synth)  # keys in NFC
    config = make_config(synth, tmp_path, "SYNTH")
    summary, _ = await run_pull(config)
    assert summary.ok, summary.failures
    names = [p for p in local_files(tmp_path) if "sum" in p]
    assert len(names) == 1  # one form only, never both
    assert_invariants(tmp_path, expected)
    synth.requests.clear()
    summary, _ = await run_pull(config)  # no re-download loop
    assert summary.ok
    assert summary.files_transferred == 0
    assert synth.requests.count("GET", FILE_GETS) == 0
    assert [p for p in local_files(tmp_path) if "sum" in p] == names


async def test_429s_lower_concurrency_and_every_file_still_lands(
    synth: Emulator, tmp_path: Path
) -> None:
    synth.faults.script("GET", "*/files/*.dat", ["429:0.05"] * 3)
    summary, events = await run_pull(make_config(synth, tmp_path, "SYNTH"))
    notices = [n.message for n in events.of(Notice)]
    assert [m.split("at most ")[1].split(" ")[0] for m in notices] == ["4", "2", "1"]
    assert summary.ok
    assert summary.retries == 3
    assert_invariants(tmp_path, expected_tree(synth))
