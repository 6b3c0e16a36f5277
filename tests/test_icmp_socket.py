"""The socket layer's pure parts: kernel timestamps and hop limits from ancillary data,
and the ICMPv6 filter."""

from __future__ import annotations

import socket
import struct
import time

from trio_ping import icmp
from trio_ping.icmp_socket import SO_TIMESTAMPNS, _icmp6_filter, datagram_from

STAMP = struct.Struct("@qq")


def test_kernel_timestamp_is_converted_to_nanoseconds_since_the_epoch() -> None:
    ancillary = [(socket.SOL_SOCKET, SO_TIMESTAMPNS, STAMP.pack(1_795_000_000, 123_456_789))]
    datagram = datagram_from(b"data", "10.202.0.1", ancillary)
    assert datagram.timestamp_ns == 1_795_000_000_123_456_789
    assert datagram.kernel_timestamp
    assert (datagram.data, datagram.address, datagram.hop_limit) == (b"data", "10.202.0.1", None)


def test_without_a_kernel_stamp_the_time_now_stands_in_and_says_so() -> None:
    before = time.time_ns()
    datagram = datagram_from(b"data", "10.202.0.1", [])
    after = time.time_ns()
    assert before <= datagram.timestamp_ns <= after
    assert not datagram.kernel_timestamp


def test_hop_limit_and_ttl_come_from_ancillary_data() -> None:
    hop_limit = (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, (57).to_bytes(4, "little"))
    ttl = (socket.IPPROTO_IP, socket.IP_TTL, (63).to_bytes(4, "little"))
    assert datagram_from(b"", "fd00:202::1", [hop_limit]).hop_limit == 57
    assert datagram_from(b"", "10.202.0.1", [ttl]).hop_limit == 63


def test_icmpv6_filter_passes_replies_and_errors_only() -> None:
    words = struct.unpack("@8I", _icmp6_filter())

    def blocked(message_type: int) -> bool:  # Linux: a set bit blocks the type
        return bool(words[message_type >> 5] & (1 << (message_type & 31)))

    passed = [message_type for message_type in range(256) if not blocked(message_type)]
    assert passed == sorted(
        [
            icmp.ICMPV6_DESTINATION_UNREACHABLE,
            icmp.ICMPV6_PACKET_TOO_BIG,
            icmp.ICMPV6_TIME_EXCEEDED,
            icmp.ICMPV6_PARAMETER_PROBLEM,
            icmp.ICMPV6_ECHO_REPLY,
        ]
    )
