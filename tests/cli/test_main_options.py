"""The per-request and per-socket options (issue 16) through main(argv, env), on fake
sockets: what reaches the socket, what is printed, and how bad values are refused.

Nothing here sends a packet: the sockets are fakes. Checking -S binds a throwaway UDP
socket (no traffic); checking -I asks the kernel for an interface's index.
"""

from __future__ import annotations

import socket
import struct

import pytest

from tests.cli.harness import run_cli
from tests.fakes import Delivery, Sent, reply6_bytes, to_ns
from trio_ping._io.socket_options import MtuDiscovery
from trio_ping.cli.status import ExitStatus

_INT = struct.Struct("@i")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["-s", "65528"],
            "argument -s/--size: must be a whole number from 0 to 65527, got '65528'",
        ),
        (["--size=-1"], "argument -s/--size: must be a whole number from 0 to 65527, got '-1'"),
        (["-s", "0x10"], "argument -s/--size: must be a decimal number of bytes, got '0x10'"),
        (["-t", "0"], "argument -t/--ttl: must be a whole number from 1 to 255, got '0'"),
        (["--ttl", "256"], "argument -t/--ttl: must be a whole number from 1 to 255, got '256'"),
        (["-Q", "256"], "argument -Q/--tos: must be a whole number from 0 to 255, got '256'"),
        (["-Q", "0x100"], "argument -Q/--tos: must be a whole number from 0 to 255, got '0x100'"),
        (["-Q", "0xg"], "argument -Q/--tos: must be a whole number from 0 to 255, got '0xg'"),
        (
            ["-M", "maybe"],
            "argument -M: invalid choice: 'maybe' (choose from 'do', 'dont', 'want')",
        ),
        (["-I", "nosuch0"], "argument -I/--interface: no such interface: 'nosuch0'"),
        (
            ["-S", "192.0.2.254"],
            "argument -S/--source: 192.0.2.254 is not an address of this host",
        ),
        (["-S", "nonsense"], "argument -S/--source: not an IP address: 'nonsense'"),
        (
            ["--timestamp", "-s", "100"],
            "argument -s/--size: does not apply to --timestamp (its size is fixed)",
        ),
    ],
)
def test_a_bad_option_is_one_line_and_nothing_is_sent(arguments: list[str], message: str) -> None:
    outcome = run_cli(*arguments, "127.0.0.1,1,1")
    assert outcome.status == ExitStatus.ERROR
    assert outcome.stderr_lines == [f"trio-ping: {message} (see 'trio-ping --help')"]
    assert outcome.sockets == {}  # refused before any socket was opened


def test_help_lists_every_option_with_its_range() -> None:
    outcome = run_cli("--help")
    assert outcome.status == 0
    text = " ".join(outcome.stdout.split())
    for expected in (
        "-s BYTES, --size BYTES",
        "0..65507 for IPv4, 0..65527 for IPv6 (default 56)",
        "-t N, --ttl N IPv4 TTL / IPv6 hop limit, 1..255",
        "-Q N, --tos N IPv4 TOS byte / IPv6 traffic class, 0..255, decimal or 0x..",
        "-M {do,dont,want}",
        "-I NAME, --interface NAME",
        "-S ADDRESS, --source ADDRESS",
        "-D, --timestamps",
    ):
        assert expected in text


@pytest.mark.parametrize("size", [0, 1, 13, 14, 15, 100, 1472])
@pytest.mark.parametrize("raw", [True, False], ids=["raw", "datagram"])
def test_any_payload_size_is_sent_and_answered(size: int, raw: bool) -> None:
    outcome = run_cli("-s", str(size), "127.0.0.1,2,10", raw=raw)
    assert outcome.status == 0, outcome.stderr
    assert [len(sent.payload) for sent in outcome.sent] == [size, size]
    assert [rtt > 0 for _, _, rtt in outcome.rows()] == [True, True]


def test_a_payload_too_short_to_answer_another_sessions_request_is_told_apart() -> None:
    # Raw socket, 2-byte payloads: the header's identifier and the 2 cookie bytes that fit
    # must match. A reply carrying another run's cookie bytes answers nothing.
    def peer(sent: Sent) -> list[Delivery]:
        from tests.fakes import reply_bytes

        forged = bytes(b ^ 0xFF for b in sent.payload)
        return [Delivery(0.001, reply_bytes(sent, payload=forged), sent.address)]

    outcome = run_cli("-s", "2", "--timeout", "0.2", "127.0.0.1,1,1", peer=peer)
    assert outcome.status == 1
    assert outcome.rows() == [("127.0.0.1", 0, -1)]


def test_two_short_payload_sessions_to_one_address_on_a_datagram_socket() -> None:
    # The kernel owns the header's identifier; 9 bytes cannot carry ours: one at a time.
    outcome = run_cli("-s", "9", "127.0.0.1,1,1", "127.0.0.1,1,1", raw=False)
    assert outcome.status == ExitStatus.ERROR
    [line] = outcome.stderr_lines
    assert line.startswith("trio-ping: argument 2: on an ICMP datagram socket, only one session")
    assert [row[2] > 0 for row in outcome.rows()] == [True]


def test_ttl_and_tos_go_with_each_request_as_ancillary_data() -> None:
    outcome = run_cli("-t", "7", "-Q", "0xb8", "127.0.0.1,2,10", "::1,1,1")
    assert outcome.status == 0, outcome.stderr
    by_family = {sent.address: sent.ancillary for sent in outcome.sent}
    assert by_family["127.0.0.1"] == (
        (socket.IPPROTO_IP, socket.IP_TTL, _INT.pack(7)),
        (socket.IPPROTO_IP, socket.IP_TOS, _INT.pack(0xB8)),
    )
    assert by_family["::1"] == (
        (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, _INT.pack(7)),
        (socket.IPPROTO_IPV6, socket.IPV6_TCLASS, _INT.pack(0xB8)),
    )


def test_without_ttl_or_tos_nothing_extra_is_sent() -> None:
    outcome = run_cli("127.0.0.1,2,10")
    assert [sent.ancillary for sent in outcome.sent] == [(), ()]


def test_send_times_are_a_last_csv_field() -> None:
    epoch_ns = 1_790_000_000_123_456_789
    outcome = run_cli("-D", "--timeout", "0.5", "127.0.0.1,2,10", epoch_ns=epoch_ns)
    assert outcome.status == 0
    sent = {s.seq: epoch_ns + to_ns(s.time) for s in outcome.sent}
    lines = outcome.lines
    assert len(lines) == 2
    for line in lines:
        address, seq, rtt, sent_at = line.split(",")
        assert (address, int(rtt) > 0) == ("127.0.0.1", True)
        whole, fraction = sent_at.split(".")
        assert len(fraction) == 6
        assert int(whole) * 1_000_000 + int(fraction) == sent[int(seq)] // 1000


def test_socket_options_are_set_on_each_socket() -> None:
    outcome = run_cli("-M", "do", "-I", "lo", "-S", "127.0.0.1", "127.0.0.1,1,1")
    assert outcome.status == 0, outcome.stderr
    assert outcome.sockets[socket.AF_INET].configured == {
        "interface": "lo",
        "source": "127.0.0.1",
        "mtu_discovery": MtuDiscovery.DO,
    }


def test_a_target_of_the_other_family_than_the_source_is_a_line_error() -> None:
    outcome = run_cli("-S", "127.0.0.1", "::1,1,1", "127.0.0.1,1,1")
    assert outcome.status == ExitStatus.ERROR
    assert outcome.stderr_lines == [
        "trio-ping: argument 1: source 127.0.0.1 and target ::1 are of different address families"
    ]
    assert [row[0] for row in outcome.rows()] == ["127.0.0.1"]


def test_a_link_local_target_is_sent_to_with_its_zone_and_answered_from_it() -> None:
    def peer(sent: Sent) -> list[Delivery]:
        return [Delivery(0.001, reply6_bytes(sent), sent.address)]

    outcome = run_cli("FE80::1%lo,2,10", peer=peer)
    assert outcome.status == 0, outcome.stderr
    assert {sent.address for sent in outcome.sent} == {"fe80::1%lo"}
    assert [(row[0], row[2] > 0) for row in outcome.rows()] == [("fe80::1%lo", True)] * 2


def test_a_reply_from_the_same_link_local_address_on_another_link_answers_nothing() -> None:
    def peer(sent: Sent) -> list[Delivery]:
        elsewhere = f"fe80::1%{socket.if_nametoindex('lo') + 1000}"
        return [Delivery(0.001, reply6_bytes(sent), elsewhere)]

    outcome = run_cli("--timeout", "0.2", "fe80::1%lo,1,1", peer=peer)
    assert outcome.rows() == [("fe80::1%lo", 0, -1)]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("fe80::1%nosuch0,1,1", "unknown zone '%nosuch0': no such interface"),
        ("fe80::1%4294967296,1,1", "unknown zone '%4294967296': an interface index fits 32 bits"),
        ("127.0.0.1%lo,1,1", "'127.0.0.1%lo': an IPv4 address has no zone"),
        ("fe80::1,1,1", "fe80::1 is link-local: name its interface, fe80::1%eth0"),
    ],
)
def test_a_zone_that_cannot_be_is_a_line_error(line: str, message: str) -> None:
    outcome = run_cli(line, "127.0.0.1,1,1")
    assert outcome.status == ExitStatus.ERROR
    assert outcome.stderr_lines == [f"trio-ping: argument 1: {message}"]
    assert [row[0] for row in outcome.rows()] == ["127.0.0.1"]
