"""Typed events the engine emits, and the Reporter protocol that receives them.

The engine never prints: progress bars, JSON lines and the final report are reporters
(``xnatsync.report``). Events are small frozen values; ``emit`` must be cheap and must not block,
because it is called on the event loop for every chunk of every file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ExperimentPlanned:
    """One owner (experiment, subject or project) was listed, diffed and planned.

    Up-to-date files are only counted here (``skips``): a no-op run of a large mirror emits
    one event per owner, not one per file."""

    project: str
    experiment: str
    downloads: int
    download_bytes: int
    skips: int
    verifies: int
    moves: int
    errors: int


@dataclass(frozen=True, slots=True)
class FileStarted:
    key: str
    relpath: str
    size: int | None
    attempt: int


@dataclass(frozen=True, slots=True)
class FileProgress:
    """``nbytes`` more bytes of ``key`` arrived. A retry restarts from zero: ``restart`` is set."""

    key: str
    nbytes: int
    restart: bool = False


@dataclass(frozen=True, slots=True)
class FileDone:
    """A file is verified at its final name. ``action`` is downloaded, verified or moved."""

    key: str
    relpath: str
    size: int
    md5: str
    action: str


@dataclass(frozen=True, slots=True)
class FileRetry:
    key: str
    relpath: str
    attempt: int
    delay: float
    reason: str


@dataclass(frozen=True, slots=True)
class FileFailed:
    key: str
    relpath: str
    reason: str


@dataclass(frozen=True, slots=True)
class FileDeleted:
    key: str
    relpath: str
    trashed_to: str | None


@dataclass(frozen=True, slots=True)
class ListingFailed:
    """A listing could not be read; nothing below it was planned, and no deletes happen."""

    what: str
    reason: str


@dataclass(frozen=True, slots=True)
class PlanShown:
    """A dry run's plan for one owner (``title``), or its totals (``title`` "plan")."""

    title: str
    text: str


@dataclass(frozen=True, slots=True)
class ListingProgress:
    """How far the listing stage is: ``listed`` of the ``found`` owners (sessions, subjects,
    projects) so far; until ``complete``, more may be found and every total is provisional."""

    found: int
    listed: int
    complete: bool


@dataclass(frozen=True, slots=True)
class NotFound:
    """A subject or experiment named in the selection that no requested project has."""

    what: str  # "subject" or "experiment"
    name: str


@dataclass(frozen=True, slots=True)
class Notice:
    """A message for the user that is not about one file (refused deletes, a warning)."""

    message: str


Event = (
    ExperimentPlanned
    | FileStarted
    | FileProgress
    | FileDone
    | FileRetry
    | FileFailed
    | FileDeleted
    | ListingFailed
    | ListingProgress
    | NotFound
    | Notice
    | PlanShown
)


class Reporter(Protocol):
    """Receives every event. Implementations must not block the loop."""

    def emit(self, event: Event) -> None: ...

    def close(self) -> None: ...


class Fanout:
    """Send every event to several reporters."""

    def __init__(self, *reporters: Reporter) -> None:
        self._reporters = reporters

    def emit(self, event: Event) -> None:
        for reporter in self._reporters:
            reporter.emit(event)

    def close(self) -> None:
        for reporter in self._reporters:
            reporter.close()
