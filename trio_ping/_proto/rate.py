"""A cap on requests per second across every target: a token bucket, sans I/O.

Routers police ICMP, commonly near 1,000 packets a second, and drop what comes faster:
a burst of requests then looks like loss. fping paces every packet (``-i``); here the
sender asks this bucket before each send. Tokens accrue at ``rate`` a second up to
``burst``; a send takes one. A request the bucket holds back is sent late, never dropped.

No clock: callers pass the time in (trio's clock in the engine).
"""

from __future__ import annotations

import math

import attrs

_ROUNDING = 1e-9
"""Tokens short of one that still count as one: at the moment :meth:`TokenBucket.next_token`
names, float rounding can leave 0.999999999."""


def default_burst(rate: float) -> float:
    """A small burst: a hundredth of a second's worth, at least one request.

    Small, because the point is to stay under a policer whose own burst is small (Linux
    allows 50 ICMP messages by default, ``net.ipv4.icmp_msgs_burst``).
    """
    return max(1.0, rate / 100)


@attrs.define
class TokenBucket:
    """At most ``rate`` takes a second on average, ``burst`` at once."""

    rate: float = attrs.field()
    burst: float = attrs.field()
    _tokens: float = attrs.field(init=False)
    _updated: float = attrs.field(init=False, default=-math.inf)

    @rate.validator
    def _check_rate(self, _: object, value: float) -> None:
        if not 0 < value < math.inf:
            raise ValueError(f"rate must be a positive number of requests a second, got {value}")

    @burst.validator
    def _check_burst(self, _: object, value: float) -> None:
        if not 1 <= value < math.inf:
            raise ValueError(f"burst must be at least 1, got {value}")

    def __attrs_post_init__(self) -> None:
        self._tokens = self.burst

    @classmethod
    def per_second(cls, rate: float) -> TokenBucket:
        """A bucket for ``rate`` requests a second with :func:`default_burst`."""
        return cls(rate, default_burst(rate))

    def _refill(self, now: float) -> None:
        if now > self._updated:
            if self._updated > -math.inf:
                self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now

    def take(self, now: float) -> bool:
        """Take a token at ``now`` if there is one; whether there was."""
        self._refill(now)
        if self._tokens >= 1 - _ROUNDING:
            self._tokens -= 1
            return True
        return False

    def next_token(self, now: float) -> float:
        """When the next token will be there (``now`` if one is)."""
        self._refill(now)
        if self._tokens >= 1 - _ROUNDING:
            return now
        return now + (1 - self._tokens) / self.rate
