"""The retry policy as arithmetic, plus one small loop that applies it (never recursion).

``retry_delay`` decides, from values only, whether and how long to wait before the next attempt:

* only errors whose disposition is *retryable* are retried (transport failures, 408/429/5xx,
  integrity mismatches); permanent and fatal errors give up at once;
* at most ``policy.attempts`` attempts in all (the first one included);
* **full jitter** (AWS architecture blog, "Exponential Backoff and Jitter"): the delay is
  ``rand × min(backoff_max, backoff_base × 2**(attempt-1))``, so concurrent clients that failed
  together spread out instead of retrying in lock-step;
* a server's ``Retry-After`` is a floor: the delay is at least ``min(retry_after,
  retry_after_max)`` — an absurd ``Retry-After: 86400`` is capped, never obeyed blindly;
* the whole sequence stays within ``policy.total_max`` seconds: a delay that would end past it
  means give up now rather than sleep and fail anyway.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from xnatsync.config import RetryPolicy
from xnatsync.errors import TransientRemoteError, XnatSyncError

T = TypeVar("T")

# 2**64 × any sane base is already far beyond backoff_max; capping the exponent avoids overflow.
_MAX_EXPONENT = 64


def backoff_cap(policy: RetryPolicy, attempt: int) -> float:
    """The un-jittered ceiling of the delay after failed attempt number ``attempt`` (1-based)."""
    exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
    return min(policy.backoff_max, policy.backoff_base * 2.0**exponent)


def retry_delay(
    policy: RetryPolicy, attempt: int, error: XnatSyncError, elapsed: float, rand: float
) -> float | None:
    """Seconds to wait before attempt ``attempt + 1``, or None to give up.

    ``attempt`` is the 1-based number of the attempt that just failed with ``error``;
    ``elapsed`` is the time since the first attempt started; ``rand`` is uniform in [0, 1].
    """
    if not error.retryable or attempt >= policy.attempts:
        return None
    jitter = min(max(rand, 0.0), 1.0)
    delay = jitter * backoff_cap(policy, attempt)
    if isinstance(error, TransientRemoteError) and error.retry_after is not None:
        delay = max(delay, min(max(error.retry_after, 0.0), policy.retry_after_max))
    if max(elapsed, 0.0) + delay > policy.total_max:
        return None
    return delay


async def call_with_retry(
    policy: RetryPolicy,
    fn: Callable[[], Awaitable[T]],
    *,
    sleep: Callable[[float], Awaitable[None]],
    rand: Callable[[], float],
    clock: Callable[[], float],
    on_retry: Callable[[int, XnatSyncError, float], None] | None = None,
) -> T:
    """Await ``fn()`` until it succeeds or ``retry_delay`` gives up; re-raise the last error.

    ``on_retry(attempt, error, delay)`` is called before each pause (for logging and stats).
    Errors that are not ``XnatSyncError`` propagate at once: they are bugs, not weather.
    """
    start = clock()
    attempt = 1
    while True:
        try:
            return await fn()
        except XnatSyncError as exc:
            delay = retry_delay(policy, attempt, exc, clock() - start, rand())
            if delay is None:
                raise
            if on_retry is not None:
                on_retry(attempt, exc, delay)
        await sleep(delay)
        attempt += 1
