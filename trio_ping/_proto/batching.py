"""When a task that just woke should rest: the one rule the receiver and writer share.

A pass through trio's run loop costs CPU: 5.5 us for a task that yields and runs again at
once, several times that for a wake through a timed wait (benchmarks/micro.py:
run_loop_pass, Python 3.11.7, trio 0.35). So at 20,000 packets a second a task must not
wake once per packet: after a wake that found several items, it rests a
little, so the next wake finds a batch. But when traffic is light (one reply a
millisecond, say) resting does harm: trio's sleeps end on whole milliseconds, so the
rest timer can end right beside the sender's timerfd, and trio, running a batch of
tasks in random order, may then make the send wait behind it.
"""

from __future__ import annotations

from typing import Final

BUSY_WAKE_GAP: Final = 0.0005
"""Wakes closer together than this mean traffic is heavy enough to batch."""


def busy(items: int, since_last_wake: float) -> bool:
    """Whether a task woken for ``items`` (``since_last_wake`` s after its last wake) should
    rest before it looks again."""
    return items > 1 or since_last_wake < BUSY_WAKE_GAP
