"""Target lines through the whole command line: arguments, standard input, names, families.

In-process runs on fake sockets and the autojump clock (see tests/cli/harness.py).
"""

from __future__ import annotations

import os
import socket

import pytest
import trio

from tests.cli.harness import PIPE_CAPACITY, answer, run_cli
from tests.fakes import Delivery, Sent, reply_bytes
from trio_ping.cli.environment import Environment
from trio_ping.pinger import resolve


def test_an_argument_gives_one_line_per_request_on_schedule() -> None:
    outcome = run_cli("127.0.0.1,3,10", peer=answer(0.004))
    assert (outcome.status, outcome.stderr) == (0, "")
    assert outcome.lines == ["127.0.0.1,0,4000", "127.0.0.1,1,4000", "127.0.0.1,2,4000"]
    assert [sent.time for sent in outcome.sent] == pytest.approx([0.0, 0.01, 0.02])


def test_no_argument_reads_stdin_and_its_lines_run_at_once() -> None:
    stdin = "".join(f"127.0.0.{index},2,100\n" for index in range(1, 6))
    outcome = run_cli(stdin=stdin)
    assert outcome.status == 0
    assert sorted(outcome.rows()) == sorted(
        (f"127.0.0.{index}", seq, 1000) for index in range(1, 6) for seq in (0, 1)
    )
    # Each line starts when read: every first request leaves before any second one.
    firsts = [sent.time for sent in outcome.sent if sent.seq == 0]
    seconds = [sent.time for sent in outcome.sent if sent.seq == 1]
    assert max(firsts) < min(seconds)
    assert len(outcome.sockets) == 1


def test_dash_reads_stdin_between_arguments_and_places_count_it() -> None:
    outcome = run_cli(
        "127.0.0.1,1,1", "-", "127.0.0.3,1,1", "127.0.0.4,0,1", stdin="127.0.0.2,1,1\nx\n"
    )
    assert outcome.status == 2
    assert outcome.stderr_lines == [
        "trio-ping: line 2: expected ADDRESS,COUNT,INTERVAL_MS (3 fields), got 1 in 'x'",
        "trio-ping: argument 4: count must be a whole number from 1 to 10, got '0'",
    ]
    assert sorted(address for address, _, _ in outcome.rows()) == [
        "127.0.0.1",
        "127.0.0.2",
        "127.0.0.3",
    ]


def test_arguments_alone_leave_stdin_unread() -> None:
    outcome = run_cli("127.0.0.1,1,1", stdin="127.0.0.2,1,1\n")
    assert [address for address, _, _ in outcome.rows()] == ["127.0.0.1"]


def test_bad_lines_are_one_line_errors_and_the_rest_still_run() -> None:
    stdin = "\n".join(
        [
            "127.0.0.1,1,10",
            "127.0.0.2,11,10",
            "# a comment",
            "",
            "  127.0.0.3 , 1 , 10 \r",
            "1.2.3,1,10",
            "127.0.0.4,1,0",
            "nonsense",
            "   # an indented comment",
            "   \t ",
            "127.0.0.5,1,10",
            "127.0.0.6,1,10,",
            "-bad-,1,1",
            "127.0.0.7,+3,1",
            "127.0.0.8,3,1_0",
        ]
    )
    outcome = run_cli(stdin=stdin)
    assert outcome.status == 2
    assert outcome.stderr_lines == [
        "trio-ping: line 2: count must be a whole number from 1 to 10, got '11'",
        "trio-ping: line 6: address must be an IPv4 or IPv6 address or a host name, "
        "such as 192.0.2.1, 2001:db8::1 or example.net, got '1.2.3'",
        "trio-ping: line 7: interval must be a whole number from 1 to 1000 ms, got '0'",
        "trio-ping: line 8: expected ADDRESS,COUNT,INTERVAL_MS (3 fields), got 1 in 'nonsense'",
        "trio-ping: line 12: expected ADDRESS,COUNT,INTERVAL_MS (3 fields), "
        "got 4 in '127.0.0.6,1,10,'",
        "trio-ping: line 13: address must be an IPv4 or IPv6 address or a host name, "
        "such as 192.0.2.1, 2001:db8::1 or example.net, got '-bad-'",
        "trio-ping: line 14: count must be a whole number from 1 to 10, got '+3'",
        "trio-ping: line 15: interval must be a whole number from 1 to 1000 ms, got '1_0'",
    ]
    assert sorted(outcome.rows()) == [(f"127.0.0.{i}", 0, 1000) for i in (1, 3, 5)]


def test_crlf_lines_and_a_last_line_without_newline_run() -> None:
    outcome = run_cli(stdin="127.0.0.1,1,1\r\n127.0.0.2,1,1")
    assert (outcome.status, outcome.stderr) == (0, "")
    assert sorted(outcome.rows()) == [("127.0.0.1", 0, 1000), ("127.0.0.2", 0, 1000)]


def test_undecodable_bytes_are_a_bad_line_not_a_crash() -> None:
    outcome = run_cli(stdin=b"127.0.0.1,1,1\n\xff\xfe,1,1\n")
    assert outcome.status == 2
    assert outcome.stderr_lines == [
        "trio-ping: line 2: address must be an IPv4 or IPv6 address or a host name, "
        "such as 192.0.2.1, 2001:db8::1 or example.net, got '\ufffd\ufffd'"
    ]
    assert outcome.rows() == [("127.0.0.1", 0, 1000)]


def test_lines_split_across_reads_are_joined() -> None:
    # A comment longer than one read (64 KiB) puts the next lines' bytes in a later
    # chunk, and one target line straddles the boundary.
    comment = "#" + "x" * (PIPE_CAPACITY - 10) + "\n"
    stdin = comment + "127.0.0.1,1,1\n" + "127.0.0.2,1,1\n" + "bad\n"
    outcome = run_cli(stdin=stdin, stdin_file=True)
    assert outcome.stderr_lines == [
        "trio-ping: line 4: expected ADDRESS,COUNT,INTERVAL_MS (3 fields), got 1 in 'bad'"
    ]
    assert sorted(outcome.rows()) == [("127.0.0.1", 0, 1000), ("127.0.0.2", 0, 1000)]


@pytest.mark.parametrize("argument", ["", "  ", "#127.0.0.1,1,1"])
def test_an_empty_or_comment_argument_is_an_error(argument: str) -> None:
    # Only stdin skips blank lines and comments: an empty argument is usually "$UNSET".
    outcome = run_cli(argument, "127.0.0.1,1,1")
    assert outcome.status == 2
    [line] = outcome.stderr_lines
    assert line.startswith("trio-ping: argument 1: ")
    assert outcome.rows() == [("127.0.0.1", 0, 1000)]


def test_empty_stdin_is_an_empty_batch() -> None:
    outcome = run_cli(stdin="")
    assert (outcome.status, outcome.stdout, outcome.stderr) == (0, "", "")
    assert outcome.sockets == {}


def test_only_comments_on_stdin_run_nothing() -> None:
    outcome = run_cli(stdin="# nothing\n\n  \n")
    assert (outcome.status, outcome.stdout, outcome.stderr) == (0, "", "")


def test_closed_stdin_is_an_error_and_the_arguments_still_run() -> None:
    outcome = run_cli("127.0.0.1,1,1", "-", stdin=None)
    assert outcome.status == 2
    assert outcome.stderr_lines == ["trio-ping: cannot read standard input: it is closed"]
    assert outcome.rows() == [("127.0.0.1", 0, 1000)]


def test_unreadable_stdin_is_one_line() -> None:
    directory = os.open(".", os.O_RDONLY)
    try:
        outcome = run_cli("127.0.0.1,1,1", "-", stdin_fd=directory)
    finally:
        os.close(directory)
    assert outcome.status == 2
    assert outcome.stderr_lines == ["trio-ping: cannot read standard input: Is a directory"]
    assert outcome.rows() == [("127.0.0.1", 0, 1000)]


def test_no_target_and_a_terminal_on_stdin_prints_the_usage() -> None:
    outcome = run_cli(stdin="127.0.0.1,1,1\n", stdin_isatty=True)
    assert outcome.status == 2
    assert outcome.stderr == (
        "usage: trio-ping ADDRESS,COUNT,INTERVAL_MS ... (or target lines on stdin)\n"
        "see 'trio-ping --help'\n"
    )
    assert (outcome.stdout, outcome.sockets) == ("", {})


def test_a_terminal_on_stdin_is_read_when_asked_for_with_a_dash() -> None:
    outcome = run_cli("-", stdin="127.0.0.1,1,1\n", stdin_isatty=True)
    assert (outcome.status, outcome.rows()) == (0, [("127.0.0.1", 0, 1000)])


# Host names ------------------------------------------------------------------------------


def test_a_host_name_is_resolved_and_its_address_printed() -> None:
    outcome = run_cli("localhost,2,10")
    assert outcome.status == 0
    assert outcome.rows() == [("127.0.0.1", 0, 1000), ("127.0.0.1", 1, 1000)]
    assert {sent.address for sent in outcome.sent} == {"127.0.0.1"}


@pytest.mark.parametrize(
    ("flag", "address", "family"),
    [("-4", "127.0.0.1", socket.AF_INET), ("-6", "::1", socket.AF_INET6)],
)
def test_the_family_flag_chooses_what_a_name_resolves_to(
    flag: str, address: str, family: socket.AddressFamily
) -> None:
    outcome = run_cli(flag, "localhost,1,1")
    assert outcome.rows() == [(address, 0, 1000)]
    assert list(outcome.sockets) == [family]


def test_a_name_that_does_not_resolve_fails_its_line_only() -> None:
    outcome = run_cli(stdin="127.0.0.1,1,1\nnosuch.invalid,1,1\n")
    assert outcome.status == 2
    assert outcome.stderr_lines == ["trio-ping: line 2: cannot resolve 'nosuch.invalid'"]
    assert outcome.rows() == [("127.0.0.1", 0, 1000)]


@pytest.mark.parametrize(("flag", "wanted"), [("-4", "IPv4"), ("-6", "IPv6")])
def test_a_name_that_does_not_resolve_for_the_family_says_which(flag: str, wanted: str) -> None:
    outcome = run_cli(flag, "nosuch.invalid,1,1")
    assert outcome.status == 2
    assert outcome.stderr_lines == [
        f"trio-ping: argument 1: cannot resolve 'nosuch.invalid' to an {wanted} address"
    ]
    assert outcome.stdout == ""


def test_a_slow_name_holds_up_no_other_line() -> None:
    # The resolver takes 5 s for the name; the address after it is answered meanwhile.
    async def slow_resolve(host: str, family: socket.AddressFamily) -> str:
        await trio.sleep(5)
        return "127.0.0.9"

    outcome = run_cli(stdin="slow.example,1,1\n127.0.0.1,1,1\n", resolve=slow_resolve)
    assert outcome.rows() == [("127.0.0.1", 0, 1000), ("127.0.0.9", 0, 1000)]
    assert [(sent.address, sent.time) for sent in outcome.sent] == [
        ("127.0.0.1", 0.0),
        ("127.0.0.9", 5.0),
    ]


def test_the_real_resolver_finds_localhost() -> None:
    # The one unit test on the system resolver: localhost comes from /etc/hosts, no DNS.
    outcome = run_cli("-4", "localhost,1,1", resolve=resolve)
    assert outcome.rows() == [("127.0.0.1", 0, 1000)]


def test_the_default_environment_resolves_with_the_library() -> None:
    assert Environment.default().resolve is resolve


# Address families ------------------------------------------------------------------------


def test_family_flag_refuses_a_literal_of_the_other_family() -> None:
    outcome = run_cli("-6", "127.0.0.1,1,1", "::1,1,1")
    assert outcome.status == 2
    assert outcome.stderr_lines == ["trio-ping: argument 1: 127.0.0.1 is not an IPv6 address"]
    assert outcome.rows() == [("::1", 0, 1000)]
    assert list(outcome.sockets) == [socket.AF_INET6]


def test_dash_four_refuses_an_ipv6_literal() -> None:
    outcome = run_cli("-4", "::1,1,1")
    assert (outcome.status, outcome.stderr_lines) == (
        2,
        ["trio-ping: argument 1: ::1 is not an IPv4 address"],
    )
    assert outcome.sockets == {}


def test_ipv6_addresses_are_printed_normalised() -> None:
    outcome = run_cli("0:0:0::0:1,1,1")
    assert outcome.rows() == [("::1", 0, 1000)]


def test_one_batch_mixes_families_on_one_socket_each() -> None:
    def peer(sent: Sent) -> list[Delivery]:
        # Different delays: results of two sockets at one virtual instant come in
        # either order (trio shuffles tasks ready together).
        if ":" in sent.address:
            return list(answer(0.002)(sent))
        return [Delivery(0.001, reply_bytes(sent), sent.address)]

    outcome = run_cli(stdin="127.0.0.1,1,1\n::1,1,1\n127.0.0.2,1,1\n", peer=peer)
    assert outcome.rows() == [("127.0.0.1", 0, 1000), ("127.0.0.2", 0, 1000), ("::1", 0, 2000)]
    assert sorted(outcome.sockets) == [socket.AF_INET, socket.AF_INET6]
