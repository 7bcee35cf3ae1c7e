"""The one retry loop: apply ``retry.retry_delay`` to attempts of one call (never recursion).

Every retried thing goes through ``retrying``: a request of the XNAT client (a listing, a login)
and an attempt of the scheduler at one action (a file's download, a zip). Time, sleep and
randomness are parameters, so tests run it with a fake clock and no real waiting.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from xnatsync.errors import XnatSyncError
from xnatsync.retry import RetryPolicy, retry_delay

T = TypeVar("T")


async def retrying(
    policy: RetryPolicy,
    attempt: Callable[[int], Awaitable[T]],
    *,
    sleep: Callable[[float], Awaitable[None]],
    rand: Callable[[], float],
    clock: Callable[[], float],
    on_retry: Callable[[int, XnatSyncError, float], None] | None = None,
) -> T:
    """Await ``attempt(n)`` for n = 1, 2, … until it succeeds or the policy gives up; then
    re-raise the last error.

    ``on_retry(n, error, delay)`` runs before each pause (for events and logs). Errors that are
    not ``XnatSyncError`` propagate at once: they are bugs, not weather.
    """
    start = clock()
    number = 1
    while True:
        try:
            return await attempt(number)
        except XnatSyncError as exc:
            delay = retry_delay(policy, number, exc, clock() - start, rand())
            if delay is None:
                raise
            if on_retry is not None:
                on_retry(number, exc, delay)
        await sleep(delay)
        number += 1
