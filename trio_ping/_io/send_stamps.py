"""Kernel software transmit timestamps (``SO_TIMESTAMPING``), read from the error queue.

With :data:`TX_FLAGS` set on an ICMP socket (raw or datagram, IPv4 or IPv6), the kernel
queues on the socket's error queue, for every packet sent, one entry per stamp: the
entry has no payload (``OPT_TSONLY``) and three control messages, in this order
(verified on Linux 6.18 over veth and loopback):

- ``SO_TIMESTAMPNS``: the stamp again (skb->tstamp), because the socket asks for
  receive stamps that way (``sock_recv_timestamp``, net/socket.c);
- ``SCM_TIMESTAMPING``: three timespecs, the software stamp first (CLOCK_REALTIME, from
  ``__skb_tstamp_tx`` in net/core/skbuff.c), the other two zero (hardware);
- ``IP_RECVERR`` / ``IPV6_RECVERR``: a ``struct sock_extended_err`` with ee_errno ENOMSG,
  ee_origin ``SO_EE_ORIGIN_TIMESTAMPING``, ee_info the stamp's kind
  (:data:`SCM_TSTAMP_SCHED` or :data:`SCM_TSTAMP_SND`), ee_data the ``OPT_ID`` key
  (``__skb_complete_tx_timestamp``).

Which stamp is the truth. ``SCM_TSTAMP_SCHED`` is taken in ``__dev_queue_xmit``
(net/core/dev.c) as the packet enters the device's queueing layer; ``SCM_TSTAMP_SND``
when the driver hands it to the device (``skb_tx_timestamp`` in its ndo_start_xmit:
``veth_xmit`` in drivers/net/veth.c and ``loopback_xmit`` in drivers/net/loopback.c
both call it on this kernel). SND is later and closer to the wire (on veth 0.5 to 4 us
after SCHED, measured), so it is preferred; SCHED stands in for devices whose driver
gives none. On veth and loopback (noqueue, no qdisc) both are queued inside the
``sendto`` call itself, SCHED first.

SND first. A socket asks for SND alone (:data:`TX_FLAGS`): one entry a request instead
of two, which halves what the stamps cost (measured at 5,000 x 10 with the whole CLI,
``python -m benchmarks.cpu_stamps``: see docs/performance.md). SCHED is asked
for (:data:`QUEUE_FLAGS`, the option set again) only on a socket whose requests came
back answered without a driver's stamp (the engine decides: trio_ping/_engine/engine.py).

The key (``OPT_ID``, ee_data): a u32 per socket, 0 for the first packet sent after the
option is first set (``sock_set_timestamping``; setting it again while ``OPT_ID`` is
already on keeps the count), one more per successful send, wrapping at 2**32. A send
that fails (ENETUNREACH at the route lookup, or a datagram socket's pending ICMP error
returned by the next send) takes no key. Both stamps of one packet carry its key.

Why these flags. ``OPT_TSONLY``: the kernel loops no copy of the packet, and an
unprivileged process gets its stamps even where ``net.core.tstamp_allow_data`` is 0
(without it, ``skb_may_tx_timestamp`` drops them silently). ``OPT_RX_FILTER`` with no
``RX_SOFTWARE``: received packets keep only their ``SO_TIMESTAMPNS`` control message
(``__sock_recv_timestamp``), so the recvmmsg reader's buffers and fast path
(trio_ping/_io/datagrams.py) stay as they are; a kernel that does not know the flag
refuses the whole option with EINVAL, and :func:`enable` then says stamps are
unavailable. No privilege is needed for any of them.

Limits: the error queue counts against the socket's receive buffer
(``sock_queue_err_skb``): a stamp that does not fit is dropped without a trace, and so
is a reply that finds the buffer full of stamps. Measured: 832 bytes of the buffer a
stamp entry (as much as an IPv4 reply), so the pinger's 16 MB (32 MB as the kernel
counts it) holds 13,443 requests' stamps and replies; at 20,000 requests a second left
undrained for 1 s, 6,557 of 20,000 lost both stamps and replies; drained every 0.5 s,
none. Where the buffer filled between a packet's two stamps, SCHED came without SND.
On a datagram socket, ICMP errors about our requests share the queue
(trio_ping/_io/error_queue.py): :meth:`ErrorQueueReader.drain` returns both.

Cost: 3.8 to 5.5 us a request, user + sys, about 1.6 us of it in user space
(``python -m benchmarks.micro_stamps``, Python 3.11.7, the 2-core lab VM).
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Iterable
from typing import Final, NamedTuple

from trio_ping._addresses import is_link_local
from trio_ping._io import error_queue
from trio_ping._io.datagrams import (
    HEADER_SIZE,
    NAME_SIZE,
    SO_TIMESTAMPNS,
    Mmsghdr,
    Msghdr,
    RecvmmsgSlots,
)
from trio_ping._proto import icmp

_SIN6_SCOPE: Final = slice(24, 28)
"""sin6_scope_id in a struct sockaddr_in6 (after family, port, flowinfo and the address)."""

# linux/net_tstamp.h, asm-generic/socket.h (SO_TIMESTAMPING_OLD: 64-bit time_t on every
# 64-bit architecture) and linux/errqueue.h; Python 3.11 exports none of them.
SO_TIMESTAMPING: Final = 37
SCM_TIMESTAMPING: Final = SO_TIMESTAMPING
SOF_TIMESTAMPING_TX_SOFTWARE: Final = 1 << 1
SOF_TIMESTAMPING_RX_SOFTWARE: Final = 1 << 3
SOF_TIMESTAMPING_SOFTWARE: Final = 1 << 4
SOF_TIMESTAMPING_OPT_ID: Final = 1 << 7
SOF_TIMESTAMPING_TX_SCHED: Final = 1 << 8
SOF_TIMESTAMPING_OPT_TSONLY: Final = 1 << 11
SOF_TIMESTAMPING_OPT_RX_FILTER: Final = 1 << 17
SO_EE_ORIGIN_TIMESTAMPING: Final = 4
SCM_TSTAMP_SND: Final = 0
"""The driver handed the packet to the device (``skb_tx_timestamp``)."""
SCM_TSTAMP_SCHED: Final = 1
"""The packet entered the device's queueing layer (``__dev_queue_xmit``)."""

TX_FLAGS: Final = (
    SOF_TIMESTAMPING_TX_SOFTWARE
    | SOF_TIMESTAMPING_SOFTWARE
    | SOF_TIMESTAMPING_OPT_ID
    | SOF_TIMESTAMPING_OPT_TSONLY
    | SOF_TIMESTAMPING_OPT_RX_FILTER
)
"""What :func:`enable` sets by default: the driver's software transmit stamp (SND),
reported with a key, no packet copy, and no change to what received packets carry."""
QUEUE_FLAGS: Final = TX_FLAGS | SOF_TIMESTAMPING_TX_SCHED
""":data:`TX_FLAGS` and the queueing layer's stamp (SCHED), for a device whose driver
gives none. Setting these where :data:`TX_FLAGS` were set keeps the key count (``OPT_ID``
stays on: ``sock_set_timestamping`` resets it only when the flag was off)."""

KEY_MODULUS: Final = 1 << 32
"""The ``OPT_ID`` key is a u32: it wraps here."""

CAPACITY: Final = 128
"""Entries one recvmmsg call can return (one a packet; two with :data:`QUEUE_FLAGS` where
the device gives both)."""
DRAIN_BOUND: Final = 4096
"""At most this many entries a drain: the rest wait for the next wake-up (the queue keeps
the socket polling EPOLLERR), so a flood cannot hold up the other tasks."""
_QUOTED_SIZE: Final = 2048  # an ICMP error's quoted request (datagram sockets only)
_CONTROL_SIZE: Final = 256  # 144 (IPv4) or 160 (IPv6) for a stamp; the same for an error
_MSG_DONTWAIT: Final = 0x40
_MSG_CTRUNC: Final = 0x08


class SendStamp(NamedTuple):
    """One transmit stamp of one packet."""

    key: int
    """The packet's ``OPT_ID`` key: its place among the socket's sends, from 0, mod 2**32."""
    kind: int
    """:data:`SCM_TSTAMP_SND` or :data:`SCM_TSTAMP_SCHED`."""
    stamp_ns: int
    """ns since the epoch, CLOCK_REALTIME (the clock of the receive stamps)."""


_new_tuple = tuple.__new__
_CMSG_HEADER: Final = struct.Struct("@Nii")
_CMSG_DATA: Final = socket.CMSG_LEN(0)
_TIMESPEC: Final = struct.Struct("@qq")
_EXTENDED: Final = struct.Struct("@IBBBBII")


def _stamp_layout(ipv6: bool) -> tuple[struct.Struct, int]:
    """The control data of a stamp entry as this module's socket gets it, as one struct:
    SO_TIMESTAMPNS, SCM_TIMESTAMPING, then IP(V6)_RECVERR with the offender after it."""
    pad = _CMSG_DATA - _CMSG_HEADER.size
    offender = 28 if ipv6 else 16
    recverr = socket.CMSG_SPACE(_EXTENDED.size + offender)
    layout = struct.Struct(
        f"@Nii{pad}x{_TIMESPEC.size}x"  # SO_TIMESTAMPNS: the same stamp, skipped
        f"Nii{pad}xqq32x"  # SCM_TIMESTAMPING: the software stamp, two hardware ones
        f"Nii{pad}xIBBBBII{recverr - _CMSG_DATA - _EXTENDED.size}x"
    )
    return layout, layout.size


def _expected(ipv6: bool) -> tuple[int, int, int, int, int, int]:
    """The (level, type) of the three control messages of :func:`_stamp_layout`."""
    if ipv6:
        return (*_RECEIVE_STAMP, *_TX_STAMP, socket.IPPROTO_IPV6, error_queue.IPV6_RECVERR)
    return (*_RECEIVE_STAMP, *_TX_STAMP, socket.IPPROTO_IP, error_queue.IP_RECVERR)


_RECEIVE_STAMP: Final = (socket.SOL_SOCKET, SO_TIMESTAMPNS)
_TX_STAMP: Final = (socket.SOL_SOCKET, SCM_TIMESTAMPING)
_LAYOUT4, _LAYOUT4_SIZE = _stamp_layout(ipv6=False)
_LAYOUT6, _LAYOUT6_SIZE = _stamp_layout(ipv6=True)


# Where the fields of _stamp_layout land in its unpacked tuple (the levels and types of
# its messages are at 1, 2, 4, 5, 9 and 10).
_SECONDS, _NANOSECONDS, _ORIGIN, _INFO, _KEY = 6, 7, 12, 16, 17


def _stamp_from_fields(
    fields: tuple[int, ...], expected: tuple[int, int, int, int, int, int]
) -> SendStamp | None:
    """The stamp in control data unpacked with :func:`_stamp_layout`; None if its three
    messages are not those, or the entry is not a stamp (an ICMP error has the same)."""
    if (
        fields[1],
        fields[2],
        fields[4],
        fields[5],
        fields[9],
        fields[10],
    ) != expected or fields[_ORIGIN] != SO_EE_ORIGIN_TIMESTAMPING:
        return None
    stamp_ns = fields[_SECONDS] * 1_000_000_000 + fields[_NANOSECONDS]
    result: SendStamp = _new_tuple(SendStamp, (fields[_KEY], fields[_INFO], stamp_ns))
    return result


def enable(sock: socket.socket, flags: int = TX_FLAGS) -> bool:
    """Ask for transmit stamps on ``sock`` (``flags``: :data:`TX_FLAGS` or
    :data:`QUEUE_FLAGS`); whether the kernel agreed.

    False means this kernel cannot give them without changing what received packets
    carry (it refused the flags with EINVAL or ENOPROTOOPT): measure send times in user
    space instead. The first packet sent afterwards has key 0 unless stamps were on.
    """
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, flags)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOPROTOOPT):
            return False
        raise
    return True


def restart_keys(sock: socket.socket, flags: int = TX_FLAGS) -> None:
    """Have the kernel count ``OPT_ID`` keys from 0 again, for the next packet sent:
    setting the option with ``OPT_ID`` where it was off resets the count
    (``sock_set_timestamping``), so it is set once without and once with (``flags``, what
    the socket had)."""
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, flags & ~SOF_TIMESTAMPING_OPT_ID)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, flags)


def parse_stamp(control: bytes, *, ipv6: bool) -> SendStamp | None:
    """The transmit stamp in one error-queue entry's control data (struct cmsghdr, one
    after another), or None if the entry is not a whole timestamping entry (an ICMP error,
    a local error, or control data cut short)."""
    layout, size = (_LAYOUT6, _LAYOUT6_SIZE) if ipv6 else (_LAYOUT4, _LAYOUT4_SIZE)
    level = socket.IPPROTO_IPV6 if ipv6 else socket.IPPROTO_IP
    kind = error_queue.IPV6_RECVERR if ipv6 else error_queue.IP_RECVERR
    if len(control) == size:  # the layout this module's sockets get: one unpack
        stamp = _stamp_from_fields(layout.unpack(control), _expected(ipv6))
        if stamp is not None:
            return stamp
    stamp_ns: int | None = None
    extended: tuple[int, int, int] | None = None
    offset = 0
    while offset + _CMSG_HEADER.size <= len(control):
        length, c_level, c_kind = _CMSG_HEADER.unpack_from(control, offset)
        if length < _CMSG_DATA or offset + length > len(control):
            break  # cut short (MSG_CTRUNC) or malformed
        start, end = offset + _CMSG_DATA, offset + length
        if c_level == socket.SOL_SOCKET and c_kind == SCM_TIMESTAMPING:
            if end - start >= _TIMESPEC.size:
                seconds, nanoseconds = _TIMESPEC.unpack_from(control, start)
                stamp_ns = seconds * 1_000_000_000 + nanoseconds
        elif c_level == level and c_kind == kind and end - start >= _EXTENDED.size:
            _, origin, _, _, _, info, key = _EXTENDED.unpack_from(control, start)
            extended = (origin, info, key)
        offset += socket.CMSG_SPACE(length - _CMSG_DATA)
    if stamp_ns is None or extended is None or extended[0] != SO_EE_ORIGIN_TIMESTAMPING:
        return None
    return SendStamp(extended[2], extended[1], stamp_ns)


def best_stamps(stamps: Iterable[SendStamp]) -> dict[int, SendStamp]:
    """The stamp to believe for each key: the driver's (SND) over the queueing layer's
    (SCHED), whatever order they come in."""
    best: dict[int, SendStamp] = {}
    for stamp in stamps:
        held = best.get(stamp.key)
        if held is None or (held.kind != SCM_TSTAMP_SND and stamp.kind == SCM_TSTAMP_SND):
            best[stamp.key] = stamp
    return best


# What the kernel writes back into each mmsghdr: namelen, controllen, flags, length.
_RESULT: Final = struct.Struct(
    f"@{Msghdr.namelen.offset}xI"
    f"{Msghdr.controllen.offset - Msghdr.namelen.offset - 4}xNi"
    f"{Mmsghdr.length.offset - Msghdr.flags.offset - 4}xI"
)


class ErrorQueueReader:
    """Drains one socket's error queue, up to :data:`CAPACITY` entries a system call
    (recvmmsg with ``MSG_ERRQUEUE``): transmit stamps and, on a datagram socket with
    ``IP_RECVERR``, ICMP errors.

    Owns its buffers: one reader per socket, used by one task at a time.
    """

    def __init__(self, sock: socket.socket) -> None:
        """Read ``sock``'s error queue (AF_INET or AF_INET6); its blocking mode does not
        matter."""
        self._ipv6 = sock.family == socket.AF_INET6
        # Only a datagram socket with IP_RECVERR queues ICMP errors, whose quoted request
        # we need; a stamp has no payload (OPT_TSONLY) and a raw socket gets nothing else.
        quoted = _QUOTED_SIZE if sock.type == socket.SOCK_DGRAM else 0
        self._quoted_size = quoted
        self._slots = RecvmmsgSlots(sock, CAPACITY, quoted, _CONTROL_SIZE, names=True)

    def drain(self, bound: int = DRAIN_BOUND) -> tuple[list[SendStamp], list[icmp.ErrorReport]]:
        """What the error queue holds now (up to about ``bound`` entries), oldest first:
        the transmit stamps and the ICMP errors. Never blocks.

        Entries that are neither (local errors, which the failed send reported already)
        are dropped, as are ones the kernel cut short.

        Raises:
            OSError: the kernel refused the read (not EAGAIN, which ends the drain).
        """
        stamps: list[SendStamp] = []
        errors: list[icmp.ErrorReport] = []
        read = 0
        while read < bound:
            count = self._read_once()
            read += count
            self._parse(count, stamps, errors)
            if count < CAPACITY:
                break
        return stamps, errors

    def _read_once(self) -> int:
        try:
            return self._slots.receive(CAPACITY, error_queue.MSG_ERRQUEUE | _MSG_DONTWAIT)
        except BlockingIOError:
            return 0

    def _parse(self, count: int, stamps: list[SendStamp], errors: list[icmp.ErrorReport]) -> None:
        ipv6 = self._ipv6
        layout, size = (_LAYOUT6, _LAYOUT6_SIZE) if ipv6 else (_LAYOUT4, _LAYOUT4_SIZE)
        unpack_stamp = layout.unpack_from
        expected = _expected(ipv6)
        from_fields = _stamp_from_fields
        unpack_result = _RESULT.unpack_from
        headers, control = self._slots.header_view, self._slots.control_view
        append = stamps.append
        for slot in range(count):
            namelen, control_size, flags, length = unpack_result(headers, slot * HEADER_SIZE)
            at = slot * _CONTROL_SIZE
            if control_size == size and not flags & _MSG_CTRUNC:
                stamp = from_fields(unpack_stamp(control, at), expected)
                if stamp is not None:
                    append(stamp)
                    continue
            raw = control[at : at + control_size].tobytes()
            stamp = parse_stamp(raw, ipv6=ipv6)
            if stamp is not None:
                append(stamp)
                continue
            report = self._error_report(slot, namelen, length, control_size)
            if report is not None:
                errors.append(report)

    def _error_report(
        self, slot: int, namelen: int, length: int, control_size: int
    ) -> icmp.ErrorReport | None:
        """The ICMP error in one slot (see trio_ping/_io/error_queue.py), or None."""
        ipv6 = self._ipv6
        origin = error_queue.SO_EE_ORIGIN_ICMP6 if ipv6 else error_queue.SO_EE_ORIGIN_ICMP
        level = socket.IPPROTO_IPV6 if ipv6 else socket.IPPROTO_IP
        kind = error_queue.IPV6_RECVERR if ipv6 else error_queue.IP_RECVERR
        name_at = slot * NAME_SIZE
        where = slice(name_at + 8, name_at + 24) if ipv6 else slice(name_at + 4, name_at + 8)
        if namelen < where.stop - name_at:
            return None  # an ICMP error always names the request's destination
        slots = self._slots
        destination = slots.names_view[where].tobytes()
        if ipv6 and is_link_local(destination) and namelen >= _SIN6_SCOPE.stop:
            # As Datagram.source and the tracker's keys have it: with the link's scope.
            scope = slice(name_at + _SIN6_SCOPE.start, name_at + _SIN6_SCOPE.stop)
            destination += slots.names_view[scope].tobytes()
        at = slot * _CONTROL_SIZE
        control = slots.control_view[at : at + control_size].tobytes()
        quoted_at = slot * max(self._quoted_size, 1)
        quoted = slots.data_view[quoted_at : quoted_at + min(length, self._quoted_size)].tobytes()
        offset = 0
        while offset + _CMSG_HEADER.size <= len(control):
            c_length, c_level, c_kind = _CMSG_HEADER.unpack_from(control, offset)
            if c_length < _CMSG_DATA or offset + c_length > len(control):
                break
            if c_level == level and c_kind == kind:
                error = error_queue.parse_extended_error(
                    control[offset + _CMSG_DATA : offset + c_length], ipv6=ipv6
                )
                if error is None or error.origin != origin:
                    return None
                try:
                    return icmp.queued_error_report(
                        ipv6=ipv6,
                        message_type=error.type,
                        code=error.code,
                        info=error.info,
                        reporter=error.reporter or destination[:16],
                        destination=destination,
                        quoted=quoted,
                    )
                except icmp.MalformedPacket:
                    return None
            offset += socket.CMSG_SPACE(c_length - _CMSG_DATA)
        return None
