"""``make bench``: xnatsync pull, push and import side by side with reference loops and peers.

Method (reference-performance §2.5): the emulator runs in its own process over plain HTTP,
serving synthetic files it just wrote (warm page cache); every candidate is a separate process
measured by wall time and its own peak RSS; candidates are interleaved (A B C D, then rotated)
for ``--pairs`` rounds; results are medians of per-round ratios, because absolute numbers on a
shared 2-core VM swing by ±30 %. Results go to ``benchmarks/results/latest.json`` and a
Markdown table on stdout (the README carries a copy).

Usage: ``python -m benchmarks.run [--pairs 3] [--only NAME] [--quick] [--no-peers]
[--against DIR] [--costs SPEC]``. ``--against`` adds an earlier xnatsync, checked out in DIR
(``git worktree add DIR REV``), as one more candidate, so a change is measured against what it
changed in the same rounds, not against last week's machine. ``--costs`` turns on the
emulator's server-cost switches (its ``--faults`` items, e.g. ``stream=25MB/s`` for a
per-connection bandwidth cap, or per-route server time) for every workload, so the same rows
can be measured against a server that behaves like a loaded production XNAT; off by default,
and the results say which switches were on. Workloads named "long network path" carry such
switches of their own (``LONG_PATH``); ``optional`` ones run only when ``--only`` names them.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import dataclasses
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp

from benchmarks import bench_nightly
from benchmarks.dicomsynth import SESSION_LABEL, SUBJECT_LABEL, write_studies
from benchmarks.measure import Measurement, measure
from benchmarks.reference import basic
from xnatsync.emulator.cli import spawn

PROJECT = "BENCH"
USER = PASSWORD = "admin"
CONCURRENCY = 8
LISTINGS = 4
PAIRS = 3  # interleaved rounds per workload unless the workload or --pairs says otherwise
RESULTS = Path(__file__).parent / "results"
DEST = "{dest}"  # replaced by each run's own destination folder
NO_ZIP = "xnatsync --no-zip"  # the same engine, one request per file (zips off)
MD5_TREE = "MD5 of the tree"
FORGET_JOURNAL = 'rm -f -- "$0"/.xnatsync/journal.db "$0"/.xnatsync/journal.db-wal '
FORGET_JOURNAL += '"$0"/.xnatsync/journal.db-shm && exec "$@"'
TARGET = "{target}"  # replaced by each push run's own empty project
PUT_LOOP = "PUT loop"
ZIP_POST = "zip POST"  # the import floor: one zipfile-built zip POSTed per study
IMPORTS = 2  # xnatsync import's default concurrency; every import candidate uses it
MATRIX = 448  # pixels a side of a synthetic instance (16-bit): ~392 KiB, an MR/CT slice
# A long network path to a loaded XNAT (the README says where the values come from): one
# transatlantic round trip (80 ms) per request, Linux's default TCP window over that RTT as
# the per-connection cap (3 MiB / 80 ms), and server time per request by route class
LONG_PATH = ("paths=*,methods=GET|HEAD|PUT|POST|DELETE,delay=0.08,stream=37MiB/s,"
             "time:listing=0.05,time:put=0.05,time:other=0.05,time:import=5")  # fmt: skip
BEFORE = "xnatsync before"  # --against DIR: the same command run by an earlier checkout
# the earlier checkout's CLI, found first on sys.path (before the editable install's finder)
RUN_FROM = "import sys; sys.path.insert(0, sys.argv.pop(1)); from xnatsync.cli import main; "
RUN_FROM += "sys.exit(main(sys.argv[1:]))"


@dataclass(frozen=True)
class Workload:
    name: str
    subjects: int
    scans: int
    files: int
    size: int
    noop: bool = False
    server_ms: int = 0  # time the emulator adds to every files request (a real server's cost)
    adopt: bool = False  # re-pull a complete mirror whose journal was deleted
    push: bool = False  # upload a pulled tree into an empty project
    peers: bool = True  # also time xnatpy and pyxnat (too slow on some workloads to repeat)
    # import DICOM into an empty project: `subjects` studies of `scans` series of `files`
    # instances (MATRIX x MATRIX), synthesised once per bench run
    imports: bool = False
    costs: str = ""  # the emulator's cost switches for this workload (before --costs)
    pairs: int = 0  # rounds for this workload unless --pairs is given (0: PAIRS)
    optional: bool = False  # run only when --only names it
    peer_target: float = 0.0  # the target: this many times the best peer's speed (0: R3t's)

    @property
    def count(self) -> int:
        return self.subjects * self.scans * self.files

    def scaled(self, factor: int) -> Workload:
        if self.imports:  # keep the studies and series, fewer instances each
            return dataclasses.replace(self, files=max(1, self.files // factor))
        if self.count == 1:
            return dataclasses.replace(self, subjects=1, scans=1, files=1, size=self.size // factor)
        return dataclasses.replace(self, subjects=max(1, self.subjects // factor))


# site to site: one TCP stream over a long network path is capped (Mathis et al.), and a loaded
# XNAT takes time per request; where the figures come from: README, "Benchmarks"
SITE_TO_SITE = "stream=2MB/s,time:listing=0.2,time:file=0.15,time:zip=0.25"

WORKLOADS = (
    Workload("2000 x 512 KiB", subjects=20, scans=10, files=10, size=512 * 1024),
    Workload("5000 x 16 KiB", subjects=50, scans=10, files=10, size=16 * 1024),
    Workload(
        "5000 x 16 KiB, 20 ms/request",
        subjects=50,
        scans=10,
        files=10,
        size=16 * 1024,
        server_ms=20,
    ),
    Workload("1 x 1 GiB", subjects=1, scans=1, files=1, size=1 << 30),
    Workload("no-op re-pull of 20000", subjects=100, scans=10, files=20, size=4096, noop=True),
    Workload(
        "2000 x 512 KiB mirror, journal deleted",
        subjects=20,
        scans=10,
        files=10,
        size=512 * 1024,
        adopt=True,
    ),
    Workload("push 2000 x 512 KiB", subjects=20, scans=10, files=10, size=512 * 1024, push=True),
    # xnatpy's and pyxnat's folder uploads take over ten minutes a run here (500 resources, a
    # tgz or a request per file each): timed on the 512 KiB push only
    Workload(
        "push 5000 x 16 KiB",
        subjects=50,
        scans=10,
        files=10,
        size=16 * 1024,
        push=True,
        peers=False,
    ),
    Workload(
        "import 2000 DICOM in 4 studies",
        subjects=4,
        scans=5,
        files=100,
        size=MATRIX * MATRIX * 2,
        imports=True,
    ),
    # The long path, two rounds each (default make bench stays under ~25 min on 2 cores).
    # xnatpy and pyxnat push a tgz or a request per file one after another, which would take
    # minutes a run: the push rows time xnatsync and the PUT loop only. xnatpy imports one
    # study after another: ~80 s a run (twice xnatsync's, once measured), left out likewise
    Workload(
        "push 2000 x 512 KiB, long network path",
        subjects=20,
        scans=10,
        files=10,
        size=512 * 1024,
        push=True,
        peers=False,
        costs=LONG_PATH,
        pairs=2,
    ),
    Workload(
        "import 2000 DICOM in 4 studies, long network path",
        subjects=4,
        scans=5,
        files=100,
        size=MATRIX * MATRIX * 2,
        imports=True,
        peers=False,
        costs=LONG_PATH,
        pairs=2,
    ),
    # 5000 requests at 130 ms each, 8 at a time: over a minute a run for each candidate
    Workload(
        "push 5000 x 16 KiB, long network path",
        subjects=50,
        scans=10,
        files=10,
        size=16 * 1024,
        push=True,
        peers=False,
        costs=LONG_PATH,
        pairs=2,
        optional=True,
    ),
    Workload(
        "site to site: 1000 x 64 KiB",
        subjects=10,
        scans=10,
        files=10,
        size=64 * 1024,
        costs=SITE_TO_SITE,
        peer_target=4.0,
    ),
)


@dataclass
class Result:
    workload: str
    files: int
    bytes: int
    runs: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    summary: dict[str, float] = field(default_factory=dict)


def fault_spec(w: Workload, costs: str) -> str:
    """The emulator's ``--faults`` for a workload: its own server time and cost switches, then
    ``--costs`` (a later item wins)."""
    own = f"paths=*/files|*/files/*,delay={w.server_ms / 1000}" if w.server_ms else ""
    return ",".join(part for part in (own, w.costs, costs) if part)


def start_emulator(root: Path, w: Workload, costs: str = "") -> tuple[subprocess.Popen[str], str]:
    spec = fault_spec(w, costs)
    # imports go into empty projects: their emulator gets a token seed
    seed = (1, 1, 1, 1024) if w.imports else (w.subjects, w.scans, w.files, w.size)
    return spawn(
        "--root", str(root), "--seed", "synthetic", "--project", PROJECT,
        "--subjects", str(seed[0]), "--sessions", "1", "--scans", str(seed[1]),
        "--files", str(seed[2]), "--file-size", str(seed[3]), *(["--faults", spec] if spec else []),
    )  # fmt: skip


async def file_uris(url: str) -> list[str]:
    """The listed file URIs of the project (setup for the reference loop; not timed)."""
    async with aiohttp.ClientSession(url, headers=basic(USER, PASSWORD)) as http:
        params = {"format": "json"}
        async with http.get(f"/data/projects/{PROJECT}/experiments", params=params) as r:
            experiments = (await r.json())["ResultSet"]["Result"]
        uris: list[str] = []
        for exp in experiments:
            path = f"/data/experiments/{exp['ID']}/files"
            async with http.get(path, params={"format": "json", "all": "true"}) as r:
                uris += [row["URI"] for row in (await r.json())["ResultSet"]["Result"]]
        return uris


async def new_project(url: str, project: str) -> None:
    """An empty project for one push run."""
    async with (
        aiohttp.ClientSession(url, headers=basic(USER, PASSWORD)) as http,
        http.put(f"/data/projects/{project}") as response,
    ):
        response.raise_for_status()


async def archived(url: str, project: str) -> tuple[int, int]:
    """(sessions, files) a project holds (a check after each import run; not timed)."""
    async with aiohttp.ClientSession(url, headers=basic(USER, PASSWORD)) as http:
        params = {"format": "json"}
        async with http.get(f"/data/projects/{project}/experiments", params=params) as r:
            experiments = (await r.json())["ResultSet"]["Result"]
        files = 0
        for exp in experiments:
            path = f"/data/experiments/{exp['ID']}/files"
            async with http.get(path, params={**params, "all": "true"}) as r:
                files += len((await r.json())["ResultSet"]["Result"])
        return len(experiments), files


def dicom_source(scratch: Path, w: Workload) -> Path:
    """The workload's studies, written on first use into the bench run's scratch folder (setup,
    not timed; the long-path row reuses the plain row's)."""
    source = scratch / f"dicom-{w.subjects}x{w.scans}x{w.files}"
    if not source.exists():
        started = time.perf_counter()
        write_studies(source.with_suffix(".part"), w.subjects, w.scans, w.files, MATRIX)
        source.with_suffix(".part").rename(source)
        print(f"  synthesised {w.count} instances in {time.perf_counter() - started:.1f} s")
    return source


def import_commands(url: str, source: Path, peers: bool) -> dict[str, list[str]]:
    """Each run imports the studies into its own empty project; xnatsync's journal goes in
    the run's own folder, so no run knows what an earlier one sent."""
    py = sys.executable
    labels = ["--subject-label", SUBJECT_LABEL, "--session-label", SESSION_LABEL]
    cmds = {
        "xnatsync": [str(Path(py).with_name("xnatsync")), "import", url, "--project", TARGET,
                     "--source", str(source), *labels, "--concurrency", str(IMPORTS),
                     "--state", DEST, "--no-progress", "--quiet"],
        ZIP_POST: [py, "-m", "benchmarks.reference", "importzip", url, USER, PASSWORD,
                   str(source), TARGET, str(IMPORTS)],
    }  # fmt: skip
    if peers:
        cmds["xnatpy"] = [py, "-m", "benchmarks.peers", "xnatpy-import", url, USER, PASSWORD,
                          TARGET, str(source)]  # fmt: skip
    return cmds


def commands(
    url: str, w: Workload, work: Path, peers: bool, against: Path | None = None
) -> dict[str, list[str]]:
    py = sys.executable
    if w.imports:
        return import_commands(url, dicom_source(work.parent.parent, w), peers)
    args = ["pull", url, "--project", PROJECT, "--dest", DEST, "--concurrency", str(CONCURRENCY)]
    args += ["--listings", str(LISTINGS), "--no-progress", "--quiet"]
    xnatsync = [str(Path(py).with_name("xnatsync")), *args]
    before = {BEFORE: [py, "-c", RUN_FROM, str(against), *args]} if against else {}
    if w.noop:
        listing = [py, "-m", "benchmarks.reference", "listing", url, USER, PASSWORD, PROJECT]
        return {"xnatsync": xnatsync, "listing only": [*listing, str(LISTINGS)], **before}
    if w.push:  # each run sends the pulled tree into its own empty project
        tree = str(work / "tree")
        push = ["push", url, "--project", TARGET, "--source", tree, "--concurrency",
                str(CONCURRENCY), "--no-progress", "--quiet"]  # fmt: skip
        ref = [py, "-m", "benchmarks.reference", "upload", url, USER, PASSWORD]
        cmds = {
            "xnatsync": [str(Path(py).with_name("xnatsync")), *push],
            PUT_LOOP: [*ref, tree, TARGET, str(CONCURRENCY)],
        }
        if peers:
            for tool in ("xnatpy", "pyxnat"):
                cmds[tool] = [py, "-m", "benchmarks.peers", f"{tool}-push", url, USER, PASSWORD,
                              TARGET, tree]  # fmt: skip
        return cmds
    if w.adopt:  # the journal goes before each run (not timed apart: rm costs milliseconds)
        report = ["--report", str(work / "adopt-report.json")]
        return {
            "xnatsync": ["sh", "-c", FORGET_JOURNAL, DEST, *xnatsync, *report],
            MD5_TREE: [py, "-m", "benchmarks.reference", "md5tree", DEST],
        }
    ref = [py, "-m", "benchmarks.reference", "download", url, USER, PASSWORD]
    cmds = {
        "xnatsync": xnatsync,
        "R3t": [*ref, str(work / "urls.txt"), DEST, str(CONCURRENCY)],
        NO_ZIP: [*xnatsync, "--no-zip"],
        **before,
    }
    if peers:
        for tool in ("xnatpy", "pyxnat"):
            cmds[tool] = [py, "-m", "benchmarks.peers", tool, url, USER, PASSWORD, PROJECT, DEST]
    return cmds


def run_workload(
    w: Workload,
    pairs: int | None,
    peers: bool,
    scratch: Path,
    against: Path | None = None,
    costs: str = "",
) -> Result:
    root, work = scratch / "emulator", scratch / "work"
    shutil.rmtree(scratch, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.perf_counter()
    emulator, url = start_emulator(root, w, costs)
    print(f"\n## {w.name}: seeded in {time.perf_counter() - started:.1f} s at {url}", flush=True)
    env = {**os.environ, "XNATSYNC_USER": USER, "XNATSYNC_PASSWORD": PASSWORD}
    result = Result(w.name, w.count, w.count * w.size)
    try:
        (work / "urls.txt").write_text("\n".join(asyncio.run(file_uris(url))))
        cmds = commands(url, w, work, peers and w.peers, against)
        if w.noop:  # every client re-pulls a mirror it made itself
            for name in (n for n in cmds if n in ("xnatsync", BEFORE)):
                first = measure([str(work / name) if a == DEST else a for a in cmds[name]], env)
                assert first.exit_code == 0, first.stderr_tail
        if w.push:  # the tree to send, pulled once
            pull = [str(Path(sys.executable).with_name("xnatsync")), "pull", url, "--project",
                    PROJECT, "--dest", str(work / "tree"), "--quiet", "--no-progress"]  # fmt: skip
            first = measure(pull, env)
            assert first.exit_code == 0, first.stderr_tail
        if w.adopt:  # the mirror to adopt, made once; every run reads the same tree
            first = measure([str(work / "xnatsync") if a == DEST else a for a in cmds["xnatsync"]],
                            env)  # fmt: skip
            assert first.exit_code == 0, first.stderr_tail
        names = list(cmds)
        for round_ in range(pairs or w.pairs or PAIRS):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for name in order:
                # a fresh folder per run, all deleted after the workload: deleting one between
                # runs leaves the filesystem busy (discard, writeback) during the next one
                dest = str(work / (name if w.noop else f"{name}-{round_}"))
                dest = str(work / "xnatsync") if w.adopt else dest
                target = f"T{round_}{names.index(name)}"
                if w.push or w.imports:
                    asyncio.run(new_project(url, target))  # setup, not timed
                args = [dest if a == DEST else target if a == TARGET else a for a in cmds[name]]
                m = measure(args, env)
                report(name, m)
                if w.imports and m.exit_code == 0:  # what each candidate left on the server
                    got = asyncio.run(archived(url, target))
                    assert got == (w.subjects, w.count), f"{name} archived {got}"
                if w.adopt and name == "xnatsync":
                    moved = json.loads((work / "adopt-report.json").read_text())
                    assert moved["bytes_transferred"] == 0, moved  # adopted, not fetched
                result.runs.setdefault(name, []).append(
                    {"seconds": m.seconds, "peak_rss_mib": m.peak_rss_mib, "exit": m.exit_code}
                )
    finally:
        emulator.send_signal(signal.SIGTERM)
        emulator.wait(timeout=30)
        shutil.rmtree(scratch, ignore_errors=True)
    result.summary = summarise(result, w)
    return result


def report(name: str, m: Measurement) -> None:
    line = f"  {name:<12} {m.seconds:8.2f} s  {m.peak_rss_mib:6.1f} MiB  exit {m.exit_code}"
    print(line, flush=True)
    if m.exit_code != 0:
        print("    " + m.stderr_tail.strip().replace("\n", "\n    "), flush=True)


def summarise(result: Result, w: Workload) -> dict[str, float]:
    ours = [r["seconds"] for r in result.runs["xnatsync"]]
    out: dict[str, float] = {
        "xnatsync_s": statistics.median(ours),
        "xnatsync_peak_mib": max(r["peak_rss_mib"] for r in result.runs["xnatsync"]),
        "xnatsync_failures": sum(1 for r in result.runs["xnatsync"] if r["exit"] != 0),
    }
    if not w.noop:
        out["xnatsync_mb_s"] = w.count * w.size / out["xnatsync_s"] / 1e6
    if w.peer_target:
        out["peer_target"] = w.peer_target
    for name, runs in result.runs.items():
        if name == "xnatsync":
            continue
        theirs = [r["seconds"] for r in runs]
        key = name.replace(" ", "_").replace("-", "")
        out[f"{key}_s"] = statistics.median(theirs)
        # per-round ratio of the baseline's time to ours: > 1 means xnatsync is faster
        out[f"ratio_vs_{key}"] = _ratio(theirs, ours)
        out[f"{key}_failures"] = sum(1 for r in runs if r["exit"] != 0)
    if NO_ZIP in result.runs:
        no_zip = result.runs[NO_ZIP]
        out["xnatsync_peak_mib"] = max(
            out["xnatsync_peak_mib"], *(r["peak_rss_mib"] for r in no_zip)
        )
        r3t = [r["seconds"] for r in result.runs["R3t"]]
        out["no_zip_ratio_vs_R3t"] = _ratio(r3t, [r["seconds"] for r in no_zip])
    return out


def _ratio(baseline: list[float], candidate: list[float]) -> float:
    """Median over rounds of baseline time / candidate time (> 1: the candidate is faster)."""
    return statistics.median(b / c for b, c in zip(baseline, candidate, strict=False))


def table(results: list[Result]) -> str:
    lines = [
        "| workload | xnatsync | baseline | xnatsync / baseline throughput | target"
        " | xnatsync --no-zip | xnatpy | pyxnat | peak RSS |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in results:
        s = r.summary
        if "ratio_vs_MD5_of_the_tree" in s:
            base = f"{s['MD5_of_the_tree_s']:.2f} s (MD5 of the tree)"
            times = 1 / s["ratio_vs_MD5_of_the_tree"]
            ratio = f"time = {times:.2f} x MD5"
            target = "<= 1.3 x MD5: " + ("met" if times <= 1.3 else "MISSED")
        elif "ratio_vs_zip_POST" in s:
            base = f"{s['zip_POST_s']:.2f} s (zip POST)"
            times = 1 / s["ratio_vs_zip_POST"]
            ratio = f"time = {times:.2f} x zip POST"
            target = "<= 1.2 x zip POST: " + ("met" if times <= 1.2 else "MISSED")
        elif "ratio_vs_PUT_loop" in s:
            base = f"{s['PUT_loop_s']:.2f} s (PUT loop)"
            ratio = f"{s['ratio_vs_PUT_loop']:.2f}"
            target = ">= 0.8: " + ("met" if s["ratio_vs_PUT_loop"] >= 0.8 else "MISSED")
        elif "ratio_vs_listing_only" in s:
            base = f"{s['listing_only_s']:.2f} s (listing only)"
            ratio = f"time = {1 / s['ratio_vs_listing_only']:.2f} x listing"
            target = "< 2 x listing: " + ("met" if 1 / s["ratio_vs_listing_only"] < 2 else "MISSED")
        else:
            base = f"{s['R3t_s']:.2f} s (R3t)"
            ratio = f"{s['ratio_vs_R3t']:.2f}"
            target = ">= 0.8: " + ("met" if s["ratio_vs_R3t"] >= 0.8 else "MISSED")
        if s.get("peer_target"):  # against the faster peer, per round
            ratios = [s[f"ratio_vs_{k}"] for k in ("xnatpy", "pyxnat") if f"ratio_vs_{k}" in s]
            verdict = "peers not run"
            if ratios:
                verdict = f"{min(ratios):.1f} x, " + (
                    "met" if min(ratios) >= s["peer_target"] else "MISSED"
                )
            target = f">= {s['peer_target']:g} x best peer: {verdict}"
        peers = [f"{s[k + '_s']:.2f} s ({s['ratio_vs_' + k]:.1f}x)" if k + "_s" in s else "-"
                 for k in ("xnatpy", "pyxnat")]  # fmt: skip
        mem = f"{s['xnatsync_peak_mib']:.0f} MiB"
        no_zip = "-"
        if "no_zip_ratio_vs_R3t" in s:
            no_zip = f"{s['xnatsync_nozip_s']:.2f} s ({s['no_zip_ratio_vs_R3t']:.2f} of R3t)"
        lines.append(
            f"| {r.workload} | {s['xnatsync_s']:.2f} s | {base} | {ratio} | {target} | "
            f"{no_zip} | {peers[0]} | {peers[1]} | {mem} |"
        )
    return "\n".join(lines)


def before_table(results: list[Result]) -> str:
    """This checkout against the ``--against`` one, same rounds: > 1 means now is faster."""
    lines = [
        "| workload | xnatsync now | xnatsync before | before / now time | peak RSS now / before |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        s = r.summary
        key = BEFORE.replace(" ", "_")
        rss = max(x["peak_rss_mib"] for x in r.runs[BEFORE])
        lines.append(
            f"| {r.workload} | {s['xnatsync_s']:.2f} s | {s[key + '_s']:.2f} s | "
            f"{s['ratio_vs_' + key]:.2f} | {s['xnatsync_peak_mib']:.0f} / {rss:.0f} MiB |"
        )
    return "\n".join(lines)


def compile_packages(*roots: Path) -> None:
    """Byte-compile the packages the candidates run from, as installing a wheel does (pip
    compiles every module). An editable checkout has no bytecode of its own, and where
    PYTHONDONTWRITEBYTECODE is set (these VMs set it) nothing is ever cached: every xnatsync
    process compiled its ~90 modules first, about 0.1 s a run that an installed xnatsync, and
    the peers installed from wheels, never pay. Python still checks each cached file against
    its source, so an edited module is never run stale."""
    for root in roots:
        compileall.compile_dir(root, quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pairs", type=int, help=f"interleaved rounds (default {PAIRS}; long-path rows 2)"
    )
    parser.add_argument(
        "--only", help="run only the workload of this name, or those whose name contains it"
    )
    parser.add_argument("--quick", action="store_true", help="1/10 of the data (smoke test)")
    parser.add_argument("--no-peers", action="store_true", help="skip xnatpy and pyxnat")
    parser.add_argument("--against", type=Path, help="also run the xnatsync checked out in DIR")
    parser.add_argument(
        "--costs", default="", metavar="SPEC",
        help="server-cost switches for the emulator of every workload (its --faults items)",
    )  # fmt: skip
    args = parser.parse_args()
    chosen = (  # a name given whole is that workload alone, else every name containing it
        [w for w in WORKLOADS if w.name == args.only]
        or [w for w in WORKLOADS if args.only in w.name]
        if args.only
        else [w for w in WORKLOADS if not w.optional]
    )
    if args.quick:
        chosen = [w.scaled(10) for w in chosen]
    scratch = Path(tempfile.mkdtemp(prefix="xnatsync-bench-", dir=os.environ.get("BENCH_DIR")))
    against = args.against.resolve() if args.against else None
    here = Path(__file__).resolve().parent.parent
    compile_packages(here / "xnatsync", here / "benchmarks",
                     *([against / "xnatsync"] if against else []))  # fmt: skip
    results = [
        run_workload(w, args.pairs, not args.no_peers, scratch / "w", against, args.costs)
        for w in chosen
    ]
    if not args.only or args.only in bench_nightly.NAME:  # its own emulator, in this process
        results.append(bench_nightly.run(args.pairs or PAIRS, args.quick, scratch / "nightly"))
    shutil.rmtree(scratch, ignore_errors=True)
    text = table(results)
    if args.costs:
        text = f"Emulator cost switches on: `{args.costs}`\n\n" + text
    if against is not None:
        text += "\n\n" + before_table(results)
    print("\n" + text)
    RESULTS.mkdir(exist_ok=True)
    full = not (args.quick or args.only or args.costs)
    name = "latest.json" if full else "quick.json"  # only full runs without costs are kept
    meta = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "pairs": args.pairs or PAIRS,
            "costs": args.costs}  # fmt: skip
    data = {"meta": meta, "results": [asdict(r) for r in results], "table": text}
    (RESULTS / name).write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
