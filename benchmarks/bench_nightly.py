"""The nightly row of ``make bench``: ``pull --changed-only`` of a 10,000-session project in
which 10 sessions changed, against listing just those 10 sessions plus the project listing.

Target (issue 11): requests and time at most 2 x those of the baseline. Requests are counted
in the emulator's own request log (the emulator runs in this process, on a thread of its own;
every client is a separate process, timed by wall clock as the other rows are). The baseline
(``python -m benchmarks.bench_nightly baseline …``) logs in, takes the project listing a mirror
of the project needs whatever changed (its experiments, its subjects, the project's own
files: what a pull lists at project level) and lists each changed session the
way a pull does (its resources and its files), at the same listing concurrency; it downloads
nothing. The nightly run also fetches what changed: each
changed session got a field edit (which moves its ``last_modified``) and one new file.

Setup, not timed: seeding (10,000 sessions of one 1 KiB file; about 8 s), dating the seeded
sessions and subjects over the past year (as an archive's are: the seed stamps them all with
the minute it ran, which would put every session in XNAT's ``recent=`` window) and the first,
full ``--changed-only`` pull that makes the mirror and records its dates. Each round then changes
10 other sessions and runs both candidates (order alternating); medians of per-round ratios.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import statistics
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from benchmarks.measure import measure
from benchmarks.reference import basic, login

if TYPE_CHECKING:
    from xnatsync.emulator.server import Emulator

PROJECT = "NIGHT"
SESSIONS = 10_000
CHANGED = 10
USER = PASSWORD = "admin"
LISTINGS = 4
NAME = f"nightly: {CHANGED} of {SESSIONS} sessions changed, --changed-only"
BASELINE = "listing only"  # the key run.table() reads as a listing baseline


@contextmanager
def emulator(sessions: int) -> Iterator[Emulator]:
    """An in-process emulator on its own thread and event loop, seeded with ``sessions``
    (imported here: the baseline's process must not pay for the server's imports)."""
    from xnatsync.emulator.server import run_emulator
    from xnatsync.emulator.settings import EmulatorConfig, SyntheticSpec

    ready = threading.Event()
    running: list[Emulator] = []
    stops: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
    spec = SyntheticSpec(PROJECT, subjects=sessions, sessions=1, scans=1, files=1, file_size=1024)

    async def serve() -> None:
        stop = asyncio.Event()
        async with run_emulator(EmulatorConfig(seed="synthetic", synthetic=spec)) as emu:
            running.append(emu)
            stops.append((asyncio.get_running_loop(), stop))
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    if not ready.wait(timeout=600):
        raise RuntimeError("the emulator did not start")
    try:
        yield running[0]
    finally:
        loop, stop = stops[0]
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)


def archived_over_a_year(emu: Emulator) -> None:
    """Give the seeded records the dates an archive filled over the past year would have
    (before any client has seen them; the emulator's thread is idle meanwhile)."""
    start = dt.datetime.now() - dt.timedelta(days=365)
    subjects, experiments = list(emu.store.subjects.values()), list(emu.store.experiments.values())
    step = dt.timedelta(days=364) / max(1, len(experiments))
    for n, (subject, experiment) in enumerate(zip(subjects, experiments, strict=False)):
        stamp = (start + n * step).strftime("%Y-%m-%d %H:%M:%S.%f").rstrip("0")
        stamp += "0" if stamp.endswith(".") else ""
        subject.insert_date = subject.last_modified = stamp
        experiment.insert_date = experiment.last_modified = stamp


def session_ids(emu: Emulator, first: int, count: int) -> list[str]:
    ids = sorted(e.id for e in emu.store.experiments.values() if e.project == PROJECT)
    return ids[first : first + count]


async def change(url: str, emu_ids: list[str], stamp: str) -> None:
    """What a day's curation does to a session: a field edited and a file added."""
    async with aiohttp.ClientSession(url, headers=basic(USER, PASSWORD)) as http:
        for eid in emu_ids:
            path = f"/data/experiments/{eid}"
            async with http.put(path, params={"note": stamp}) as response:
                response.raise_for_status()
            put = f"{path}/resources/NOTES/files/{stamp}.txt"
            async with http.put(put, params={"inbody": "true"}, data=stamp.encode()) as response:
                response.raise_for_status()


async def baseline(url: str, project: str, ids: list[str]) -> None:
    """Log in, take the project-level listings, list each of ``ids`` as a pull does."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(url, cookie_jar=jar) as http:
        await login(http, USER, PASSWORD)
        limit = asyncio.Semaphore(LISTINGS)

        async def get(path: str, **params: str) -> None:
            async with limit, http.get(path, params={"format": "json", **params}) as response:
                response.raise_for_status()
                await response.json(content_type=None)

        base = f"/data/projects/{project}"
        listings = [f"{base}/{what}" for what in ("experiments", "subjects", "files")]
        await asyncio.gather(*(get(p) for p in listings))
        paths = [f"/data/experiments/{e}/{what}" for e in ids for what in ("resources", "files")]
        await asyncio.gather(*(get(p, all="true") for p in paths))


def commands(url: str, dest: Path, ids: list[str]) -> dict[str, list[str]]:
    py = sys.executable
    pull = [str(Path(py).with_name("xnatsync")), "pull", url, "--project", PROJECT, "--dest",
            str(dest), "--changed-only", "--listings", str(LISTINGS), "--no-progress",
            "--quiet"]  # fmt: skip
    listing = [py, "-m", "benchmarks.bench_nightly", "baseline", url, PROJECT, *ids]
    return {"xnatsync": pull, BASELINE: listing}


def run(pairs: int, quick: bool, scratch: Path) -> Any:
    """One ``benchmarks.run.Result`` for the nightly row (imported late: run.py imports us)."""
    from benchmarks.run import Result

    sessions = SESSIONS // 10 if quick else SESSIONS
    name = NAME.replace(str(SESSIONS), str(sessions))
    env = {**os.environ, "XNATSYNC_USER": USER, "XNATSYNC_PASSWORD": PASSWORD}
    dest = scratch / "nightly-mirror"
    result = Result(name, sessions, sessions * 1024)
    requests: dict[str, list[int]] = {}
    with emulator(sessions) as emu:
        print(f"\n## {name}: seeded in {emu.seed_seconds:.1f} s at {emu.url}", flush=True)
        archived_over_a_year(emu)
        first = measure(commands(emu.url, dest, [])["xnatsync"], env)
        assert first.exit_code == 0, first.stderr_tail
        print(f"  first full pull {first.seconds:8.2f} s, {len(emu.requests.records)} requests")
        for round_ in range(pairs):
            ids = session_ids(emu, round_ * CHANGED, CHANGED)
            asyncio.run(change(emu.url, ids, f"night{round_}"))
            cmds = commands(emu.url, dest, ids)
            for who in list(cmds)[round_ % 2 :] + list(cmds)[: round_ % 2]:
                emu.requests.clear()
                m = measure(cmds[who], env)
                assert m.exit_code == 0, m.stderr_tail
                count = len(emu.requests.records)
                requests.setdefault(who, []).append(count)
                print(f"  {who:<12} {m.seconds:8.2f} s  {count:6d} requests", flush=True)
                result.runs.setdefault(who, []).append(
                    {"seconds": m.seconds, "peak_rss_mib": m.peak_rss_mib, "exit": m.exit_code,
                     "requests": count}
                )  # fmt: skip
    result.summary = summarise(result.runs, requests)
    return result


def summarise(
    runs: dict[str, list[dict[str, float]]], requests: dict[str, list[int]]
) -> dict[str, float]:
    ours = [r["seconds"] for r in runs["xnatsync"]]
    theirs = [r["seconds"] for r in runs[BASELINE]]
    key = BASELINE.replace(" ", "_")
    ratios = [t / o for t, o in zip(theirs, ours, strict=True)]
    return {
        "xnatsync_s": statistics.median(ours),
        "xnatsync_peak_mib": max(r["peak_rss_mib"] for r in runs["xnatsync"]),
        "xnatsync_failures": sum(1 for r in runs["xnatsync"] if r["exit"] != 0),
        f"{key}_s": statistics.median(theirs),
        f"ratio_vs_{key}": statistics.median(ratios),
        f"{key}_failures": 0,
        "xnatsync_requests": statistics.median(requests["xnatsync"]),
        f"{key}_requests": statistics.median(requests[BASELINE]),
        "requests_ratio": statistics.median(
            o / t for o, t in zip(requests["xnatsync"], requests[BASELINE], strict=True)
        ),
    }


if __name__ == "__main__":
    if sys.argv[1:2] != ["baseline"] or len(sys.argv) < 4:
        raise SystemExit("usage: python -m benchmarks.bench_nightly baseline URL PROJECT ID…")
    asyncio.run(baseline(sys.argv[2], sys.argv[3], sys.argv[4:]))
