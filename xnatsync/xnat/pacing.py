"""Rate limits for ``--tps-limit`` (requests per second) and ``--bwlimit`` (bytes per second).

``TokenBucket`` is pure arithmetic over an explicit ``now``: a reservation takes its tokens at
once, possibly into debt, and says how long the caller must wait for the bucket to pay it back.
Going into debt lets a request larger than the burst (a 256 KiB chunk against a small bucket)
through after the right pause instead of never; reservations are served in arrival order
because each one's wait accounts for all earlier ones.

``Pacer`` applies a bucket with an injected clock and sleep. A rate of None means unlimited; the
client then holds no pacer at all, so the unlimited path costs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst`` tokens; starts full, or empty
    (``full=False``) when the average over any stretch must stay at ``rate``."""

    def __init__(self, rate: float, burst: float, *, full: bool = True) -> None:
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be a positive number, got {rate!r}")
        if not (math.isfinite(burst) and burst > 0):
            raise ValueError(f"burst must be a positive number, got {burst!r}")
        self.rate = rate
        self.burst = burst
        self._tokens = burst if full else 0.0
        self._last: float | None = None

    def reserve(self, n: float, now: float) -> float:
        """Take ``n`` tokens at time ``now``; return the seconds to wait before using them."""
        if n < 0:
            raise ValueError(f"cannot reserve a negative amount: {n!r}")
        if self._last is not None and now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        # A clock that steps backwards is treated as standing still.
        self._last = now if self._last is None else max(self._last, now)
        self._tokens -= n
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class Pacer:
    """Wait as a ``TokenBucket`` says before each request or each chunk of bytes."""

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        full: bool = True,
    ) -> None:
        self._bucket = TokenBucket(rate, burst, full=full)
        self._clock = clock
        self._sleep = sleep

    async def acquire(self, n: float = 1.0) -> None:
        wait = self._bucket.reserve(n, self._clock())
        if wait > 0:
            await self._sleep(wait)


def requests_pacer(
    tps: float | None,
    *,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
) -> Pacer | None:
    """A pacer for requests per second (burst 1, like rclone's default), or None if unlimited."""
    if tps is None:
        return None
    return Pacer(tps, 1.0, clock=clock, sleep=sleep)


def bandwidth_pacer(
    bytes_per_second: float | None,
    *,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
) -> Pacer | None:
    """A pacer for bytes per second, or None if unlimited.

    It starts empty and holds a tenth of a second's worth at most: bytes are paced after they
    arrive, so a full first second (or idle gaps adding up) would let the average of a whole
    transfer run well over the limit (2 MiB free made a 2M limit average 2.33 MiB/s)."""
    if bytes_per_second is None:
        return None
    return Pacer(bytes_per_second, bytes_per_second / 10, clock=clock, sleep=sleep, full=False)
