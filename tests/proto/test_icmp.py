"""The sans-IO codec against known byte vectors: checksum, encode, parse, and what it rejects."""

from __future__ import annotations

import struct

import pytest

from tests.lab import packets
from trio_ping._proto import icmp

TARGET = "192.0.2.1"
LOCAL = "192.0.2.100"
ROUTER = "198.51.100.254"
IDENT = 0x1234


def request_datagram(seq: int = 3, payload: bytes = b"cookie-and-padding") -> bytes:
    """Our Echo Request as it left us, IP header included: what an ICMP error quotes."""
    request = icmp.encode_echo_request(IDENT, seq, payload)
    return packets.ipv4_datagram(LOCAL, TARGET, request)


def from_router(error: bytes) -> bytes:
    """An ICMP error as the router sends it back to us."""
    return packets.ipv4_datagram(ROUTER, LOCAL, error, ttl=250)


def ipv6_header(source: str, destination: str, payload_length: int, next_header: int) -> bytes:
    """A fixed IPv6 header (RFC 8200 3), as ICMPv6 errors quote it."""
    return (
        struct.pack("!IHBB", 6 << 28, payload_length, next_header, 64)
        + packets.packed(source)
        + packets.packed(destination)
    )


def with_fixed_checksum(packet: bytes) -> bytes:
    """``packet`` with its ICMP checksum recomputed, so a parser gets past the checksum."""
    zeroed = packet[:2] + b"\0\0" + packet[4:]
    return zeroed[:2] + icmp.checksum(zeroed).to_bytes(2, "big") + zeroed[4:]


# Checksum --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # RFC 1071 section 3: the one's complement sum of these bytes is 0xddf2.
        (bytes.fromhex("0001f203f4f5f6f7"), 0x220D),
        # The end-around carry: 0xffff + 0xffff = 0x1fffe folds to 0xffff.
        (bytes.fromhex("ffffffff"), 0x0000),
        (b"", 0xFFFF),
        # Odd length: the last byte is the high half of a word padded with zero (RFC 1071).
        (b"\x01", 0xFEFF),
        (bytes.fromhex("0001f2"), 0x0DFE),
        (bytes.fromhex("0001f203f4f5f6f7aa"), 0x780C),
    ],
)
def test_checksum_known_vectors(data: bytes, expected: int) -> None:
    assert icmp.checksum(data) == expected


def test_checksum_over_a_packet_that_carries_it_is_zero() -> None:
    packet = bytes.fromhex("0001f203f4f5f6f7")
    with_sum = packet + icmp.checksum(packet).to_bytes(2, "big")
    assert icmp.checksum(with_sum) == 0


@pytest.mark.parametrize(
    ("originate", "expected_checksum"),
    [(0x00000001, 0x5794), (0x00F0B0E0, 0xA5C4)],
)
def test_timestamp_request_known_vectors(originate: int, expected_checksum: int) -> None:
    packet = icmp.encode_timestamp_request(0x9B69, 1, originate)
    assert packet == (
        bytes.fromhex("0d00")
        + expected_checksum.to_bytes(2, "big")
        + bytes.fromhex("9b690001")
        + originate.to_bytes(4, "big")
        + bytes(8)
    )
    assert icmp.checksum(packet) == 0


# Encoding --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"", "0800e5ca12340001"),
        # Odd payload: padded with a zero byte for the sum only, not on the wire.
        (b"\x01", "0800e4ca1234000101"),
    ],
)
def test_echo_request_known_bytes(payload: bytes, expected: str) -> None:
    assert icmp.encode_echo_request(0x1234, 1, payload) == bytes.fromhex(expected)


def test_icmpv6_echo_request_leaves_the_checksum_to_the_kernel() -> None:
    packet = icmp.encode_echo_request(0xBEEF, 9, b"abc", ipv6=True)
    assert packet == bytes([icmp.ICMPV6_ECHO_REQUEST, 0, 0, 0]) + bytes.fromhex("beef0009") + b"abc"


@pytest.mark.parametrize("payload", [b"", b"x", b"even", bytes(range(56)), bytes(range(255))])
def test_echo_request_round_trips_through_parse_ipv4_as_a_request(payload: bytes) -> None:
    datagram = packets.ipv4_datagram(TARGET, LOCAL, icmp.encode_echo_request(0xFFFF, 0, payload))
    assert icmp.parse_ipv4(datagram) == icmp.Request(
        packets.packed(TARGET), icmp.ECHO_REQUEST, 0xFFFF, 0
    )


@pytest.mark.parametrize("payload", [b"", b"x", bytes(range(56))])
def test_echo_reply_to_an_encoded_request_round_trips(payload: bytes) -> None:
    request = icmp.encode_echo_request(0xABCD, 65535, payload)
    datagram = packets.ipv4_datagram(TARGET, LOCAL, packets.echo_reply_for(request), ttl=57)
    message = icmp.parse_ipv4(datagram)
    assert message == icmp.EchoReply(packets.packed(TARGET), 57, 0xABCD, 65535, payload)
    assert isinstance(message, icmp.EchoReply)
    assert message.fingerprint == payload
    assert message.request_type == icmp.ECHO_REQUEST


# Parsing IPv4 ----------------------------------------------------------------------------


def test_parse_echo_reply() -> None:
    datagram = packets.ipv4_datagram(TARGET, LOCAL, packets.echo_reply(IDENT, 7, b"hello"), ttl=63)
    assert icmp.parse_ipv4(datagram) == icmp.EchoReply(
        source=packets.packed(TARGET), ttl=63, ident=IDENT, seq=7, payload=b"hello"
    )


def test_parse_icmpv4_without_ip_header_as_datagram_sockets_deliver() -> None:
    message = icmp.parse_icmpv4(
        packets.echo_reply(IDENT, 1, b"p"), source=packets.packed(TARGET), ttl=None
    )
    assert message == icmp.EchoReply(packets.packed(TARGET), None, IDENT, 1, b"p")


def test_parse_timestamp_reply() -> None:
    reply = packets.timestamp_reply(0x9B69, 1, 0x00F0B0E0, 86_399_999, 0x80000005)
    message = icmp.parse_ipv4(packets.ipv4_datagram(TARGET, LOCAL, reply, ttl=64))
    assert message == icmp.TimestampReply(
        packets.packed(TARGET), 64, 0x9B69, 1, 0x00F0B0E0, 86_399_999, 0x80000005
    )
    assert isinstance(message, icmp.TimestampReply)
    assert message.fingerprint == bytes.fromhex("00f0b0e0")
    assert message.request_type == icmp.TIMESTAMP_REQUEST


@pytest.mark.parametrize(
    ("packet", "expected_type"),
    [
        (icmp.encode_echo_request(IDENT, 4, b"payload"), icmp.ECHO_REQUEST),
        (icmp.encode_timestamp_request(IDENT, 4, 12345), icmp.TIMESTAMP_REQUEST),
    ],
)
def test_our_own_request_reflected_is_a_request(packet: bytes, expected_type: int) -> None:
    message = icmp.parse_ipv4(packets.ipv4_datagram(LOCAL, LOCAL, packet))
    assert message == icmp.Request(packets.packed(LOCAL), expected_type, IDENT, 4)


@pytest.mark.parametrize(
    ("message_type", "code", "reason"),
    [
        (icmp.DESTINATION_UNREACHABLE, 0, "Destination Net Unreachable"),
        (icmp.DESTINATION_UNREACHABLE, 1, "Destination Host Unreachable"),
        (icmp.DESTINATION_UNREACHABLE, 13, "Packet filtered"),
        (icmp.DESTINATION_UNREACHABLE, 99, "Destination Unreachable, code 99"),
        (icmp.TIME_EXCEEDED, 0, "Time to live exceeded"),
        (icmp.TIME_EXCEEDED, 1, "Frag reassembly time exceeded"),
        (icmp.TIME_EXCEEDED, 7, "Time Exceeded, code 7"),
        (icmp.PARAMETER_PROBLEM, 0, "Parameter Problem, code 0"),
    ],
)
@pytest.mark.parametrize("quote", [28, 576])
def test_error_quoting_our_request(message_type: int, code: int, reason: str, quote: int) -> None:
    payload = b"cookie-and-padding"
    error = packets.error_quoting(message_type, code, request_datagram(5, payload), quote)
    message = icmp.parse_ipv4(from_router(error))
    # With RFC 792's minimum (IP header + 8 bytes) nothing of the payload is quoted.
    quoted_data = payload if quote > 28 else b""
    assert message == icmp.ErrorReport(
        source=packets.packed(ROUTER),
        ttl=250,
        type=message_type,
        code=code,
        destination=packets.packed(TARGET),
        ident=IDENT,
        seq=5,
        quoted_data=quoted_data,
        reason=reason,
        request_type=icmp.ECHO_REQUEST,
    )


def test_error_with_a_partial_quote_keeps_what_it_quotes() -> None:
    error = packets.error_quoting(icmp.DESTINATION_UNREACHABLE, 1, request_datagram(), quote=32)
    message = icmp.parse_ipv4(from_router(error))
    assert isinstance(message, icmp.ErrorReport)
    assert message.quoted_data == b"cook"


def test_error_quoting_a_timestamp_request() -> None:
    original = packets.ipv4_datagram(LOCAL, TARGET, icmp.encode_timestamp_request(IDENT, 2, 777))
    error = packets.error_quoting(icmp.TIME_EXCEEDED, 0, original, quote=len(original))
    message = icmp.parse_ipv4(from_router(error))
    assert isinstance(message, icmp.ErrorReport)
    assert (message.ident, message.seq, message.reason) == (IDENT, 2, "Time to live exceeded")
    assert message.request_type == icmp.TIMESTAMP_REQUEST
    assert message.quoted_data == struct.pack("!III", 777, 0, 0)


def test_error_quoting_a_request_with_ip_options() -> None:
    request = icmp.encode_echo_request(IDENT, 8, b"data")
    original = packets.ipv4_datagram(LOCAL, TARGET, request, options=b"\x01\x01\x01\x01")
    error = packets.error_quoting(icmp.DESTINATION_UNREACHABLE, 3, original, quote=len(original))
    message = icmp.parse_ipv4(from_router(error))
    assert isinstance(message, icmp.ErrorReport)
    assert (message.destination, message.ident, message.seq, message.quoted_data) == (
        packets.packed(TARGET),
        IDENT,
        8,
        b"data",
    )


@pytest.mark.parametrize(
    "original",
    [
        # Someone's UDP datagram: an error about it is no probe of ours.
        packets.ipv4_datagram(LOCAL, TARGET, struct.pack("!HHHH", 5353, 53, 8, 0), protocol=17),
        # An error about an Echo Reply (ours to someone else's request).
        packets.ipv4_datagram(LOCAL, TARGET, packets.echo_reply(IDENT, 1, b"x")),
    ],
    ids=["udp", "echo-reply"],
)
def test_error_not_about_a_request_is_other_message(original: bytes) -> None:
    error = packets.error_quoting(icmp.DESTINATION_UNREACHABLE, 3, original)
    assert icmp.parse_ipv4(from_router(error)) == icmp.OtherMessage(
        packets.packed(ROUTER), icmp.DESTINATION_UNREACHABLE, 3
    )


def test_unknown_message_type_is_other_message() -> None:
    redirect = packets.icmp_message(5, 1, packets.packed(ROUTER), request_datagram()[:28])
    assert icmp.parse_ipv4(from_router(redirect)) == icmp.OtherMessage(packets.packed(ROUTER), 5, 1)


@pytest.mark.parametrize("options", [b"\x01" * 4, b"\x01" * 40, b"\x94\x04\x00\x00"])
def test_echo_reply_with_ip_options(options: bytes) -> None:
    datagram = packets.ipv4_datagram(
        TARGET, LOCAL, packets.echo_reply(IDENT, 2, b"opt"), options=options
    )
    assert datagram[0] & 0x0F == 5 + len(options) // 4
    assert icmp.parse_ipv4(datagram) == icmp.EchoReply(packets.packed(TARGET), 64, IDENT, 2, b"opt")


# Rejections ------------------------------------------------------------------------------


def _reply_datagram() -> bytes:
    return packets.ipv4_datagram(TARGET, LOCAL, packets.echo_reply(IDENT, 1, b"abcdefgh"))


def _set_ihl(datagram: bytes, ihl: int) -> bytes:
    return bytes([0x40 | ihl]) + datagram[1:]


@pytest.mark.parametrize(
    "datagram",
    [
        pytest.param(b"", id="empty"),
        pytest.param(_reply_datagram()[:19], id="short-ip-header"),
        pytest.param(_reply_datagram()[:27], id="short-icmp-header"),
        pytest.param(_reply_datagram()[:20], id="no-icmp"),
        pytest.param(bytes([0x60]) + _reply_datagram()[1:], id="version-6"),
        pytest.param(_set_ihl(_reply_datagram(), 4), id="ihl-below-5"),
        pytest.param(_set_ihl(_reply_datagram()[:40], 15), id="ihl-beyond-datagram"),
        # The ICMP checksum covers the payload: cutting it off breaks the sum.
        pytest.param(_reply_datagram()[:-1], id="truncated-payload"),
        pytest.param(
            packets.ipv4_datagram(
                TARGET, LOCAL, with_fixed_checksum(packets.timestamp_reply(1, 1, 2, 3, 4)[:16])
            ),
            id="truncated-timestamp-reply",
        ),
        pytest.param(
            from_router(
                packets.error_quoting(icmp.DESTINATION_UNREACHABLE, 1, request_datagram(), 19)
            ),
            id="error-quoting-no-ip-header",
        ),
        pytest.param(
            from_router(
                packets.error_quoting(icmp.DESTINATION_UNREACHABLE, 1, request_datagram(), 27)
            ),
            id="error-quoting-7-bytes",
        ),
        pytest.param(
            from_router(
                packets.icmp_message(
                    icmp.TIME_EXCEEDED, 0, bytes(4), bytes([0x60]) + request_datagram()[1:]
                )
            ),
            id="error-quoting-ipv6-in-ipv4",
        ),
        pytest.param(
            from_router(
                packets.icmp_message(
                    icmp.TIME_EXCEEDED, 0, bytes(4), _set_ihl(request_datagram(), 3)
                )
            ),
            id="error-quoting-ihl-below-5",
        ),
    ],
)
def test_malformed_datagrams_raise(datagram: bytes) -> None:
    with pytest.raises(icmp.MalformedPacket):
        icmp.parse_ipv4(datagram)


@pytest.mark.parametrize("position", [20, 21, 24, 27, 28, 35])
def test_bad_checksum_raises(position: int) -> None:
    datagram = bytearray(_reply_datagram())
    datagram[position] ^= 0x01
    with pytest.raises(icmp.MalformedPacket, match="checksum"):
        icmp.parse_ipv4(bytes(datagram))


@pytest.mark.parametrize("protocol", [6, 17, 58])
def test_non_icmp_protocol_raises(protocol: int) -> None:
    datagram = packets.ipv4_datagram(
        TARGET, LOCAL, packets.echo_reply(IDENT, 1, b""), protocol=protocol
    )
    with pytest.raises(icmp.MalformedPacket, match=f"protocol {protocol} is not ICMP"):
        icmp.parse_ipv4(datagram)


# ICMPv6 ----------------------------------------------------------------------------------

TARGET6 = "2001:db8::1"
LOCAL6 = "2001:db8::100"
ROUTER6 = "2001:db8::fe"


def icmpv6(message_type: int, code: int, rest_of_header: bytes, body: bytes) -> bytes:
    """An ICMPv6 message; the checksum is not checked by the parser (the kernel did that)."""
    return bytes([message_type, code, 0xAB, 0xCD]) + rest_of_header + body


def test_parse_icmpv6_echo_reply() -> None:
    packet = icmpv6(icmp.ICMPV6_ECHO_REPLY, 0, struct.pack("!HH", IDENT, 9), b"payload")
    message = icmp.parse_icmpv6(packet, source=packets.packed(TARGET6), hop_limit=61)
    assert isinstance(message, icmp.EchoReply)
    assert (message.source, message.ttl, message.ident, message.seq, message.payload) == (
        packets.packed(TARGET6),
        61,
        IDENT,
        9,
        b"payload",
    )
    assert message.fingerprint == b"payload"


def test_parse_icmpv6_echo_reply_answers_an_icmpv6_echo_request() -> None:
    packet = icmpv6(icmp.ICMPV6_ECHO_REPLY, 0, struct.pack("!HH", IDENT, 9), b"payload")
    message = icmp.parse_icmpv6(packet, source=packets.packed(TARGET6), hop_limit=61)
    assert isinstance(message, icmp.EchoReply)
    assert message.request_type == icmp.ICMPV6_ECHO_REQUEST


def test_parse_icmpv6_echo_request_is_a_request() -> None:
    packet = icmp.encode_echo_request(IDENT, 1, b"x", ipv6=True)
    assert icmp.parse_icmpv6(packet, source=packets.packed(LOCAL6), hop_limit=None) == (
        icmp.Request(packets.packed(LOCAL6), icmp.ICMPV6_ECHO_REQUEST, IDENT, 1)
    )


def _quoted_request6(payload: bytes = b"cookie") -> bytes:
    request = icmp.encode_echo_request(IDENT, 6, payload, ipv6=True)
    return ipv6_header(LOCAL6, TARGET6, len(request), icmp.IPPROTO_ICMPV6) + request


@pytest.mark.parametrize(
    ("message_type", "code", "reason"),
    [
        (icmp.ICMPV6_DESTINATION_UNREACHABLE, 3, "Address unreachable"),
        (icmp.ICMPV6_DESTINATION_UNREACHABLE, 0, "No route"),
        (icmp.ICMPV6_DESTINATION_UNREACHABLE, 42, "Destination Unreachable, code 42"),
        (icmp.ICMPV6_TIME_EXCEEDED, 0, "Hop limit exceeded in transit"),
        (icmp.ICMPV6_TIME_EXCEEDED, 9, "Time Exceeded, code 9"),
        (icmp.ICMPV6_PACKET_TOO_BIG, 0, "Packet too big"),
        (icmp.ICMPV6_PARAMETER_PROBLEM, 1, "Parameter Problem, code 1"),
    ],
)
def test_parse_icmpv6_error_quoting_our_request(message_type: int, code: int, reason: str) -> None:
    packet = icmpv6(message_type, code, bytes(4), _quoted_request6())
    assert icmp.parse_icmpv6(packet, source=packets.packed(ROUTER6), hop_limit=255) == (
        icmp.ErrorReport(
            source=packets.packed(ROUTER6),
            ttl=255,
            type=message_type,
            code=code,
            destination=packets.packed(TARGET6),
            ident=IDENT,
            seq=6,
            quoted_data=b"cookie",
            reason=reason,
            request_type=icmp.ICMPV6_ECHO_REQUEST,
        )
    )


def test_parse_icmpv6_error_about_udp_is_other_message() -> None:
    udp = struct.pack("!HHHH", 5353, 53, 8, 0)
    quoted = ipv6_header(LOCAL6, TARGET6, len(udp), 17) + udp
    packet = icmpv6(icmp.ICMPV6_DESTINATION_UNREACHABLE, 4, bytes(4), quoted)
    assert icmp.parse_icmpv6(packet, source=packets.packed(ROUTER6), hop_limit=1) == (
        icmp.OtherMessage(packets.packed(ROUTER6), icmp.ICMPV6_DESTINATION_UNREACHABLE, 4)
    )


def test_parse_icmpv6_unknown_type_is_other_message() -> None:
    neighbour_solicitation = icmpv6(135, 0, bytes(4), packets.packed(TARGET6))
    assert icmp.parse_icmpv6(
        neighbour_solicitation, source=packets.packed(ROUTER6), hop_limit=255
    ) == icmp.OtherMessage(packets.packed(ROUTER6), 135, 0)


@pytest.mark.parametrize(
    "packet",
    [
        pytest.param(b"", id="empty"),
        pytest.param(icmpv6(icmp.ICMPV6_ECHO_REPLY, 0, b"\0\1", b""), id="short-header"),
        pytest.param(
            icmpv6(icmp.ICMPV6_TIME_EXCEEDED, 0, bytes(4), _quoted_request6()[:47]),
            id="error-quoting-7-bytes",
        ),
        pytest.param(
            icmpv6(icmp.ICMPV6_TIME_EXCEEDED, 0, bytes(4), b"\x45" + _quoted_request6()[1:]),
            id="error-quoting-ipv4",
        ),
    ],
)
def test_parse_icmpv6_malformed_raises(packet: bytes) -> None:
    with pytest.raises(icmp.MalformedPacket):
        icmp.parse_icmpv6(packet, source=packets.packed(ROUTER6), hop_limit=None)
