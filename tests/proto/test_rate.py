"""The token bucket behind --rate: how many takes it allows, and when."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_ping._proto.rate import TokenBucket, default_burst


def test_a_full_bucket_allows_its_burst_then_one_per_interval() -> None:
    bucket = TokenBucket(100.0, 3.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.next_token(0.0) == pytest.approx(0.01)
    assert not bucket.take(0.009)
    assert bucket.take(0.010)
    assert bucket.next_token(0.010) == pytest.approx(0.020)


def test_tokens_stop_at_the_burst_however_long_it_waits() -> None:
    bucket = TokenBucket(1000.0, 5.0)
    assert bucket.take(0.0)
    takes = [bucket.take(100.0) for _ in range(7)]
    assert takes == [True] * 5 + [False] * 2


def test_time_going_backwards_adds_nothing() -> None:
    bucket = TokenBucket(10.0, 1.0)
    assert bucket.take(5.0)
    assert not bucket.take(4.0)
    assert bucket.next_token(4.0) == pytest.approx(4.1)  # no credit for the step back


@given(
    rate=st.floats(1, 100_000),
    gaps=st.lists(st.floats(0, 0.01), min_size=1, max_size=400),
)
def test_takes_never_exceed_burst_plus_rate_times_elapsed(rate: float, gaps: list[float]) -> None:
    bucket = TokenBucket.per_second(rate)
    now, taken = 0.0, 0
    for gap in gaps:
        now += gap
        while bucket.take(now):
            taken += 1
        # Whenever it refuses, it names a later moment when it will not.
        assert bucket.next_token(now) > now
    assert taken <= bucket.burst + rate * now + 1e-6


@given(rate=st.floats(1, 100_000))
def test_a_caller_that_waits_for_each_token_gets_the_rate(rate: float) -> None:
    bucket = TokenBucket.per_second(rate)
    now = 0.0
    for _ in range(int(bucket.burst) + 200):
        now = bucket.next_token(now)
        assert bucket.take(now)
    expected = (200 + int(bucket.burst) - bucket.burst) / rate
    assert now == pytest.approx(expected, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("rate", [0.0, -1.0, float("inf"), float("nan")])
def test_a_rate_that_is_not_positive_and_finite_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="rate must be a positive number"):
        TokenBucket.per_second(rate)


def test_the_default_burst_is_a_hundredth_of_a_second() -> None:
    assert default_burst(800) == 8
    assert default_burst(50) == 1
