"""The error queue's records, from the bytes the kernel writes (linux/errqueue.h)."""

from __future__ import annotations

import socket
import struct

import pytest

from tests.lab import packets
from trio_ping._io import error_queue
from trio_ping._proto import icmp

ROUTER = "198.51.100.254"
ROUTER6 = "2001:db8:ffff::1"


def _extended(origin: int, message_type: int, code: int, info: int, offender: bytes) -> bytes:
    return struct.pack("@IBBBBII", 113, origin, message_type, code, 0, info, 0) + offender


def _sockaddr_in(address: str) -> bytes:
    return struct.pack("<H", socket.AF_INET) + bytes(2) + packets.packed(address) + bytes(8)


def _sockaddr_in6(address: str) -> bytes:
    return struct.pack("<H", socket.AF_INET6) + bytes(6) + packets.packed(address) + bytes(4)


def test_an_ipv4_record_names_the_router() -> None:
    data = _extended(error_queue.SO_EE_ORIGIN_ICMP, 3, 4, 1280, _sockaddr_in(ROUTER))
    assert error_queue.parse_extended_error(data, ipv6=False) == error_queue.ExtendedError(
        113, error_queue.SO_EE_ORIGIN_ICMP, 3, 4, 1280, packets.packed(ROUTER)
    )


def test_an_ipv6_record_names_the_router() -> None:
    data = _extended(error_queue.SO_EE_ORIGIN_ICMP6, 2, 0, 1280, _sockaddr_in6(ROUTER6))
    parsed = error_queue.parse_extended_error(data, ipv6=True)
    assert parsed is not None
    assert (parsed.type, parsed.info, parsed.reporter) == (2, 1280, packets.packed(ROUTER6))


def test_a_record_without_an_offender_has_no_reporter() -> None:
    data = _extended(error_queue.SO_EE_ORIGIN_ICMP, 3, 1, 0, bytes(16))
    parsed = error_queue.parse_extended_error(data, ipv6=False)
    assert parsed is not None
    assert parsed.reporter is None


def test_a_record_cut_short_is_none() -> None:
    data = _extended(error_queue.SO_EE_ORIGIN_ICMP, 3, 1, 0, b"")
    assert error_queue.parse_extended_error(data[:-1], ipv6=False) is None


@pytest.mark.parametrize(
    ("ipv6", "message_type", "code", "info", "reason"),
    [
        (False, icmp.DESTINATION_UNREACHABLE, 1, 0, "Destination Host Unreachable"),
        (False, icmp.DESTINATION_UNREACHABLE, 4, 1280, "Frag needed and DF set (mtu = 1280)"),
        (False, icmp.TIME_EXCEEDED, 0, 0, "Time to live exceeded"),
        (True, icmp.ICMPV6_DESTINATION_UNREACHABLE, 0, 0, "No route"),
        (True, icmp.ICMPV6_PACKET_TOO_BIG, 0, 1280, "Packet too big: mtu=1280"),
        (True, icmp.ICMPV6_TIME_EXCEEDED, 0, 0, "Hop limit exceeded in transit"),
    ],
)
def test_a_queued_error_becomes_the_report_a_raw_socket_gives(
    ipv6: bool, message_type: int, code: int, info: int, reason: str
) -> None:
    request = icmp.encode_echo_request(0x1234, 7, b"cookie-and-more", ipv6=ipv6)
    report = icmp.queued_error_report(
        ipv6=ipv6,
        message_type=message_type,
        code=code,
        info=info,
        reporter=b"R" * (16 if ipv6 else 4),
        destination=b"D" * (16 if ipv6 else 4),
        quoted=request,
    )
    assert report == icmp.ErrorReport(
        b"R" * (16 if ipv6 else 4),
        None,
        message_type,
        code,
        b"D" * (16 if ipv6 else 4),
        0x1234,
        7,
        b"cookie-and-more",
        reason,
        request[0],
    )


def test_a_queued_error_quoting_less_than_a_header_is_malformed() -> None:
    with pytest.raises(icmp.MalformedPacket):
        icmp.queued_error_report(
            ipv6=False,
            message_type=3,
            code=1,
            info=0,
            reporter=b"RRRR",
            destination=b"DDDD",
            quoted=b"\x08\x00\x00",
        )
