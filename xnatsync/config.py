"""Frozen settings: limits, timeouts, retry policy; loading them from TOML.

Only the CLI reads files and the environment; everything below it receives these values.
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


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Which attempts are allowed and how long to wait between them (jittered exponential)."""

    attempts: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 120.0
    total_max: float = 900.0
