"""Sans-IO ICMP codec: build requests, parse what a socket receives, checksum.

Bytes in, typed messages out, and the reverse. Nothing here touches a socket, a clock or
trio, so every rule about what an ICMP packet means can be tested by feeding bytes.

Addresses are carried as packed bytes (4 for IPv4, 16 for IPv6): the pinger matches on
them per reply, and comparing bytes is cheaper than formatting text.
"""

from __future__ import annotations

import struct
from typing import Final

import attrs

# RFC 792 message types.
ECHO_REPLY: Final = 0
DESTINATION_UNREACHABLE: Final = 3
ECHO_REQUEST: Final = 8
TIME_EXCEEDED: Final = 11
PARAMETER_PROBLEM: Final = 12
TIMESTAMP_REQUEST: Final = 13
TIMESTAMP_REPLY: Final = 14

# RFC 4443 message types.
ICMPV6_DESTINATION_UNREACHABLE: Final = 1
ICMPV6_PACKET_TOO_BIG: Final = 2
ICMPV6_TIME_EXCEEDED: Final = 3
ICMPV6_PARAMETER_PROBLEM: Final = 4
ICMPV6_ECHO_REQUEST: Final = 128
ICMPV6_ECHO_REPLY: Final = 129

IPPROTO_ICMP: Final = 1
IPPROTO_ICMPV6: Final = 58

HEADER_LENGTH: Final = 8
"""Type, code, checksum, identifier, sequence: the part every error quotes (RFC 792)."""

_HEADER = struct.Struct("!BBHHH")
# Of an IPv4 datagram with a 20-byte header: TTL, protocol, source; the ICMP identifier
# and sequence.
_IPV4_ECHO_REPLY = struct.Struct("!8xBB2x4s8xHH")
_TIMESTAMPS = struct.Struct("!III")

# The reasons iputils ping prints, so users see familiar words.
_UNREACHABLE_V4: Final = {
    0: "Destination Net Unreachable",
    1: "Destination Host Unreachable",
    2: "Destination Protocol Unreachable",
    3: "Destination Port Unreachable",
    4: "Frag needed and DF set",
    5: "Source Route Failed",
    6: "Destination Net Unknown",
    7: "Destination Host Unknown",
    8: "Source Host Isolated",
    9: "Destination Net Prohibited",
    10: "Destination Host Prohibited",
    11: "Destination Net Unreachable for Type of Service",
    12: "Destination Host Unreachable for Type of Service",
    13: "Packet filtered",
    14: "Precedence Violation",
    15: "Precedence Cutoff",
}
_TIME_EXCEEDED_V4: Final = {0: "Time to live exceeded", 1: "Frag reassembly time exceeded"}
_UNREACHABLE_V6: Final = {
    0: "No route",
    1: "Administratively prohibited",
    2: "Beyond scope of source address",
    3: "Address unreachable",
    4: "Port unreachable",
    5: "Source address failed ingress/egress policy",
    6: "Reject route to destination",
}
_TIME_EXCEEDED_V6: Final = {
    0: "Hop limit exceeded in transit",
    1: "Fragment reassembly time exceeded",
}


class MalformedPacket(ValueError):
    """A received packet that cannot be what it claims to be: the peer's fault, not ours."""


# Not frozen, unlike the other messages (the package's rule for values, stated in
# trio_ping/results.py): one is built per received reply, and a frozen attrs class sets
# each field through object.__setattr__ (0.47 us to build against 0.12;
# benchmarks/micro.py: frozen_echo_reply, Python 3.11.7, attrs 26.1). Treat it as
# immutable all the same.
@attrs.define(eq=True)
class EchoReply:
    """An Echo Reply (ICMP type 0, ICMPv6 type 129)."""

    source: bytes
    ttl: int | None
    ident: int
    seq: int
    payload: bytes
    request_type: int = ECHO_REQUEST
    """The type of request this answers (8, or 128 for ICMPv6)."""

    @property
    def fingerprint(self) -> bytes:
        """What must equal the request's fingerprint: the whole payload, echoed back."""
        return self.payload


@attrs.frozen(slots=False)
class TimestampReply:
    """A Timestamp Reply (ICMP type 14): three 32-bit times, ms since midnight UT (RFC 792)."""

    source: bytes
    ttl: int | None
    ident: int
    seq: int
    originate: int
    receive: int
    transmit: int

    @property
    def request_type(self) -> int:
        """The type of request this answers."""
        return TIMESTAMP_REQUEST

    @property
    def fingerprint(self) -> bytes:
        """RFC 792: the originate field is returned as sent, so it identifies our request."""
        return self.originate.to_bytes(4, "big")


@attrs.frozen(slots=False)
class ErrorReport:
    """An ICMP error about one of our probes, attributed through the header it quotes.

    ``source`` is the router (or host) that sent the error; ``destination``,
    ``request_type``, ``ident`` and ``seq`` come from the quoted request; ``quoted_data`` is
    what follows the quoted ICMP header, possibly nothing (RFC 792 only promises 8 bytes).
    """

    source: bytes
    ttl: int | None
    type: int
    code: int
    destination: bytes
    ident: int
    seq: int
    quoted_data: bytes
    reason: str
    request_type: int = ECHO_REQUEST


@attrs.frozen(slots=False)
class Request:
    """An Echo or Timestamp request: on a raw socket we see our own on loopback, and others'."""

    source: bytes
    type: int
    ident: int
    seq: int


@attrs.frozen(slots=False)
class OtherMessage:
    """Any ICMP message a pinger has no use for (redirects, router adverts, ...)."""

    source: bytes
    type: int
    code: int


Message = EchoReply | TimestampReply | ErrorReport | Request | OtherMessage


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``: 0 over a packet that carries a right one.

    The one's complement sum of the 16-bit words is the data, read as one big number,
    modulo 0xFFFF (2**16 is 1 modulo 0xFFFF, so every word counts once, and end-around
    carries come for free), except that a non-zero sum is written 0xFFFF, not 0. One
    big-integer remainder is several times faster in Python than summing the words.
    """
    if len(data) % 2:
        data += b"\0"
    number = int.from_bytes(data, "big")
    total = number % 0xFFFF
    if total == 0 and number:
        total = 0xFFFF
    return ~total & 0xFFFF


def _with_checksum(header_and_body: bytes) -> bytes:
    value = checksum(header_and_body)
    return header_and_body[:2] + value.to_bytes(2, "big") + header_and_body[4:]


def encode_echo_request(ident: int, seq: int, payload: bytes, *, ipv6: bool = False) -> bytes:
    """An Echo Request. For ICMPv6 the checksum stays 0: the kernel fills it (RFC 3542 3.1)."""
    message_type = ICMPV6_ECHO_REQUEST if ipv6 else ECHO_REQUEST
    packet = _HEADER.pack(message_type, 0, 0, ident, seq) + payload
    return packet if ipv6 else _with_checksum(packet)


class EchoRequestTemplate:
    """Echo Requests that differ only in their sequence number: one target's requests.

    ``encode(seq)`` gives the same bytes as :func:`encode_echo_request`, but sums the
    identifier and payload once, here, rather than once per packet: the sequence number
    is added to that sum, as RFC 1624 updates a checksum when one field changes: 0.22 us a
    packet instead of 0.74 (benchmarks/micro.py: echo_template_encode, Python 3.11.7).
    """

    __slots__ = ("_fixed_sum", "_ident", "_ipv6", "_payload", "_type")

    def __init__(self, ident: int, payload: bytes, *, ipv6: bool = False) -> None:
        """Requests with identifier ``ident`` carrying ``payload``; ICMPv6 with ``ipv6``."""
        self._type = ICMPV6_ECHO_REQUEST if ipv6 else ECHO_REQUEST
        self._ident = ident
        self._payload = payload
        self._ipv6 = ipv6
        # One's complement sum (mod 0xFFFF, as in checksum) of the packet with sequence
        # and checksum zero; the type byte makes it non-zero as a number.
        fixed = _HEADER.pack(self._type, 0, 0, ident, 0) + payload
        if len(fixed) % 2:
            fixed += b"\0"
        self._fixed_sum = int.from_bytes(fixed, "big") % 0xFFFF

    def encode(self, seq: int) -> bytes:
        """The request with sequence number ``seq``."""
        if self._ipv6:
            checksum_field = 0
        else:
            # The sequence is the 16-bit word at offset 6: it adds to the sum as it is. A
            # sum of 0 (mod 0xFFFF) over non-zero data is 0xFFFF, whose complement is 0.
            total = (self._fixed_sum + seq) % 0xFFFF
            checksum_field = 0xFFFF - total if total else 0
        return _HEADER.pack(self._type, 0, checksum_field, self._ident, seq) + self._payload


def encode_timestamp_request(ident: int, seq: int, originate: int) -> bytes:
    """A Timestamp Request (RFC 792): receive and transmit are zero, for the peer to fill."""
    packet = _HEADER.pack(TIMESTAMP_REQUEST, 0, 0, ident, seq) + _TIMESTAMPS.pack(originate, 0, 0)
    return _with_checksum(packet)


def parse_ipv4(datagram: bytes) -> Message:
    """Parse an IPv4 datagram as a raw ICMP socket delivers it, IP header included.

    Raises:
        MalformedPacket: too short, not ICMP, or a wrong ICMP checksum.
    """
    echo = echo_reply_ipv4(datagram)
    if echo is not None:
        return EchoReply(*echo)
    if len(datagram) < 20 or datagram[0] >> 4 != 4:
        raise MalformedPacket("not an IPv4 datagram")
    # IHL counts 32-bit words; anything above 5 is IP options, which we step over.
    header_length = (datagram[0] & 0x0F) * 4
    if header_length < 20 or len(datagram) < header_length:
        raise MalformedPacket(f"bad IPv4 header length {header_length}")
    if datagram[9] != IPPROTO_ICMP:
        raise MalformedPacket(f"IP protocol {datagram[9]} is not ICMP")
    return _parse_icmpv4(datagram[header_length:], datagram[12:16], datagram[8])


def echo_reply_ipv4(datagram: bytes) -> tuple[bytes, int, int, int, bytes] | None:
    """The common case of :func:`parse_ipv4`, as a tuple: a well-formed Echo Reply.

    (source, TTL, identifier, sequence, payload) if ``datagram`` is an Echo Reply with a
    right checksum behind a plain 20-byte IPv4 header; else None, and
    :func:`parse_ipv4` tells what it is.

    A tuple, in one ``unpack_from``: the receiver takes most replies this way, without
    an :class:`EchoReply` built for each.
    """
    # Version 4 and IHL 5 make the first byte 0x45; IP options, anything other than an
    # Echo Reply and a bad checksum all go the general way.
    if len(datagram) >= 28 and datagram[0] == 0x45 and datagram[20] == ECHO_REPLY:
        ttl, protocol, source, ident, seq = _IPV4_ECHO_REPLY.unpack_from(datagram)
        if protocol == IPPROTO_ICMP and not checksum(datagram[20:]):
            return source, ttl, ident, seq, datagram[28:]
    return None


def parse_icmpv4(packet: bytes, *, source: bytes, ttl: int | None) -> Message:
    """Parse an ICMP message without its IP header (as ICMP datagram sockets deliver it).

    The checksum is verified here: on loopback and veth the kernel marks packets as
    already verified and hands a corrupt one to a raw socket as it is.
    """
    return _parse_icmpv4(packet, source, ttl)


def _parse_icmpv4(packet: bytes, source: bytes, ttl: int | None) -> Message:
    if len(packet) < HEADER_LENGTH:
        raise MalformedPacket(f"ICMP message of {len(packet)} bytes is truncated")
    if checksum(packet):
        raise MalformedPacket("bad ICMP checksum")
    message_type, code, _, ident, seq = _HEADER.unpack_from(packet)
    if message_type == ECHO_REPLY:
        return EchoReply(source, ttl, ident, seq, packet[HEADER_LENGTH:])
    if message_type == TIMESTAMP_REPLY:
        if len(packet) < HEADER_LENGTH + _TIMESTAMPS.size:
            raise MalformedPacket("Timestamp Reply is truncated")
        originate, receive, transmit = _TIMESTAMPS.unpack_from(packet, HEADER_LENGTH)
        return TimestampReply(source, ttl, ident, seq, originate, receive, transmit)
    if message_type in (ECHO_REQUEST, TIMESTAMP_REQUEST):
        return Request(source, message_type, ident, seq)
    if message_type in (DESTINATION_UNREACHABLE, TIME_EXCEEDED, PARAMETER_PROBLEM):
        return _parse_error_v4(packet, source, ttl)
    return OtherMessage(source, message_type, code)


def _parse_error_v4(packet: bytes, source: bytes, ttl: int | None) -> Message:
    message_type, code = packet[0], packet[1]
    quoted = packet[HEADER_LENGTH:]
    # RFC 792: the error carries the original IP header plus at least 8 bytes of its data.
    if len(quoted) < 20 or quoted[0] >> 4 != 4:
        raise MalformedPacket("ICMP error quotes no IPv4 header")
    quoted_header_length = (quoted[0] & 0x0F) * 4
    inner = quoted[quoted_header_length:]
    if quoted_header_length < 20 or len(inner) < HEADER_LENGTH:
        raise MalformedPacket("ICMP error quotes too little of the original datagram")
    if quoted[9] != IPPROTO_ICMP or inner[0] not in (ECHO_REQUEST, TIMESTAMP_REQUEST):
        # An error about someone's TCP or UDP, or about a reply: not one of our probes.
        return OtherMessage(source, message_type, code)
    request_type, _, _, ident, seq = _HEADER.unpack_from(inner)
    # RFC 1191: a Fragmentation Needed carries the next hop's MTU in the header's last two
    # bytes (zero from routers older than it).
    mtu = int.from_bytes(packet[6:8], "big")
    reason = error_reason(message_type, code, ipv6=False, mtu=mtu)
    destination = quoted[16:20]
    data = inner[HEADER_LENGTH:]
    return ErrorReport(
        source, ttl, message_type, code, destination, ident, seq, data, reason, request_type
    )


def parse_icmpv6(packet: bytes, *, source: bytes, hop_limit: int | None) -> Message:
    """Parse an ICMPv6 message as a raw ICMPv6 socket delivers it (no IPv6 header).

    The kernel has verified the checksum: it is mandatory for ICMPv6 sockets (RFC 3542 3.1),
    and the kernel drops packets that fail it before they reach us.
    """
    if len(packet) < HEADER_LENGTH:
        raise MalformedPacket(f"ICMPv6 message of {len(packet)} bytes is truncated")
    message_type, code, _, ident, seq = _HEADER.unpack_from(packet)
    if message_type == ICMPV6_ECHO_REPLY:
        return EchoReply(source, hop_limit, ident, seq, packet[HEADER_LENGTH:], ICMPV6_ECHO_REQUEST)
    if message_type == ICMPV6_ECHO_REQUEST:
        return Request(source, message_type, ident, seq)
    if message_type in (
        ICMPV6_DESTINATION_UNREACHABLE,
        ICMPV6_PACKET_TOO_BIG,
        ICMPV6_TIME_EXCEEDED,
        ICMPV6_PARAMETER_PROBLEM,
    ):
        return _parse_error_v6(packet, source, hop_limit)
    return OtherMessage(source, message_type, code)


def _parse_error_v6(packet: bytes, source: bytes, hop_limit: int | None) -> Message:
    message_type, code = packet[0], packet[1]
    quoted = packet[HEADER_LENGTH:]
    # RFC 4443 2.4: errors quote as much of the invoking packet as fits in the minimum MTU.
    # Extension headers between the quoted IPv6 header and ICMPv6 are not followed: our
    # requests carry none.
    if len(quoted) < 40 + HEADER_LENGTH or quoted[0] >> 4 != 6:
        raise MalformedPacket("ICMPv6 error quotes no IPv6 header and ICMPv6 header")
    inner = quoted[40:]
    if quoted[6] != IPPROTO_ICMPV6 or inner[0] != ICMPV6_ECHO_REQUEST:
        return OtherMessage(source, message_type, code)
    _, _, _, ident, seq = _HEADER.unpack_from(inner)
    # RFC 4443 3.2: a Packet Too Big carries the next hop's MTU in the 32 bits after the
    # checksum.
    mtu = int.from_bytes(packet[4:8], "big")
    reason = error_reason(message_type, code, ipv6=True, mtu=mtu)
    destination = quoted[24:40]
    data = inner[HEADER_LENGTH:]
    return ErrorReport(
        source, hop_limit, message_type, code, destination, ident, seq, data, reason, inner[0]
    )


def error_reason(message_type: int, code: int, *, ipv6: bool, mtu: int = 0) -> str:
    """What iputils ping says for an ICMP (or, with ``ipv6``, ICMPv6) error type and code.

    ``mtu`` is the next hop's MTU that a Fragmentation Needed or a Packet Too Big reports
    (0 when it reports none).
    """
    if ipv6:
        if message_type == ICMPV6_DESTINATION_UNREACHABLE:
            return _UNREACHABLE_V6.get(code, f"Destination Unreachable, code {code}")
        if message_type == ICMPV6_TIME_EXCEEDED:
            return _TIME_EXCEEDED_V6.get(code, f"Time Exceeded, code {code}")
        if message_type == ICMPV6_PACKET_TOO_BIG:
            return f"Packet too big: mtu={mtu}" if mtu else "Packet too big"
        if message_type == ICMPV6_PARAMETER_PROBLEM:
            return f"Parameter Problem, code {code}"
        return f"ICMPv6 error type {message_type}, code {code}"
    if message_type == DESTINATION_UNREACHABLE:
        reason = _UNREACHABLE_V4.get(code, f"Destination Unreachable, code {code}")
        return f"{reason} (mtu = {mtu})" if code == 4 and mtu else reason
    if message_type == TIME_EXCEEDED:
        return _TIME_EXCEEDED_V4.get(code, f"Time Exceeded, code {code}")
    if message_type == PARAMETER_PROBLEM:
        return f"Parameter Problem, code {code}"
    return f"ICMP error type {message_type}, code {code}"


def queued_error_report(
    *,
    ipv6: bool,
    message_type: int,
    code: int,
    info: int,
    reporter: bytes,
    destination: bytes,
    quoted: bytes,
) -> ErrorReport:
    """An ICMP error the kernel queued on a socket (Linux's ``IP_RECVERR`` error queue),
    as the same :class:`ErrorReport` a raw socket's parser gives.

    The kernel has already matched the error to the socket and parsed it: it gives the
    type and code, ``info`` (the MTU of a Fragmentation Needed or Packet Too Big), the
    reporting router, the request's destination, and ``quoted``, the request's ICMP
    message as it left (header first, with the identifier the kernel wrote).

    Raises:
        MalformedPacket: ``quoted`` is shorter than an ICMP header.
    """
    if len(quoted) < HEADER_LENGTH:
        raise MalformedPacket("queued ICMP error quotes no ICMP header")
    request_type, _, _, ident, seq = _HEADER.unpack_from(quoted)
    reason = error_reason(message_type, code, ipv6=ipv6, mtu=info)
    return ErrorReport(
        reporter,
        None,
        message_type,
        code,
        destination,
        ident,
        seq,
        quoted[HEADER_LENGTH:],
        reason,
        request_type,
    )
