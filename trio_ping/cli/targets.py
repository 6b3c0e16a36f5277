"""Parsing and validating target specifications: ``ADDRESS,COUNT,INTERVAL_MS``."""

from __future__ import annotations

from typing import Final

import attrs

from trio_ping._addresses import address_for, is_host_name
from trio_ping.cli.status import quoted

MAX_COUNT: Final = 10
MAX_INTERVAL_MS: Final = 1000


class TargetError(ValueError):
    """A target specification that cannot be run; the message says why, for the user."""


# One per line, and not slotted for the reason PingResult is not: 0.28 us to build against
# 0.37 slotted (benchmarks/micro.py: frozen_slots, Python 3.11.7, attrs 26.1).
@attrs.frozen(slots=False)
class Target:
    """One validated target line: what to ping, how often, how far apart."""

    host: str
    """The address as the user wrote it, or the host name."""
    address: str | None
    """The IP address, normalised; None for a host name still to be resolved."""
    count: int
    interval_ms: int

    @classmethod
    def parse(cls, text: str) -> Target:
        """Parse ``ADDRESS,COUNT,INTERVAL_MS``; spaces around fields and a final CR are fine.

        ADDRESS is an IPv4 or IPv6 address, or a host name.

        Raises:
            TargetError: with a one-line reason that quotes the offending field.
        """
        fields = text.rstrip("\r\n").split(",")
        if len(fields) != 3:
            raise TargetError(
                f"expected ADDRESS,COUNT,INTERVAL_MS (3 fields), "
                f"got {len(fields):,} in {quoted(text.strip())}"
            )
        host = fields[0].strip()
        # Positional: a line is parsed in 1.8 us, and keywords would add 0.19 us to it
        # (benchmarks/micro.py: target_positional_vs_keywords, Python 3.11.7).
        return cls(
            host,
            _parse_address(host),
            _parse_whole(fields[1].strip(), "count", MAX_COUNT, unit=""),
            _parse_whole(fields[2].strip(), "interval", MAX_INTERVAL_MS, unit=" ms"),
        )


def _parse_address(text: str) -> str | None:
    try:
        address = address_for(text)
    except ValueError as exc:  # a zone where none can be
        raise TargetError(str(exc)) from None
    if address is not None:
        return address
    if is_host_name(text):
        return None
    raise TargetError(
        f"address must be an IPv4 or IPv6 address or a host name, such as 192.0.2.1, "
        f"2001:db8::1 or example.net, got {quoted(text)}"
    )


def _parse_whole(text: str, name: str, maximum: int, *, unit: str) -> int:
    # ASCII digits only: int() alone would also take "1_0", "+3" and other scripts' digits.
    value = int(text) if text.isascii() and text.isdigit() else None
    if value is None or not 1 <= value <= maximum:
        raise TargetError(
            f"{name} must be a whole number from 1 to {maximum}{unit}, got {quoted(text)}"
        )
    return value
