"""What a ping tells you: one result per request."""

from __future__ import annotations

import enum
from typing import Final

import attrs


class Status(enum.Enum):
    """How a request ended."""

    REPLY = "reply"
    """A valid reply came in time."""
    TIMEOUT = "timeout"
    """No valid reply came within the timeout."""
    ICMP_ERROR = "icmp-error"
    """A router or the target answered with an ICMP error (unreachable, TTL exceeded, ...)."""
    SEND_FAILED = "send-failed"
    """The kernel refused to send the request."""


REPLY: Final = Status.REPLY
"""Status.REPLY, for code run per reply. Python 3.11's EnumType defines __getattr__,
which sends every member read down the slow attribute path: 0.17 us, against 0.01 for a
module global. The engine's reply path and PingResult.answered read it through this."""


# Frozen, and without __slots__: a slotted frozen class sets each of its 14 fields through
# object.__setattr__, a dict-backed one stores them straight into the instance dict, which
# builds one in 1.5 us instead of 2.5 (timeit). One is built for every request.
@attrs.frozen(slots=False)
class PingResult:
    """The outcome of one request."""

    address: str
    """The target's address, normalised."""
    seq: int
    """The ICMP sequence number, counting from 0."""
    status: Status
    rtt_us: int | None = None
    """Round-trip time in whole microseconds, for a REPLY."""
    ttl: int | None = None
    """The reply's TTL (IPv4) or hop limit (IPv6), when known."""
    reason: str | None = None
    """Why there is no reply, for ICMP_ERROR and SEND_FAILED."""
    reported_by: str | None = None
    """The address that sent the ICMP error."""
    errno: int | None = None
    """The error number of a SEND_FAILED."""
    kernel_timestamp: bool = True
    """False when the RTT was measured from user-space times, the kernel giving none."""
    originate_ms: int | None = None
    """Timestamp mode: when we sent the request, ms since midnight UT (our clock)."""
    receive_ms: int | None = None
    """Timestamp mode: when the peer received it, as the peer says (raw 32 bits)."""
    transmit_ms: int | None = None
    """Timestamp mode: when the peer sent its reply, as the peer says (raw 32 bits)."""
    offset_ms: float | None = None
    """Timestamp mode: the peer's clock minus ours, or None if the peer's times are not
    standard (RFC 792's high-order bit)."""
    target: str | None = None
    """What the caller asked to ping (a host name, or the address as written), when it
    was given; :attr:`address` is what it resolved to."""

    @property
    def label(self) -> str:
        """The target as asked for, else the address."""
        return self.address if self.target is None else self.target

    @property
    def answered(self) -> bool:
        """Whether a valid reply came."""
        return self.status is REPLY
