"""The sender's timerfd sleeper: it never returns before a moment nearer than its advance
(real time, lower bounds only: a sleep can only be late, never early, by the kernel's)."""

from __future__ import annotations

import time

import trio

from trio_ping._io.pacing import TimerfdSleeper
from trio_ping._proto.wake_latency import WakeLatency


async def test_a_moment_nearer_than_the_advance_is_slept_to_not_skipped() -> None:
    # With wakes measured 150 us late, a moment 100 us away must still be waited for:
    # armed early by the advance it would be in the past, and a caller waiting for a rate
    # cap's token would ask again and again.
    sleeper = TimerfdSleeper()
    try:
        for _ in range(20):
            sleeper._latency = WakeLatency()
            sleeper._latency.woke(150_000)  # each time: the estimate moves with each wake
            began = time.monotonic_ns()
            await sleeper.sleep_until(trio.current_time() + 100e-6)
            assert time.monotonic_ns() - began >= 100_000
    finally:
        sleeper.close()


async def test_a_moment_further_off_is_slept_to_within_the_advance() -> None:
    # 5 ms away with a 150 us advance: the wake comes no earlier than 4.85 ms.
    sleeper = TimerfdSleeper()
    sleeper._latency.woke(150_000)
    try:
        began = time.monotonic_ns()
        await sleeper.sleep_until(trio.current_time() + 0.005)
        assert time.monotonic_ns() - began >= 5_000_000 - 150_000
    finally:
        sleeper.close()
