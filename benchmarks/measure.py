"""Run one command and measure it: wall time and the peak RSS of that process alone.

``os.wait4`` gives the resource usage of exactly the child we waited for, so the peak memory
of each run is its own (``RUSAGE_CHILDREN`` would report the maximum over all children).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Measurement:
    seconds: float
    peak_rss_mib: float
    exit_code: int
    stderr_tail: str


def measure(
    cmd: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 900.0
) -> Measurement:
    """Run ``cmd`` to completion; kill it after ``timeout`` seconds. Untimed first: ``sync``,
    so that the writeback of earlier runs' files (and the discards of deleted trees) is done
    before this run starts instead of landing on whichever run comes next."""
    os.sync()
    started = time.perf_counter()
    proc = subprocess.Popen(
        list(cmd),
        env=dict(env) if env is not None else None,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = started + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.005)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.stderr is not None
    tail = proc.stderr.read().decode("utf-8", "replace")[-2000:]
    proc.stderr.close()
    return Measurement(seconds, usage.ru_maxrss / 1024, proc.returncode, tail)
