"""pacing: token-bucket arithmetic (pure) and the Pacer with an injected clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fakes import FakeTime
from xnatsync.xnat.pacing import Pacer, TokenBucket, bandwidth_pacer, requests_pacer


def test_burst_is_free_then_requests_are_spaced() -> None:
    bucket = TokenBucket(rate=2.0, burst=2.0)
    waits = [bucket.reserve(1, now=0.0) for _ in range(5)]
    assert waits == [0.0, 0.0, 0.5, 1.0, 1.5]


def test_refill_is_capped_at_burst() -> None:
    bucket = TokenBucket(rate=10.0, burst=5.0)
    assert bucket.reserve(5, now=0.0) == 0.0
    assert bucket.reserve(5, now=100.0) == 0.0  # 100 s of refill, but only 5 fit
    assert bucket.reserve(1, now=100.0) == pytest.approx(0.1)


def test_reservation_larger_than_burst_goes_into_debt() -> None:
    bucket = TokenBucket(rate=1000.0, burst=1000.0)
    assert bucket.reserve(4000, now=0.0) == pytest.approx(3.0)
    assert bucket.reserve(1000, now=3.0) == pytest.approx(1.0)


def test_backwards_clock_is_treated_as_standing_still() -> None:
    bucket = TokenBucket(rate=1.0, burst=1.0)
    assert bucket.reserve(1, now=10.0) == 0.0
    assert bucket.reserve(1, now=5.0) == pytest.approx(1.0)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0), (float("inf"), 1)])
def test_invalid_buckets(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match="must be a positive number"):
        TokenBucket(rate, burst)


def test_negative_reservation_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        TokenBucket(1, 1).reserve(-1, now=0)


@given(
    st.floats(0.1, 1e6),
    st.floats(0.1, 1e6),
    st.lists(st.floats(0, 1e4), min_size=1, max_size=30),
)
def test_simultaneous_reservations_wait_for_exactly_the_excess(
    rate: float, burst: float, sizes: list[float]
) -> None:
    bucket = TokenBucket(rate, burst)
    waits = [bucket.reserve(n, now=0.0) for n in sizes]
    assert waits == sorted(waits)  # first come, first served
    assert waits[-1] == pytest.approx(max(0.0, sum(sizes) - burst) / rate, rel=1e-6, abs=1e-9)


@given(st.floats(0.1, 100), st.lists(st.floats(0, 10), min_size=1, max_size=30))
def test_long_run_rate_never_exceeds_the_limit(rate: float, gaps: list[float]) -> None:
    """Requests issued whenever the bucket allows: n requests take ≥ (n - burst)/rate seconds."""
    bucket = TokenBucket(rate, burst=1.0)
    now = 0.0
    for gap in gaps:
        now += gap
        now += bucket.reserve(1, now)
    assert now >= (len(gaps) - 1) / rate - 1e-9


async def test_pacer_paces_requests_with_the_injected_clock() -> None:
    fake = FakeTime()
    pacer = requests_pacer(5.0, clock=fake.clock, sleep=fake.sleep)
    assert pacer is not None
    for _ in range(11):
        await pacer.acquire()
    assert fake.now == pytest.approx(2.0)  # burst 1, then one every 0.2 s


async def test_bandwidth_pacer_paces_bytes() -> None:
    fake = FakeTime()
    pacer = bandwidth_pacer(1000.0, clock=fake.clock, sleep=fake.sleep)
    assert pacer is not None
    for _ in range(5):
        await pacer.acquire(1000)
    assert fake.now == pytest.approx(5.0)  # no free first second: 5000 bytes take 5 s


@pytest.mark.parametrize("mib", [1, 6, 12, 60])
async def test_bwlimit_holds_the_average_within_5_percent(mib: int) -> None:
    """--bwlimit 2M over a whole transfer, short or long, in 256 KiB chunks (issue 7, item 8:
    a bucket that started full let 2 MiB through free, 2.33 MiB/s on average)."""
    fake = FakeTime()
    rate = 2 * 1024 * 1024
    pacer = bandwidth_pacer(rate, clock=fake.clock, sleep=fake.sleep)
    assert pacer is not None
    chunk = 256 * 1024
    for _ in range(mib * 1024 * 1024 // chunk):
        await pacer.acquire(chunk)
    assert mib * 1024 * 1024 / fake.now == pytest.approx(rate, rel=0.05)


async def test_bwlimit_idle_gaps_buy_at_most_a_short_burst() -> None:
    """Between files (a listing, a journal write) the bucket refills only a tenth of a second's
    worth, so gaps do not add up to bursts over the limit."""
    fake = FakeTime()
    rate = 1000.0
    pacer = bandwidth_pacer(rate, clock=fake.clock, sleep=fake.sleep)
    assert pacer is not None
    await pacer.acquire(500)  # the first bytes start the clock
    for _ in range(20):
        fake.now += 5.0  # a long pause, then a burst of 500 bytes
        before = fake.now
        await pacer.acquire(500)
        assert fake.now - before == pytest.approx((500 - rate / 10) / rate)


async def test_pacer_without_waiting_does_not_sleep() -> None:
    fake = FakeTime()
    pacer = Pacer(100.0, 100.0, clock=fake.clock, sleep=fake.sleep)
    await pacer.acquire(50)
    assert fake.sleeps == []


def test_unlimited_means_no_pacer() -> None:
    fake = FakeTime()
    assert requests_pacer(None, clock=fake.clock, sleep=fake.sleep) is None
    assert bandwidth_pacer(None, clock=fake.clock, sleep=fake.sleep) is None
