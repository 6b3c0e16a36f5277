"""Every way the command line fails or ends, through main(argv, env): its one stderr line
and its exit status (0, 1, 2, 130, 141, 143).

In-process runs on fake sockets and the autojump clock (see tests/cli/harness.py).
"""

from __future__ import annotations

import errno
import os
import signal
import socket

import pytest

from tests.cli.harness import answer, refusing, run_cli
from tests.fakes import Delivery, FakeIcmpSocket, Sent, error_bytes, silent
from tests.lab.addresses import PEER_LINK
from trio_ping import __version__
from trio_ping._io.icmp_socket import SocketPermissionError
from trio_ping._proto import icmp
from trio_ping.cli.status import ExitStatus

# Usage errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--timeout", "0"], "argument --timeout: must be a positive number of seconds, got '0'"),
        (["--timeout=-1"], "argument --timeout: must be a positive number of seconds, got '-1'"),
        (
            ["--timeout", "nan"],
            "argument --timeout: must be a positive number of seconds, got 'nan'",
        ),
        (
            ["--timeout", "inf"],
            "argument --timeout: must be a positive number of seconds, got 'inf'",
        ),
        (
            ["--timeout", "soon"],
            "argument --timeout: must be a positive number of seconds, got 'soon'",
        ),
        (["--timeout"], "argument --timeout: expected one argument"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["-4", "-6"], "argument -6: not allowed with argument -4"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(arguments: list[str], message: str) -> None:
    outcome = run_cli("127.0.0.1,1,1", *arguments)  # options may follow targets
    assert outcome.status == ExitStatus.ERROR
    assert outcome.stderr_lines == [f"trio-ping: {message} (see 'trio-ping --help')"]
    assert (outcome.stdout, outcome.sockets) == ("", {})


def test_help_goes_to_stdout_with_examples_and_exit_statuses() -> None:
    outcome = run_cli("--help")
    assert (outcome.status, outcome.stderr) == (0, "")
    assert outcome.stdout.startswith("usage: trio-ping [-h]")
    assert "examples:" in outcome.stdout
    assert "exit status: 0 all requests answered, 1 some unanswered" in outcome.stdout
    for option in ("--timeout", "--timestamp", "--json", "--summary", "--verbose", "-4", "-6"):
        assert option in outcome.stdout


def test_help_with_stdout_closed_goes_to_stderr() -> None:
    # As argparse itself does when sys.stdout is None.
    outcome = run_cli("--help", stdout="closed")
    assert outcome.status == 0
    assert outcome.stderr.startswith("usage: trio-ping [-h]")


def test_help_with_its_reader_gone_still_exits_0() -> None:
    outcome = run_cli("--help", stdout="reader-gone")
    assert (outcome.status, outcome.stderr) == (0, "")


def test_version() -> None:
    outcome = run_cli("--version")
    assert (outcome.status, outcome.stdout, outcome.stderr) == (0, f"trio-ping {__version__}\n", "")


# Standard output -------------------------------------------------------------------------


def test_closed_stdout_is_one_line_and_exit_2_before_anything_runs() -> None:
    outcome = run_cli("127.0.0.1,1,1", stdout="closed")
    assert outcome.status == ExitStatus.ERROR
    assert outcome.stderr == "trio-ping: cannot write standard output: it is closed\n"
    assert outcome.sockets == {}


@pytest.mark.parametrize("json", [[], ["--json"]])
def test_a_full_disk_is_one_line_and_exit_2(json: list[str]) -> None:
    outcome = run_cli(*json, "127.0.0.1,3,10", stdout="full")
    assert outcome.status == ExitStatus.ERROR
    assert outcome.stderr_lines == [
        "trio-ping: cannot write standard output: No space left on device"
    ]
    # Nothing more can be said: the run stops at the first failed write.
    assert len(outcome.sent) == 1


def test_output_whose_reader_went_away_ends_the_run_quietly_with_141() -> None:
    outcome = run_cli("--summary", "127.0.0.1,10,20", stdout="reader-gone")
    assert outcome.status == 141  # ExitStatus.OUTPUT_CLOSED
    assert outcome.stderr == ""  # not even the summary: like `ping | head -1`
    assert len(outcome.sent) == 1
    assert outcome.finished_at == pytest.approx(0.001)


# Sockets ---------------------------------------------------------------------------------


def test_no_icmp_socket_is_said_once_however_many_lines_need_one() -> None:
    message = "cannot open an ICMP socket (Operation not permitted): run as root, ..."

    def refuse(family: socket.AddressFamily) -> FakeIcmpSocket:
        raise SocketPermissionError(message)

    outcome = run_cli(stdin="127.0.0.1,1,1\n127.0.0.2,1,1\n::1,1,1\n", socket_factory=refuse)
    assert outcome.status == ExitStatus.ERROR
    assert outcome.stderr_lines == [f"trio-ping: {message}"]
    assert outcome.stdout == ""


def test_a_socket_error_names_its_reason_once() -> None:
    def unsupported(family: socket.AddressFamily) -> FakeIcmpSocket:
        if family == socket.AF_INET6:
            code = errno.EAFNOSUPPORT
            raise OSError(code, os.strerror(code))
        return FakeIcmpSocket(answer(), family)

    outcome = run_cli("::1,1,1", "127.0.0.1,1,1", "::2,1,1", socket_factory=unsupported)
    assert outcome.status == ExitStatus.ERROR
    assert outcome.stderr_lines == [
        "trio-ping: cannot open an ICMP socket: Address family not supported by protocol"
    ]
    assert outcome.rows() == [("127.0.0.1", 0, 1000)]


def test_timestamp_requests_refuse_ipv6_per_line() -> None:
    outcome = run_cli("--timestamp", "::1,1,1", "127.0.0.1,1,1", peer=silent, raw=True)
    assert outcome.status == ExitStatus.ERROR
    assert outcome.stderr_lines == [
        "trio-ping: argument 1: ICMP Timestamp requests exist for IPv4 only"
    ]
    assert [sent.address for sent in outcome.sent] == ["127.0.0.1"]


# Sends and ICMP errors -------------------------------------------------------------------


def test_a_destination_the_kernel_refuses_is_said_once_and_exits_2() -> None:
    outcome = run_cli("127.255.255.255,2,10", "127.0.0.1,1,10", peer=refusing("127.255.255.255"))
    assert outcome.status == ExitStatus.ERROR
    assert outcome.stderr_lines == ["trio-ping: cannot send to 127.255.255.255: Permission denied"]
    assert sorted(outcome.rows()) == [
        ("127.0.0.1", 0, 1000),
        ("127.255.255.255", 0, -1),
        ("127.255.255.255", 1, -1),
    ]


@pytest.mark.parametrize("verbose", [False, True])
def test_a_send_that_fails_for_now_is_unanswered_and_told_under_verbose(verbose: bool) -> None:
    peer = refusing("127.0.0.2", errno.ENETUNREACH)
    flags = ["--verbose"] if verbose else []
    outcome = run_cli(*flags, "127.0.0.2,2,10", "127.0.0.1,1,10", peer=peer)
    assert outcome.status == ExitStatus.UNANSWERED
    told = [
        f"trio-ping: 127.0.0.2 seq={seq}: send failed: Network is unreachable" for seq in (0, 1)
    ]
    assert outcome.stderr_lines == (told if verbose else [])
    assert sorted(outcome.rows()) == [
        ("127.0.0.1", 0, 1000),
        ("127.0.0.2", 0, -1),
        ("127.0.0.2", 1, -1),
    ]


@pytest.mark.parametrize("verbose", [False, True])
def test_router_errors_end_their_request_at_once_and_are_told_under_verbose(
    verbose: bool,
) -> None:
    def unreachable(sent: Sent) -> list[Delivery]:
        data = error_bytes(sent, icmp.DESTINATION_UNREACHABLE, 1, PEER_LINK)
        return [Delivery(0.003, data, PEER_LINK)]

    flags = ["--verbose"] if verbose else []
    outcome = run_cli(*flags, "--timeout", "30", "127.0.0.2,2,10", peer=unreachable)
    assert outcome.status == ExitStatus.UNANSWERED
    assert outcome.rows() == [("127.0.0.2", 0, -1), ("127.0.0.2", 1, -1)]
    told = [
        f"trio-ping: 127.0.0.2 seq={seq}: from {PEER_LINK}: Destination Host Unreachable"
        for seq in (0, 1)
    ]
    assert outcome.stderr_lines == (told if verbose else [])
    assert outcome.finished_at == pytest.approx(0.013)  # not the 30 s timeout


# Exit statuses ---------------------------------------------------------------------------


def test_every_request_answered_exits_0() -> None:
    outcome = run_cli("127.0.0.1,2,10", "::1,2,10")
    assert (outcome.status, outcome.stderr) == (ExitStatus.OK, "")
    assert len(outcome.lines) == 4


def test_silence_prints_minus_one_after_the_timeout_and_exits_1() -> None:
    outcome = run_cli("--timeout", "0.3", "127.0.0.2,2,10", peer=silent)
    assert (outcome.status, outcome.stderr) == (ExitStatus.UNANSWERED, "")
    assert outcome.rows() == [("127.0.0.2", 0, -1), ("127.0.0.2", 1, -1)]
    # The last request left at 10 ms and was given up 300 ms later (plus the engine's
    # slack for gathering expiries), not earlier.
    assert 0.31 <= outcome.finished_at < 0.34


def test_some_unanswered_exits_1_and_a_bad_line_beside_them_exits_2() -> None:
    def half(sent: Sent) -> list[Delivery]:
        return list(answer()(sent)) if sent.address == "127.0.0.1" else []

    unanswered = run_cli("--timeout", "0.3", "127.0.0.1,1,1", "127.0.0.2,1,1", peer=half)
    assert unanswered.status == ExitStatus.UNANSWERED
    with_error = run_cli("--timeout", "0.3", "127.0.0.1,1,1", "127.0.0.2,1,1", "x", peer=half)
    assert with_error.status == ExitStatus.ERROR


@pytest.mark.parametrize(
    ("number", "status"),
    [(signal.SIGINT, ExitStatus.INTERRUPTED), (signal.SIGTERM, ExitStatus.TERMINATED)],
)
def test_a_signal_prints_what_is_known_and_exits_quietly(
    number: signal.Signals, status: ExitStatus
) -> None:
    outcome = run_cli(
        "--timeout", "30", "127.0.0.1,10,200", peer=answer(0.05), signals=[(0.5, number)]
    )
    assert outcome.status == status
    assert int(status) == 128 + number
    assert outcome.stderr == ""
    # Sent at 0, 0.2 and 0.4 s; the third reply (due at 0.45) came before the signal.
    assert outcome.rows() == [("127.0.0.1", seq, 50_000) for seq in range(3)]
    assert len(outcome.sent) == 3
    assert outcome.finished_at == 0.5


def test_a_signal_while_a_request_is_pending_does_not_time_it_out() -> None:
    outcome = run_cli(
        "--timeout", "30", "127.0.0.1,3,100", peer=silent, signals=[(1.0, signal.SIGINT)]
    )
    assert outcome.status == ExitStatus.INTERRUPTED
    assert outcome.stdout == ""  # nothing was known: no -1 for requests still waiting


def test_the_first_signal_decides_the_status() -> None:
    outcome = run_cli(
        "--timeout",
        "30",
        "127.0.0.1,10,200",
        peer=silent,
        signals=[(0.3, signal.SIGTERM), (0.3, signal.SIGINT)],
    )
    assert outcome.status == ExitStatus.TERMINATED


def test_a_signal_outranks_closed_output_and_errors() -> None:
    outcome = run_cli(
        "--timeout", "30", "127.0.0.1,3,100", "x", peer=silent, signals=[(0.1, signal.SIGINT)]
    )
    assert outcome.status == ExitStatus.INTERRUPTED
    assert outcome.stderr_lines == [
        "trio-ping: argument 2: expected ADDRESS,COUNT,INTERVAL_MS (3 fields), got 1 in 'x'"
    ]
