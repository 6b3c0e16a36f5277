"""The sessions of one socket: starting, cancelling and finishing them, and their payloads.

A session is one target being pinged: its plan in the sender's schedule, its identifier
and payload, and the channel its results go to. The registry hands out identifiers,
builds payloads, and delivers each request's result once, closing the channel after the
last.
"""

from __future__ import annotations

import math
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
from trio_ping.results import PingResult, ResultSink, Status

_SEND_FAILED: Final = Status.SEND_FAILED  # a module global, read once per result

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

IDENTIFIED_SIZE: Final = _IDENT_END
"""The shortest Echo payload that carries its session's identifier."""

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
    count: int | None
    """Requests planned; None: until cancelled."""
    timeout: float
    request_type: int
    """ICMP Echo (8, or 128 for ICMPv6) or Timestamp (13)."""
    ident: int
    payload: bytes
    results: ResultSink
    outstanding: float
    """Requests whose result is not yet known (sent or still planned): infinite for a
    session that runs until cancelled."""
    template: icmp.EchoRequestTemplate | None = None
    """Builds the Echo requests (None for Timestamp sessions)."""
    plan: Plan[Session] | None = None
    target: str | None = None
    """What the caller asked for, when it differs from the address (a host name); every
    result carries it."""
    duplicates: int = 0
    """Valid replies that came again for requests already answered (iputils' DUP!)."""
    finished: bool = False
    wire: int = 0
    """Where the next request's ICMP sequence number comes from: it is ``wire`` modulo
    65,536, and ``wire`` counts up by one a request and by one for each number skipped
    (see :meth:`Sessions.claim`)."""
    wire_start: int = 0
    """``wire`` when the session took its present identifier."""
    size: int = PAYLOAD_SIZE
    """Echo payload bytes after the ICMP header."""
    ancillary: Ancillary = ()
    """Control messages sent with each request (its TTL, TOS), empty for the socket's."""
    saturated: bool = False
    """Every key this session may use awaited an answer at its last request: the next
    fails at once too, until one of its requests in flight ends (Sessions.claim)."""


def probe_key(session: Session, seq: int) -> ProbeKey:
    """The tracker's key for ICMP sequence number ``seq`` of ``session``."""
    return (session.packed, session.request_type, session.ident, seq)


_SEQUENCES: Final = 0x10000
"""ICMP sequence numbers are 16 bits: they wrap modulo this."""

_SPARE_IDENTS: Final = 4096
"""Identifiers left free for an address when new sessions to it start sharing: searching
in turn for a free one then costs at most 16 steps a session on average (65,536 / 4,096)."""

_SKIPS_BEFORE_NEW_IDENT: Final = 64
"""Sequence numbers :meth:`Sessions.claim` skips, at most, before it takes the session a
new identifier: that many in a row still awaiting answers mean the identifier's sequence
space is crowded (only with tens of thousands of requests in flight under it)."""


def ident_in_payload(payload: bytes) -> int:
    """The session identifier an Echo payload of ours carries (it follows the cookie), or
    :data:`SHORT_PAYLOAD_IDENT` if it is too short to carry one: on a datagram socket,
    which reads identifiers from payloads, that names the one short-payload session an
    address may have."""
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
        self._holders: dict[tuple[bytes, int], int] = {}
        """How many sessions hold each (address, identifier) in use."""
        self._held: dict[bytes, int] = {}
        """How many identifiers are in use for each address."""
        self._open: set[Session] = set()

    def start(
        self,
        address: str,
        packed: bytes,
        *,
        start: float,
        count: int | None,
        interval: float,
        timeout: float,
        results: ResultSink,
        timestamp: bool,
        target: str | None,
        size: int = PAYLOAD_SIZE,
        ancillary: Ancillary = (),
    ) -> Session:
        """Plan ``count`` requests to ``address`` (None: until cancelled), the first at
        ``start``; return the session.

        Echo requests carry ``size`` payload bytes (Timestamp requests have a fixed size);
        every request is sent with the control messages ``ancillary``.

        Raises:
            ValueError: a Timestamp session on an IPv6 socket (ICMPv6 has no such message),
                or, on a datagram socket, a payload under 10 bytes while another such
                session runs to ``packed``.
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
        if not self._raw and not timestamp and size < IDENTIFIED_SIZE:
            ident, wire = self._allocate_short(packed), 0
        else:
            ident, wire = self._allocate_ident(packed)
        payload = self._payload(ident, size)
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
            math.inf if count is None else count,
            template,
            target=target,
            wire=wire,
            wire_start=wire,
            size=size,
            ancillary=ancillary,
        )
        session.plan = self._schedule.add(session, start=start, interval=interval, count=count)
        self._open.add(session)
        return session

    def claim(self, session: Session) -> ProbeKey | None:
        """The tracker's key for the next request of ``session``, which is then sent.

        The sequence number is the session's ``wire`` counter modulo 65,536, so it wraps
        in a long run; a number whose key still awaits an answer (a request sent 65,536
        numbers ago with a timeout longer than that) is skipped, so a wrapped sequence
        never takes the key of a request in flight. At each wrap the session takes a new
        payload (a new session number), so that a reply to the previous round, however
        late, answers nothing of this one. After :data:`_SKIPS_BEFORE_NEW_IDENT` skips in
        a row the session moves to another identifier.

        None: every key the session may use awaits an answer, so this request cannot be
        told from one in flight. Only a short-payload session on a datagram socket, which
        cannot move to another identifier, gets there (65,536 requests in flight to one
        address: a very long timeout against a short interval).
        """
        if session.saturated:
            return None  # no key came free since the last look, which walked them all
        is_outstanding = self._tracker.is_outstanding
        skipped = 0
        in_a_round = 0
        while True:
            wire = session.wire
            session.wire = wire + 1
            seq = wire & 0xFFFF
            if seq == 0 and wire:
                self._renew(session, session.ident)
            key = (session.packed, session.request_type, session.ident, seq)
            if not is_outstanding(key):
                return key
            skipped += 1
            if session.ident == SHORT_PAYLOAD_IDENT:
                in_a_round += 1
                if in_a_round >= _SEQUENCES:
                    session.saturated = True
                    return None
            elif skipped >= _SKIPS_BEFORE_NEW_IDENT:
                skipped = 0
                self._release_ident(session)
                ident, wire = self._allocate_ident(session.packed)
                self._renew(session, ident)
                session.wire = session.wire_start = wire

    def cancel(self, session: Session) -> None:
        """Stop a session: nothing more is sent, and its results channel is closed."""
        if session.finished:
            return
        plan = session.plan
        if plan is not None:
            self._schedule.cancel(plan)
        # The requests that can still be in flight: those sent within a timeout, a few
        # more for skipped numbers, under the present identifier. Any others expire on
        # their own (a finished session takes no result) and block no one meanwhile
        # (claim skips them): walking a whole round of 65,536 for every session of a
        # long run would hold the loop for a stop of thousands.
        recent = _SEQUENCES
        if plan is not None and plan.interval > 0:
            recent = min(_SEQUENCES, 2 * (math.ceil(session.timeout / plan.interval) + 2))
        cancel = self._tracker.cancel
        for wire in range(max(session.wire_start, session.wire - recent), session.wire):
            cancel(probe_key(session, wire & 0xFFFF), session)
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
        if session.saturated and result.status is not _SEND_FAILED:
            session.saturated = False  # a request in flight ended: its key is free
        try:
            session.results.send_nowait(result)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.WouldBlock):
            # Nobody listening, or a bounded channel left full: this session is over, the
            # others go on (Pinger.start says so).
            self.cancel(session)
            return
        if session.outstanding == 0:
            self._finish(session)

    def _payload(self, ident: int, size: int) -> bytes:
        """A new session's payload of ``size`` bytes (a session number of its own) under
        ``ident``."""
        self._session_numbers += 1
        number = self._session_numbers & 0xFFFFFFFF
        return payload_for(PAYLOAD_HEAD.pack(self._cookie, max(ident, 0), number), size)

    def _renew(self, session: Session, ident: int) -> None:
        """Give ``session`` a new payload, under ``ident``; its requests in flight keep
        the fingerprints they were sent with."""
        session.ident = ident
        session.payload = self._payload(ident, session.size)
        if session.template is not None:
            session.template = icmp.EchoRequestTemplate(
                max(ident, 0), session.payload, ipv6=self._ipv6
            )

    def _allocate_ident(self, packed: bytes) -> tuple[int, int]:
        """An identifier for a new session to ``packed``, and where its ``wire`` starts.

        Each engine hands out identifiers in turn from a random one, so sessions to one
        address have identifiers of their own while most are free. Once all but
        :data:`_SPARE_IDENTS` are taken (tens of thousands of sessions to one address),
        a search for a free one would cost a line's start thousands of steps, so the new
        session shares the next identifier in turn instead, starting at a random point of
        its sequence space: requests never collide even then, since :meth:`claim` skips a
        key still in flight, and the payloads' session numbers keep their replies apart.
        """
        holders = self._holders
        held = self._held.get(packed, 0)
        while True:
            ident = self._next_ident
            self._next_ident = (ident + 1) & 0xFFFF
            key = (packed, ident)
            holding = holders.get(key, 0)
            if not holding:
                holders[key] = 1
                self._held[packed] = held + 1
                return ident, 0
            if held >= _SEQUENCES - _SPARE_IDENTS:
                holders[key] = holding + 1
                return ident, secrets.randbelow(_SEQUENCES)

    def _allocate_short(self, packed: bytes) -> int:
        key = (packed, SHORT_PAYLOAD_IDENT)
        if self._holders.get(key):
            raise ValueError(
                "on an ICMP datagram socket, only one session at a time per address may send "
                "payloads under 10 bytes (they cannot carry the session's identifier)"
            )
        self._holders[key] = 1
        return SHORT_PAYLOAD_IDENT

    def _release_ident(self, session: Session) -> None:
        if session.ident == SHORT_PAYLOAD_IDENT:
            del self._holders[(session.packed, SHORT_PAYLOAD_IDENT)]
            return
        key = (session.packed, session.ident)
        holding = self._holders.pop(key)
        if holding > 1:
            self._holders[key] = holding - 1
            return
        held = self._held[session.packed] - 1
        if held:
            self._held[session.packed] = held
        else:
            del self._held[session.packed]

    def _finish(self, session: Session) -> None:
        session.finished = True
        session.plan = None  # plan -> session -> plan: a cycle only the GC would free
        self._release_ident(session)
        self._open.discard(session)
        session.results.close()
