"""The retry policy as values and arithmetic (pure); ``retrying`` holds the loop that applies it.

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

from dataclasses import dataclass

from xnatsync.errors import TransientRemoteError, XnatSyncError

# 2**64 × any sane base is already far beyond backoff_max; capping the exponent avoids overflow.
_MAX_EXPONENT = 64


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Which attempts are allowed and how long to wait between them (jittered exponential)."""

    attempts: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 120.0
    total_max: float = 900.0


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
