"""The three tasks that drive one ICMP socket: sender, receiver, and timeouts.

::

    Pinger.start() ──sessions──▶ Schedule ──due──▶ sender ──packets──▶ socket
                                                     │ Tracker.add(probe, deadline)
                                                     ▼
    socket ──datagrams──▶ receiver ──▶ Tracker.answer / on_reply / on_error ──┐
                                                                              ├──▶ session's
    timeouts: CancelScope(deadline = earliest outstanding) ──expire───────────┘    results

Why not a task per request, each in its own ``move_on_after(timeout)``? It costs 33 us
of CPU per request (benchmarks/micro.py: timeout_design, Python 3.11.7, trio 0.35), more
than the whole budget for 20,000 requests a second. Here the timeout task's cancel scope
always carries the deadline of the earliest outstanding request (plus EXPIRY_SLACK, so
that one wake-up ends every request due close together): each request's deadline
becomes that scope's deadline in turn, which is the per-sequence timeout scope at about
2 us a request (moving that scope's deadline; the same case).
"""

from __future__ import annotations

import enum
import math
import socket
import time
from collections.abc import Callable
from typing import Final

import trio

from trio_ping._engine.alarm import Alarm, SleepUntil
from trio_ping._engine.sessions import (
    PAYLOAD_SIZE,
    Session,
    Sessions,
    ident_in_payload,
)
from trio_ping._io.datagrams import Datagram
from trio_ping._io.icmp_socket import IcmpSocket
from trio_ping._io.send_stamps import SCM_TSTAMP_SND, SendStamp
from trio_ping._io.socket_options import Ancillary
from trio_ping._proto import icmp
from trio_ping._proto.batching import busy
from trio_ping._proto.rate import TokenBucket
from trio_ping._proto.schedule import Schedule
from trio_ping._proto.timestamps import clock_offset_ms, ms_since_midnight
from trio_ping._proto.tracker import ANSWERED, Probe, ProbeKey, Tracker, Verdict
from trio_ping.results import (
    DRIVER_STAMP,
    QUEUE_STAMP,
    USER_TIME,
    PingResult,
    ResultSink,
    icmp_error_result,
    reply_result,
    send_failed_result,
    timeout_result,
    timestamp_reply_result,
)

_SENDS_BETWEEN_CHECKPOINTS: Final = 64
# Once awake, the sender also sends what falls due within this window: a pass through
# trio's run loop costs 5.5 us of CPU when nothing waits, several times that through a
# timed wait (benchmarks/micro.py: run_loop_pass, Python 3.11.7), and at 20,000 requests
# a second, each due at its own moment, waking for every one would cost more than the
# sends. Requests only ever leave early, by less than the window, and the same ones go
# together round after round, so a target's gaps stay whole intervals; a single
# target's requests are 1 ms or more apart and leave on time, give or take a wake-up's
# jitter (the sender's timer is armed early by the wakes' usual lateness: pacing.py).
_SEND_WINDOW: Final = 0.5e-3
# Timeouts are allowed to be late by this much (the contract allows 20 ms), so that one
# wake-up of the timeout task ends every request due within it.
EXPIRY_SLACK: Final = 0.005
# After a busy wake (trio_ping/_proto/batching.py) the receiver rests this long, so that the
# next wake-up finds a batch rather than a single reply. RTTs do not suffer: they come
# from the kernel's receive timestamps, taken as each packet arrived. Results and ICMP
# errors are handled up to about this much later, and replies wait in the socket buffer
# meanwhile.
_RECEIVE_PAUSE: Final = 0.001
_RECEIVE_BATCH: Final = 256
_KEY_MASK: Final = 0xFFFF_FFFF  # transmit-stamp keys are u32 (send_stamps.KEY_MODULUS)
# Requests waiting for their driver's stamp are looked over, to forget those that ended
# without one (a device that gives only SCHED, a stamp the full buffer dropped), when
# their table outgrows twice what it held after the last look, and this at least.
_STAMP_TABLE_FLOOR: Final = 4096
# A socket asks for the driver's stamp (SND) alone; if this many of its requests come back
# answered before any SND has come, its device's driver gives none, and the socket asks
# for the queueing layer's stamp (SCHED) too. Where the driver stamps, SND is queued before
# the packet can leave (skb_tx_timestamp in ndo_start_xmit), so before its reply can come
# and before the read that brings the reply ends (the error queue is read after the
# datagrams): one answered request without it would be evidence enough, but for a stamp
# dropped because the error queue's share of the receive buffer was full
# (sock_queue_err_skb; a reader stalled behind a burst). 32 answered in a row from the
# start, without one SND, is no such accident. The price of waiting, on a device without
# SND: 32 RTTs from the user-space send time, as before stamps, once a socket. The price of
# a wrong fallback: CPU only (a second stamp entry a request, about +5 us; see
# docs/performance.md), never an RTT, since SND still wins where it comes.
SND_PROBATION: Final = 32


class _RateCapped(enum.Enum):
    RATE_CAPPED = "rate capped"


RATE_CAPPED: Final = _RateCapped.RATE_CAPPED
"""What the sender's burst returns when the rate cap holds the next request back."""


class SocketEngine:
    """Sends, receives and times out the requests of every session on one socket."""

    def __init__(
        self, sock: IcmpSocket, sleep_until: SleepUntil, bucket: TokenBucket | None = None
    ) -> None:
        """Drive ``sock``; ``sleep_until`` paces the sender (precise, or trio's for tests).

        With ``bucket``, every request takes a token from it before it is sent (the
        pinger's rate cap, shared by its engines): one the bucket holds back leaves when
        its token comes, and its timeout counts from then.

        Must be called inside a trio run: the engine keeps the run's clock. The engine
        takes sessions from here on; :meth:`run` sends, receives and times them out.
        """
        # trio.current_time() is three calls deep; the clock's own method is one (0.11 us
        # instead of 0.26; benchmarks/micro.py: clock_method, Python 3.11.7), and it is
        # read for every request and every line started.
        self._now = trio.lowlevel.current_clock().current_time
        self._socket = sock
        self._ipv6 = sock.family == socket.AF_INET6
        self._rewrites_ident = sock.rewrites_ident
        self._schedule: Schedule[Session] = Schedule()
        self._tracker: Tracker[Session] = Tracker()
        self._sessions = Sessions(self._schedule, self._tracker, ipv6=self._ipv6, raw=sock.raw)
        self._settle = self._sessions.settle
        self._transmit_stamps = sock.transmit_stamps
        # Requests sent, by transmit-stamp key, until their driver's stamp comes (or they
        # end: see _forget_ended).
        self._awaiting_stamp: dict[int, Probe[Session]] = {}
        self._stamp_table_bound = _STAMP_TABLE_FLOOR
        # Until the first SND, or the fallback to SCHED (SND_PROBATION): answered requests
        # without a driver's stamp are counted.
        self._awaiting_first_snd = self._transmit_stamps and not sock.queue_stamps
        self._answered_without_snd = 0
        self._handle_batch = self._batch_handler()
        self._pacing = Alarm(sleep_until)  # the sender's: precise, cut short by a start
        self._expiry = Alarm()  # the timeout task's: a deadline, moved by an earlier one
        self.malformed = 0
        """Packets that failed to parse (bad checksum, truncated, ...)."""
        self.invalid = 0
        """Replies naming one of our requests but not carrying its payload."""
        self._bucket = bucket
        self.rate_delay = 0.0
        """With a rate cap, the longest a request has left after it was due, in seconds:
        how long the cap held it back (the sender itself is late by microseconds)."""

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the sender, the receiver and the timeout task until cancelled.

        Sessions may be started before this runs, or before it reports started: the engine
        is ready for them from its construction, and they wait in the schedule until the
        sender runs. So a caller that cannot await (Pinger.start, called synchronously for
        every target line) starts it with ``nursery.start_soon(engine.run)``; one that
        wants the tasks running first awaits ``nursery.start(engine.run)``.
        """
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._send_loop)
            nursery.start_soon(self._receive_loop)
            nursery.start_soon(self._expire_loop)
            task_status.started()

    def start(
        self,
        address: str,
        packed: bytes,
        *,
        count: int | None,
        interval: float,
        timeout: float,
        results: ResultSink,
        timestamp: bool = False,
        target: str | None = None,
        size: int = PAYLOAD_SIZE,
        ancillary: Ancillary = (),
    ) -> Session:
        """Plan ``count`` requests to ``address`` (None: until cancelled), the first now;
        results go to ``results``.

        Echo requests of ``size`` payload bytes, or with ``timestamp`` ICMP Timestamp
        requests (IPv4 only), each sent with the control messages ``ancillary``. The
        channel is closed after the last result. Must be called from a trio task.

        Raises:
            ValueError: a Timestamp session on an IPv6 socket (ICMPv6 has no such message).
            SocketPermissionError: a Timestamp session on an ICMP datagram socket, which
                carries only Echo.
        """
        start = self._now()
        if not timestamp:
            self._socket.fit_replies(size)
        session = self._sessions.start(
            address,
            packed,
            start=start,
            count=count,
            interval=interval,
            timeout=timeout,
            results=results,
            timestamp=timestamp,
            target=target,
            size=size,
            ancillary=ancillary,
        )
        if start < self._pacing.moment:
            self._pacing.bring_forward(start)
        return session

    def cancel(self, session: Session) -> None:
        """Stop a session: nothing more is sent, and its results channel is closed."""
        self._sessions.cancel(session)

    def close(self) -> None:
        """Close every unfinished session's channel, so their readers see the end."""
        self._sessions.close()

    # The sender ----------------------------------------------------------------------

    async def _send_loop(self) -> None:
        """Send every request when it is due, in due order; never returns."""
        bucket = self._bucket
        while True:
            stalled = self._send_burst()
            if stalled is RATE_CAPPED:
                assert bucket is not None
                await self._pacing.wait(bucket.next_token(self._now()))
                continue
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
            await self._pacing.wait(due)

    def _send_burst(self) -> tuple[Session, int, ProbeKey, float] | _RateCapped | None:
        """Send what is due (up to _SENDS_BETWEEN_CHECKPOINTS requests) while the kernel
        takes each at once; return the first it would not take, as (session, seq, key,
        sent_at): ``seq`` is the request's number in its session, ``key`` carries its
        ICMP sequence number. RATE_CAPPED: something is due, and the rate cap's bucket
        has no token for it yet.

        Synchronous, because the common case never waits: an ``await`` per request would
        build two coroutines for nothing.
        """
        current_time = self._now
        pop_due = self._schedule.pop_due
        try_send = self._socket.try_send
        claim = self._sessions.claim
        bucket = self._bucket
        for _ in range(_SENDS_BETWEEN_CHECKPOINTS):
            now = current_time()
            if bucket is not None and not self._token(bucket, now):
                return RATE_CAPPED
            popped = pop_due(now, _SEND_WINDOW)
            if popped is None:
                return None
            session, seq = popped
            key = claim(session)
            if key is None:
                self._settle(session, _no_free_key(session, seq))
                continue
            packet, fingerprint = self._request(session, key[3])
            try:
                sent_ns = try_send(packet, session.address, session.ancillary)
            except OSError as exc:
                self._send_failed(session, seq, exc)
                continue
            if sent_ns is None:
                return session, seq, key, now
            self._track(session, seq, key, fingerprint, sent_ns, now)
        return None

    def _token(self, bucket: TokenBucket, now: float) -> bool:
        """Whether the next request may go at ``now``: nothing is due (so there is nothing
        to hold back), or something is and the bucket gave its token."""
        due = self._schedule.next_due()
        if due > now + _SEND_WINDOW:
            return True
        if not bucket.take(now):
            return False
        if now - due > self.rate_delay:
            self.rate_delay = now - due
        return True

    async def _send(self, session: Session, seq: int, key: ProbeKey, sent_at: float) -> None:
        """Send one request, waiting for the socket as long as it takes."""
        packet, fingerprint = self._request(session, key[3])
        try:
            sent_ns = await self._socket.send(packet, session.address, session.ancillary)
        except OSError as exc:
            self._send_failed(session, seq, exc)
            return
        self._track(session, seq, key, fingerprint, sent_ns, sent_at)

    def _request(self, session: Session, wire_seq: int) -> tuple[bytes, bytes]:
        """The request of ``session`` with ICMP sequence number ``wire_seq``, and what its
        reply must carry to answer it."""
        if session.template is not None:
            return session.template.encode(wire_seq), session.payload
        originate = ms_since_midnight(time.time_ns())
        packet = icmp.encode_timestamp_request(session.ident, wire_seq, originate)
        return packet, originate.to_bytes(4, "big")

    def _track(
        self,
        session: Session,
        seq: int,
        key: ProbeKey,
        fingerprint: bytes,
        sent_ns: int,
        sent_at: float,
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
        self._tracker.add(key, probe)
        if self._transmit_stamps:
            awaiting = self._awaiting_stamp
            awaiting[self._socket.sent_key & _KEY_MASK] = probe
            if len(awaiting) > self._stamp_table_bound:
                self._forget_ended(sent_at)
        wake = deadline + EXPIRY_SLACK
        if wake < self._expiry.moment:  # rarely: only a shorter timeout than those before
            self._expiry.bring_forward(wake)

    def _send_failed(self, session: Session, seq: int, exc: OSError) -> None:
        """Settle a request the kernel refused to send, with the kernel's reason."""
        reason = exc.strerror or str(exc)
        result = send_failed_result(session.address, seq, reason, exc.errno, session.target)
        self._settle(session, result)

    # The receiver --------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        """Read the socket whenever it is readable and settle the probes it answers."""
        current_time = self._now
        receive_batch = self._socket.receive_batch
        handle_batch = self._handle_batch
        last_wake = -math.inf
        while True:
            batch = await receive_batch(_RECEIVE_BATCH)
            now = current_time()  # read after the receive: see round_trip_us
            handle_batch(batch, now)
            if not batch:
                # Only the error queue had news: a send stamp comes for every request, just
                # after it left. Counted as a wake, it would make a lone target at 1 ms look
                # busy (its reply a second wake within BUSY_WAKE_GAP), and the rest that
                # followed would end on trio's whole milliseconds beside the sender's
                # timerfd. (Pacing at 1 ms still suffers with stamps on: bench case e.)
                continue
            if self._drained(batch) and busy(len(batch), now - last_wake):
                await trio.sleep(_RECEIVE_PAUSE)  # drained: let the next batch gather
            last_wake = now

    def _batch_handler(self) -> Callable[[list[Datagram], float], None]:
        """The one function that acts on a batch just read (and on the ICMP errors read with
        it), for the receiver and the timeout task alike; ``now`` was read after the read.

        A closure, so that the receiver's hot path keeps its names in locals.
        """
        # The common case, an Echo Reply on a raw IPv4 socket that answers a request, goes
        # straight from the bytes to the tracker: no message object, no verdict. An Echo
        # Reply the tracker does not take is judged as a message, without a second parse;
        # any other datagram is parsed and judged in full.
        shortcut = self._socket.raw_ipv4
        echo_reply = icmp.echo_reply_ipv4
        answer = self._tracker.answer
        answered = self._answered
        judge = self._judge
        on_reply = self._on_reply
        on_error = self._on_error
        reads_error_queue = self._socket.reads_error_queue
        take_errors = self._socket.take_errors
        transmit_stamps = self._transmit_stamps
        take_stamps = self._socket.take_stamps
        apply_stamps = self._apply_stamps

        def handle_batch(batch: list[Datagram], now: float) -> None:
            if transmit_stamps:
                # Before the replies (and the errors): the socket read the stamps after the
                # datagrams, so every request this batch answers has its own among them
                # (or lost it).
                stamps = take_stamps()
                if stamps:
                    apply_stamps(stamps)
            if reads_error_queue:
                for report in take_errors():
                    on_error(report)
            for datagram in batch:
                echo = echo_reply(datagram.data) if shortcut else None
                if echo is None:
                    judge(datagram, now)
                    continue
                source, ttl, ident, seq, payload = echo
                key = (source, icmp.ECHO_REQUEST, ident, seq)
                probe = answer(key, payload, datagram.timestamp_ns)
                if probe is not None:
                    answered(probe, ttl, datagram, now)
                else:  # a duplicate, late, invalid or stray reply: parsed already
                    on_reply(icmp.EchoReply(*echo), datagram, now)

        return handle_batch

    def _apply_stamps(self, stamps: list[SendStamp]) -> None:
        """Make each stamp its request's send time: the driver's (SND) over the queueing
        layer's (SCHED), which stands in only until the driver's comes, if it does.

        A stamp earlier than the time its request already has is not that request's: its
        key was counted before a restart (IcmpSocket._restart_keys), so it is dropped.
        """
        awaiting = self._awaiting_stamp
        driver = False
        for key, kind, stamp_ns in stamps:
            probe = awaiting.get(key)
            if probe is None or stamp_ns < probe.sent_ns:
                # Its request ended, or was sent before the table knew it; or the stamp
                # is older than the request now holding its key (a restart's leftover),
                # and must not take that request's entry away from its own stamp.
                continue
            if kind == SCM_TSTAMP_SND:
                del awaiting[key]
                driver = True
                if not probe.settled:
                    probe.sent_ns = stamp_ns
                    probe.send_stamp = DRIVER_STAMP
            elif probe.send_stamp == USER_TIME and not probe.settled:
                probe.sent_ns = stamp_ns
                probe.send_stamp = QUEUE_STAMP
        if driver:
            self._awaiting_first_snd = False

    def _answered_unstamped(self) -> None:
        """Count an answered request that had no driver's stamp, while none has come on
        this socket; at SND_PROBATION, ask the socket for the queueing layer's stamps."""
        self._answered_without_snd += 1
        if self._answered_without_snd >= SND_PROBATION:
            self._awaiting_first_snd = False
            self._socket.add_queue_stamps()

    def _forget_ended(self, now: float) -> None:
        """Drop from the stamp table the requests that ended (settled, or past their
        deadline) before their driver's stamp came."""
        self._awaiting_stamp = {
            key: probe
            for key, probe in self._awaiting_stamp.items()
            if not probe.settled and probe.deadline > now
        }
        self._stamp_table_bound = max(_STAMP_TABLE_FLOOR, 2 * len(self._awaiting_stamp))

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
        if self._awaiting_first_snd:  # so it has no driver's stamp: none has come yet
            self._answered_unstamped()
        rtt_us = round_trip_us(probe, datagram.timestamp_ns, now)
        session = probe.owner
        if timestamps is None:
            result = reply_result(
                session.address,
                probe.seq,
                rtt_us,
                ttl,
                datagram.kernel_timestamp,
                session.target,
                probe.sent_ns,
                probe.send_stamp,
            )
        else:
            result = _timestamp_result(probe, rtt_us, ttl, datagram, timestamps)
        self._settle(session, result)

    def _ident_of(self, message: icmp.EchoReply | icmp.TimestampReply) -> int:
        """On a datagram socket, the identifier we sent: read back from the payload.

        The kernel replaced the header's with the socket's own, and delivers to this
        socket only replies carrying it, so the header says nothing about which session.
        A payload too short to carry one names the address's one short-payload session
        (``SHORT_PAYLOAD_IDENT`` in sessions.py).
        """
        if type(message) is icmp.EchoReply:
            return ident_in_payload(message.payload)
        return message.ident

    def _on_error(self, message: icmp.ErrorReport) -> None:
        # On a datagram socket the quoted request carries the kernel's identifier, and
        # its payload ours (or too little of it: the short-payload session's).
        ident = ident_in_payload(message.quoted_data) if self._rewrites_ident else message.ident
        key = (message.destination, message.request_type, ident, message.seq)
        probe = self._tracker.on_error(key, message.quoted_data)
        if probe is None:
            return  # about someone else's packet, or one already settled
        reporter = socket.inet_ntop(self._socket.family, message.source)
        session = probe.owner
        self._settle(
            session,
            icmp_error_result(
                session.address, probe.seq, message.reason, reporter, session.target, probe.sent_ns
            ),
        )

    # Timeouts ------------------------------------------------------------------------

    async def _expire_loop(self) -> None:
        """End each request that is still unanswered at its deadline.

        Only once the socket has been read up to that deadline: a reply the kernel stamped
        before it answers the request however late it is read (Tracker.answer compares
        the stamp with the timeout). The receiver may not have read it yet: the loop was
        blocked (a slow standard output, before the writer had its thread), the process
        stopped (SIGSTOP, a suspended job, a paused VM), or both tasks woke in the same
        pass after such a pause and this one runs first.
        """
        settle = self._settle
        while True:
            await self._expiry.wait(self._tracker.next_deadline() + EXPIRY_SLACK)
            read_to = self._drain()
            for probe in self._tracker.expire(read_to):
                session = probe.owner
                settle(
                    session,
                    timeout_result(session.address, probe.seq, session.target, probe.sent_ns),
                )

    def _drain(self) -> float:
        """Read and act on everything the socket holds, without waiting; return a time by
        which everything that had reached the socket has been read.

        A non-blocking read beside the receiver, which alone waits on the socket: a batch
        is never held across a checkpoint (IcmpSocket.receive_batch), so nothing read is
        left for later.
        """
        receive_nowait = self._socket.receive_nowait
        while True:
            read_to = self._now()  # before the read: all that arrived by then is read
            batch = receive_nowait(_RECEIVE_BATCH)
            self._handle_batch(batch, self._now())
            if self._drained(batch):
                return read_to

    def _drained(self, batch: list[Datagram]) -> bool:
        """Whether the read that gave ``batch`` emptied the socket: it returned fewer than
        a read can (a reader whose slots grew for large replies returns fewer than
        _RECEIVE_BATCH at a time)."""
        return len(batch) < min(_RECEIVE_BATCH, self._socket.read_capacity)


def _no_free_key(session: Session, seq: int) -> PingResult:
    """The result of a request left unsent because every key its session may use awaits
    an answer (:meth:`Sessions.claim`): sending it would make its reply ambiguous."""
    reason = "not sent: all 65,536 sequence numbers to this address are awaiting replies"
    return send_failed_result(session.address, seq, reason, None, session.target)


def _timestamp_result(
    probe: Probe[Session],
    rtt_us: int,
    ttl: int | None,
    datagram: Datagram,
    message: icmp.TimestampReply,
) -> PingResult:
    """The result a Timestamp Reply gives: its three times and the clock offset they give."""
    local_receive = ms_since_midnight(datagram.timestamp_ns)
    offset_ms = clock_offset_ms(message.originate, message.receive, message.transmit, local_receive)
    session = probe.owner
    return timestamp_reply_result(
        session.address,
        probe.seq,
        rtt_us,
        ttl,
        datagram.kernel_timestamp,
        (message.originate, message.receive, message.transmit),
        offset_ms,
        session.target,
        probe.sent_ns,
        probe.send_stamp,
    )


def round_trip_us(probe: Probe[Session], received_ns: int, now: float) -> int:
    """The RTT in whole microseconds, from the send time (the kernel's transmit stamp
    where it gave one, ``probe.send_stamp``) and the kernel's receive stamp.

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
