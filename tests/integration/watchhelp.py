"""Running the watch daemon in the test's loop against the emulator, and reading what it did."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import anyio

from tests.fakes import Recorder
from tests.integration.conftest import wait_for
from tests.unit.dicom.dicomfiles import spec, write_instance
from xnatsync.dicom.labels import Naming, parse_template
from xnatsync.emulator.server import Emulator
from xnatsync.errors import JournalError
from xnatsync.limits import Timeouts
from xnatsync.retry import RetryPolicy
from xnatsync.watch.daemon import Control, watch
from xnatsync.watch.options import Reloadable, WatchOptions
from xnatsync.watch.queue import QUEUE, Queue
from xnatsync.xnat.auth import Credentials
from xnatsync.xnat.client import XnatClient

IMPORTS = "/data/services/import"
QUIET = 0.3
FAST = RetryPolicy(attempts=2, backoff_base=0.01, backoff_max=0.02)
REQUEUE = RetryPolicy(attempts=1_000_000, backoff_base=0.05, backoff_max=0.2)
NAMING = Naming(
    subject=parse_template("{PatientID}"), session=parse_template("{PatientID}_{StudyDate}")
)


def options(emu: Emulator, spool: Path, **changes: Any) -> WatchOptions:
    spool.mkdir(parents=True, exist_ok=True)
    base = WatchOptions(
        emu.url, "DEMO", spool, Credentials("admin", "admin"),
        live=Reloadable(quiet_seconds=QUIET, naming=NAMING),
        settle_seconds=0.05, poll_seconds=0.1, status_seconds=0.05, stop_grace=5.0,
        retry=FAST, requeue=REQUEUE, timeouts=Timeouts(connect=2, read_stall=5),
    )  # fmt: skip
    return replace(base, **changes)


@asynccontextmanager
async def running(
    opts: WatchOptions, state: Path, control: Control | None = None
) -> AsyncIterator[tuple[Control, Recorder]]:
    """The daemon runs while the block does; leaving it stops the daemon cleanly."""
    control = control or Control(opts.live)
    recorder = Recorder()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(lambda: watch(opts, state, recorder, control=control))
        try:
            yield control, recorder
        finally:
            control.stop()


def instance(spool: Path, study: str, series: int, number: int, name: str = "") -> Path:
    """Write one instance of ``study`` (patient P{study}) into the spool."""
    path = spool / study / f"s{series}" / (name or f"IM{number}.dcm")
    return write_instance(path, spec(study, series, number, patient_id=f"P{study}"))


def study_states(state: Path) -> dict[str, str]:
    """Session label (or study UID before it has one) → the study's state in the queue."""
    rows = queue_rows(state, "SELECT uid, session, state FROM studies")
    return {session or uid: st for uid, session, st in rows}


def queue_rows(state: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of the daemon's queue (none while it is not made yet)."""
    if not (state / QUEUE).exists():
        return []
    try:
        with Queue.open(state / QUEUE, readonly=True) as queue:
            return queue._read(sql)
    except JournalError:  # made, its tables not yet
        return []


def instances(state: Path) -> int:
    """Files the queue knows as instances (read), in any later state."""
    rows = queue_rows(state, "SELECT count(*) FROM files WHERE study_uid IS NOT NULL")
    return int(rows[0][0]) if rows else 0


def status_file(state: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((state / "status.json").read_text())
    except (OSError, ValueError):
        return {}
    return data


def sends_by_session(emu: Emulator) -> dict[str, int]:
    """Import requests per destination session (from the emulator's request log)."""
    out: dict[str, int] = {}
    for record in emu.requests.matching("POST", IMPORTS):
        dest = parse_qs(record.query).get("dest", [""])[0].rsplit("/", 1)[-1]
        out[dest] = out.get(dest, 0) + 1
    return out


async def archived(emu: Emulator, prefix: str = "P") -> dict[str, set[tuple[str, str]]]:
    """Session label → {(scan, file)} of DEMO's sessions starting with ``prefix``."""
    async with XnatClient(emu.url, Credentials("admin", "admin")) as client:
        out = {}
        for experiment in await client.list_experiments("DEMO"):
            if experiment.label.startswith(prefix):
                files = await client.list_experiment_files("DEMO", experiment)
                out[experiment.label] = {(f.container, f.path) for f in files}
        return out


async def until_done(state: Path, sessions: set[str], within: float = 20) -> None:
    await wait_for(
        lambda: all(study_states(state).get(s) == "done" for s in sessions),
        within=within, what=f"studies {sorted(sessions)} done",
    )  # fmt: skip
