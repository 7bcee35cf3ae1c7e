"""Reporters: the run summary (report JSON), tqdm progress bars, and JSON-lines events.

Each reporter only consumes ``xnatsync.events``; none of them is threaded through I/O code.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from xnatsync.events import (
    Event,
    ExperimentPlanned,
    Fanout,
    FileDeleted,
    FileDone,
    FileFailed,
    FileProgress,
    FileRetry,
    ListingFailed,
    ListingProgress,
    NotFound,
    Notice,
    PlanShown,
    Reporter,
)

MAX_LISTED_FAILURES = 1000


@dataclasses.dataclass
class Summary:
    """Counts of one run, kept from events; ``as_dict`` is the report JSON."""

    files_planned: int = 0
    bytes_planned: int = 0
    files_transferred: int = 0
    files_verified: int = 0
    files_moved: int = 0
    files_skipped: int = 0
    files_failed: int = 0
    files_deleted: int = 0
    bytes_transferred: int = 0
    retries: int = 0
    owners_listed: int = 0  # experiments, subjects and projects whose listing was planned
    failures: list[dict[str, str]] = dataclasses.field(default_factory=list)
    listing_failures: list[dict[str, str]] = dataclasses.field(default_factory=list)
    not_found: list[dict[str, str]] = dataclasses.field(default_factory=list)
    notices: list[str] = dataclasses.field(default_factory=list)
    started: float = dataclasses.field(default_factory=time.monotonic)
    seconds: float = 0.0

    def emit(self, event: Event) -> None:
        match event:
            case ExperimentPlanned():
                self.owners_listed += 1
                self.files_planned += (
                    event.downloads + event.skips + event.verifies + event.moves + event.errors
                )
                self.bytes_planned += event.download_bytes
                self.files_skipped += event.skips
            case FileDone(action="downloaded" | "uploaded"):
                self.files_transferred += 1
                self.bytes_transferred += event.size
            case FileDone(action="verified"):
                self.files_verified += 1
            case FileDone():
                self.files_moved += 1
            case FileRetry():
                self.retries += 1
            case FileFailed():
                self.files_failed += 1
                if len(self.failures) < MAX_LISTED_FAILURES:
                    self.failures.append(
                        {"path": event.relpath, "key": event.key, "reason": event.reason}
                    )
            case FileDeleted():
                self.files_deleted += 1
            case ListingFailed():
                self.listing_failures.append({"what": event.what, "reason": event.reason})
            case NotFound():
                self.not_found.append({"what": event.what, "name": event.name})
            case Notice():
                self.notices.append(event.message)
            case _:
                pass

    def close(self) -> None:
        self.seconds = time.monotonic() - self.started

    @property
    def ok(self) -> bool:
        return self.files_failed == 0 and not self.listing_failures and not self.not_found

    def counts(self) -> dict[str, int]:
        """The integer counters (what the journal's runs table keeps)."""
        return {k: v for k, v in self.as_dict().items() if isinstance(v, int)}

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        del data["started"]
        data["seconds"] = round(self.seconds, 3)
        return data

    def render(self, *, stopped: bool = False, upload: bool = False) -> str:
        """A few human lines for the end of a run (``upload``: a push's); ``stopped``: an error
        ended it. "0 failed" is said only of a run that ended well (beside an error it would
        mislead)."""
        failed = self.files_failed > 0 or (self.ok and not stopped)
        moved = f"{self.files_transferred} {'uploaded' if upload else 'downloaded'} "
        moved += f"({_human(self.bytes_transferred)}), "
        if upload:
            moved += f"{self.files_skipped} already there"
        else:
            moved += (
                f"{self.files_skipped} up to date, {self.files_verified} re-verified, "
                f"{self.files_moved} moved, {self.files_deleted} deleted"
            )
        lines = [
            moved
            + (f", {self.files_failed} failed" if failed else "")
            + f" in {self.seconds:.1f} s"
        ]
        lines += [f"  failed: {f['path']}: {f['reason']}" for f in self.failures[:20]]
        if self.files_failed > 20:
            lines.append(f"  … and {self.files_failed - 20} more (see the report)")
        lines += [f"  listing failed: {f['what']}: {f['reason']}" for f in self.listing_failures]
        lines += [f"  not found: {f['what']} {f['name']}" for f in self.not_found]
        lines += [f"  note: {n}" for n in self.notices]
        return "\n".join(lines)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class ProgressBars:
    """Two tqdm bars, files and bytes, whose totals grow as experiments are planned."""

    def __init__(self, stream: IO[str]) -> None:
        from tqdm import tqdm  # only a run that shows bars pays for importing it

        common: dict[str, Any] = {"file": stream, "mininterval": 0.2}
        if _width(stream):
            common["dynamic_ncols"] = True
        else:  # tqdm draws no bar at all where the terminal gives no width (0 or none)
            common["ncols"] = FALLBACK_COLUMNS
        self._files = tqdm(total=0, unit="file", desc="files", position=0, **common)
        self._bytes = tqdm(
            total=0,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc="bytes",
            position=1,
            **common,
        )

    def emit(self, event: Event) -> None:
        match event:
            case ListingProgress(complete=True):
                self._files.set_description_str("files", refresh=False)
                self._bytes.set_description_str("bytes", refresh=False)
                self._files.refresh()
                self._bytes.refresh()
            case ListingProgress():
                listing = f"listed {event.listed} of {event.found}"
                self._files.set_description_str(f"files ({listing}, totals so far)")
                self._bytes.set_description_str("bytes (so far)")
            case ExperimentPlanned():
                self._files.total += event.downloads + event.verifies + event.moves + event.skips
                self._files.total += event.errors
                self._bytes.total += event.download_bytes
                self._files.update(event.skips)
                self._files.refresh()
                self._bytes.refresh()
            case FileProgress(restart=True):
                self._bytes.update(-event.nbytes)
            case FileProgress():
                self._bytes.update(event.nbytes)
            case FileDone() | FileFailed():
                self._files.update(1)
            case _:
                pass

    def close(self) -> None:
        # a zip carries a little more than its files: a bar past its total loses its bar
        self._bytes.total = max(self._bytes.total, self._bytes.n)
        self._files.close()  # top bar first: closing keeps the bars in their order
        self._bytes.close()


FALLBACK_COLUMNS = 80


def _width(stream: IO[str]) -> int:
    """The terminal's width in columns, or 0 where it does not say (a file, a pipe, a pty
    whose size was never set)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, io.UnsupportedOperation):
        return 0


class JsonLines:
    """One JSON object per event (progress events left out), for logs and machines; ``record``
    writes any other named record (the run's summary, a log message) in the same shape."""

    def __init__(self, write: Callable[[str], object], clock: Callable[[], float] = time.time):
        self._write = write
        self._clock = clock

    def emit(self, event: Event) -> None:
        if isinstance(event, FileProgress | ListingProgress):
            return
        self.record(type(event).__name__, dataclasses.asdict(event))

    def record(self, name: str, fields: dict[str, Any]) -> None:
        self._write(json.dumps({"ts": round(self._clock(), 3), "event": name, **fields}) + "\n")

    def close(self) -> None:
        pass


class PlanPrinter:
    """Prints a dry run's plans as they are made (the only output of ``--dry-run``)."""

    def __init__(self, write: Callable[[str], object]) -> None:
        self._write = write

    def emit(self, event: Event) -> None:
        if isinstance(event, PlanShown):
            heading = "" if event.title == "plan" else f"# {event.title}\n"
            self._write(f"{heading}{event.text}\n")

    def close(self) -> None:
        pass


def reporters_for(
    summary: Summary,
    *,
    progress: bool,
    json_lines: JsonLines | None = None,
    dry_run: bool = False,
) -> Fanout:
    """The summary, plus progress bars on stderr, JSON lines, or a dry run's plans on stdout,
    when asked for."""
    chosen: list[Reporter] = [summary]
    if dry_run:
        chosen.append(PlanPrinter(sys.stdout.write))
    if progress:
        chosen.append(ProgressBars(sys.stderr))
    if json_lines is not None:
        chosen.append(json_lines)
    return Fanout(*chosen)
