"""--summary: the statistics per target, as text on stderr and as JSON summary events.

The figures themselves (TargetStatistics) first, then whole runs through main(argv, env)
on fake sockets and the autojump clock (see tests/cli/harness.py).
"""

from __future__ import annotations

import errno
import math
import signal
import socket
from typing import Literal

import pytest
import trio

from tests.cli.harness import answer, refusing, run_cli
from tests.fakes import Delivery, Sent, error_bytes, reply_bytes, silent
from tests.lab.addresses import PEER_LINK
from trio_ping._proto import icmp
from trio_ping.cli.summary import TargetStatistics
from trio_ping.results import PingResult, Status

SUMMARY_KEYS = ["v", "event", "target", "address", "transmitted", "received", "duplicates"]
SUMMARY_KEYS += ["errors", "loss_pct", "rtt_min_us", "rtt_avg_us", "rtt_max_us"]
SUMMARY_KEYS += ["rtt_mdev_us", "rtt_p50_us", "rtt_p95_us"]

# The figures -----------------------------------------------------------------------------


def statistics_of(rtts_us: list[int], *, timeouts: int = 0) -> TargetStatistics:
    statistics = TargetStatistics("127.0.0.1", "127.0.0.1")
    for seq, rtt in enumerate(rtts_us):
        statistics.add(PingResult("127.0.0.1", seq, Status.REPLY, rtt_us=rtt))
    for seq in range(timeouts):
        statistics.add(PingResult("127.0.0.1", len(rtts_us) + seq, Status.TIMEOUT))
    return statistics


def test_percentiles_are_nearest_rank_values_that_occurred() -> None:
    rtt = statistics_of(list(range(100, 0, -1))).rtt()  # 100 .. 1, unsorted
    assert rtt is not None
    assert (rtt.minimum, rtt.maximum, rtt.p50, rtt.p95) == (1, 100, 50, 95)
    assert rtt.average == 50.5


def test_mdev_is_iputils_mean_deviation() -> None:
    rtts = [1000, 2000, 3000, 10_000]
    rtt = statistics_of(rtts).rtt()
    assert rtt is not None
    mean = sum(rtts) / 4
    assert rtt.mdev == pytest.approx(math.sqrt(sum(r * r for r in rtts) / 4 - mean * mean))


def test_one_rtt_has_no_deviation() -> None:
    rtt = statistics_of([1234]).rtt()
    assert rtt is not None
    assert (rtt.minimum, rtt.p50, rtt.p95, rtt.maximum, rtt.mdev) == (1234, 1234, 1234, 1234, 0)


def test_loss_counts_transmitted_requests_only() -> None:
    statistics = statistics_of([1000], timeouts=3)
    assert (statistics.transmitted, statistics.received, statistics.loss_percent) == (4, 1, 75.0)
    refused = TargetStatistics("127.0.0.1", "127.0.0.1")
    refused.add(PingResult("127.0.0.1", 0, Status.SEND_FAILED, reason="Permission denied"))
    assert (refused.transmitted, refused.errors, refused.loss_percent) == (0, 1, 0.0)
    assert refused.rtt() is None


def test_a_record_without_replies_has_null_figures() -> None:
    record = statistics_of([], timeouts=2).record()
    assert list(record) == SUMMARY_KEYS
    assert record["loss_pct"] == 100.0
    assert all(record[key] is None for key in SUMMARY_KEYS[-6:])


# Text on stderr --------------------------------------------------------------------------


def test_text_summary_of_a_known_run() -> None:
    def peer(sent: Sent) -> list[Delivery]:
        if sent.address == "127.0.0.1":  # 1, 2, 3 and 10 ms
            delay = (1, 2, 3, 10)[sent.seq] / 1000
            return [Delivery(delay, reply_bytes(sent), sent.address)]
        if sent.address == "127.0.0.2":  # every reply twice, at once
            return [Delivery(0.005, reply_bytes(sent), sent.address)] * 2
        if sent.address == "127.0.0.3":
            return [Delivery(0.001, error_bytes(sent, icmp.TIME_EXCEEDED, 0, PEER_LINK), PEER_LINK)]
        return []

    outcome = run_cli(
        "--summary",
        "--timeout",
        "1",
        "127.0.0.1,4,20",
        "127.0.0.2,3,20",
        "127.0.0.3,2,20",
        "127.0.0.4,2,20",
        peer=peer,
    )
    assert outcome.status == 1
    assert outcome.stderr == (
        "--- 127.0.0.1 ping statistics ---\n"
        "4 transmitted, 4 received, 0% packet loss, 0 duplicates, 0 errors\n"
        "rtt min/avg/max/mdev = 1.000/4.000/10.000/3.536 ms, p50/p95 = 2.000/10.000 ms\n"
        "--- 127.0.0.2 ping statistics ---\n"
        "3 transmitted, 3 received, 0% packet loss, 3 duplicates, 0 errors\n"
        "rtt min/avg/max/mdev = 5.000/5.000/5.000/0.000 ms, p50/p95 = 5.000/5.000 ms\n"
        "--- 127.0.0.3 ping statistics ---\n"
        "2 transmitted, 0 received, 100% packet loss, 0 duplicates, 2 errors\n"
        "--- 127.0.0.4 ping statistics ---\n"
        "2 transmitted, 0 received, 100% packet loss, 0 duplicates, 0 errors\n"
    )
    assert len(outcome.lines) == 11  # the results still go to stdout, once each


def test_a_name_is_summarised_with_its_address_in_input_order() -> None:
    # The name resolves 5 s late; its block still comes where its line was.
    async def slow_resolve(host: str, family: socket.AddressFamily) -> str:
        await trio.sleep(5)
        return "127.0.0.1"

    outcome = run_cli("--summary", "localhost,1,1", "127.0.0.2,1,1", resolve=slow_resolve)
    headers = [line for line in outcome.stderr_lines if line.startswith("---")]
    assert headers == [
        "--- localhost (127.0.0.1) ping statistics ---",
        "--- 127.0.0.2 ping statistics ---",
    ]


def test_a_target_given_twice_is_summarised_once() -> None:
    outcome = run_cli("--summary", "127.0.0.1,2,10", "127.0.0.1,3,10")
    assert outcome.stderr_lines[:2] == [
        "--- 127.0.0.1 ping statistics ---",
        "5 transmitted, 5 received, 0% packet loss, 0 duplicates, 0 errors",
    ]
    assert len(outcome.stderr_lines) == 3


def test_refused_sends_are_errors_not_transmissions() -> None:
    outcome = run_cli("--summary", "127.0.0.2,2,10", peer=refusing("127.0.0.2", errno.EACCES))
    assert outcome.stderr_lines == [
        "trio-ping: cannot send to 127.0.0.2: Permission denied",
        "--- 127.0.0.2 ping statistics ---",
        "0 transmitted, 0 received, 0% packet loss, 0 duplicates, 2 errors",
    ]


def test_a_bad_line_has_no_summary() -> None:
    outcome = run_cli("--summary", "127.0.0.1,1,1", "nonsense")
    headers = [line for line in outcome.stderr_lines if line.startswith("---")]
    assert headers == ["--- 127.0.0.1 ping statistics ---"]


def test_the_summary_comes_on_a_signal_too() -> None:
    outcome = run_cli(
        "--summary",
        "--timeout",
        "30",
        "127.0.0.1,10,200",
        peer=answer(0.001),
        signals=[(0.5, signal.SIGINT)],
    )
    assert outcome.status == 130
    assert outcome.stderr_lines[1] == (
        "3 transmitted, 3 received, 0% packet loss, 0 duplicates, 0 errors"
    )


def test_no_summary_without_the_flag() -> None:
    outcome = run_cli("--timeout", "0.1", "127.0.0.1,2,10", peer=silent)
    assert outcome.stderr == ""


# JSON summary events ---------------------------------------------------------------------


def test_json_summary_events_follow_every_request_event_in_input_order() -> None:
    def peer(sent: Sent) -> list[Delivery]:
        if sent.address == "127.0.0.2":
            return []
        delay = (0.001, 0.003)[sent.seq]
        return [Delivery(delay, reply_bytes(sent), sent.address)]

    outcome = run_cli(
        "--json", "--summary", "--timeout", "0.3", "localhost,2,10", "127.0.0.2,1,10", peer=peer
    )
    assert outcome.status == 1
    assert outcome.stderr == ""
    events = outcome.events
    assert [event["event"] for event in events] == ["reply", "reply", "timeout"] + ["summary"] * 2
    assert all(list(event) == SUMMARY_KEYS for event in events[-2:])
    assert events[-2:] == [
        {
            "v": 1,
            "event": "summary",
            "target": "localhost",
            "address": "127.0.0.1",
            "transmitted": 2,
            "received": 2,
            "duplicates": 0,
            "errors": 0,
            "loss_pct": 0.0,
            "rtt_min_us": 1000,
            "rtt_avg_us": 2000.0,
            "rtt_max_us": 3000,
            "rtt_mdev_us": 1000.0,
            "rtt_p50_us": 1000,
            "rtt_p95_us": 3000,
        },
        {
            "v": 1,
            "event": "summary",
            "target": "127.0.0.2",
            "address": "127.0.0.2",
            "transmitted": 1,
            "received": 0,
            "duplicates": 0,
            "errors": 0,
            "loss_pct": 100.0,
            **dict.fromkeys(SUMMARY_KEYS[-6:]),
        },
    ]


def test_json_summary_loss_is_rounded_to_three_places() -> None:
    def two_of_three(sent: Sent) -> list[Delivery]:
        return [] if sent.seq == 2 else list(answer()(sent))

    outcome = run_cli(
        "--json", "--summary", "--timeout", "0.1", "127.0.0.1,3,10", peer=two_of_three
    )
    assert outcome.events[-1]["loss_pct"] == 33.333


@pytest.mark.parametrize(
    ("stdout", "said"),
    [
        ("reader-gone", []),
        ("full", ["trio-ping: cannot write standard output: No space left on device"]),
    ],
)
def test_a_json_summary_that_cannot_be_written_is_said_as_output_errors_are(
    stdout: Literal["reader-gone", "full"], said: list[str]
) -> None:
    # Interrupted before any result: the summary events are the first write.
    outcome = run_cli(
        "--json",
        "--summary",
        "127.0.0.1,3,100",
        peer=answer(0.05),
        stdout=stdout,
        signals=[(0.01, signal.SIGTERM)],
    )
    assert outcome.status == 143
    assert outcome.stderr_lines == said
