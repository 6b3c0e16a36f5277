"""``--rate PPS`` and input hostile to the error path, through the whole command line on
the fake socket (tests/cli/harness.py)."""

from __future__ import annotations

import itertools

import pytest

from tests.cli.harness import run_cli
from trio_ping.cli.status import ExitStatus

# --rate -----------------------------------------------------------------------------------


def gaps(times: list[float]) -> list[float]:
    return [round(later - earlier, 6) for earlier, later in itertools.pairwise(times)]


def test_without_a_rate_every_line_goes_at_once_and_nothing_is_said() -> None:
    outcome = run_cli(stdin="127.0.0.1,1,1\n" * 50)
    assert (outcome.status, outcome.stderr) == (0, "")
    assert {sent.time for sent in outcome.sent} == {0.0}


def test_a_rate_spaces_requests_evenly_and_says_once_that_they_were_held_back() -> None:
    outcome = run_cli("--rate", "100", stdin="127.0.0.1,1,1\n" * 50)
    assert outcome.status == 0
    assert len(outcome.rows()) == 50
    assert all(rtt == 1000 for _, _, rtt in outcome.rows())  # timed from the actual send
    times = [sent.time for sent in outcome.sent]
    assert times[0] == 0.0
    assert gaps(times) == [0.01] * 49  # a burst of 1 at 100 a second, then one each 10 ms
    assert outcome.stderr_lines == [
        "trio-ping: --rate 100: the targets asked for more requests a second than that; "
        "some were sent up to 0.5 s late (none dropped)"
    ]


def test_targets_within_the_rate_keep_their_intervals_and_nothing_is_said() -> None:
    # 5 targets x 10 a second = 50 a second, under a cap of 100: only the first requests,
    # due together, are spread (10 ms apart); each target's own gaps stay 100 ms.
    targets = [f"127.0.0.{n},4,100" for n in range(1, 6)]
    outcome = run_cli("--rate", "100", *targets)
    assert (outcome.status, outcome.stderr) == (0, "")
    by_target: dict[str, list[float]] = {}
    for sent in outcome.sent:
        by_target.setdefault(sent.address, []).append(sent.time)
    firsts = sorted(times[0] for times in by_target.values())
    assert gaps(firsts) == [0.01] * 4
    assert all(gaps(times) == [0.1] * 3 for times in by_target.values())


@pytest.mark.parametrize("value", ["0", "-5", "-0.5", "nan", "inf", "fast", "", "1e400"])
def test_a_bad_rate_is_one_line_and_exit_2(value: str) -> None:
    outcome = run_cli("127.0.0.1,1,1", "--rate", value)
    assert outcome.status == ExitStatus.ERROR
    assert outcome.stderr_lines == [
        f"trio-ping: argument --rate: must be a positive number of requests a second, "
        f"got {value!r} (see 'trio-ping --help')"
    ]
    assert (outcome.stdout, outcome.sockets) == ("", {})


# Negative values and long input in errors -----------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [
        ["--timeout", "-1"],
        ["--timeout=-1"],
        ["--timeo", "-1"],
        ["127.0.0.1,1,1", "--timeout", "-1"],
    ],
)
def test_a_negative_timeout_says_what_is_wrong_with_it(arguments: list[str]) -> None:
    outcome = run_cli(*arguments)
    assert outcome.status == ExitStatus.ERROR
    assert outcome.stderr_lines == [
        "trio-ping: argument --timeout: must be a positive number of seconds, got '-1' "
        "(see 'trio-ping --help')"
    ]
    assert outcome.sockets == {}


@pytest.mark.parametrize(
    ("arguments", "option"),
    [
        (["-t", "-1"], "-t/--ttl"),
        (["--ttl", "-1"], "-t/--ttl"),
        (["-s", "-1"], "-s/--size"),
        (["127.0.0.1,1,1", "-Q", "-1"], "-Q/--tos"),
    ],
)
def test_a_negative_option_value_says_what_is_wrong_with_it(
    arguments: list[str], option: str
) -> None:
    # -4 and -6 make argparse read "-1" as an option: it would say "expected one argument".
    outcome = run_cli(*arguments)
    assert outcome.status == ExitStatus.ERROR
    [line] = outcome.stderr_lines
    assert line.startswith(f"trio-ping: argument {option}: must be a whole number from ")
    assert "got '-1'" in line
    assert outcome.sockets == {}


HUGE = "9" * 2_000_000


def test_a_huge_option_value_is_quoted_cut() -> None:
    outcome = run_cli("127.0.0.1,1,1", "--timeout", "-" + HUGE)
    assert outcome.status == ExitStatus.ERROR
    assert outcome.stderr_lines == [
        "trio-ping: argument --timeout: must be a positive number of seconds, got "
        f"'-{'9' * 56}...' (2,000,001 characters) (see 'trio-ping --help')"
    ]


def test_a_huge_unknown_option_is_cut() -> None:
    outcome = run_cli("127.0.0.1,1,1", "--" + HUGE)
    assert outcome.status == ExitStatus.ERROR
    [line] = outcome.stderr_lines
    assert line.startswith("trio-ping: unrecognized arguments: --999")
    assert line.endswith("... (see 'trio-ping --help')")
    assert len(line) < 200


def test_a_huge_target_line_is_quoted_cut_and_the_rest_run() -> None:
    outcome = run_cli(stdin=f"{HUGE}\n127.0.0.1,1,1\n", stdin_file=True)
    assert outcome.status == ExitStatus.ERROR
    assert outcome.stderr_lines == [
        "trio-ping: line 1: expected ADDRESS,COUNT,INTERVAL_MS (3 fields), got 1 in "
        f"'{'9' * 57}...' (2,000,000 characters)"
    ]
    assert outcome.rows() == [("127.0.0.1", 0, 1000)]


def test_a_long_host_name_that_does_not_resolve_is_quoted_cut() -> None:
    name = ".".join(["a" * 60] * 4)  # 243 characters, a valid name
    outcome = run_cli(f"{name},1,1")
    assert outcome.status == ExitStatus.ERROR
    assert outcome.stderr_lines == [
        f"trio-ping: argument 1: cannot resolve '{'a' * 57}...' (243 characters)"
    ]


def test_the_rate_is_shared_by_the_ipv4_and_the_ipv6_socket() -> None:
    outcome = run_cli("--rate", "100", stdin="127.0.0.1,1,1\n::1,1,1\n" * 10)
    assert outcome.status == 0
    assert len(outcome.sockets) == 2
    assert len(outcome.rows()) == 20
    assert gaps([sent.time for sent in outcome.sent]) == [0.01] * 19
