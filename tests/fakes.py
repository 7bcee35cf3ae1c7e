"""Small hand-written fakes shared by several test modules."""

from __future__ import annotations

import dataclasses
from typing import Any

import anyio.lowlevel

from xnatsync.events import Event
from xnatsync.model import Level, RemoteFile

_A_SCAN_FILE = RemoteFile(
    project="P",
    subject_id="S01",
    subject="sub",
    experiment_id="E01",
    experiment="sess",
    level=Level.SCAN,
    container="1",
    container_type="T1",
    resource="DICOM",
    path="1.dcm",
    uri="/data/x",
    size=10,
    digest=None,
)


def remote_file(**fields: Any) -> RemoteFile:
    """A listed file of scan 1 (T1, resource DICOM) of session E01 of project P: every field
    has a value; a test names only those it is about."""
    return dataclasses.replace(_A_SCAN_FILE, **fields)


class FakeTime:
    """A clock that only moves when the code under test sleeps; it records every sleep."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await anyio.lowlevel.checkpoint()


class Recorder:
    """Keeps every event, for assertions on what the engine reported."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]
