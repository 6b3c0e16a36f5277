"""ICMP Timestamp arithmetic: ms since midnight UT, the midnight wrap, non-standard times."""

from __future__ import annotations

import pytest

from trio_ping._proto.timestamps import DAY_MS, NON_STANDARD, clock_offset_ms, ms_since_midnight

NOON_NS = (20_000 * 86_400 + 12 * 3600) * 1_000_000_000


def test_ms_since_midnight_counts_from_midnight_ut_and_truncates() -> None:
    assert ms_since_midnight(NOON_NS) == 12 * 3_600_000
    assert ms_since_midnight(NOON_NS + 999_999) == 12 * 3_600_000
    assert ms_since_midnight(NOON_NS + 1_000_000) == 12 * 3_600_000 + 1
    assert ms_since_midnight(NOON_NS + 12 * 3600 * 1_000_000_000) == 0


@pytest.mark.parametrize(
    ("originate", "receive", "transmit", "local_receive", "offset"),
    [
        (1000, 1000, 1000, 1000, 0.0),  # same clock, no delay
        (1000, 1505, 1506, 1011, 500.0),  # peer 500 ms ahead, 5 ms each way, 1 ms inside
        (1000, 496, 497, 1002, -504.5),  # peer behind, and a half millisecond of asymmetry
        # Midnight falls between our send and the peer's receive, and again on the way back.
        (DAY_MS - 2, 3, 4, DAY_MS - 1, 5.0),
        (3, DAY_MS - 7, DAY_MS - 6, 5, -10.5),
    ],
)
def test_clock_offset(
    originate: int, receive: int, transmit: int, local_receive: int, offset: float
) -> None:
    assert clock_offset_ms(originate, receive, transmit, local_receive) == offset


@pytest.mark.parametrize(
    ("receive", "transmit"),
    [(NON_STANDARD | 1234, 1234), (1234, NON_STANDARD | 1234), (DAY_MS, DAY_MS)],
)
def test_non_standard_times_give_no_offset(receive: int, transmit: int) -> None:
    assert clock_offset_ms(1234, receive, transmit, 1234) is None
