"""The transfer throttle: multiplicative decrease on 429, additive increase on success."""

from __future__ import annotations

from xnatsync.scheduler import Throttle


async def test_each_429_halves_the_limit_down_to_one() -> None:
    throttle = Throttle(8)
    assert [throttle.throttled() for _ in range(5)] == [4, 2, 1, 1, 1]
    assert throttle.slots.total_tokens == 1


async def test_successes_win_the_limit_back_one_step_at_a_time() -> None:
    throttle = Throttle(8)
    throttle.throttled()  # 4
    limits = [throttle.succeeded() for _ in range(4 + 5 + 6 + 7 + 3)]
    # one more slot after as many successes as the current limit: 4 -> 5 -> 6 -> 7 -> 8, then stay
    assert limits[3] == 5
    assert limits[8] == 6
    assert limits[14] == 7
    assert limits[21] == 8
    assert limits[-1] == 8
    assert throttle.slots.total_tokens == 8


async def test_a_429_resets_the_count_towards_the_next_step() -> None:
    throttle = Throttle(8)
    throttle.throttled()
    for _ in range(3):
        throttle.succeeded()
    assert throttle.throttled() == 2
    assert [throttle.succeeded() for _ in range(2)] == [2, 3]
