"""Property and fuzz tests of the codec (hypothesis).

- Fed arbitrary bytes or valid datagrams mutated at random, it raises nothing but
  ``icmp.MalformedPacket``, and returns only the message types it documents.
- Encoding then parsing gives back what was encoded.
"""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import given

from tests.lab import packets
from tests.proto.strategies import (
    FUZZ,
    LOCAL,
    MESSAGE_TYPES,
    SOURCE,
    SOURCE6,
    fix_icmp_checksum,
    idents,
    ip_options,
    mutated,
    parse_ipv4_or_malformed,
    payloads,
    valid_datagrams,
)
from trio_ping._proto import icmp
from trio_ping._proto.tracker import Probe, Tracker

# The codec never raises anything but MalformedPacket --------------------------------------


@FUZZ
@given(st.binary(max_size=200))
def test_parse_ipv4_on_arbitrary_bytes(data: bytes) -> None:
    parse_ipv4_or_malformed(data)


@FUZZ
@given(st.integers(0x40, 0x4F), st.binary(max_size=120))
def test_parse_ipv4_on_arbitrary_bytes_behind_a_plausible_header(first: int, rest: bytes) -> None:
    data = bytes([first]) + rest[:8] + bytes([icmp.IPPROTO_ICMP]) + rest[8:]
    parse_ipv4_or_malformed(fix_icmp_checksum(data))


@FUZZ
@given(valid_datagrams())
def test_parse_ipv4_on_valid_datagrams(data: bytes) -> None:
    message = parse_ipv4_or_malformed(data)
    assert message is not None
    assert message.source == packets.packed(SOURCE)


@FUZZ
@given(mutated(valid_datagrams(short_quotes=True)))
def test_parse_ipv4_on_mutated_datagrams(data: bytes) -> None:
    parse_ipv4_or_malformed(data)


# The receiver's shortcut for the common Echo Reply agrees with the full parser --------------


@FUZZ
@given(mutated(valid_datagrams()))
def test_echo_reply_shortcut_takes_only_what_the_parser_calls_an_echo_reply(data: bytes) -> None:
    echo = icmp.echo_reply_ipv4(data)
    if echo is not None:
        # Judged apart from the shortcut (which parse_ipv4 itself tries first): the ICMP
        # part alone, checksum included, behind a plain 20-byte IPv4 header.
        assert (data[0], data[9]) == (0x45, icmp.IPPROTO_ICMP)
        general = icmp.parse_icmpv4(data[20:], source=data[12:16], ttl=data[8])
        assert general == icmp.EchoReply(*echo)


@FUZZ
@given(idents, idents, payloads, st.integers(0, 15))
def test_echo_reply_shortcut_refuses_a_wrong_checksum(
    ident: int, seq: int, payload: bytes, bit: int
) -> None:
    data = bytearray(packets.ipv4_datagram(SOURCE, LOCAL, packets.echo_reply(ident, seq, payload)))
    data[22 + bit // 8] ^= 1 << bit % 8  # the ICMP checksum field, and nothing else
    assert icmp.echo_reply_ipv4(bytes(data)) is None
    assert parse_ipv4_or_malformed(bytes(data)) is None


@FUZZ
@given(idents, idents, payloads, st.integers(1, 255))
def test_echo_reply_shortcut_takes_every_plain_echo_reply(
    ident: int, seq: int, payload: bytes, ttl: int
) -> None:
    data = packets.ipv4_datagram(SOURCE, LOCAL, packets.echo_reply(ident, seq, payload), ttl=ttl)
    echo = icmp.echo_reply_ipv4(data)
    assert echo == (packets.packed(SOURCE), ttl, ident, seq, payload)


@FUZZ
@given(st.binary(max_size=200), st.booleans())
def test_parse_icmpv4_on_arbitrary_bytes(data: bytes, fix: bool) -> None:
    if fix and len(data) >= 4:
        data = data[:2] + b"\0\0" + data[4:]
        data = data[:2] + icmp.checksum(data).to_bytes(2, "big") + data[4:]
    try:
        message = icmp.parse_icmpv4(data, source=b"\xc0\0\2\1", ttl=None)
    except icmp.MalformedPacket:
        return
    assert isinstance(message, MESSAGE_TYPES)


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=200),
        # An interesting type first, then anything: errors, echo, and the rest.
        st.tuples(st.sampled_from([1, 2, 3, 4, 128, 129, 135]), st.binary(max_size=120)).map(
            lambda pair: bytes([pair[0]]) + pair[1]
        ),
        # An error quoting an IPv6 header (version 6) and anything after it.
        st.tuples(st.sampled_from([1, 2, 3, 4]), st.binary(min_size=48, max_size=120)).map(
            lambda pair: bytes([pair[0], 0, 0, 0, 0, 0, 0, 0, 0x60]) + pair[1]
        ),
    )
)
def test_parse_icmpv6_on_arbitrary_bytes(data: bytes) -> None:
    try:
        message = icmp.parse_icmpv6(data, source=SOURCE6, hop_limit=64)
    except icmp.MalformedPacket:
        return
    assert isinstance(message, MESSAGE_TYPES)


# Round trips -------------------------------------------------------------------------------


@FUZZ
@given(idents, idents, payloads, ip_options, st.integers(1, 255))
def test_echo_round_trip(ident: int, seq: int, payload: bytes, options: bytes, ttl: int) -> None:
    request = icmp.encode_echo_request(ident, seq, payload)
    assert icmp.checksum(request) == 0
    sent = packets.ipv4_datagram(LOCAL, SOURCE, request, options=options)
    assert icmp.parse_ipv4(sent) == icmp.Request(
        packets.packed(LOCAL), icmp.ECHO_REQUEST, ident, seq
    )
    reply = packets.ipv4_datagram(
        SOURCE, LOCAL, packets.echo_reply_for(request), options=options, ttl=ttl
    )
    assert icmp.parse_ipv4(reply) == icmp.EchoReply(
        packets.packed(SOURCE), ttl, ident, seq, payload
    )


@FUZZ
@given(idents, st.lists(idents, min_size=1, max_size=5), payloads, st.booleans())
def test_echo_template_encodes_what_encode_echo_request_does(
    ident: int, seqs: list[int], payload: bytes, ipv6: bool
) -> None:
    template = icmp.EchoRequestTemplate(ident, payload, ipv6=ipv6)
    for seq in seqs:
        assert template.encode(seq) == icmp.encode_echo_request(ident, seq, payload, ipv6=ipv6)


def test_echo_template_agrees_for_every_sequence_where_the_sum_wraps_to_zero() -> None:
    # 0x0800 (type 8) + 0xF7FF = 0xFFFF: sequence 0 sums to 0 (mod 0xFFFF), the case
    # where the checksum is 0, not 0xFFFF.
    for ident in (0x0000, 0xF7FF, 0xFFFF):
        template = icmp.EchoRequestTemplate(ident, b"")
        for seq in range(0x10000):
            assert template.encode(seq) == icmp.encode_echo_request(ident, seq, b"")


@FUZZ
@given(idents, idents, payloads, st.data())
def test_error_round_trip_quotes_a_prefix_of_the_payload(
    ident: int, seq: int, payload: bytes, data: st.DataObject
) -> None:
    original = packets.ipv4_datagram(
        LOCAL, SOURCE, icmp.encode_echo_request(ident, seq, payload), options=data.draw(ip_options)
    )
    header_length = (original[0] & 0x0F) * 4
    quote = data.draw(st.integers(header_length + 8, len(original)))
    error = packets.error_quoting(icmp.DESTINATION_UNREACHABLE, 1, original, quote)
    message = icmp.parse_ipv4(packets.ipv4_datagram("198.51.100.1", LOCAL, error))
    assert isinstance(message, icmp.ErrorReport)
    assert (message.destination, message.ident, message.seq) == (
        packets.packed(SOURCE),
        ident,
        seq,
    )
    assert message.quoted_data == payload[: quote - header_length - 8]
    # And the tracker accepts it as being about the probe that carried ``payload``.
    tracker: Tracker[None] = Tracker()
    assert message.request_type == icmp.ECHO_REQUEST
    key = (packets.packed(SOURCE), message.request_type, ident, seq)
    tracker.add(key, Probe(None, seq, payload, 0, 0.0, 1.0))
    assert tracker.on_error(key, message.quoted_data) is not None


@FUZZ
@given(idents, idents, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_timestamp_round_trip(ident: int, seq: int, originate: int, other: int) -> None:
    request = icmp.encode_timestamp_request(ident, seq, originate)
    assert icmp.checksum(request) == 0
    assert icmp.parse_icmpv4(request, source=b"\0" * 4, ttl=None) == icmp.Request(
        b"\0" * 4, icmp.TIMESTAMP_REQUEST, ident, seq
    )
    reply = packets.timestamp_reply(ident, seq, originate, other, other ^ 0xFFFF)
    message = icmp.parse_icmpv4(reply, source=b"\0" * 4, ttl=9)
    assert message == icmp.TimestampReply(
        b"\0" * 4, 9, ident, seq, originate, other, other ^ 0xFFFF
    )
    assert isinstance(message, icmp.TimestampReply)
    assert message.fingerprint == request[8:12]


@FUZZ
@given(idents, idents, payloads)
def test_icmpv6_round_trip(ident: int, seq: int, payload: bytes) -> None:
    request = icmp.encode_echo_request(ident, seq, payload, ipv6=True)
    assert icmp.parse_icmpv6(request, source=SOURCE6, hop_limit=None) == icmp.Request(
        SOURCE6, icmp.ICMPV6_ECHO_REQUEST, ident, seq
    )
    reply = bytes([icmp.ICMPV6_ECHO_REPLY]) + request[1:]
    assert icmp.parse_icmpv6(reply, source=SOURCE6, hop_limit=3) == icmp.EchoReply(
        SOURCE6, 3, ident, seq, payload, icmp.ICMPV6_ECHO_REQUEST
    )


@FUZZ
@given(st.binary(max_size=200).filter(lambda data: len(data) % 2 == 0))
def test_checksum_over_data_and_its_checksum_is_zero(data: bytes) -> None:
    assert icmp.checksum(data + icmp.checksum(data).to_bytes(2, "big")) == 0


@FUZZ
@given(st.binary(min_size=1, max_size=200))
def test_checksum_odd_length_is_zero_padded(data: bytes) -> None:
    if len(data) % 2:
        assert icmp.checksum(data) == icmp.checksum(data + b"\0")
