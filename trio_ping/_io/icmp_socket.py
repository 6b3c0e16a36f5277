"""An async ICMP socket for trio: a non-blocking stdlib socket that only waits when it must.

Like trio's own socket layer, every operation tries the system call first and awaits
``wait_readable`` / ``wait_writable`` only on ``BlockingIOError``; spurious wake-ups just
retry. Exactly one task may wait on the descriptor for reading: the pinger's receiver.

Times: receive times are the kernel's ``SO_TIMESTAMPNS`` stamps (CLOCK_REALTIME, taken when
the packet reached the socket, before any scheduling delay); send times are read from the
same clock immediately before the send call, so an RTT is the difference of two readings
of one clock. Where the kernel gives transmit stamps (:attr:`IcmpSocket.transmit_stamps`,
trio_ping/_io/send_stamps.py), :meth:`IcmpSocket.take_stamps` has the kernel's own send
time of each packet, on that clock too, keyed by :attr:`IcmpSocket.sent_key`.
"""

from __future__ import annotations

import errno
import socket
import struct
import time
from typing import Final

import attrs
import trio

from trio_ping._io import error_queue, send_stamps, socket_options
from trio_ping._io.datagrams import CAPACITY, SO_TIMESTAMPNS, Datagram, DatagramReader
from trio_ping._proto import icmp

_MAX_IPV4_HEADER: Final = 60

# Linux asm-generic/socket.h and linux/in.h; Python 3.11 does not export them.
SO_RCVBUFFORCE: Final = 33
IP_RECVTTL: Final = 12
ICMP6_FILTER: Final = 1  # linux/icmpv6.h, level IPPROTO_ICMPV6

# What a raw ICMPv6 socket lets through: replies and the errors that quote our requests.
# Everything else (neighbour discovery, router adverts, our own requests on loopback) is
# dropped by the kernel before it costs us a wake-up.
_ICMPV6_WANTED: Final = (
    icmp.ICMPV6_ECHO_REPLY,
    icmp.ICMPV6_DESTINATION_UNREACHABLE,
    icmp.ICMPV6_PACKET_TOO_BIG,
    icmp.ICMPV6_TIME_EXCEEDED,
    icmp.ICMPV6_PARAMETER_PROBLEM,
)

RECEIVE_BUFFER_BYTES: Final = 16 * 1024 * 1024
"""Room for a burst: 10,000 replies at once take about 10 MB of kernel memory (skb truesize)."""

_PENDING_ERROR_ATTEMPTS: Final = 4
"""Sends tried while each fails with a pending ICMP error (see IcmpSocket._after_refusal): one
for each error that may arrive between two tries, and the last is believed."""
# The errors the kernel makes of ICMP errors (icmp_err_convert, icmpv6_err_convert).
_ICMP_ERRNOS: Final = frozenset(
    {
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
        errno.ECONNREFUSED,
        errno.EPROTO,
        errno.EMSGSIZE,
        errno.EACCES,
        errno.ENONET,
        errno.EOPNOTSUPP,
    }
)

_ENOBUFS_RETRIES: Final = 50
_ENOBUFS_BACKOFF: Final = 0.001


class SocketPermissionError(PermissionError):
    """The process may not open the ICMP socket it needs; the message says how to fix it."""


_HOW_TO_ALLOW = (
    "run as root, grant CAP_NET_RAW to a private copy of the Python interpreter "
    "(python3 -m venv --copies, then setcap cap_net_raw+ep on its python3), "
    "or allow ICMP datagram sockets for your group "
    "(sysctl -w net.ipv4.ping_group_range='0 2147483647')"
)


class IcmpSocket:
    """An ICMP (or ICMPv6) socket in non-blocking mode, with kernel receive timestamps.

    Raw, or an unprivileged ICMP datagram socket ("ping socket"). On the latter the kernel
    strips the IP header from what we receive, delivers only replies to our own requests,
    carries only Echo, and replaces the identifier we send with the socket's own
    (``rewrites_ident``).
    """

    def __init__(self, sock: socket.socket) -> None:
        """Take ownership of ``sock``, an ``AF_INET``/``AF_INET6`` ICMP socket, raw or not."""
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        _enlarge_receive_buffer(sock)
        self.family: socket.AddressFamily = sock.family
        self.raw = sock.type == socket.SOCK_RAW
        self.rewrites_ident = not self.raw
        self.raw_ipv4 = self.raw and self.family == socket.AF_INET
        """What arrives is a whole IPv4 datagram, header included (icmp.parse_ipv4)."""
        if self.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
            # No IPV6_CHECKSUM: on ICMPv6 raw sockets the kernel always computes and
            # verifies the checksum (RFC 3542 3.1), and refuses to be told otherwise.
            if self.raw:
                sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, _icmp6_filter())
        elif not self.raw:
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)  # no IP header to read it from
        self.reads_error_queue = not self.raw
        """ICMP errors come through the kernel's error queue (:meth:`take_errors`), not as
        datagrams: a datagram socket is never handed the error packets themselves."""
        if self.reads_error_queue:
            error_queue.enable(sock)
        self._stamp_flags = send_stamps.TX_FLAGS  # the driver's stamp (SND) alone, first
        self.transmit_stamps = send_stamps.enable(sock, self._stamp_flags)
        """The kernel stamps every packet sent, on the error queue: :meth:`take_stamps`.
        False where it cannot (send times are then read in user space only)."""
        self.queue_stamps = False
        """The queueing layer's stamps (SCHED) are asked for too (:meth:`add_queue_stamps`),
        not the driver's alone."""
        self.sent_key = -1
        """The ``OPT_ID`` key of the last packet sent, modulo 2**32 (the kernel counts each
        successful send, from 0; a send that fails takes no key)."""
        self._stamps: list[send_stamps.SendStamp] = []
        # One reader for the one queue: transmit stamps and, on a datagram socket, ICMP errors.
        self._queue = (
            send_stamps.ErrorQueueReader(sock)
            if self.transmit_stamps or self.reads_error_queue
            else None
        )
        self._errors: list[icmp.ErrorReport] = []
        self._interface: str | None = None
        self._sock = sock
        self._reader = DatagramReader(sock)
        self._closed = False
        self._owes_checkpoint = False
        """The last receive_batch read without waiting: the next yields before it reads."""

    @classmethod
    def open(cls, family: socket.AddressFamily = socket.AF_INET) -> IcmpSocket:
        """Open a raw ICMP socket for ``family``, or else an ICMP datagram socket.

        Raises:
            SocketPermissionError: neither is allowed (no CAP_NET_RAW, and the process's
                group is outside ``net.ipv4.ping_group_range``).
            OSError: any other refusal by the kernel.
        """
        protocol = socket.IPPROTO_ICMPV6 if family == socket.AF_INET6 else socket.IPPROTO_ICMP
        try:
            return cls(socket.socket(family, socket.SOCK_RAW, protocol))
        except PermissionError:
            pass
        try:
            return cls(socket.socket(family, socket.SOCK_DGRAM, protocol))
        except PermissionError as exc:
            raise SocketPermissionError(
                f"cannot open an ICMP socket ({exc.strerror}): {_HOW_TO_ALLOW}"
            ) from None

    def fit_replies(self, payload_size: int) -> None:
        """Read replies to requests of ``payload_size`` payload bytes whole from now on:
        the reader's slots grow to the largest such reply (on a raw IPv4 socket with its
        IP header, which options make up to 60 bytes, RFC 791 3.1)."""
        header = _MAX_IPV4_HEADER if self.raw_ipv4 else 0
        self._reader.fit(header + icmp.HEADER_LENGTH + payload_size)

    @property
    def read_capacity(self) -> int:
        """The most datagrams one :meth:`receive_batch` or :meth:`receive_nowait` returns
        (fewer than CAPACITY once :meth:`fit_replies` grew the reader's slots): a read
        that returns fewer has drained the socket."""
        return self._reader.capacity

    def fileno(self) -> int:
        """The descriptor, for trio's wait functions."""
        return self._sock.fileno()

    def configure(
        self,
        *,
        interface: str | None = None,
        source: str | None = None,
        mtu_discovery: socket_options.MtuDiscovery | None = None,
    ) -> None:
        """Send from ``interface`` and ``source``, with ``mtu_discovery`` (None: the
        kernel's defaults); before the first send.

        Raises:
            OSError: the kernel refused an option (ENODEV, EADDRNOTAVAIL, ...).
        """
        socket_options.configure(
            self._sock, interface=interface, source=source, mtu_discovery=mtu_discovery
        )
        self._interface = interface

    def try_send(
        self, packet: bytes, address: str, ancillary: socket_options.Ancillary = ()
    ) -> int | None:
        """Send ``packet`` to ``address`` now, if the kernel takes it; return the send time.

        ``ancillary`` are control messages for this packet alone (its TTL, TOS: see
        :func:`socket_options.ancillary`). The time is in ns (CLOCK_REALTIME). None means
        "not now": the send buffer or the device queue is full (EAGAIN, ENOBUFS). Then
        await :meth:`send`, which waits for the socket to become writable, or retries
        after a pause.

        Raises:
            OSError: the kernel refused the packet (EHOSTUNREACH, EACCES for a broadcast
                address, EMSGSIZE with the path MTU in its message, ...).
        """
        destination = (address, 0)
        sent_ns = time.time_ns()
        try:
            if ancillary:
                self._sock.sendmsg((packet,), ancillary, 0, destination)
            else:
                self._sock.sendto(packet, destination)
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno == errno.ENOBUFS:
                self._no_room()
                return None
            return self._after_refusal(exc, packet, destination, ancillary)
        self.sent_key += 1
        return sent_ns

    def _no_room(self) -> None:
        """After ENOBUFS. It is the one refusal that may come after the packet took its
        transmit-stamp key (a full device queue, which only a socket with ``IP_RECVERR``
        is told of), so with stamps on the count restarts; every other refusal comes
        before the packet is built and releases the key it held (``__ip_append_data``,
        ``__ip6_append_data``), so a send that fails takes no key (:attr:`sent_key`)."""
        if self.transmit_stamps:
            self._restart_keys()

    def _restart_keys(self) -> None:
        """Have the kernel count keys from 0 again: turning ``OPT_ID`` off and on resets
        its count (``sock_set_timestamping``). A stamp still queued under an old key is
        earlier than any request sent from now on, which is how the engine tells it."""
        send_stamps.restart_keys(self._sock, self._stamp_flags)
        self.sent_key = -1

    def add_queue_stamps(self) -> None:
        """Ask for the queueing layer's stamp (SCHED) of every packet sent from now on, as
        well as the driver's: for a device whose driver stamps nothing. The keys count on
        (:data:`send_stamps.QUEUE_FLAGS`). Nothing changes if the kernel refuses."""
        if not self.transmit_stamps or self.queue_stamps:
            return
        if send_stamps.enable(self._sock, send_stamps.QUEUE_FLAGS):
            self._stamp_flags = send_stamps.QUEUE_FLAGS
            self.queue_stamps = True

    async def send(
        self, packet: bytes, address: str, ancillary: socket_options.Ancillary = ()
    ) -> int:
        """Send ``packet`` to ``address`` with ``ancillary`` (as :meth:`try_send`); return
        the send time in ns (CLOCK_REALTIME).

        Does not checkpoint when the kernel takes the packet at once: the caller decides
        when to yield. ENOBUFS (a full device queue) is retried briefly before it is
        raised: it says "not now", not "never".

        Raises:
            OSError: the kernel refused the packet (EHOSTUNREACH, EACCES for a broadcast
                address, EMSGSIZE with the path MTU in its message, ENOBUFS after
                retries, ...).
        """
        destination = (address, 0)
        retries = 0
        while True:
            sent_ns = time.time_ns()
            try:
                self._transmit(packet, destination, ancillary)
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self._sock)
                continue
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    again = self._after_refusal(exc, packet, destination, ancillary)
                    if again is not None:
                        return again
                else:
                    self._no_room()
                if retries >= _ENOBUFS_RETRIES:
                    raise
                retries += 1
                await trio.sleep(_ENOBUFS_BACKOFF)
                continue
            self.sent_key += 1
            return sent_ns

    def _transmit(
        self, packet: bytes, destination: tuple[str, int], ancillary: socket_options.Ancillary
    ) -> None:
        if ancillary:
            self._sock.sendmsg((packet,), ancillary, 0, destination)
        else:
            self._sock.sendto(packet, destination)

    def _after_refusal(
        self,
        exc: OSError,
        packet: bytes,
        destination: tuple[str, int],
        ancillary: socket_options.Ancillary,
    ) -> int | None:
        """What a send the kernel refused with ``exc`` (not ENOBUFS) comes to.

        On a socket that reads its error queue, a queued ICMP error also sets the socket's
        pending error, and the kernel returns a pending error from the next send on the
        socket, whatever its destination (``sock_alloc_send_pskb`` calls ``sock_error``):
        that send fails and its packet does not leave. Returning the error consumed it, so
        the send is tried again, as often as errors may arrive between two tries; an error
        that comes back every time is the kernel's answer to this packet.

        Each retry the kernel takes counts a transmit-stamp key (:attr:`sent_key`), as an
        inline send does; the refused tries take none.

        Returns:
            The send time of a retry that went through, or None for "not now" (EAGAIN,
            ENOBUFS on a retry).

        Raises:
            OSError: the refusal stands (EMSGSIZE with the path MTU in its message).
        """
        if self.reads_error_queue and exc.errno in _ICMP_ERRNOS:
            for attempt in range(2, _PENDING_ERROR_ATTEMPTS + 1):
                sent_ns = time.time_ns()
                try:
                    self._transmit(packet, destination, ancillary)
                except BlockingIOError:
                    return None
                except OSError as again:
                    if again.errno == errno.ENOBUFS:
                        self._no_room()
                        return None
                    exc = again
                    if attempt == _PENDING_ERROR_ATTEMPTS or exc.errno not in _ICMP_ERRNOS:
                        break
                else:
                    self.sent_key += 1
                    return sent_ns
        if exc.errno == errno.EMSGSIZE:
            raise self._too_long(destination) from None
        raise exc

    def _too_long(self, destination: tuple[str, int]) -> OSError:
        """EMSGSIZE, saying the MTU the packet exceeded (iputils: "message too long")."""
        mtu = socket_options.path_mtu(self.family, destination, self._interface)
        reason = "message too long" if mtu is None else f"message too long, mtu={mtu}"
        return OSError(errno.EMSGSIZE, reason)

    async def receive_batch(self, limit: int = CAPACITY) -> list[Datagram]:
        """Wait until the socket is readable, then read what is queued (up to ``limit``).

        A flood cannot starve the other tasks: a call after one that read without waiting
        yields before it reads. A batch is returned as soon as it is read, never held
        across a checkpoint, so every datagram is either still in the socket, where
        :meth:`receive_nowait` finds it, or in the caller's hands (the timeout task reads
        the socket before it expires anything: trio_ping/_engine/engine.py). On a socket
        that :attr:`reads_error_queue`, returns (perhaps with no datagram) as soon as ICMP
        errors are queued: :meth:`take_errors` has them.

        Raises:
            trio.ClosedResourceError: the socket was closed (its descriptor number may
                belong to another file by now, so it must not be read).
        """
        if self._closed:
            raise trio.ClosedResourceError("the ICMP socket is closed")
        if self._owes_checkpoint:
            await trio.lowlevel.checkpoint()
        else:
            await trio.lowlevel.checkpoint_if_cancelled()
        waited = False
        while True:
            try:
                batch = self._reader.read(limit)
            except BlockingIOError:
                if (self.reads_error_queue or self.transmit_stamps) and self._drain_error_queue():
                    batch = []
                    break
                await trio.lowlevel.wait_readable(self._sock)
                waited = True
                continue
            except OSError:
                # A queued ICMP error also sets the socket's pending error, which this
                # read returned instead of data (see trio_ping/_io/error_queue.py).
                if not self.reads_error_queue:
                    raise
                self._drain_error_queue()
                batch = []
                break
            if batch:  # else every datagram read was too long to be ours: read on
                break
        if batch and self.transmit_stamps:
            # After the datagrams: a packet's stamps are queued before it leaves (in the
            # send call itself on veth and loopback), so every request these replies
            # answer has its stamps in the queue by now.
            self._drain_error_queue()
        self._owes_checkpoint = not waited
        return batch

    def receive_nowait(self, limit: int = CAPACITY) -> list[Datagram]:
        """What the socket holds now (up to ``limit``), without waiting: empty if nothing.

        Safe beside a task waiting in :meth:`receive_batch` (only one task may *wait* on
        the descriptor; any may read it). On a socket that :attr:`reads_error_queue`, the
        error queue is read too: :meth:`take_errors` has its errors; with
        :attr:`transmit_stamps`, it is read after the datagrams (on a raw socket too), and
        :meth:`take_stamps` has the stamps of the requests they answer, as after
        :meth:`receive_batch`.

        Raises:
            trio.ClosedResourceError: the socket was closed.
        """
        if self._closed:
            raise trio.ClosedResourceError("the ICMP socket is closed")
        stamps = self.transmit_stamps
        if self.reads_error_queue and not stamps:
            self._drain_error_queue()
        while True:
            try:
                batch = self._reader.read(limit)
            except BlockingIOError:
                batch = []
                break
            except OSError:
                if not self.reads_error_queue:
                    raise
                # The pending error of a queued ICMP error, consumed by being returned:
                # its entry is on the error queue, and the data behind it still to read.
                self._drain_error_queue()
                continue
            if batch:
                break
        if stamps:
            # After the datagrams, as receive_batch: the stamps of the requests they answer
            # are queued by now, and so is every ICMP error that came before the read.
            self._drain_error_queue()
        return batch

    def take_errors(self) -> list[icmp.ErrorReport]:
        """The ICMP errors read from the error queue since the last call (only on a socket
        that :attr:`reads_error_queue`); :meth:`receive_batch` returns early for them."""
        errors, self._errors = self._errors, []
        return errors

    def take_stamps(self) -> list[send_stamps.SendStamp]:
        """The transmit stamps read from the error queue since the last call, oldest first
        (only with :attr:`transmit_stamps`). :meth:`receive_batch` reads them after its
        datagrams, so the requests its replies answer have theirs here by then."""
        stamps, self._stamps = self._stamps, []
        return stamps

    def _drain_error_queue(self) -> bool:
        """Move what the error queue holds to :meth:`take_errors` and :meth:`take_stamps`;
        whether any ICMP error came.

        With transmit stamps on, a raw socket's queue must be drained too: it makes the
        socket poll EPOLLERR until empty, and its entries take the receive buffer's room.
        """
        if self._queue is not None:
            stamps, errors = self._queue.drain()
            self._stamps.extend(stamps)
            self._errors.extend(errors)
        return bool(self._errors)

    def decode(self, datagram: Datagram) -> icmp.Message:
        """Parse a datagram with the codec that fits what this kind of socket delivers.

        Raises:
            icmp.MalformedPacket: the packet is not a well-formed ICMP message.
        """
        if self.raw_ipv4:  # the receiver's shortcut takes most replies before this
            return icmp.parse_ipv4(datagram.data)
        if self.family == socket.AF_INET6:
            message = icmp.parse_icmpv6(
                datagram.data, source=datagram.source, hop_limit=datagram.hop_limit
            )
            if len(datagram.source) > 16 and type(message) is icmp.ErrorReport:
                # From a link-local router: the scope goes with the request's link-local
                # destination (the key's address), not with the reporter's address.
                scope = datagram.source[16:]
                destination = message.destination
                if destination[0] == 0xFE and destination[1] & 0xC0 == 0x80:
                    destination += scope
                message = attrs.evolve(
                    message, source=datagram.source[:16], destination=destination
                )
            return message
        return icmp.parse_icmpv4(datagram.data, source=datagram.source, ttl=datagram.hop_limit)

    def close(self) -> None:
        """Wake any task waiting on the socket (it gets ClosedResourceError), then close it."""
        if self._closed:
            return
        self._closed = True
        trio.lowlevel.notify_closing(self._sock)
        self._sock.close()


def _icmp6_filter() -> bytes:
    """A struct icmp6_filter passing only _ICMPV6_WANTED (Linux: a set bit blocks a type)."""
    words = [0xFFFFFFFF] * 8
    for message_type in _ICMPV6_WANTED:
        words[message_type >> 5] &= ~(1 << (message_type & 31))
    return struct.pack("@8I", *words)


def _enlarge_receive_buffer(sock: socket.socket) -> None:
    # SO_RCVBUFFORCE passes net.core.rmem_max but needs CAP_NET_ADMIN; SO_RCVBUF is capped.
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER_BYTES)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
