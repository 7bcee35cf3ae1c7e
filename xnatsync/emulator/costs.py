"""What a loaded XNAT costs, as values the fault SPEC configures (pure: no I/O, no sleeping).

* `parse_rate("25MB/s")` — a bandwidth in bytes per second. Suffixes `K`, `M`, `G` are powers
  of 1024 (`KB`, `KiB`, `MB`, `MiB`, … all mean the same), an optional `B` and `/s` may follow;
  a bare number is bytes per second. Used by `stream=` (the per-connection cap, `pacing`).
* `parse_seconds` — a non-negative number of seconds (the `time:CLASS=` switch).
* `OutageSchedule` — outage windows on an injectable monotonic clock. Times in the SPEC
  (`outage=START+DURATION`) are seconds after the emulator started listening (`restart()`); a
  window is half open, [start, end). Modes: `refuse` (the listener is closed: connections are
  refused; open ones are dropped) and `503` (every request is answered 503).
* `busy_answer` — the transient refusals XNAT gives under load (xnat-api §12), with the texts of
  XNAT's `PrearcSessionArchiver`: on `/services/import` they come as 400 (as xnatctl saw from
  XNAT 1.9.2.1); on `/services/archive` with the archiver's own status (409 for "processing in
  progress", 423 Locked for "duplicate archive attempt"). A nonzero ARG overrides the status.
  `busy-processing` is the 1.9.2.1 wording, `busy-concurrent` the older one (it lacks the words
  "processing in progress"), so clients that match only one phrase are caught out.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

OUTAGE_MODES = ("refuse", "503")
_DISCOURAGED = "Concurrent modification is discouraged."
BUSY_MESSAGES = {
    "busy-processing": "Session processing in progress: {timestamp}.  " + _DISCOURAGED,
    "busy-concurrent": "Session processing may already be in progress: {timestamp}.  "
    + _DISCOURAGED,
    "busy-duplicate": "Duplicate archive attempt.  Prearchive session already archiving.",
    "busy-in-use": "Duplicate archive attempt.  Destination session in use.",
}
_ARCHIVER_STATUS = {
    "busy-processing": 409, "busy-concurrent": 409, "busy-duplicate": 423, "busy-in-use": 423
}  # fmt: skip
_RATE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:([kmg])(?:i?b)?|b)?\s*(?:/s)?\s*$", re.I)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3}


def parse_rate(text: str) -> float:
    """Bytes per second from `N`, `N/s`, `NB/s`, `NK`, `NKB/s`, `NMiB/s`, `NG` … (1024-based)."""
    match = _RATE.match(text)
    if match is None:
        raise ValueError(f"bad rate {text!r} (e.g. 25MB/s, 512K, 1000000)")
    rate = float(match.group(1)) * float(1024 ** _POWERS[(match.group(2) or "").lower()])
    if rate <= 0:
        raise ValueError(f"rate {text!r} must be positive")
    return rate


def parse_seconds(text: str) -> float:
    """A finite, non-negative number of seconds."""
    seconds = float(text)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{text!r} is not a number of seconds >= 0")
    return seconds


def busy_answer(kind: str, path: str, status: float, timestamp: str) -> tuple[int, str]:
    """(status, message) of a `busy-*` fault on `path`; `status` 0 means the default."""
    if status:
        code = int(status)
    else:
        code = _ARCHIVER_STATUS[kind] if path.endswith("/services/archive") else 400
    return code, BUSY_MESSAGES[kind].format(timestamp=timestamp)


@dataclass(frozen=True, slots=True)
class Outage:
    """One window, in seconds on the schedule's clock relative to its epoch."""

    start: float
    end: float
    mode: str


def parse_outage(name: str, value: str) -> Outage:
    """`outage[:MODE]=START+DURATION` → an `Outage` (START relative to the emulator's start)."""
    mode = name.partition(":")[2] or "refuse"
    if mode not in OUTAGE_MODES:
        raise ValueError(f"unknown outage mode {mode!r} (refuse or 503)")
    start_text, plus, duration_text = value.partition("+")
    if not plus:
        raise ValueError("an outage is START+DURATION (seconds)")
    start = parse_seconds(start_text)
    return Outage(start, start + parse_seconds(duration_text), mode)


@dataclass(slots=True)
class OutageSchedule:
    """Outage windows and the clock that says which one is on."""

    clock: Callable[[], float] = time.monotonic
    windows: list[Outage] = field(default_factory=list)
    epoch: float = 0.0
    listeners: list[Callable[[], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.epoch = self.clock()

    def restart(self) -> None:
        """Count SPEC times from now (the server calls this once it listens)."""
        self.epoch = self.clock()
        self._changed()

    def elapsed(self) -> float:
        """Seconds since the epoch."""
        return self.clock() - self.epoch

    def add(self, outage: Outage) -> None:
        """Schedule one more window."""
        self.windows.append(outage)
        self._changed()

    def begin(self, seconds: float | None = None, mode: str = "refuse") -> None:
        """An outage starting now, for `seconds` (None: until `end`)."""
        if mode not in OUTAGE_MODES:
            raise ValueError(f"unknown outage mode {mode!r} (refuse or 503)")
        now = self.elapsed()
        length = math.inf if seconds is None else parse_seconds(repr(float(seconds)))
        self.add(Outage(now, now + length, mode))

    def end(self) -> None:
        """End the outages under way now (later scheduled ones stay)."""
        now = self.elapsed()
        self.windows = [
            Outage(w.start, now, w.mode) if w.start <= now < w.end else w for w in self.windows
        ]
        self._changed()

    def clear(self) -> None:
        """Forget every window."""
        self.windows = []
        self._changed()

    def mode(self) -> str | None:
        """The mode of the outage under way (`refuse` wins over `503`), or None."""
        now = self.elapsed()
        modes = {w.mode for w in self.windows if w.start <= now < w.end}
        return "refuse" if "refuse" in modes else next(iter(modes), None)

    def next_change(self) -> float | None:
        """Seconds until the next window starts or ends, or None if nothing is ahead."""
        now = self.elapsed()
        ahead = [t for w in self.windows for t in (w.start, w.end) if now < t < math.inf]
        return min(ahead) - now if ahead else None

    def _changed(self) -> None:
        for listener in self.listeners:
            listener()
