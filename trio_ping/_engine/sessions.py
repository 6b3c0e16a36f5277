"""The sessions of one socket: starting, cancelling and finishing them, and their payloads.

A session is one target being pinged: its plan in the sender's schedule, its identifier
and payload, and the channel its results go to. The registry hands out identifiers,
builds payloads, and delivers each request's result once, closing the channel after the
last.
"""

from __future__ import annotations

import secrets
import struct
from typing import Final

import attrs
import trio

from trio_ping._io.icmp_socket import SocketPermissionError
from trio_ping._io.socket_options import Ancillary
from trio_ping._proto import icmp
from trio_ping._proto.schedule import Plan, Schedule
from trio_ping._proto.tracker import ProbeKey, Tracker
from trio_ping.results import PingResult

PAYLOAD_SIZE: Final = 56
"""Bytes after the ICMP header, as iputils ping sends by default."""

PAYLOAD_HEAD: Final = struct.Struct("!8sHI")
"""What makes an Echo payload ours, at its start: the run's 8-byte cookie, the session's
identifier and its session number. A reply must echo it exactly, so another process's
replies, and late replies to an earlier session with the same identifier, fail. The
identifier is here for datagram sockets, where the kernel overwrites the one in the
header (see :func:`ident_in_payload`)."""

_PADDING: Final = bytes(range(0x10, 0x10 + PAYLOAD_SIZE - PAYLOAD_HEAD.size))
"""What follows the head, to PAYLOAD_SIZE: the same for every session."""

_IDENT_END: Final = 10
"""Where the identifier ends in the payload head (after the 8-byte cookie)."""

SHORT_PAYLOAD_IDENT: Final = -1
"""The session identifier, in the tracker's keys, of a session on a datagram socket whose
payload is too short to carry its identifier (under 10 bytes): the kernel owns the header's,
so nothing in a reply tells such sessions to one address apart, and only one may run at a
time per address."""


def payload_for(head: bytes, size: int) -> bytes:
    """An Echo payload of ``size`` bytes: ``head`` then padding, or ``head`` cut short.

    Padding counts up from 0x10 as iputils fills it (so the default 56 bytes are what
    trio-ping always sent). A payload shorter than the head keeps its first bytes: a
    reply must then echo what is there (at least part of the cookie from one byte on).
    """
    if size <= len(head):
        return head[:size]
    if size == PAYLOAD_SIZE:
        return head + _PADDING
    return head + bytes((0x10 + i) & 0xFF for i in range(size - len(head)))


@attrs.define(eq=False)
class Session:
    """One target being pinged: its plan, identifier and payload, and where results go."""

    address: str
    packed: bytes
    count: int
    timeout: float
    request_type: int
    """ICMP Echo (8, or 128 for ICMPv6) or Timestamp (13)."""
    ident: int
    payload: bytes
    results: trio.MemorySendChannel[PingResult]
    outstanding: int
    """Requests whose result is not yet known (sent or still planned)."""
    template: icmp.EchoRequestTemplate | None = None
    """Builds the Echo requests (None for Timestamp sessions)."""
    plan: Plan[Session] | None = None
    target: str | None = None
    """What the caller asked for, when it differs from the address (a host name); every
    result carries it."""
    duplicates: int = 0
    """Valid replies that came again for requests already answered (iputils' DUP!)."""
    finished: bool = False
    ancillary: Ancillary = ()
    """Control messages sent with each request (its TTL, TOS), empty for the socket's."""


def probe_key(session: Session, seq: int) -> ProbeKey:
    """The tracker's key for request ``seq`` of ``session``."""
    return (session.packed, session.request_type, session.ident, seq)


def ident_in_payload(payload: bytes) -> int | None:
    """The session identifier an Echo payload of ours carries (it follows the cookie), or
    :data:`SHORT_PAYLOAD_IDENT` if it is too short to carry one: on a datagram socket,
    which reads identifiers from payloads, that names the one short-payload session an
    address may have. (The result is never None; the type says it may be, for callers
    written when a short payload could not be ours.)"""
    if len(payload) < _IDENT_END:
        return SHORT_PAYLOAD_IDENT
    return int.from_bytes(payload[8:_IDENT_END], "big")


class Sessions:
    """Every unfinished session of one socket, and the identifiers they hold."""

    def __init__(
        self,
        schedule: Schedule[Session],
        tracker: Tracker[Session],
        *,
        ipv6: bool,
        raw: bool,
    ) -> None:
        """Plan sessions in ``schedule``; ``tracker`` holds their requests in flight."""
        self._schedule = schedule
        self._tracker = tracker
        self._ipv6 = ipv6
        self._raw = raw
        # Random per run, so eight pingers on one host neither share identifiers nor, with
        # the cookie in every payload, accept each other's replies.
        self._cookie = secrets.token_bytes(8)
        self._next_ident = secrets.randbelow(0x10000)
        self._session_numbers = 0
        self._idents_in_use: set[tuple[bytes, int]] = set()
        self._open: set[Session] = set()

    def start(
        self,
        address: str,
        packed: bytes,
        *,
        start: float,
        count: int,
        interval: float,
        timeout: float,
        results: trio.MemorySendChannel[PingResult],
        timestamp: bool,
        target: str | None,
        size: int = PAYLOAD_SIZE,
        ancillary: Ancillary = (),
    ) -> Session:
        """Plan ``count`` requests to ``address``, the first at ``start``; return the session.

        Echo requests carry ``size`` payload bytes (Timestamp requests have a fixed size);
        every request is sent with the control messages ``ancillary``.

        Raises:
            ValueError: a Timestamp session on an IPv6 socket (ICMPv6 has no such message),
                every identifier is in use for ``packed``, or, on a datagram socket, a
                payload under 10 bytes while another such session runs to ``packed``.
            SocketPermissionError: a Timestamp session on an ICMP datagram socket, which
                carries only Echo.
        """
        if timestamp and self._ipv6:
            raise ValueError("ICMP Timestamp requests exist for IPv4 only")
        if timestamp and not self._raw:
            raise SocketPermissionError(
                "ICMP Timestamp requests need a raw socket, and this process may only open an "
                "ICMP datagram socket: run as root or grant CAP_NET_RAW"
            )
        if timestamp:
            request_type = icmp.TIMESTAMP_REQUEST
        else:
            request_type = icmp.ICMPV6_ECHO_REQUEST if self._ipv6 else icmp.ECHO_REQUEST
        short = not self._raw and not timestamp and size < _IDENT_END
        ident = self._allocate_short(packed) if short else self._allocate_ident(packed)
        self._session_numbers += 1
        head = PAYLOAD_HEAD.pack(self._cookie, max(ident, 0), self._session_numbers & 0xFFFFFFFF)
        payload = payload_for(head, size)
        # A short session's header identifier is the kernel's to write: any will do.
        template = (
            None if timestamp else icmp.EchoRequestTemplate(max(ident, 0), payload, ipv6=self._ipv6)
        )
        session = Session(
            address,
            packed,
            count,
            timeout,
            request_type,
            ident,
            payload,
            results,
            count,
            template,
            target=target,
            ancillary=ancillary,
        )
        session.plan = self._schedule.add(session, start=start, interval=interval, count=count)
        self._open.add(session)
        return session

    def cancel(self, session: Session) -> None:
        """Stop a session: nothing more is sent, and its results channel is closed."""
        if session.finished:
            return
        if session.plan is not None:
            self._schedule.cancel(session.plan)
        for seq in range(session.count):
            self._tracker.cancel(probe_key(session, seq))
        self._finish(session)

    def close(self) -> None:
        """Cancel every unfinished session, so the readers of their channels see the end."""
        for session in list(self._open):
            self.cancel(session)

    def settle(self, session: Session, result: PingResult) -> None:
        """Hand one request's result to its session, once; finish it after its last."""
        if session.finished:
            return
        session.outstanding -= 1
        try:
            session.results.send_nowait(result)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.WouldBlock):
            # Nobody listening, or a bounded channel left full: this session is over, the
            # others go on (Pinger.start says so).
            self.cancel(session)
            return
        if session.outstanding == 0:
            self._finish(session)

    def _allocate_ident(self, packed: bytes) -> int:
        for _ in range(0x10000):
            ident = self._next_ident
            self._next_ident = (ident + 1) & 0xFFFF
            if (packed, ident) not in self._idents_in_use:
                self._idents_in_use.add((packed, ident))
                return ident
        raise ValueError("all 65,536 ICMP identifiers are in use for this address")

    def _allocate_short(self, packed: bytes) -> int:
        if (packed, SHORT_PAYLOAD_IDENT) in self._idents_in_use:
            raise ValueError(
                "on an ICMP datagram socket, only one session at a time per address may send "
                "payloads under 10 bytes (they cannot carry the session's identifier)"
            )
        self._idents_in_use.add((packed, SHORT_PAYLOAD_IDENT))
        return SHORT_PAYLOAD_IDENT

    def _finish(self, session: Session) -> None:
        session.finished = True
        session.plan = None  # plan -> session -> plan: a cycle only the GC would free
        self._idents_in_use.discard((session.packed, session.ident))
        self._open.discard(session)
        session.results.close()
