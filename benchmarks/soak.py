"""``make soak``: the scanner gateway under a long, faulty afternoon, checked at the end.

20 studies x 200 instances arrive at seeded random times over about three and a half minutes:
half by DICOM C-STORE (a pynetdicom SCU) to ``xnatsync watch --listen``, half as files dropped
into its spool (written then renamed, some written slowly in place); a study comes series by
series with, half the time, a pause longer than the quiet period between two, so most studies
are sent in parts appended to one session (``soakload`` has the schedule). The emulator runs in its
own process with faults on the import service (5 % 5xx, 2 of the 5 after the import was
applied; 3 % connection resets after it was applied; 5 % XNAT's transient "busy" 400s) and its
port closed for 30 s in the middle (``outage=START+30``). The daemon runs as
``xnatsync watch --listen ...`` in its own process, and its RSS is read from /proc every second.

At the end, every one of these must hold, or the soak exits 1:

* the server lists exactly the 20 sessions expected (no second session for any study), each
  with its 200 instances by name;
* no import was refused as a duplicate (XNAT's 409 "Duplicate DICOM file uploaded"), and the
  daemon's "N new instances archived and checked" lines add up to 200 per study;
* the queue (``xnatsync status --journal STATE/journal.db``) shows 20 done and nothing pending,
  sending or failed; the spool holds no file (``--after-upload delete``), nothing quarantined;
* the daemon stopped on SIGTERM with exit 0;
* its RSS never grew more than ``--rss-growth`` MiB (64) over its value when arrivals began,
  nor more than 16 MiB during the second half of the run (a leak per instance would).

It lives in ``benchmarks/``, not ``tests/``: it takes minutes (``make test`` and CI must not
collect it), and like the benchmarks it measures (time, memory, requests) and prints a report
whose figures the README carries; it is linted and type-checked with the rest.

Usage: ``python -m benchmarks.soak [--seed 1] [--studies 20] [--instances 200] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from benchmarks.soakload import SERIES, Tally, drop_files, schedule, send_by_cstore
from benchmarks.soakload import write_sources as write_cstore_sources
from xnatsync.emulator.cli import BANNER
from xnatsync.xnat.auth import Credentials
from xnatsync.xnat.client import XnatClient

REPO = Path(__file__).parents[1]  # benchmarks/ is found from here, installed or not
PROJECT = "DEMO"
USER = PASSWORD = "admin"
QUIET = 5.0  # seconds without a new instance before a study is sent
OUTAGE_AT, OUTAGE = 100.0, 30.0  # seconds after the emulator started; how long
WINDOW = 220.0  # studies start within the first 60 % of this (arrivals last about as long)
FAULTS = ("seed={seed},methods=POST,paths=*/services/import,503=0.03,applied:502=0.02,"
          "reset=0.03,busy-processing=0.03,busy-in-use=0.02,outage={at:g}+{length:g}")  # fmt: skip
DRAIN = 420.0  # seconds the queue may take to drain after the last arrival
LATE_GROWTH = 16.0  # MiB the RSS may still grow in the second half of the run


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve-emulator"]:
        return asyncio.run(_serve_emulator(Path(argv[1]), argv[2:]))
    p = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    # the arrivals' and the faults' seed; with 7 every fault kind strikes in the first 40 imports
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--studies", type=int, default=20)
    p.add_argument("--instances", type=int, default=200, help="per study")
    p.add_argument("--window", type=float, default=WINDOW, help="arrival window, seconds")
    p.add_argument("--outage-at", type=float, default=OUTAGE_AT)
    p.add_argument("--outage", type=float, default=OUTAGE)
    p.add_argument("--rss-growth", type=float, default=64.0, help="MiB the RSS may grow")
    p.add_argument("--keep", type=Path, help="work here and keep it (default: a temp, removed)")
    args = p.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="xnatsync-soak-"))
    try:
        return Soak(args, work).run()
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


async def _serve_emulator(log: Path, argv: list[str]) -> int:
    """The emulator in this process until SIGTERM, then its request log as JSON lines."""
    from xnatsync.emulator.cli import add_arguments, config_from
    from xnatsync.emulator.server import run_emulator

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = config_from(parser.parse_args(argv))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with run_emulator(config) as emulator:
        print(f"{BANNER}{emulator.url}", flush=True)
        await stop.wait()
        with log.open("w") as out:
            for r in emulator.requests.records:
                out.write(json.dumps({"method": r.method, "path": r.path, "query": r.query,
                                      "status": r.status, "fault": r.fault}) + "\n")  # fmt: skip
    return 0


class RssSampler(threading.Thread):
    """The RSS of one process, from /proc, every second."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[float] = []  # MiB
        self.halt = threading.Event()

    def read(self) -> float | None:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def run(self) -> None:
        while not self.halt.is_set():
            rss = self.read()
            if rss is not None:
                self.samples.append(rss)
            self.halt.wait(1.0)


@dataclass
class Outcome:
    checks: list[tuple[bool, str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def check(self, ok: bool, text: str) -> None:
        self.checks.append((ok, text))


class Soak:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        self.spool, self.state = work / "spool", work / "state"
        self.plans = schedule(args.studies, args.instances, args.window, args.seed)
        self.faults = FAULTS.format(seed=args.seed, at=args.outage_at, length=args.outage)
        self.out = Outcome()

    def run(self) -> int:
        began = time.monotonic()
        write_cstore_sources(self.plans, self.work / "source")
        self.spool.mkdir()
        emulator, url = self._start_emulator()
        emulator_t0 = time.monotonic()
        daemon = self._start_daemon(url)
        sampler = RssSampler(daemon.pid)
        try:
            port = self._wait_listening(daemon)
            sampler.start()
            self._play(port)
            arrivals = time.monotonic() - self.start
            self._wait_drained(daemon)
            drained = time.monotonic() - self.start
            sampler.halt.set()
            archive = asyncio.run(self._archive(url))
            status = subprocess.run([sys.executable, "-m", "xnatsync", "status", "--journal",
                                     str(self.state / "journal.db")], capture_output=True,
                                    text=True, check=False).stdout  # fmt: skip
            daemon.send_signal(signal.SIGTERM)
            code = daemon.wait(60)
        finally:
            sampler.halt.set()
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
            emulator.send_signal(signal.SIGTERM)
            emulator.wait(60)
        offset = self.start - emulator_t0
        self._judge(archive, status, code, sampler.samples)
        self._report(began, arrivals, drained, offset, sampler.samples)
        return 0 if all(ok for ok, _ in self.out.checks) else 1

    # -- the processes ---------------------------------------------------------------------------

    def _start_emulator(self) -> tuple[subprocess.Popen[str], str]:
        cmd = [sys.executable, "-m", "benchmarks.soak", "serve-emulator",
               str(self.work / "requests.jsonl"), "--port", "0", "--seed", "demo",
               "--faults", self.faults]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True, cwd=REPO)  # fmt: skip
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith(BANNER):
            proc.kill()
            raise RuntimeError(f"the emulator did not start (it said {line!r})")
        return proc, line.removeprefix(BANNER)

    def _start_daemon(self, url: str) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("XNATSYNC_")}
        env.update(XNATSYNC_USER=USER, XNATSYNC_PASSWORD=PASSWORD)
        cmd = [sys.executable, "-m", "xnatsync", "watch", url, "--project", PROJECT,
               "--spool", str(self.spool), "--state", str(self.state),
               "--quiet-seconds", f"{QUIET:g}", "--settle-seconds", "2",
               "--after-upload", "delete", "--subject-label", "{PatientID}",
               "--session-label", "{PatientID}_{StudyDate}", "--log-json",
               "--listen", "127.0.0.1:0", "--ae-title", "XNATSYNC", "--allow-ae", "SOAKSCU",
               "--max-associations", "16"]  # fmt: skip
        with (self.work / "daemon.log").open("wb") as log:
            return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=log)  # fmt: skip

    def _daemon_log(self) -> list[dict[str, Any]]:
        text = (self.work / "daemon.log").read_text("utf-8", "replace")
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def _wait_listening(self, daemon: subprocess.Popen[bytes]) -> int:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for record in self._daemon_log():
                if record.get("event") == "Listening":
                    return int(record["port"])
            if daemon.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"the daemon did not listen: {(self.work / 'daemon.log').read_text()}")

    # -- arrivals --------------------------------------------------------------------------------

    def _play(self, port: int) -> None:
        self.start = time.monotonic()
        self.tallies: list[Tally] = []
        threads = []
        for plan in self.plans:
            tally = Tally()
            self.tallies.append(tally)
            if plan.by_cstore:
                argv: tuple[Any, ...] = (plan, self.work / "source", port, self.start, tally)
                target: Any = send_by_cstore
            else:
                argv, target = (plan, self.spool, self.start, tally, self.args.seed), drop_files
            threads.append(threading.Thread(target=_guarded, args=(target, argv, tally)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _queue(self, sql: str) -> list[tuple[Any, ...]]:
        try:
            with sqlite3.connect(f"file:{self.state / 'queue.db'}?mode=ro", uri=True) as db:
                return db.execute(sql).fetchall()
        except sqlite3.Error:
            return []

    def _wait_drained(self, daemon: subprocess.Popen[bytes]) -> None:
        """Until every study is done and no file waits, or the deadline (then the checks say
        what is left)."""
        deadline = time.monotonic() + DRAIN
        while time.monotonic() < deadline and daemon.poll() is None:
            studies = dict(self._queue("SELECT state, count(*) FROM studies GROUP BY state"))
            waiting = self._queue("SELECT count(*) FROM files WHERE state IN "
                                  "('unstable', 'stable', 'instance')")  # fmt: skip
            if studies == {"done": len(self.plans)} and waiting == [(0,)]:
                return
            time.sleep(1.0)

    async def _archive(self, url: str) -> dict[str, list[str]]:
        async with XnatClient(url, Credentials(USER, PASSWORD)) as client:
            out = {}
            for experiment in await client.list_experiments(PROJECT):
                if experiment.label.startswith("SOAK"):
                    files = await client.list_experiment_files(PROJECT, experiment)
                    out[experiment.label] = [f"{f.container}/{f.path}" for f in files]
            return out

    # -- the verdict -----------------------------------------------------------------------------

    def _judge(
        self, archive: dict[str, list[str]], status: str, code: int, rss: list[float]
    ) -> None:
        check, expected = self.out.check, {p.session: p for p in self.plans}
        check(set(archive) == set(expected),
              f"sessions on the server: {len(archive)} of {len(expected)} expected"
              + _extra(set(archive) - set(expected)))  # fmt: skip
        whole = [s for s, p in expected.items() if s in archive and
                 len(set(archive[s])) == len(archive[s]) == p.count and
                 {f.rsplit("/", 1)[0] for f in archive[s]} == {str(n) for n in
                                                               range(1, SERIES + 1)}]  # fmt: skip
        check(len(whole) == len(expected), f"sessions holding all their instances, once each: "
              f"{len(whole)} of {len(expected)}"
              + _extra(set(expected) - set(whole)))  # fmt: skip
        requests = [json.loads(line) for line in
                    (self.work / "requests.jsonl").read_text().splitlines()]  # fmt: skip
        imports = [r for r in requests if r["method"] == "POST" and
                   r["path"].endswith("/services/import")]  # fmt: skip
        struck = {_fault_name(r["fault"]) for r in imports if r["fault"] != "ok"}
        kinds = {_fault_name(k.split("=")[0]) for k in self.faults.split(",")[3:-1]}
        check(kinds <= struck, f"fault kinds that struck an import: {len(struck & kinds)} of "
              f"{len(kinds)}" + _extra(kinds - struck))  # fmt: skip
        duplicate = [r for r in imports if r["status"] == 409 and r["fault"] == "ok"]
        check(not duplicate, f"imports refused as duplicates: {len(duplicate)}")
        log = self._daemon_log()
        new = Counter[str]()
        for r in log:
            message = str(r.get("message", ""))
            if r.get("event") == "Notice" and " new instances archived and checked" in message:
                session = message.split(": ", 1)[0].rsplit("/", 1)[-1]
                new[session] += int(message.split(": ", 1)[1].split(" ", 1)[0])
        right = [s for s, p in expected.items() if new[s] == p.count]
        check(len(right) == len(expected), f"studies whose instances the daemon archived and "
              f"checked exactly once: {len(right)} of {len(expected)}")  # fmt: skip
        total = sum(p.count for p in self.plans)
        done = f"0 pending, 0 sending, {len(expected)} done, 0 failed"
        check(done in status, f"queue: {_line(status, 'studies:') or status.strip()[:200]}")
        left = [p for p in self.spool.rglob("*") if p.is_file() and
                ".xnatsync-receive" not in p.parts]  # fmt: skip
        quarantined = list((self.state / "quarantine").rglob("*"))
        check(not left and not quarantined, f"files left in the spool: {len(left)}, "
              f"quarantined: {len(quarantined)} (of {total})")  # fmt: skip
        check(code == 0, f"the daemon's exit on SIGTERM: {code}")
        errors = [e for t in self.tallies for e in t.errors]
        check(not errors, f"senders' errors: {len(errors)}" + _extra(set(errors)))
        start, peak = (rss[0], max(rss)) if rss else (0.0, 0.0)
        bound = self.args.rss_growth
        check(bool(rss) and peak - start <= bound,
              f"RSS grew {peak - start:.0f} MiB (bound {bound:g})")  # fmt: skip
        half = rss[len(rss) // 2 :] or [0.0]  # a leak per instance keeps growing: flat here
        check(max(half) - half[0] <= LATE_GROWTH, f"RSS grew {max(half) - half[0]:.0f} MiB in "
              f"the second half of the run (bound {LATE_GROWTH:g})")  # fmt: skip
        self.requests, self.imports, self.log = requests, imports, log

    def _report(
        self, began: float, arrivals: float, drained: float, offset: float, rss: list[float]
    ) -> None:
        a = self.args
        by_store = sum(p.count for p in self.plans if p.by_cstore)
        files = sum(p.count for p in self.plans if not p.by_cstore)
        bursts = sum(len(p.parts) for p in self.plans)
        tally = Tally()
        for t in self.tallies:
            tally.stored += t.stored
            tally.refused += t.refused
            tally.associations += t.associations
            tally.renamed += t.renamed
            tally.slow += t.slow
        faults = Counter(_fault_name(r["fault"]) for r in self.imports if r["fault"] != "ok")
        statuses = Counter(r["status"] for r in self.imports)
        sessions = Counter(parse_qs(r["query"]).get("dest", [""])[0].rsplit("/", 1)[-1]
                           for r in self.imports)  # fmt: skip
        requeued = sum(1 for r in self.log if r.get("event") == "Notice" and
                       ": not sent (" in str(r.get("message", "")))  # fmt: skip
        outage = (a.outage_at - offset, a.outage_at - offset + a.outage)
        print(
            f"soak: {a.studies} studies x {a.instances} instances, seed {a.seed}: {by_store} by "
            f"C-STORE ({tally.associations} associations, {tally.refused} stores refused and "
            f"sent again), {files} as files ({tally.renamed} renamed into place, {tally.slow} "
            f"written slowly); {bursts} bursts (a pause longer than the quiet period between two)"
        )
        print(
            f"  arrivals over {arrivals:.0f} s; the server's port closed {outage[0]:.0f}-"
            f"{outage[1]:.0f} s; faults on imports: {self.faults.split(',outage')[0]}"
        )
        print(
            f"  took {time.monotonic() - began:.0f} s in all; the queue drained "
            f"{drained - arrivals:.0f} s after the last arrival"
        )
        if rss:
            quarters = ", ".join(f"{rss[len(rss) * q // 4]:.0f}" for q in (1, 2, 3))
            print(f"  daemon RSS: start {rss[0]:.0f} MiB, peak {max(rss):.0f} MiB, end "
                  f"{rss[-1]:.0f} MiB (at 1/4, 1/2, 3/4 of the run: {quarters}; one sample a "
                  "second)")  # fmt: skip
        print(
            f"  requests: {len(self.requests)} answered; {len(self.imports)} import POSTs "
            f"({', '.join(f'{n} x {s}' for s, n in sorted(statuses.items()))}); imports per "
            f"study {min(sessions.values(), default=0)}-{max(sessions.values(), default=0)}"
        )
        print(
            f"  faults seen: {', '.join(f'{k} x {n}' for k, n in sorted(faults.items()))}; "
            f"studies put back to wait {requeued} times"
        )
        for ok, text in self.out.checks:
            print(f"  {'ok  ' if ok else 'FAIL'} {text}")
        print("soak: " + ("passed" if all(ok for ok, _ in self.out.checks) else "FAILED"))


def _guarded(target: Any, argv: tuple[Any, ...], tally: Tally) -> None:
    try:
        target(*argv)
    except Exception as exc:  # reported as a failed check, never lost in a thread
        tally.errors.append(f"{type(exc).__name__}: {exc}")


def _fault_name(said: str) -> str:
    """``error:503@0.5`` → ``503``, ``applied:502@0.5`` → ``applied:502``, ``reset:0@0.5`` →
    ``reset`` (the emulator's log writes a fault as KIND:ARG@AT)."""
    kind, _, arg = said.split("@", 1)[0].partition(":")
    if kind == "error":
        return arg
    return f"{kind}:{arg}" if kind == "applied" else kind


def _extra(items: set[str]) -> str:
    return f" ({', '.join(sorted(items)[:5])})" if items else ""


def _line(text: str, word: str) -> str:
    return next((line.strip() for line in text.splitlines() if word in line), "")


if __name__ == "__main__":
    sys.exit(main())
