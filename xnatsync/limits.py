"""Frozen bounds of a run: how much at once (``Limits``) and how long to wait (``Timeouts``).

Values only. Where they come from (command line, config file) is the CLI's business; everything
below it receives these.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Every bound has a name. Transfers and listings are limited separately (rclone's checkers)."""

    transfers: int = 8
    listings: int = 4
    connections: int = 24
    tps: float | None = None
    bandwidth: float | None = None  # bytes per second, None = unlimited


@dataclass(frozen=True, slots=True)
class Timeouts:
    """No total timeout: a multi-GB download may take as long as it keeps making progress."""

    connect: float = 30.0
    read_stall: float = 60.0
    pool: float = 300.0
