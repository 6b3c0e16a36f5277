"""An in-memory ICMP socket whose peer is scripted per test, on trio's (virtual) clock.

:class:`FakeIcmpSocket` stands in for :class:`trio_ping._io.icmp_socket.IcmpSocket` exactly
where the engine touches it (``family``, ``try_send``, ``send``, ``receive_batch``,
``decode``, ``close``). Every request the engine sends is recorded with the trio time it
left, and handed to a *peer*: a function that returns what the network sends back and
after how long. Deliveries wait in a heap; ``receive_batch`` parks until the earliest is
due, so trio's autojump clock can run a test of many seconds in an instant.

The datagrams are real bytes (built with :mod:`tests.lab.packets`) and are decoded by the
real ``IcmpSocket.decode``, so the engine sees exactly what a raw socket would give it.
"""

from __future__ import annotations

import heapq
import itertools
import math
import socket
import struct
import sys
from collections.abc import Callable, Iterable

import attrs
import trio

from tests.lab import packets
from trio_ping._io.datagrams import Datagram
from trio_ping._io.icmp_socket import IcmpSocket
from trio_ping._io.send_stamps import SCM_TSTAMP_SCHED, SendStamp
from trio_ping._io.socket_options import Ancillary, MtuDiscovery
from trio_ping._proto import icmp

LOCAL = "192.0.2.100"
"""Our own address, as the fake network sees it."""
LOCAL6 = "2001:db8::100"

SOCKET_IDENT = 0x4242
"""The identifier a datagram socket's kernel puts in every request (its local port)."""

_ICMP_HEADER = struct.Struct("!BBHHH")


NOON_NS = (20_000 * 86_400 + 12 * 3600) * 1_000_000_000
"""CLOCK_REALTIME at trio's virtual time 0 under the ``wall_clock`` fixture (tests/conftest.py):
noon UT, a whole millisecond."""
NOON_MS = 12 * 3_600_000


def to_ns(seconds: float) -> int:
    """A trio time as the fake's nanosecond stamps have it."""
    return int(seconds * 1e9)


@attrs.frozen
class Sent:
    """One request the engine handed to the socket."""

    time: float
    """trio's clock when the socket took the request."""
    packet: bytes
    """The ICMP message, without IP header."""
    address: str
    ancillary: Ancillary = ()
    """The control messages it was sent with (its TTL, TOS)."""

    @property
    def type(self) -> int:
        return self.packet[0]

    @property
    def ident(self) -> int:
        return int(_ICMP_HEADER.unpack_from(self.packet)[3])

    @property
    def seq(self) -> int:
        return int(_ICMP_HEADER.unpack_from(self.packet)[4])

    @property
    def payload(self) -> bytes:
        return self.packet[8:]


@attrs.frozen
class Delivery:
    """Something the network delivers to our socket ``delay`` seconds after a send."""

    delay: float
    data: bytes
    """As a raw socket returns it: with IPv4 header for IPv4, without for ICMPv6."""
    source: str
    kernel_timestamp: bool = True


Peer = Callable[[Sent], Iterable[Delivery]]
"""The network's answer to one request; raise OSError to have the kernel refuse the send."""

Stamper = Callable[[Sent], Iterable[tuple[int, float]]]
"""The kernel's transmit stamps of one request sent: (kind, seconds after the send call
began), in the order the kernel queues them (send_stamps.SCM_TSTAMP_SCHED, _SND)."""


class FakeIcmpSocket(IcmpSocket):
    """An ICMP socket with a scripted network behind it. No file descriptor, no I/O."""

    def __init__(
        self,
        peer: Peer,
        family: socket.AddressFamily = socket.AF_INET,
        *,
        raw: bool = True,
        epoch_ns: int = 0,
        stamper: Stamper | None = None,
    ) -> None:
        """Answer every request as ``peer`` says; ``family`` picks the codec, as for real.

        With ``raw=False`` it behaves as a Linux ICMP datagram ("ping") socket: the kernel
        puts the socket's own identifier (:data:`SOCKET_IDENT`) in every request, and
        hands over only Echo Replies carrying it, without their IP header. Peers still
        answer with whole IPv4 datagrams. ``epoch_ns`` is what CLOCK_REALTIME read when
        trio's clock read 0: the fake's send and receive stamps are on that clock.
        With a ``stamper``, the kernel gives transmit stamps (``transmit_stamps``): each
        request sent queues those it says at once, as veth does, keyed as the kernel keys
        them (one key a successful send, from 0), SCHED ones only once the socket asked for
        them (:meth:`add_queue_stamps`); as on the real socket, a read
        (receive_batch, receive_nowait) drains them after its datagrams, for
        :meth:`take_stamps`.
        """
        # No super().__init__(): there is no real socket to configure.
        self.family = family
        self.raw = raw
        self.rewrites_ident = not raw
        self.raw_ipv4 = raw and family == socket.AF_INET  # as IcmpSocket.__init__ sets it
        self.reads_error_queue = not raw
        self.epoch_ns = epoch_ns
        self.transmit_stamps = stamper is not None
        self.sent_key = -1
        self.stamper = stamper
        self.queue_stamps = False
        self._queued_stamps: list[SendStamp] = []  # on the error queue, not yet read
        self._stamps: list[SendStamp] = []
        self.peer = peer
        self.sent: list[Sent] = []
        """Every request the kernel took, in order."""
        self.refused: list[Sent] = []
        """Every request the peer had the kernel refuse."""
        self.closed = False
        self.configured: dict[str, object] | None = None
        """What configure() was given, if it was called."""
        self.pushback_every = 0
        """If set, every this-many-th try_send is pushed back (EAGAIN)."""
        self.slow_sends = 0
        """Calls to send: requests that were pushed back first."""
        self.receiver_stalled_until = -math.inf
        """Until this virtual time, receive_batch returns nothing: the receiving task is
        held up (a process stopped, an event loop blocked) while replies wait in the socket."""
        self.largest_payload = 0
        """The largest payload fit_replies was told of: replies to it must be read whole."""
        self._tries = 0
        self._pending: list[tuple[float, int, Datagram | icmp.ErrorReport]] = []
        self._errors: list[icmp.ErrorReport] = []
        self._order = itertools.count()
        self._lot = trio.lowlevel.ParkingLot()

    read_capacity = 256
    """As a real socket's reader (CAPACITY) until a test says otherwise."""

    def fit_replies(self, payload_size: int) -> None:
        """Record the size (the fake's replies are never cut short)."""
        self.largest_payload = max(self.largest_payload, payload_size)

    def fileno(self) -> int:
        """There is none: the fake is never waited on directly."""
        raise OSError("FakeIcmpSocket has no file descriptor")

    def try_send(self, packet: bytes, address: str, ancillary: Ancillary = ()) -> int | None:
        """Record the request, ask the peer what comes back, and schedule it; but every
        ``pushback_every``-th call (if set) takes nothing, as with a full send buffer."""
        self._tries += 1
        if self.pushback_every and self._tries % self.pushback_every == 0:
            return None
        return self._take(packet, address, ancillary)

    async def send(self, packet: bytes, address: str, ancillary: Ancillary = ()) -> int:
        """What follows a pushback: the kernel has room again at once, so, like the real
        socket's retry that succeeds, this takes the request without a checkpoint."""
        self.slow_sends += 1
        return self._take(packet, address, ancillary)

    def configure(
        self,
        *,
        interface: str | None = None,
        source: str | None = None,
        mtu_discovery: MtuDiscovery | None = None,
    ) -> None:
        """Record the socket options, as the kernel would take them."""
        self.configured = {"interface": interface, "source": source, "mtu_discovery": mtu_discovery}

    def _take(self, packet: bytes, address: str, ancillary: Ancillary = ()) -> int:
        if self.closed:
            raise trio.ClosedResourceError
        if not self.raw:
            packet = _with_ident(packet, SOCKET_IDENT)
        sent = Sent(trio.current_time(), packet, address, ancillary)
        try:
            deliveries = list(self.peer(sent))
        except OSError:
            self.refused.append(sent)
            raise
        self.sent.append(sent)
        self.sent_key += 1
        if self.stamper is not None:
            key = self.sent_key & 0xFFFF_FFFF
            for kind, after in self.stamper(sent):
                if kind == SCM_TSTAMP_SCHED and not self.queue_stamps:
                    continue  # not asked for (send_stamps.TX_FLAGS)
                stamp_ns = self.epoch_ns + to_ns(sent.time + after)
                self._queued_stamps.append(SendStamp(key, kind, stamp_ns))
        for delivery in deliveries:
            self.deliver(delivery)
        return self.epoch_ns + to_ns(sent.time)

    def deliver(self, delivery: Delivery) -> None:
        """Have ``delivery`` arrive ``delivery.delay`` seconds from now."""
        due = trio.current_time() + delivery.delay
        data = delivery.data
        hop_limit: int | None = None
        if self.family == socket.AF_INET6:
            hop_limit = 64
        elif not self.raw:
            # What a ping socket passes on: Echo Replies to its identifier, IP header off;
            # ICMP errors about its own requests go to its error queue.
            header_length = (data[0] & 0x0F) * 4 if data else 0
            packet = data[header_length:]
            if self._queue_error(due, data):
                return
            if len(data) < 20 or len(packet) < 8 or packet[0] != icmp.ECHO_REPLY:
                return
            if _ICMP_HEADER.unpack_from(packet)[3] != SOCKET_IDENT:
                return
            data, hop_limit = packet, data[8]
        source = packets.packed(delivery.source)
        if "%" in delivery.source and source[0] == 0xFE:
            # As the real reader: a link-local source carries its scope (Datagram.source).
            zone = delivery.source.split("%", 1)[1]
            scope = int(zone) if zone.isdigit() else socket.if_nametoindex(zone)
            source += scope.to_bytes(4, sys.byteorder)
        datagram = Datagram(
            data,
            source,
            self.epoch_ns + to_ns(due),
            delivery.kernel_timestamp,
            hop_limit,
        )
        heapq.heappush(self._pending, (due, next(self._order), datagram))
        self._lot.unpark_all()

    def _queue_error(self, due: float, data: bytes) -> bool:
        """As a ping socket's kernel: an ICMP error quoting one of this socket's requests
        goes to the error queue; whether ``data`` was one."""
        try:
            message = icmp.parse_ipv4(data)
        except icmp.MalformedPacket:
            return False
        if type(message) is not icmp.ErrorReport:
            return False
        if message.ident == SOCKET_IDENT:
            heapq.heappush(self._pending, (due, next(self._order), message))
            self._lot.unpark_all()
        return True

    def add_queue_stamps(self) -> None:
        """Have SCHED stamps given from the next request on, as IcmpSocket's."""
        self.queue_stamps = self.transmit_stamps

    def take_stamps(self) -> list[SendStamp]:
        """The transmit stamps the reads since the last call drained, as IcmpSocket's."""
        stamps, self._stamps = self._stamps, []
        return stamps

    def take_errors(self) -> list[icmp.ErrorReport]:
        """The queued ICMP errors that receive_batch has come to, as IcmpSocket's."""
        errors, self._errors = self._errors, []
        return errors

    async def receive_batch(self, limit: int = 256) -> list[Datagram]:
        """Wait until a delivery is due, then return every one that is (up to ``limit``);
        queued errors that are due go to :meth:`take_errors`. Like IcmpSocket's, it yields
        before it reads, never between the read and the return. Nothing is returned before
        :attr:`receiver_stalled_until`."""
        await trio.lowlevel.checkpoint()
        while True:
            if self.closed:
                raise trio.ClosedResourceError
            now = trio.current_time()
            if now >= self.receiver_stalled_until and self._pending and self._pending[0][0] <= now:
                return self._take_due(now, min(limit, self.read_capacity))
            next_due = self._pending[0][0] if self._pending else math.inf
            with trio.move_on_at(max(next_due, self.receiver_stalled_until)):
                await self._lot.park()

    def receive_nowait(self, limit: int = 256) -> list[Datagram]:
        """Every delivery due by now (up to ``limit``), without waiting: as IcmpSocket's,
        and regardless of :attr:`receiver_stalled_until`."""
        if self.closed:
            raise trio.ClosedResourceError
        return self._take_due(trio.current_time(), min(limit, self.read_capacity))

    def _take_due(self, now: float, limit: int) -> list[Datagram]:
        batch: list[Datagram] = []
        while self._pending and self._pending[0][0] <= now and len(batch) < limit:
            item = heapq.heappop(self._pending)[2]
            if type(item) is icmp.ErrorReport:
                self._errors.append(item)
            else:
                assert type(item) is Datagram
                batch.append(item)
        # The error queue after the datagrams, as IcmpSocket reads it.
        self._stamps += self._queued_stamps
        self._queued_stamps = []
        return batch

    def close(self) -> None:
        """Mark closed and wake a waiting receiver."""
        self.closed = True
        self._lot.unpark_all()


def _with_ident(packet: bytes, ident: int) -> bytes:
    """``packet`` with another identifier and, as the kernel does, a fixed-up checksum."""
    packet = packet[:2] + b"\0\0" + ident.to_bytes(2, "big") + packet[6:]
    return packet[:2] + icmp.checksum(packet).to_bytes(2, "big") + packet[4:]


# What a peer sends back ------------------------------------------------------------------


def reply_bytes(
    sent: Sent,
    *,
    ident: int | None = None,
    seq: int | None = None,
    payload: bytes | None = None,
    source: str | None = None,
    options: bytes = b"",
    ttl: int = 64,
) -> bytes:
    """The Echo Reply datagram a host sends for ``sent``, with any field changed."""
    reply = packets.echo_reply(
        sent.ident if ident is None else ident,
        sent.seq if seq is None else seq,
        sent.payload if payload is None else payload,
    )
    return packets.ipv4_datagram(source or sent.address, LOCAL, reply, ttl=ttl, options=options)


def timestamp_reply_bytes(
    sent: Sent, *, receive: int, transmit: int, originate: int | None = None
) -> bytes:
    """The Timestamp Reply datagram for the Timestamp Request ``sent``."""
    echoed = int.from_bytes(sent.packet[8:12], "big") if originate is None else originate
    reply = packets.timestamp_reply(sent.ident, sent.seq, echoed, receive, transmit)
    return packets.ipv4_datagram(sent.address, LOCAL, reply)


def reply6_bytes(sent: Sent, *, payload: bytes | None = None) -> bytes:
    """The ICMPv6 Echo Reply for ``sent``, as a raw ICMPv6 socket delivers it (no IP header)."""
    body = sent.payload if payload is None else payload
    return struct.pack("!BBHHH", icmp.ICMPV6_ECHO_REPLY, 0, 0, sent.ident, sent.seq) + body


def error_bytes(
    sent: Sent, message_type: int, code: int, router: str, *, quote: int = 576
) -> bytes:
    """An ICMP error from ``router`` quoting ``sent`` as it left us (IP header and all)."""
    original = packets.ipv4_datagram(LOCAL, sent.address, sent.packet)
    error = packets.error_quoting(message_type, code, original, quote)
    return packets.ipv4_datagram(router, LOCAL, error, ttl=255)


def echo(delay: float) -> Peer:
    """A host that answers every request correctly after ``delay`` seconds."""

    def peer(sent: Sent) -> list[Delivery]:
        return [Delivery(delay, reply_bytes(sent), sent.address)]

    return peer


def silent(sent: Sent) -> list[Delivery]:
    """A host that never answers."""
    return []
