"""Target.parse: the ``ADDRESS,COUNT,INTERVAL_MS`` contract, every form it takes or refuses."""

from __future__ import annotations

import ipaddress
import socket

import hypothesis.strategies as st
import pytest
from hypothesis import given

from tests.proto.strategies import FUZZ
from trio_ping._addresses import normalised, parse_ip
from trio_ping.cli.targets import MAX_COUNT, MAX_INTERVAL_MS, Target, TargetError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.1.1.1,3,1000", Target("1.1.1.1", "1.1.1.1", 3, 1000)),
        ("127.0.0.1,1,1", Target("127.0.0.1", "127.0.0.1", 1, 1)),
        ("10.0.0.1,10,1000", Target("10.0.0.1", "10.0.0.1", MAX_COUNT, MAX_INTERVAL_MS)),
        (" 192.0.2.1 , 3 , 100 ", Target("192.0.2.1", "192.0.2.1", 3, 100)),
        ("\t192.0.2.1,\t3\t,100\t", Target("192.0.2.1", "192.0.2.1", 3, 100)),
        ("192.0.2.1,3,100\r", Target("192.0.2.1", "192.0.2.1", 3, 100)),
        ("192.0.2.1,3,100\r\n", Target("192.0.2.1", "192.0.2.1", 3, 100)),
        ("192.0.2.1,3,100\n", Target("192.0.2.1", "192.0.2.1", 3, 100)),
        ("255.255.255.255,1,1", Target("255.255.255.255", "255.255.255.255", 1, 1)),
        ("0.0.0.0,1,1", Target("0.0.0.0", "0.0.0.0", 1, 1)),
        # IPv6 literals are normalised; host names wait for the resolver.
        ("::1,1,1", Target("::1", "::1", 1, 1)),
        ("FD00:202::0001,2,5", Target("FD00:202::0001", "fd00:202::1", 2, 5)),
        ("::ffff:192.0.2.1,1,1", Target("::ffff:192.0.2.1", "::ffff:192.0.2.1", 1, 1)),
        ("localhost,3,100", Target("localhost", None, 3, 100)),
        ("example.com,3,100", Target("example.com", None, 3, 100)),
        ("example.com.,3,100", Target("example.com.", None, 3, 100)),
        ("my-host_1.example,1,1", Target("my-host_1.example", None, 1, 1)),
    ],
)
def test_valid_targets(text: str, expected: Target) -> None:
    assert Target.parse(text) == expected


def test_fields_are_normalised_to_plain_values() -> None:
    target = Target.parse("  203.0.113.9 ,\t7,  250 \r")
    assert (target.host, target.address) == ("203.0.113.9", "203.0.113.9")
    assert (type(target.count), type(target.interval_ms)) == (int, int)
    assert (target.count, target.interval_ms) == (7, 250)


def _count(text: str) -> str:
    return f"count must be a whole number from 1 to 10, got {text!r}"


def _interval(text: str) -> str:
    return f"interval must be a whole number from 1 to 1000 ms, got {text!r}"


def _address(text: str) -> str:
    return (
        "address must be an IPv4 or IPv6 address or a host name, such as 192.0.2.1, "
        f"2001:db8::1 or example.net, got {text!r}"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # COUNT: a whole number 1..10, ASCII digits only.
        ("192.0.2.1,0,100", _count("0")),
        ("192.0.2.1,11,100", _count("11")),
        ("192.0.2.1,1_0,100", _count("1_0")),
        ("192.0.2.1,+3,100", _count("+3")),
        ("192.0.2.1,-1,100", _count("-1")),
        ("192.0.2.1,abc,100", _count("abc")),
        ("192.0.2.1,,100", _count("")),
        ("192.0.2.1,3.0,100", _count("3.0")),
        ("192.0.2.1,1 0,100", _count("1 0")),
        ("192.0.2.1,\u0663,100", _count("\u0663")),  # ARABIC-INDIC DIGIT THREE: int() takes it
        ("192.0.2.1,99999999999999999999,100", _count("99999999999999999999")),
        # INTERVAL_MS: a whole number 1..1000.
        ("192.0.2.1,3,0", _interval("0")),
        ("192.0.2.1,3,1001", _interval("1001")),
        ("192.0.2.1,3,", _interval("")),
        ("192.0.2.1,3,1e3", _interval("1e3")),
        ("192.0.2.1,3,0x10", _interval("0x10")),
        ("192.0.2.1,3,10ms", _interval("10ms")),
        # ADDRESS: strictly an IP address, or a host name that no resolver could mistake
        # for an IPv4 address in an old form (inet_aton reads "1.2.3" as 1.2.0.3).
        ("1.2.3,3,100", _address("1.2.3")),
        ("01.2.3.4,3,100", _address("01.2.3.4")),
        ("256.1.1.1,3,100", _address("256.1.1.1")),
        ("127.1,3,100", _address("127.1")),
        ("1.2.3.4.5,3,100", _address("1.2.3.4.5")),
        ("0x7f,3,100", _address("0x7f")),
        ("10.0.0.256,3,100", _address("10.0.0.256")),
        ("-bad.example,3,100", _address("-bad.example")),
        ("a..b,3,100", _address("a..b")),
        ("fe80::1%,3,100", "'fe80::1%': the zone after '%' must be an interface's name or index"),
        ("192.0.2.1%eth0,3,100", "'192.0.2.1%eth0': an IPv4 address has no zone"),
        (
            f"192.0.2.1%{'e' * 100},3,100",
            f"'192.0.2.1%{'e' * 47}...' (110 characters): an IPv4 address has no zone",
        ),
        (
            "2001:db8::1%eth0,3,100",
            "'2001:db8::1%eth0': a zone is for IPv6 link-local addresses (fe80::/10) only",
        ),
        (
            "fe80::1%eth0%1,3,100",
            "'fe80::1%eth0%1': the zone after '%' must be an interface's name or index",
        ),
        ("1::2::3,3,100", _address("1::2::3")),
        ("host name,3,100", _address("host name")),
        # A label over 63 characters; the quote stops at 57 of the 72.
        (f"{'a' * 64}.example,3,100", _address("")[:-2] + f"'{'a' * 57}...' (72 characters)"),
        ("0x7f.0.0.1,3,100", _address("0x7f.0.0.1")),
        ("192.0.2.1/32,3,100", _address("192.0.2.1/32")),
        (",3,100", _address("")),
    ],
)
def test_rejections_name_the_field_and_quote_it(text: str, message: str) -> None:
    with pytest.raises(TargetError) as caught:
        Target.parse(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected ADDRESS,COUNT,INTERVAL_MS (3 fields), got 1 in ''"),
        ("192.0.2.1", "expected ADDRESS,COUNT,INTERVAL_MS (3 fields), got 1 in '192.0.2.1'"),
        ("192.0.2.1,3", "expected ADDRESS,COUNT,INTERVAL_MS (3 fields), got 2 in '192.0.2.1,3'"),
        (
            " 192.0.2.1,3,100,5 \r\n",
            "expected ADDRESS,COUNT,INTERVAL_MS (3 fields), got 4 in '192.0.2.1,3,100,5'",
        ),
        (
            "192.0.2.1;3;100",
            "expected ADDRESS,COUNT,INTERVAL_MS (3 fields), got 1 in '192.0.2.1;3;100'",
        ),
    ],
)
def test_wrong_field_count(text: str, message: str) -> None:
    with pytest.raises(TargetError) as caught:
        Target.parse(text)
    assert str(caught.value) == message


def test_address_is_checked_before_count_and_interval() -> None:
    with pytest.raises(TargetError, match=r"^address"):
        Target.parse("non sense,0,0")


def test_target_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="count"):
        Target.parse("192.0.2.1,0,1")


# Target parsing ----------------------------------------------------------------------------


@FUZZ
@given(st.text(max_size=40))
def test_target_parse_raises_only_target_error(text: str) -> None:
    try:
        target = Target.parse(text)
    except TargetError as exc:
        message = str(exc)
    else:
        assert 1 <= target.count <= 10
        assert 1 <= target.interval_ms <= 1000
        return
    assert "\n" not in message


@FUZZ
@given(
    st.ip_addresses(v=4),
    st.integers(1, 10),
    st.integers(1, 1000),
    st.sampled_from(["", " ", "\t", "  "]),
    st.sampled_from(["", "\r", "\n", "\r\n"]),
)
def test_target_parse_round_trip(
    address: ipaddress.IPv4Address, count: int, interval: int, space: str, end: str
) -> None:
    text = f"{space}{address}{space},{space}{count},{interval}{space}{end}"
    assert Target.parse(text) == Target(str(address), str(address), count, interval)


# Octets spelled as people mistype them: leading zeros, hex, and out of range.
octet_spellings = st.one_of(
    st.integers(0, 255).map(str),
    st.integers(0, 255).map(lambda n: f"0{n}"),
    st.integers(0, 255).map(hex),
    st.integers(256, 999).map(str),
)


@FUZZ
@given(st.lists(octet_spellings, min_size=3, max_size=5).map(".".join))
def test_an_accepted_ipv4_spelling_is_already_the_normal_one(text: str) -> None:
    # normalised() skips inet_ntop for IPv4, trusting inet_pton to take only the
    # canonical spelling: any other one must be refused.
    ip = parse_ip(text)
    if ip is not None:
        assert normalised(text, *ip) == socket.inet_ntop(*ip) == text


@FUZZ
@given(st.ip_addresses(v=6), st.booleans(), st.booleans())
def test_an_ipv6_address_normalises_however_it_is_spelled(
    address: ipaddress.IPv6Address, upper: bool, exploded: bool
) -> None:
    text = address.exploded if exploded else str(address)
    text = text.upper() if upper else text
    ip = parse_ip(text)
    assert ip is not None
    # Upper case and exploded forms are accepted: passing them through would be wrong.
    assert normalised(text, *ip) == socket.inet_ntop(*ip)


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("fe80::1%eth0,1,1", "fe80::1%eth0"),
        ("FE80:0::0:1%c0,1,1", "fe80::1%c0"),
        ("febf::1%3,1,1", "febf::1%3"),
    ],
)
def test_a_link_local_address_keeps_its_zone(text: str, address: str) -> None:
    # RFC 4007 11: the zone says which link the address is on; it is kept as written,
    # and the address before it normalised.
    assert Target.parse(text).address == address


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "x" * 2_000_000,
            "expected ADDRESS,COUNT,INTERVAL_MS (3 fields), got 1 in "
            f"'{'x' * 57}...' (2,000,000 characters)",
        ),
        (
            "," * 100_000,
            "expected ADDRESS,COUNT,INTERVAL_MS (3 fields), got 100,001 in "
            f"'{',' * 57}...' (100,000 characters)",
        ),
        (f"192.0.2.1,{'9' * 100},10", _count("9" * 57)[:-1] + "...' (100 characters)"),
        (f"{'é' * 61},1,1", _address("é" * 57)[:-1] + "...' (61 characters)"),
        (f"{'a' * 30} {'a' * 29},1,1", _address(f"{'a' * 30} {'a' * 29}")),  # 60: whole
    ],
    ids=["2 MB line", "commas", "long count", "non-ASCII", "exactly 60"],
)
def test_a_long_input_is_quoted_cut_with_an_ellipsis(text: str, message: str) -> None:
    with pytest.raises(TargetError) as raised:
        Target.parse(text)
    assert str(raised.value) == message
    assert len(str(raised.value)) < 200
