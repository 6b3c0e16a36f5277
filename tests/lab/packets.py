"""Packets as a peer would send them: IPv4 datagrams with chosen headers, ICMP replies, errors.

Used by the unit tests' fake socket and by the lab's misbehaving responder, so both speak
exactly the bytes a real network would.
"""

from __future__ import annotations

import functools
import ipaddress
import struct

from trio_ping._proto import icmp

_ICMP_HEADER = struct.Struct("!BBHHH")


@functools.cache  # the fake socket asks for every datagram: ipaddress's parse is slow
def packed(address: str) -> bytes:
    """An IP address in text as network-order bytes."""
    return ipaddress.ip_address(address).packed


def ipv4_datagram(
    source: str,
    destination: str,
    payload: bytes,
    *,
    ttl: int = 64,
    options: bytes = b"",
    protocol: int = icmp.IPPROTO_ICMP,
    ident: int = 0,
) -> bytes:
    """An IPv4 datagram; ``options`` (padded to 32-bit words) make IHL larger than 5."""
    options += b"\0" * (-len(options) % 4)
    header_length = 20 + len(options)
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | header_length // 4,
        0,
        header_length + len(payload),
        ident,
        0,
        ttl,
        protocol,
        0,
        packed(source),
        packed(destination),
    )
    header += options
    header = header[:10] + icmp.checksum(header).to_bytes(2, "big") + header[12:]
    return header + payload


def icmp_message(message_type: int, code: int, rest_of_header: bytes, body: bytes) -> bytes:
    """An ICMP message with a correct checksum; ``rest_of_header`` is its 4 bytes after it."""
    packet = bytes([message_type, code, 0, 0]) + rest_of_header + body
    return packet[:2] + icmp.checksum(packet).to_bytes(2, "big") + packet[4:]


def echo_reply(ident: int, seq: int, payload: bytes) -> bytes:
    """An ICMP Echo Reply."""
    return icmp_message(icmp.ECHO_REPLY, 0, struct.pack("!HH", ident, seq), payload)


def echo_reply_for(request: bytes) -> bytes:
    """The Echo Reply a correct host sends for an ICMP Echo Request (no IP header)."""
    _, _, _, ident, seq = _ICMP_HEADER.unpack_from(request)
    return echo_reply(ident, seq, request[8:])


def timestamp_reply(ident: int, seq: int, originate: int, receive: int, transmit: int) -> bytes:
    """An ICMP Timestamp Reply."""
    body = struct.pack("!III", originate, receive, transmit)
    return icmp_message(icmp.TIMESTAMP_REPLY, 0, struct.pack("!HH", ident, seq), body)


def error_quoting(message_type: int, code: int, original_datagram: bytes, quote: int = 28) -> bytes:
    """An ICMP error quoting the first ``quote`` bytes of ``original_datagram`` (IP header on).

    28 is RFC 792's minimum: the IP header and 8 bytes of its data. Linux quotes up to 576.
    """
    return icmp_message(message_type, code, b"\0\0\0\0", original_datagram[:quote])
