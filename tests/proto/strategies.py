"""What the property tests share: hypothesis settings, and ICMP datagrams to feed the codec
(valid ones of every kind it parses, and mutations of them)."""

from __future__ import annotations

import struct

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings

from tests.lab import packets
from trio_ping._proto import icmp

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

MESSAGE_TYPES = (
    icmp.EchoReply,
    icmp.TimestampReply,
    icmp.ErrorReport,
    icmp.Request,
    icmp.OtherMessage,
)

SOURCE = "192.0.2.1"
LOCAL = "192.0.2.100"
SOURCE6 = packets.packed("2001:db8::1")

idents = st.integers(0, 0xFFFF)
payloads = st.binary(max_size=120)


def parse_ipv4_or_malformed(data: bytes) -> icmp.Message | None:
    try:
        message = icmp.parse_ipv4(data)
    except icmp.MalformedPacket:
        return None
    assert isinstance(message, MESSAGE_TYPES)
    return message


def fix_icmp_checksum(datagram: bytes) -> bytes:
    """Recompute the ICMP checksum where the (possibly mutated) IHL says ICMP starts."""
    header_length = (datagram[0] & 0x0F) * 4 if datagram else 0
    if header_length < 20 or len(datagram) < header_length + 4:
        return datagram
    head, packet = datagram[:header_length], datagram[header_length:]
    packet = packet[:2] + b"\0\0" + packet[4:]
    return head + packet[:2] + icmp.checksum(packet).to_bytes(2, "big") + packet[4:]


# Valid datagrams of every kind the parser knows, to mutate ---------------------------------


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return icmp.encode_echo_request(draw(idents), draw(idents), draw(payloads))
    return icmp.encode_timestamp_request(
        draw(idents), draw(idents), draw(st.integers(0, 2**32 - 1))
    )


ip_options = st.sampled_from([b"", b"\x01\x01\x01\x01", b"\x07\x07\x04" + bytes(5), bytes(40)])


@st.composite
def valid_datagrams(draw: st.DrawFn, *, short_quotes: bool = False) -> bytes:
    """A datagram the parser must accept; with ``short_quotes``, errors may quote too little."""
    kind = draw(st.sampled_from(["reply", "timestamp", "request", "error", "udp-error", "other"]))
    options = draw(ip_options)
    if kind == "reply":
        body = packets.echo_reply(draw(idents), draw(idents), draw(payloads))
    elif kind == "timestamp":
        times = draw(st.lists(st.integers(0, 2**32 - 1), min_size=3, max_size=3))
        body = packets.timestamp_reply(draw(idents), draw(idents), *times)
    elif kind == "request":
        body = draw(requests())
    elif kind in ("error", "udp-error"):
        inner = draw(requests()) if kind == "error" else struct.pack("!HHHH", 1, 2, 8, 0)
        protocol = icmp.IPPROTO_ICMP if kind == "error" else 17
        original = packets.ipv4_datagram(
            LOCAL, SOURCE, inner, options=draw(ip_options), protocol=protocol
        )
        message_type = draw(
            st.sampled_from(
                [icmp.DESTINATION_UNREACHABLE, icmp.TIME_EXCEEDED, icmp.PARAMETER_PROBLEM]
            )
        )
        least = 0 if short_quotes else (original[0] & 0x0F) * 4 + 8
        quote = draw(st.integers(least, len(original)))
        body = packets.error_quoting(message_type, draw(st.integers(0, 255)), original, quote)
    else:
        # Any type whose body has no required structure (errors and Timestamp Replies do).
        message_type = draw(st.integers(0, 255).filter(lambda t: t not in (3, 11, 12, 14)))
        body = packets.icmp_message(
            message_type, draw(st.integers(0, 255)), bytes(4), draw(payloads)
        )
    return packets.ipv4_datagram(SOURCE, LOCAL, body, options=options)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete"]))
        if operation == "truncate":
            del data[draw(st.integers(0, len(data))) :]
        elif operation == "insert":
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif data:
            at = draw(st.integers(0, len(data) - 1))
            if operation == "flip":
                data[at] ^= 1 << draw(st.integers(0, 7))
            elif operation == "set":
                data[at] = draw(st.integers(0, 255))
            else:
                del data[at]
    # Most mutations break the checksum; fixing it lets them reach the deeper parsing.
    return fix_icmp_checksum(bytes(data)) if draw(st.booleans()) else bytes(data)
