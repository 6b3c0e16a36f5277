"""The wake-up lateness estimate that arms the sender's timer early."""

from __future__ import annotations

from trio_ping._proto.wake_latency import ADVANCE_CEILING_NS, WakeLatency


def test_no_advance_until_a_wake_was_measured() -> None:
    latency = WakeLatency()
    assert not latency.measured
    assert latency.advance_ns == 0


def test_the_first_wake_sets_the_estimate_and_later_ones_move_it_an_eighth() -> None:
    latency = WakeLatency()
    latency.woke(80_000)
    assert latency.measured
    assert latency.advance_ns == 80_000
    latency.woke(160_000)
    assert latency.advance_ns == 90_000
    for _ in range(100):
        latency.woke(40_000)
    assert 40_000 <= latency.advance_ns < 41_000


def test_a_wake_held_up_long_or_early_counts_at_the_bounds() -> None:
    # A stall of 5 ms says nothing about the next wake; an early one counts as on time.
    latency = WakeLatency()
    latency.woke(5_000_000)
    assert latency.advance_ns == ADVANCE_CEILING_NS
    latency = WakeLatency()
    latency.woke(-30_000)
    assert latency.advance_ns == 0
