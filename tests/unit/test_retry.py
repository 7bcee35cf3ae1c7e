"""retry: the policy as arithmetic (property tests) and the loop with injected sleep and clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fakes import FakeTime
from xnatsync.errors import (
    AuthError,
    IntegrityError,
    NotFoundError,
    TransientRemoteError,
    TransportError,
    XnatSyncError,
)
from xnatsync.retry import RetryPolicy, backoff_cap, retry_delay
from xnatsync.retrying import retrying

policies = st.builds(
    RetryPolicy,
    attempts=st.integers(1, 20),
    backoff_base=st.floats(0.001, 10),
    backoff_max=st.floats(0.01, 120),
    retry_after_max=st.floats(0, 600),
    total_max=st.floats(0, 3600),
)
unit = st.floats(0, 1)
retry_afters = st.none() | st.floats(-10, 1e6, allow_nan=False)
retryable_errors = st.sampled_from(
    [TransportError("reset"), IntegrityError("md5"), TransientRemoteError("503", status=503)]
)


@given(policies, st.integers(1, 200), unit, st.floats(0, 4000), retry_afters)
def test_delay_is_bounded_and_never_negative(
    policy: RetryPolicy, attempt: int, rand: float, elapsed: float, retry_after: float | None
) -> None:
    error = TransientRemoteError("429", status=429, retry_after=retry_after)
    delay = retry_delay(policy, attempt, error, elapsed, rand)
    if delay is None:
        return
    assert delay >= 0
    assert delay <= max(policy.backoff_max, policy.retry_after_max)
    assert elapsed + delay <= policy.total_max
    if retry_after is not None:
        assert delay >= min(max(retry_after, 0), policy.retry_after_max)


@given(policies, st.integers(1, 200), unit, retryable_errors)
def test_without_retry_after_delay_is_jittered_backoff(
    policy: RetryPolicy, attempt: int, rand: float, error: XnatSyncError
) -> None:
    delay = retry_delay(policy, attempt, error, 0.0, rand)
    if delay is not None:
        assert delay == pytest.approx(rand * backoff_cap(policy, attempt))
        assert delay <= policy.backoff_max


@given(policies, st.integers(1, 500))
def test_backoff_cap_is_monotone_and_capped(policy: RetryPolicy, attempt: int) -> None:
    assert backoff_cap(policy, attempt) <= backoff_cap(policy, attempt + 1) <= policy.backoff_max


@given(policies, unit, retryable_errors)
def test_gives_up_after_attempts(policy: RetryPolicy, rand: float, error: XnatSyncError) -> None:
    assert retry_delay(policy, policy.attempts, error, 0.0, rand) is None
    assert retry_delay(policy, policy.attempts + 5, error, 0.0, rand) is None


@given(policies, st.integers(1, 50), unit)
def test_non_retryable_errors_give_up_at_once(policy: RetryPolicy, attempt: int, r: float) -> None:
    for error in (AuthError("401"), NotFoundError("404", status=404), XnatSyncError("x")):
        assert retry_delay(policy, attempt, error, 0.0, r) is None


def test_backoff_doubles_until_the_cap() -> None:
    policy = RetryPolicy(attempts=10, backoff_base=0.5, backoff_max=3.0)
    error = TransportError("reset")
    delays = [retry_delay(policy, a, error, 0.0, 1.0) for a in range(1, 10)]
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0]


def test_retry_after_is_a_floor_and_capped() -> None:
    policy = RetryPolicy(attempts=5, backoff_base=0.5, retry_after_max=120.0, total_max=1e6)
    assert retry_delay(policy, 1, TransientRemoteError("x", retry_after=2.0), 0, 0.0) == 2.0
    assert retry_delay(policy, 1, TransientRemoteError("x", retry_after=86400), 0, 0.0) == 120.0


def test_total_time_budget_ends_retries() -> None:
    policy = RetryPolicy(attempts=10, backoff_base=1.0, total_max=10.0)
    error = TransportError("reset")
    assert retry_delay(policy, 1, error, 8.5, 1.0) == 1.0
    assert retry_delay(policy, 1, error, 9.5, 1.0) is None


async def test_retrying_succeeds_after_transient_failures() -> None:
    fake = FakeTime(1000.0)
    outcomes: list[Exception | str] = [TransportError("reset"), TransientRemoteError("503"), "ok"]
    seen: list[tuple[int, str, float]] = []
    numbers: list[int] = []

    async def fn(number: int) -> str:
        numbers.append(number)
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    result = await retrying(
        RetryPolicy(attempts=5, backoff_base=0.5),
        fn,
        sleep=fake.sleep,
        rand=lambda: 1.0,
        clock=fake.clock,
        on_retry=lambda a, e, d: seen.append((a, type(e).__name__, d)),
    )
    assert result == "ok"
    assert numbers == [1, 2, 3]
    assert fake.sleeps == [0.5, 1.0]
    assert seen == [(1, "TransportError", 0.5), (2, "TransientRemoteError", 1.0)]


async def test_retrying_re_raises_the_last_error_after_attempts() -> None:
    fake = FakeTime(1000.0)
    tried: list[int] = []

    async def fn(number: int) -> None:
        tried.append(number)
        raise TransientRemoteError(f"503 #{len(tried)}", status=503)

    with pytest.raises(TransientRemoteError, match="503 #3"):
        await retrying(
            RetryPolicy(attempts=3), fn, sleep=fake.sleep, rand=lambda: 0.5, clock=fake.clock
        )
    assert tried == [1, 2, 3]
    assert len(fake.sleeps) == 2


async def test_retrying_respects_total_time() -> None:
    fake = FakeTime(1000.0)
    tried: list[int] = []

    async def fn(number: int) -> None:
        tried.append(number)
        fake.now += 4.0  # each attempt takes 4 s
        raise TransportError("stall")

    with pytest.raises(TransportError):
        await retrying(
            RetryPolicy(attempts=100, backoff_base=1.0, backoff_max=1.0, total_max=12.0),
            fn,
            sleep=fake.sleep,
            rand=lambda: 1.0,
            clock=fake.clock,
        )
    # t=4 (+1 sleep) → t=9 (+1) → t=14: the next pause would end past 12 s.
    assert len(tried) == 3
    assert fake.now - 1000.0 <= 12.0 + 4.0


async def test_permanent_and_foreign_errors_are_not_retried() -> None:
    fake = FakeTime(1000.0)

    async def not_found(number: int) -> None:
        raise NotFoundError("404", status=404)

    async def bug(number: int) -> None:
        raise KeyError("bug")

    with pytest.raises(NotFoundError):
        await retrying(
            RetryPolicy(), not_found, sleep=fake.sleep, rand=lambda: 0.5, clock=fake.clock
        )
    with pytest.raises(KeyError):
        await retrying(RetryPolicy(), bug, sleep=fake.sleep, rand=lambda: 0.5, clock=fake.clock)
    assert fake.sleeps == []
