"""The kernel's error queue: ICMP errors about what an ICMP datagram socket sent.

An ICMP datagram ("ping") socket never receives ICMP errors as packets: the kernel
matches each error to the socket that sent the request it quotes and, when the socket
has ``IP_RECVERR`` (``IPV6_RECVERR``) set, queues it on the socket's error queue
(``ping_err`` in net/ipv4/ping.c); without the option it drops it. Reading it:
``recvmsg(MSG_ERRQUEUE)`` gives the request's ICMP message as it left (header first, with
the identifier the kernel wrote), the request's destination as the message's address,
and a control message holding a ``struct sock_extended_err`` (linux/errqueue.h) followed
by the address of the router that reported it (``SO_EE_OFFENDER``).

Two kernel facts the reader relies on: a queued error makes the socket poll with
``EPOLLERR`` until the queue is empty, so a reader that does not drain it is woken again
and again; and the kernel also sets the socket's pending error (``sk_err``), which the
next ordinary receive returns once as an ``OSError`` (EHOSTUNREACH, ...) instead of data.

This module has the option and the kernel's structures; the one reader of the queue,
for ICMP errors and transmit stamps alike, is ``send_stamps.ErrorQueueReader``.
"""

from __future__ import annotations

import socket
import struct
import sys
from typing import Final

import attrs

# linux/in.h, linux/in6.h and linux/errqueue.h; Python 3.11 exports none of them.
IP_RECVERR: Final = 11
IPV6_RECVERR: Final = 25
MSG_ERRQUEUE: Final = 0x2000
SO_EE_ORIGIN_ICMP: Final = 2
SO_EE_ORIGIN_ICMP6: Final = 3

# struct sock_extended_err: ee_errno (u32), ee_origin, ee_type, ee_code, ee_pad (u8 each),
# ee_info, ee_data (u32); the offender's struct sockaddr follows it.
_EXTENDED_ERROR: Final = struct.Struct("@IBBBBII")
_SOCKADDR_IN_ADDRESS: Final = slice(4, 8)  # sin_family (2), sin_port (2), sin_addr (4)
_SOCKADDR_IN6_ADDRESS: Final = slice(8, 24)  # ... sin6_flowinfo (4), sin6_addr (16)


@attrs.frozen
class ExtendedError:
    """One ``struct sock_extended_err`` and the address of whoever reported it."""

    errno: int
    origin: int
    type: int
    code: int
    info: int
    """For an ICMP error, the MTU a Fragmentation Needed or Packet Too Big reports."""
    reporter: bytes | None
    """The router's address, packed; None when the kernel gives none."""


def enable(sock: socket.socket) -> None:
    """Have the kernel queue ICMP errors about ``sock``'s requests on its error queue."""
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
    else:
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)


def parse_extended_error(data: bytes, *, ipv6: bool) -> ExtendedError | None:
    """An ``IP_RECVERR`` / ``IPV6_RECVERR`` control message's data, or None if it is cut
    short."""
    if len(data) < _EXTENDED_ERROR.size:
        return None
    number, origin, message_type, code, _, info, _ = _EXTENDED_ERROR.unpack_from(data)
    offender = data[_EXTENDED_ERROR.size :]
    where = _SOCKADDR_IN6_ADDRESS if ipv6 else _SOCKADDR_IN_ADDRESS
    family = socket.AF_INET6 if ipv6 else socket.AF_INET
    reporter = None
    if len(offender) >= where.stop and int.from_bytes(offender[:2], sys.byteorder) == family:
        reporter = offender[where]
    return ExtendedError(number, origin, message_type, code, info, reporter)
