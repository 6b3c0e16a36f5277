"""How late a timer's wake-ups run, so that the next can be armed that much early.

A task woken by a timer runs some time after the moment the timer was armed for: the
kernel's wake-up, a virtual CPU's exit from idle, trio's pass through its run loop. On
the lab VM that is 45 to 110 us at the median, and it is the same from one wake to the
next within a few tens of microseconds. A pinger's first request leaves as it is asked
for, with no timer, and every later one after a timer: without a correction the first
gap of a 1 ms run is 1.05 to 1.13 ms and the rest 1 ms (bench case e). Arming each
timer early by the typical lateness puts every request near its moment.
"""

from __future__ import annotations

from typing import Final

ADVANCE_CEILING_NS: Final = 200_000
"""The most a timer is armed early (and the most one wake counts as late): a wake held
up by something rarer (another process on the CPU, a paused VM) says nothing about the
next. (The sender then sends what falls due within its window, 0.5 ms, as before.)"""
_WEIGHT: Final = 8
"""Each wake moves the estimate an eighth of the way to its own lateness."""


class WakeLatency:
    """A running estimate of how late timer wake-ups come (sans-IO: the caller measures).

    The first wake sets it; each later one moves it by a fraction. So the caller can have
    an estimate before the wake that matters: a timer armed for a moment that is early
    enough (:attr:`measured` False) gets a short wake first, to measure.
    """

    def __init__(self) -> None:
        self._estimate_ns = 0
        self.measured = False
        """Whether any wake was seen: until then the advance is 0."""

    @property
    def advance_ns(self) -> int:
        """How much earlier than its moment to arm the next timer."""
        return self._estimate_ns

    def woke(self, lateness_ns: int) -> None:
        """A timer armed for a moment fired and its task ran ``lateness_ns`` after it
        (negative if early: it counts as on time)."""
        sample = min(max(lateness_ns, 0), ADVANCE_CEILING_NS)
        if self.measured:
            self._estimate_ns += (sample - self._estimate_ns) // _WEIGHT
        else:
            self._estimate_ns = sample
            self.measured = True
