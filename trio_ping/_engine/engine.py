"""The three tasks that drive one ICMP socket: sender, receiver, and timeouts.

::

    Pinger.start() ──sessions──▶ Schedule ──due──▶ sender ──packets──▶ socket
                                                     │ Tracker.add(probe, deadline)
                                                     ▼
    socket ──datagrams──▶ receiver ──▶ Tracker.answer / on_reply / on_error ──┐
                                                                              ├──▶ session's
    timeouts: CancelScope(deadline = earliest outstanding) ──expire───────────┘    results

Why not a task per request, each in its own ``move_on_after(timeout)``? It was measured
at 47 us of CPU per request (trio 0.35), more than the whole budget for 20,000 requests a
second. Here the timeout task's cancel scope always carries the deadline of the earliest
outstanding request (plus EXPIRY_SLACK, so that one wake-up ends every request due
close together): each request's deadline becomes that scope's deadline in turn, which
is the per-sequence timeout scope at about 1.5 us a request.
"""

from __future__ import annotations

import math
import secrets
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Final

import attrs
import trio

from trio_ping._io.datagrams import Datagram
from trio_ping._io.icmp_socket import IcmpSocket, SocketPermissionError
from trio_ping._proto import icmp
from trio_ping._proto.batching import busy
from trio_ping._proto.schedule import Plan, Schedule
from trio_ping._proto.timestamps import clock_offset_ms, ms_since_midnight
from trio_ping._proto.tracker import ANSWERED, Probe, ProbeKey, Tracker, Verdict
from trio_ping.results import REPLY, PingResult, Status

SleepUntil = Callable[[float], Awaitable[None]]

PAYLOAD_SIZE: Final = 56
"""Bytes after the ICMP header, as iputils ping sends by default."""
# What follows the 14 bytes that make a payload ours (see start); the same for every session.
_PADDING: Final = bytes(range(0x10, 0x10 + PAYLOAD_SIZE - 14))

_SENDS_BETWEEN_CHECKPOINTS: Final = 64
# Once awake, the sender also sends what falls due within this window: a pass through
# trio's run loop costs about 15 us of CPU, and at 20,000 requests a second, each due at
# its own moment, waking for every one would cost more than the sends. Requests only
# ever leave early, by less than the window, and the same ones go together round after
# round, so a target's gaps stay whole intervals; a single target's requests are 1 ms or
# more apart and leave exactly on time.
_SEND_WINDOW: Final = 0.5e-3
# Timeouts are allowed to be late by this much (the contract allows 20 ms), so that one
# wake-up of the timeout task ends every request due within it.
EXPIRY_SLACK: Final = 0.005
# After a busy wake (trio_ping/batching.py) the receiver rests this long, so that the
# next wake-up finds a batch rather than a single reply. RTTs do not suffer: they come
# from the kernel's receive timestamps, taken as each packet arrived. Results and ICMP
# errors are handled up to about this much later, and replies wait in the socket buffer
# meanwhile.
_RECEIVE_PAUSE: Final = 0.001
_RECEIVE_BATCH: Final = 256


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
    unresolved: int
    template: icmp.EchoRequestTemplate | None = None
    """Builds the Echo requests (None for Timestamp sessions)."""
    plan: Plan[Session] | None = None
    target: str | None = None
    """What the caller asked for, when it differs from the address (a host name)."""
    duplicates: int = 0
    """Valid replies that came again for requests already answered (iputils' DUP!)."""
    finished: bool = False


class SocketEngine:
    """Sends, receives and times out the requests of every session on one socket."""

    def __init__(self, sock: IcmpSocket, sleep_until: SleepUntil) -> None:
        """Drive ``sock``; ``sleep_until`` paces the sender (precise, or trio's for tests).

        Must be called inside a trio run: the engine keeps the run's clock.
        """
        # trio.current_time() is three calls deep; the clock's own method is one (0.15 us
        # instead of 0.37), and it is read for every request and every line started.
        self._now = trio.lowlevel.current_clock().current_time
        self._socket = sock
        self._sleep_until = sleep_until
        self._ipv6 = sock.family == socket.AF_INET6
        self._rewrites_ident = sock.rewrites_ident
        self._schedule: Schedule[Session] = Schedule()
        self._tracker: Tracker[Session] = Tracker()
        # Random per run, so eight pingers on one host neither share identifiers nor, with
        # the cookie in every payload, accept each other's replies.
        self._cookie = secrets.token_bytes(8)
        self._next_ident = secrets.randbelow(0x10000)
        self._session_numbers = 0
        self._idents_in_use: set[tuple[bytes, int]] = set()
        self._sessions: set[Session] = set()
        self._pacing_scope: trio.CancelScope | None = None
        self._pacing_target = math.inf
        self._expiry_scope: trio.CancelScope | None = None
        self._expiry_wake = math.inf  # the expiry scope's deadline, without its property
        self.malformed = 0
        """Packets that failed to parse (bad checksum, truncated, ...)."""
        self.invalid = 0
        """Replies naming one of our requests but not carrying its payload."""

    def start(
        self,
        address: str,
        packed: bytes,
        *,
        count: int,
        interval: float,
        timeout: float,
        results: trio.MemorySendChannel[PingResult],
        timestamp: bool = False,
        target: str | None = None,
    ) -> Session:
        """Plan ``count`` requests to ``address``, the first now; results go to ``results``.

        Echo requests, or with ``timestamp`` ICMP Timestamp requests (IPv4 only). The
        channel is closed after the last result. Must be called from a trio task.

        Raises:
            ValueError: a Timestamp session on an IPv6 socket (ICMPv6 has no such message).
            SocketPermissionError: a Timestamp session on an ICMP datagram socket, which
                carries only Echo.
        """
        if timestamp and self._ipv6:
            raise ValueError("ICMP Timestamp requests exist for IPv4 only")
        if timestamp and not self._socket.raw:
            raise SocketPermissionError(
                "ICMP Timestamp requests need a raw socket, and this process may only open an "
                "ICMP datagram socket: run as root or grant CAP_NET_RAW"
            )
        if timestamp:
            request_type = icmp.TIMESTAMP_REQUEST
        else:
            request_type = icmp.ICMPV6_ECHO_REQUEST if self._ipv6 else icmp.ECHO_REQUEST
        ident = self._allocate_ident(packed)
        self._session_numbers += 1
        # Cookie, identifier, session number: a reply must echo this exactly, so another
        # process's replies, and late replies to an earlier session with the same
        # identifier, fail. The identifier is here for datagram sockets, where the kernel
        # overwrites the one in the header (see _ident_of).
        payload = (
            self._cookie + struct.pack("!HI", ident, self._session_numbers & 0xFFFFFFFF) + _PADDING
        )
        template = None if timestamp else icmp.EchoRequestTemplate(ident, payload, ipv6=self._ipv6)
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
        )
        start = self._now()
        session.plan = self._schedule.add(session, start=start, interval=interval, count=count)
        self._sessions.add(session)
        if start < self._pacing_target and self._pacing_scope is not None:
            self._pacing_scope.cancel()
        return session

    def cancel(self, session: Session) -> None:
        """Stop a session: nothing more is sent, and its results channel is closed."""
        if session.finished:
            return
        if session.plan is not None:
            self._schedule.cancel(session.plan)
        for seq in range(session.count):
            self._tracker.cancel(_key(session, seq))
        self._finish(session)

    def close(self) -> None:
        """Close every unfinished session's channel, so their readers see the end."""
        for session in list(self._sessions):
            self.cancel(session)

    def _allocate_ident(self, packed: bytes) -> int:
        for _ in range(0x10000):
            ident = self._next_ident
            self._next_ident = (ident + 1) & 0xFFFF
            if (packed, ident) not in self._idents_in_use:
                self._idents_in_use.add((packed, ident))
                return ident
        raise ValueError("all 65,536 ICMP identifiers are in use for this address")

    def _finish(self, session: Session) -> None:
        session.finished = True
        session.plan = None  # plan -> session -> plan: a cycle only the GC would free
        self._idents_in_use.discard((session.packed, session.ident))
        self._sessions.discard(session)
        session.results.close()

    def _resolve(self, session: Session, result: PingResult) -> None:
        """Hand one request's result to its session, once."""
        if session.finished:
            return
        if session.target is not None:
            result = attrs.evolve(result, target=session.target)
        session.unresolved -= 1
        try:
            session.results.send_nowait(result)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.WouldBlock):
            # Nobody listening, or a bounded channel left full: this session is over, the
            # others go on (Pinger.start says so).
            self.cancel(session)
            return
        if session.unresolved == 0:
            self._finish(session)

    # The sender ----------------------------------------------------------------------

    async def send_loop(self) -> None:
        """Send every request when it is due, in due order; never returns."""
        while True:
            stalled = self._send_burst()
            if stalled is not None:
                # The kernel pushed back: wait until it takes the request. The retry may
                # succeed at once, without a checkpoint, and the next burst may stall
                # again before its 64th send: yield here, or a backlog starves the
                # receiver.
                await self._send(*stalled)
                await trio.lowlevel.checkpoint()
                continue
            due = self._schedule.next_due()
            if due <= self._now() + _SEND_WINDOW:
                await trio.lowlevel.checkpoint()  # more is due already: let replies in first
                continue
            self._pacing_target = due
            with trio.CancelScope() as self._pacing_scope:
                await self._sleep_until(due)
            self._pacing_scope = None
            self._pacing_target = math.inf

    def _send_burst(self) -> tuple[Session, int, float] | None:
        """Send what is due (up to _SENDS_BETWEEN_CHECKPOINTS requests) while the kernel
        takes each at once; return the first it would not take, as (session, seq, sent_at).

        Synchronous, because the common case never waits: an ``await`` per request would
        build two coroutines for nothing.
        """
        current_time = self._now
        pop_due = self._schedule.pop_due
        try_send = self._socket.try_send
        for _ in range(_SENDS_BETWEEN_CHECKPOINTS):
            now = current_time()
            popped = pop_due(now, _SEND_WINDOW)
            if popped is None:
                return None
            session, seq = popped
            packet, fingerprint = self._request(session, seq)
            try:
                sent_ns = try_send(packet, session.address)
            except OSError as exc:
                self._send_failed(session, seq, exc)
                continue
            if sent_ns is None:
                return session, seq, now
            self._track(session, seq, fingerprint, sent_ns, now)
        return None

    async def _send(self, session: Session, seq: int, sent_at: float) -> None:
        """Send one request, waiting for the socket as long as it takes."""
        packet, fingerprint = self._request(session, seq)
        try:
            sent_ns = await self._socket.send(packet, session.address)
        except OSError as exc:
            self._send_failed(session, seq, exc)
            return
        self._track(session, seq, fingerprint, sent_ns, sent_at)

    def _request(self, session: Session, seq: int) -> tuple[bytes, bytes]:
        """Request ``seq`` of ``session``, and what its reply must carry to answer it."""
        if session.template is not None:
            return session.template.encode(seq), session.payload
        originate = ms_since_midnight(time.time_ns())
        packet = icmp.encode_timestamp_request(session.ident, seq, originate)
        return packet, originate.to_bytes(4, "big")

    def _track(
        self, session: Session, seq: int, fingerprint: bytes, sent_ns: int, sent_at: float
    ) -> None:
        """Register a request just sent, so that its reply or its deadline settles it.

        ``sent_at`` was read on the scheduling clock just before the send: (now - sent_at)
        then bounds the true RTT from above even if the task is preempted around the send,
        and round_trip_us relies on it.
        """
        if session.finished:
            return
        deadline = sent_at + session.timeout
        probe = Probe(session, seq, fingerprint, sent_ns, sent_at, deadline)
        self._tracker.add(_key(session, seq), probe)
        wake = deadline + EXPIRY_SLACK
        if wake < self._expiry_wake and self._expiry_scope is not None:
            self._expiry_scope.deadline = self._expiry_wake = wake

    def _send_failed(self, session: Session, seq: int, exc: OSError) -> None:
        """Settle a request the kernel refused to send, with the kernel's reason."""
        reason = exc.strerror or str(exc)
        result = PingResult(
            session.address, seq, Status.SEND_FAILED, reason=reason, errno=exc.errno
        )
        self._resolve(session, result)

    # The receiver --------------------------------------------------------------------

    async def receive_loop(self) -> None:
        """Read the socket whenever it is readable and settle the probes it answers."""
        current_time = self._now
        receive_batch = self._socket.receive_batch
        # The common case, an Echo Reply on a raw IPv4 socket that answers a request, goes
        # straight from the bytes to the tracker: no message object, no verdict. An Echo
        # Reply the tracker does not take is judged as a message, without a second parse;
        # any other datagram is parsed and judged in full.
        shortcut = self._socket.raw_ipv4
        echo_reply = icmp.echo_reply_ipv4
        answer = self._tracker.answer
        answered = self._answered
        reads_error_queue = self._socket.reads_error_queue
        last_wake = -math.inf
        while True:
            batch = await receive_batch(_RECEIVE_BATCH)
            now = current_time()  # read after the receive: see round_trip_us
            if reads_error_queue:
                for report in self._socket.take_errors():
                    self._on_error(report)
            for datagram in batch:
                echo = echo_reply(datagram.data) if shortcut else None
                if echo is None:
                    self._judge(datagram, now)
                    continue
                source, ttl, ident, seq, payload = echo
                key = (source, icmp.ECHO_REQUEST, ident, seq)
                probe = answer(key, payload, datagram.timestamp_ns)
                if probe is not None:
                    answered(probe, ttl, datagram, now)
                else:  # a duplicate, late, invalid or stray reply: parsed already
                    self._on_reply(icmp.EchoReply(*echo), datagram, now)
            if len(batch) < _RECEIVE_BATCH and busy(len(batch), now - last_wake):
                await trio.sleep(_RECEIVE_PAUSE)  # drained: let the next batch gather
            last_wake = now

    def _judge(self, datagram: Datagram, now: float) -> None:
        """Act on one datagram in full: any ICMP message, from any kind of socket."""
        try:
            message = self._socket.decode(datagram)
        except icmp.MalformedPacket:
            self.malformed += 1
            return
        if type(message) is icmp.EchoReply or type(message) is icmp.TimestampReply:
            self._on_reply(message, datagram, now)
        elif type(message) is icmp.ErrorReport:
            self._on_error(message)
        # Requests (our own, looped back, or another pinger's) and other ICMP: not ours.

    def _on_reply(
        self, message: icmp.EchoReply | icmp.TimestampReply, datagram: Datagram, now: float
    ) -> None:
        ident = self._ident_of(message) if self._rewrites_ident else message.ident
        key = (message.source, message.request_type, ident, message.seq)
        verdict, probe = self._tracker.on_reply(key, message.fingerprint, datagram.timestamp_ns)
        if verdict is ANSWERED:
            assert probe is not None
            timestamps = message if type(message) is icmp.TimestampReply else None
            self._answered(probe, message.ttl, datagram, now, timestamps)
        elif verdict is Verdict.DUPLICATE:
            assert probe is not None
            probe.owner.duplicates += 1
        elif verdict is Verdict.INVALID:
            self.invalid += 1

    def _answered(
        self,
        probe: Probe[Session],
        ttl: int | None,
        datagram: Datagram,
        now: float,
        timestamps: icmp.TimestampReply | None = None,
    ) -> None:
        """Report the reply that settled ``probe``, with a Timestamp Reply's times."""
        rtt_us = round_trip_us(probe, datagram.timestamp_ns, now)
        # Positional up to kernel_timestamp: 2.4 us instead of 3.0 with keywords (a
        # frozen attrs class, built once per reply).
        result = PingResult(
            probe.owner.address,
            probe.seq,
            REPLY,
            rtt_us,
            ttl,
            None,  # reason
            None,  # reported_by
            None,  # errno
            datagram.kernel_timestamp,
        )
        if timestamps is not None:
            result = _with_timestamps(result, timestamps, datagram.timestamp_ns)
        self._resolve(probe.owner, result)

    def _ident_of(self, message: icmp.EchoReply | icmp.TimestampReply) -> int:
        """On a datagram socket, the identifier we sent: read back from the payload.

        The kernel replaced the header's with the socket's own, and delivers to this
        socket only replies carrying it, so the header says nothing about which session.
        """
        if type(message) is icmp.EchoReply:
            offset = len(self._cookie)
            return int.from_bytes(message.payload[offset : offset + 2], "big")
        return message.ident

    def _on_error(self, message: icmp.ErrorReport) -> None:
        ident = message.ident
        if self._rewrites_ident:
            # The quoted request carries the kernel's identifier, its payload ours.
            offset = len(self._cookie)
            quoted = message.quoted_data
            if len(quoted) < offset + 2:
                return
            ident = int.from_bytes(quoted[offset : offset + 2], "big")
        key = (message.destination, message.request_type, ident, message.seq)
        probe = self._tracker.on_error(key, message.quoted_data)
        if probe is None:
            return  # about someone else's packet, or one already settled
        reporter = socket.inet_ntop(self._socket.family, message.source)
        self._resolve(
            probe.owner,
            PingResult(
                probe.owner.address,
                probe.seq,
                Status.ICMP_ERROR,
                reason=message.reason,
                reported_by=reporter,
            ),
        )

    # Timeouts ------------------------------------------------------------------------

    async def expire_loop(self) -> None:
        """End each request that is still unanswered at its deadline."""
        while True:
            self._expiry_wake = self._tracker.next_deadline() + EXPIRY_SLACK
            with trio.CancelScope(deadline=self._expiry_wake) as self._expiry_scope:
                await trio.sleep_forever()
            self._expiry_scope = None
            self._expiry_wake = math.inf
            for probe in self._tracker.expire(self._now()):
                self._resolve(
                    probe.owner, PingResult(probe.owner.address, probe.seq, Status.TIMEOUT)
                )


def _key(session: Session, seq: int) -> ProbeKey:
    return (session.packed, session.request_type, session.ident, seq)


def _with_timestamps(
    result: PingResult, message: icmp.TimestampReply, received_ns: int
) -> PingResult:
    """Add a Timestamp Reply's three times and the clock offset they give."""
    local_receive = ms_since_midnight(received_ns)
    return attrs.evolve(
        result,
        originate_ms=message.originate,
        receive_ms=message.receive,
        transmit_ms=message.transmit,
        offset_ms=clock_offset_ms(
            message.originate, message.receive, message.transmit, local_receive
        ),
    )


def round_trip_us(probe: Probe[Session], received_ns: int, now: float) -> int:
    """The RTT in whole microseconds, from the send time and the kernel's receive stamp.

    Both stamps are CLOCK_REALTIME. If that clock was stepped between them (NTP, an admin),
    their difference is wrong, and it shows: it is negative, or longer than the time that
    elapsed on the monotonic scheduling clock between a reading taken before the send and
    one taken after the receive. Then the monotonic measure stands in. (NTP slews both
    clocks alike, so only a step can trip this; the 1 ms allows for float rounding.)
    """
    rtt_ns = received_ns - probe.sent_ns
    elapsed_ns = (now - probe.sent_at) * 1e9
    if not 0 <= rtt_ns <= elapsed_ns + 1e6:
        rtt_ns = int(elapsed_ns)
    return (rtt_ns + 500) // 1000
