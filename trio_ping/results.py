"""What a ping tells you: one result per request, and the factories that build them.

Value classes in this package follow one rule: a value is ``@attrs.frozen(slots=False)``.
Frozen, because what one layer hands another (a result, a handle, a target line) must not
change under either; without ``__slots__``, because attrs sets each field of a frozen
slotted instance through ``object.__setattr__``, where a dict-backed one stores straight
into the instance dict (see PingResult). Mutable state (sessions, probes, plans, the
tracker, a run's bookkeeping) is ``@attrs.define``, slotted. Two per-packet types below
the engine are outside the rule for cost, and say so where they are defined: ``Datagram``
(an immutable NamedTuple built by ``tuple.__new__``) and ``icmp.EchoReply``
(``attrs.define``, treated as immutable).

The engine builds every result through the factories below (:func:`reply_result`,
:func:`timestamp_reply_result`, :func:`timeout_result`, :func:`icmp_error_result`,
:func:`send_failed_result`), once, with the target label it carries: the fast
construction lives inside them.
"""

from __future__ import annotations

import datetime
import enum
from typing import Final, Protocol

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
"""Status.REPLY, for code run per reply: a trick for Python 3.11, whose EnumType defines
__getattr__, which sends every member read down the slow attribute path: 0.077 us,
against 0.007 for a module global (benchmarks/micro.py: enum_member_read, Python 3.11.7).
Python 3.12 narrowed the gap (about 0.023 us), so there it pays little. The engine's
reply path and PingResult.answered read it through this."""


# Frozen, and without __slots__: a slotted frozen class sets each of its fields through
# object.__setattr__, a dict-backed one stores them straight into the instance dict, which
# builds one in 0.44 us instead of 0.95 (benchmarks/micro.py: frozen_slots, Python 3.11.7,
# attrs 26.1). One is built for every request.
@attrs.frozen(slots=False)
class PingResult:
    """The outcome of one request."""

    address: str
    """The target's address, normalised."""
    seq: int
    """The request's number in its session, counting from 0: the ICMP sequence number
    on the wire for a session's first 65,536 requests while it has its identifier to
    itself (always, on the command line). The wire's 16 bits then wrap, and skip a
    number still awaiting its answer; this goes on counting."""
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
    """False when the reply's receive time was read in user space, the kernel giving no
    receive stamp. (Whose send time the RTT starts from: :attr:`send_stamp`.)"""
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
    sent_ns: int | None = None
    """When the request was sent (None for SEND_FAILED: it never left), ns since the Unix epoch
    (CLOCK_REALTIME): the kernel's transmit stamp where it gave one in time
    (:attr:`send_stamp`), else read just before the send call."""
    send_stamp: str | None = None
    """For a REPLY, whose send time the RTT starts from: :data:`DRIVER_STAMP` or
    :data:`QUEUE_STAMP`, the kernel's transmit stamps, or :data:`USER_TIME`, read just
    before the send (the kernel gave no stamp); None for other results (and where the
    result's maker did not say). With ``kernel_timestamp``, the RTT is the kernel's
    from end to end when this is a kernel stamp."""

    @property
    def sent_at(self) -> datetime.datetime | None:
        """:attr:`sent_ns` as an aware UTC datetime (microseconds), when known."""
        if self.sent_ns is None:
            return None
        seconds, microseconds = divmod(self.sent_ns // 1000, 1_000_000)
        moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
        return moment.replace(microsecond=microseconds)

    @property
    def label(self) -> str:
        """The target as asked for, else the address."""
        return self.address if self.target is None else self.target

    @property
    def answered(self) -> bool:
        """Whether a valid reply came."""
        return self.status is REPLY


DRIVER_STAMP: Final = "driver"
"""The kernel's stamp as the driver handed the request to the device (SCM_TSTAMP_SND):
the closest to the wire a software stamp gets."""
QUEUE_STAMP: Final = "queue"
"""The kernel's stamp as the request entered the device's queueing layer
(SCM_TSTAMP_SCHED), for a device whose driver gives none."""
USER_TIME: Final = "user"
"""A send time read in user space just before the send call."""


_TIMEOUT: Final = Status.TIMEOUT  # module globals, as REPLY: read once per result
_ICMP_ERROR: Final = Status.ICMP_ERROR
_SEND_FAILED: Final = Status.SEND_FAILED
_new = object.__new__
_set = object.__setattr__


class ResultSink(Protocol):
    """Where a session's results go (:meth:`trio_ping.Pinger.start`): the sending end of
    a trio memory channel, or any object with these two methods.

    The pinger calls :meth:`send_nowait` once for each result, as it settles it, from
    inside its own tasks (the receiver's, the timeout task's, the sender's): it must
    return at once and never wait. Raising ``trio.WouldBlock``,
    ``trio.BrokenResourceError`` or ``trio.ClosedResourceError`` ends the session, as a
    full or closed channel does; any other exception fails the pinger.
    """

    def send_nowait(self, value: PingResult, /) -> None:
        """Take one result."""

    def close(self) -> None:
        """The session ended: no result follows."""


def reply_result(
    address: str,
    seq: int,
    rtt_us: int,
    ttl: int | None,
    kernel_timestamp: bool,
    target: str | None,
    sent_ns: int | None = None,
    send_stamp: str | None = None,
) -> PingResult:
    """The result of an Echo request that a valid reply answered in time; ``send_stamp``
    says whose send time its RTT starts from (:attr:`PingResult.send_stamp`)."""
    # One per reply: the instance dict is made whole and set in one call, bypassing the
    # generated __init__: 7,460 instructions (callgrind) against 7,840 for the nine
    # positional arguments the engine passed before and 8,300 for all fourteen, on
    # Python 3.11.7. A frozen class without slots keeps its fields in that dict;
    # tests/api/test_results.py checks that this builds what the keyword constructor does.
    result: PingResult = _new(PingResult)
    _set(
        result,
        "__dict__",
        {
            "address": address,
            "seq": seq,
            "status": REPLY,
            "rtt_us": rtt_us,
            "ttl": ttl,
            "reason": None,
            "reported_by": None,
            "errno": None,
            "kernel_timestamp": kernel_timestamp,
            "originate_ms": None,
            "receive_ms": None,
            "transmit_ms": None,
            "offset_ms": None,
            "target": target,
            "sent_ns": sent_ns,
            "send_stamp": send_stamp,
        },
    )
    return result


def timestamp_reply_result(
    address: str,
    seq: int,
    rtt_us: int,
    ttl: int | None,
    kernel_timestamp: bool,
    times: tuple[int, int, int],
    offset_ms: float | None,
    target: str | None,
    sent_ns: int | None = None,
    send_stamp: str | None = None,
) -> PingResult:
    """The result of a Timestamp request that a valid reply answered in time: ``times``
    are the reply's originate, receive and transmit times, ``offset_ms`` the clock offset
    they give (None when the peer's times are not standard), ``send_stamp`` as for
    :func:`reply_result`."""
    originate, receive, transmit = times
    # Positional up to kernel_timestamp: 0.52 us instead of 0.73 with keywords
    # (benchmarks/micro.py: result_positional_vs_keywords, Python 3.11.7).
    return PingResult(
        address,
        seq,
        REPLY,
        rtt_us,
        ttl,
        None,  # reason
        None,  # reported_by
        None,  # errno
        kernel_timestamp,
        originate,
        receive,
        transmit,
        offset_ms,
        target,
        sent_ns,
        send_stamp,
    )


def timeout_result(
    address: str, seq: int, target: str | None, sent_ns: int | None = None
) -> PingResult:
    """The result of a request that no valid reply answered within its timeout."""
    # Positional, as timestamp_reply_result: one per request to a silent target.
    return PingResult(
        address,
        seq,
        _TIMEOUT,
        None,
        None,
        None,
        None,
        None,
        True,
        None,
        None,
        None,
        None,
        target,
        sent_ns,
    )


def icmp_error_result(
    address: str,
    seq: int,
    reason: str,
    reported_by: str,
    target: str | None,
    sent_ns: int | None = None,
) -> PingResult:
    """The result of a request that an ICMP error from ``reported_by`` answered."""
    return PingResult(
        address,
        seq,
        _ICMP_ERROR,
        None,  # rtt_us
        None,  # ttl
        reason,
        reported_by,
        None,  # errno
        True,  # kernel_timestamp
        None,
        None,
        None,
        None,
        target,
        sent_ns,
    )


def send_failed_result(
    address: str,
    seq: int,
    reason: str,
    errno: int | None,
    target: str | None,
    sent_ns: int | None = None,
) -> PingResult:
    """The result of a request the kernel refused to send, with its reason and errno."""
    return PingResult(
        address,
        seq,
        _SEND_FAILED,
        None,  # rtt_us
        None,  # ttl
        reason,
        None,  # reported_by
        errno,
        True,  # kernel_timestamp
        None,
        None,
        None,
        None,
        target,
        sent_ns,
    )
