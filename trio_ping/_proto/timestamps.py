"""ICMP Timestamp arithmetic (RFC 792): milliseconds since midnight UT, and the clock offset.

Pure functions: no socket, no clock. The caller passes times in.
"""

from __future__ import annotations

from typing import Final

DAY_MS: Final = 86_400_000
NON_STANDARD: Final = 0x8000_0000
"""RFC 792: "If the time is not available in milliseconds or cannot be provided with respect
to midnight UT then any time can be inserted in a timestamp provided the high order bit of
the timestamp is also set to indicate this non-standard value." """


def ms_since_midnight(epoch_ns: int) -> int:
    """A CLOCK_REALTIME reading (ns since the epoch) as ms since midnight UT.

    Truncated, not rounded: a timestamp names the millisecond that is running.
    """
    return (epoch_ns // 1_000_000) % DAY_MS


def is_standard(value: int) -> bool:
    """Whether a peer's timestamp is ms since midnight UT (the high-order bit clear)."""
    return not value & NON_STANDARD and value < DAY_MS


def _wrapped(difference: int) -> int:
    """A difference of two times of day, across midnight if need be: in (-12 h, +12 h]."""
    difference %= DAY_MS
    return difference - DAY_MS if difference > DAY_MS // 2 else difference


def clock_offset_ms(
    originate: int, receive: int, transmit: int, local_receive: int
) -> float | None:
    """The peer's clock minus ours, in ms: ((R - O) + (T - L)) / 2, the NTP estimate.

    The path's asymmetry is the error: a request slower than its reply makes the peer
    look ahead. None when the peer's times are not standard (RFC 792's high-order bit).
    """
    if not (is_standard(receive) and is_standard(transmit)):
        return None
    return (_wrapped(receive - originate) + _wrapped(transmit - local_receive)) / 2
