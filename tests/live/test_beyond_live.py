"""Issue 7, live: IPv6, host names, JSON lines, statistics, and the CLI's polish."""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

import pytest

from tests.lab.addresses import (
    LOOPBACK,
    LOOPBACK6,
    PEER_LINK,
    PEER_LINK6,
    answering,
    answering6,
    silent,
    silent6,
    unreachable,
    unreachable6,
)
from tests.lab.netns import Lab
from tests.lab.responder import DELAY, address_of
from tests.lab.run import by_address, run_trio_ping
from trio_ping import __version__
from trio_ping._proto.timestamps import DAY_MS

REQUEST_KEYS = [
    "v",
    "event",
    "target",
    "address",
    "seq",
    "rtt_us",
    "ttl",
    "error",
    "reason",
    "from",
    "sent_at",
    "send_stamp",
]
TIMESTAMP_KEYS = ["originate_ms", "receive_ms", "transmit_ms", "offset_ms"]
SUMMARY_KEYS = [
    "v",
    "event",
    "target",
    "address",
    "transmitted",
    "received",
    "duplicates",
    "errors",
    "loss_pct",
    "rtt_min_us",
    "rtt_avg_us",
    "rtt_max_us",
    "rtt_mdev_us",
    "rtt_p50_us",
    "rtt_p95_us",
]


def _events(stdout: str) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in stdout.splitlines()]
    assert all(isinstance(event, dict) for event in events)
    return events


# IPv6 ------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [LOOPBACK6, answering6(1)])
def test_ipv6_answers_like_ipv4(lab: Lab, target: str) -> None:
    outcome = run_trio_ping(lab, f"{target},3,10")
    assert outcome.status == 0
    assert outcome.stderr == ""
    assert [(row.address, row.seq) for row in outcome.rows] == [(target, s) for s in range(3)]
    assert all(0 < row.rtt_us < 1_000_000 for row in outcome.rows)


def test_ipv6_address_is_printed_normalised(lab: Lab) -> None:
    written = answering6(1).upper().replace("::", ":0000::")
    outcome = run_trio_ping(lab, f"{written},1,1")
    assert outcome.status == 0
    assert [row.address for row in outcome.rows] == [answering6(1)]


def test_one_batch_mixes_families(lab: Lab) -> None:
    stdin = "".join(f"{t},2,10\n" for t in (answering(1), answering6(1), LOOPBACK, LOOPBACK6))
    outcome = run_trio_ping(lab, stdin=stdin)
    assert outcome.status == 0
    groups = by_address(outcome.rows)
    assert sorted(groups) == sorted([answering(1), answering6(1), LOOPBACK, LOOPBACK6])
    assert all([row.seq for row in group] == [0, 1] for group in groups.values())


def test_ipv6_silence_and_router_errors(lab: Lab) -> None:
    outcome = run_trio_ping(
        lab, "--timeout", "0.3", "--verbose", f"{silent6(1)},1,10", f"{unreachable6(1)},2,10"
    )
    assert outcome.status == 1
    assert all(row.rtt_us == -1 for row in outcome.rows)
    assert len(outcome.rows) == 3
    assert outcome.stderr_lines == [
        f"trio-ping: {unreachable6(1)} seq={seq}: from {PEER_LINK6}: No route" for seq in (0, 1)
    ]


def test_timestamp_requests_refuse_ipv6_per_line(lab: Lab) -> None:
    outcome = run_trio_ping(lab, "--timestamp", f"{answering6(1)},1,1", f"{answering(1)},1,1")
    assert outcome.status == 2
    assert outcome.stderr_lines == [
        "trio-ping: argument 1: ICMP Timestamp requests exist for IPv4 only"
    ]
    assert outcome.stdout.startswith(f"{answering(1)},0,")


# Host names ------------------------------------------------------------------------


def test_localhost_by_name_prints_the_resolved_address(lab: Lab) -> None:
    outcome = run_trio_ping(lab, "-4", "localhost,2,10")
    assert outcome.status == 0
    assert [(row.address, row.seq) for row in outcome.rows] == [(LOOPBACK, 0), (LOOPBACK, 1)]


def test_a_name_that_does_not_resolve_fails_its_line_only(lab: Lab) -> None:
    # Inside the client namespace no resolver is reachable: the lookup fails at once and
    # no query leaves the lab.
    outcome = run_trio_ping(lab, stdin=f"{answering(1)},1,1\nnosuch.invalid,1,1\n")
    assert outcome.status == 2
    assert outcome.stderr_lines == ["trio-ping: line 2: cannot resolve 'nosuch.invalid'"]
    assert [row.address for row in outcome.rows] == [answering(1)]


def test_a_name_that_does_not_resolve_for_the_family_says_which(lab: Lab) -> None:
    outcome = run_trio_ping(lab, "-6", "nosuch.invalid,1,1", f"{LOOPBACK6},1,1")
    assert outcome.status == 2
    assert outcome.stderr_lines == [
        "trio-ping: argument 1: cannot resolve 'nosuch.invalid' to an IPv6 address"
    ]
    assert [row.address for row in outcome.rows] == [LOOPBACK6]


def test_family_flag_refuses_a_literal_of_the_other_family(lab: Lab) -> None:
    outcome = run_trio_ping(lab, "-6", f"{answering(1)},1,1", f"{LOOPBACK6},1,1")
    assert outcome.status == 2
    assert outcome.stderr_lines == [f"trio-ping: argument 1: {answering(1)} is not an IPv6 address"]
    assert [row.address for row in outcome.rows] == [LOOPBACK6]


# JSON lines ------------------------------------------------------------------------


def test_json_gives_every_event_type_with_stable_keys(lab: Lab) -> None:
    # Whole seconds: the clock's second may turn between this reading and the first send.
    started = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    outcome = run_trio_ping(
        lab,
        "--json",
        "--summary",
        "--timeout",
        "0.3",
        "-4",
        "localhost,2,10",
        f"{silent(1)},1,10",
        f"{unreachable(1)},1,10",
    )
    assert outcome.status == 1
    assert outcome.stderr == ""
    events = _events(outcome.stdout)
    requests = [e for e in events if e["event"] != "summary"]
    summaries = [e for e in events if e["event"] == "summary"]
    assert all(list(e) == REQUEST_KEYS for e in requests)
    assert all(list(e) == SUMMARY_KEYS for e in summaries)
    assert all(e["v"] == 1 for e in events)
    replies = [e for e in requests if e["event"] == "reply"]
    assert [(e["target"], e["address"], e["seq"]) for e in replies] == [
        ("localhost", LOOPBACK, 0),
        ("localhost", LOOPBACK, 1),
    ]
    assert all(e["rtt_us"] > 0 and e["ttl"] == 64 and e["error"] is None for e in replies)
    # Loopback's driver stamps each packet sent: the RTT starts from the kernel's time.
    assert all(e["send_stamp"] == "driver" for e in replies)
    assert all(e["send_stamp"] is None for e in requests if e["event"] != "reply")
    # Every request left during this run: its send time, RFC 3339 UTC with microseconds.
    for e in requests:
        sent = datetime.datetime.strptime(e["sent_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
        sent = sent.replace(tzinfo=datetime.UTC)
        assert started <= sent <= datetime.datetime.now(datetime.UTC)
    [timeout] = [e for e in requests if e["event"] == "timeout"]
    assert (timeout["address"], timeout["rtt_us"], timeout["reason"]) == (silent(1), None, None)
    [error] = [e for e in requests if e["event"] == "error"]
    assert (error["address"], error["error"], error["from"]) == (unreachable(1), "icmp", PEER_LINK)
    assert error["reason"] == "Destination Host Unreachable"
    # Summaries come after every request event, one per target, in the order given.
    assert events[-3:] == summaries
    assert [(s["target"], s["transmitted"], s["received"], s["errors"]) for s in summaries] == [
        ("localhost", 2, 2, 0),
        (silent(1), 1, 0, 0),
        (unreachable(1), 1, 0, 1),
    ]
    assert [s["loss_pct"] for s in summaries] == [0.0, 100.0, 100.0]
    assert summaries[1]["rtt_min_us"] is None


def test_json_timestamp_events_carry_the_times(lab: Lab) -> None:
    outcome = run_trio_ping(lab, "--json", "--timestamp", f"{answering(2)},1,1")
    assert outcome.status == 0
    [event] = _events(outcome.stdout)
    assert list(event) == REQUEST_KEYS + TIMESTAMP_KEYS
    assert event["event"] == "reply"
    assert abs(event["offset_ms"]) <= 2.0
    assert 0 <= (event["receive_ms"] - event["originate_ms"]) % DAY_MS <= 1000  # midnight-safe
    assert 0 <= (event["transmit_ms"] - event["receive_ms"]) % DAY_MS <= 1000


# Statistics ------------------------------------------------------------------------


def test_summary_figures_of_a_known_run(responder: Lab) -> None:
    # The delayed peer answers every request DELAY late; the duplicating one answers
    # each twice; the silent one never.
    slow, twice, mute = address_of("delay"), address_of("duplicate"), address_of("silent")
    outcome = run_trio_ping(
        responder, "--summary", "--timeout", "1", f"{slow},4,20", f"{twice},3,20", f"{mute},2,20"
    )
    assert outcome.status == 1
    blocks = outcome.stderr.split("--- ")[1:]
    assert [block.split(" ", 1)[0] for block in blocks] == [slow, twice, mute]
    slow_block, twice_block, mute_block = blocks
    assert "4 transmitted, 4 received, 0% packet loss, 0 duplicates, 0 errors" in slow_block
    figures = re.search(
        r"rtt min/avg/max/mdev = ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms, "
        r"p50/p95 = ([\d.]+)/([\d.]+) ms",
        slow_block,
    )
    assert figures is not None
    minimum, average, maximum, mdev, p50, p95 = map(float, figures.groups())
    rtts = sorted(row.rtt_us / 1000 for row in outcome.rows if row.address == slow)
    assert minimum == pytest.approx(rtts[0], abs=0.001)
    assert maximum == pytest.approx(rtts[-1], abs=0.001)
    assert average == pytest.approx(sum(rtts) / 4, abs=0.001)
    # Nearest rank: of four, the 2nd is the median and the 4th the 95th percentile.
    assert p50 == pytest.approx(rtts[1], abs=0.001)
    assert p95 == pytest.approx(rtts[3], abs=0.001)
    assert minimum >= DELAY * 1000
    assert 0 <= mdev < maximum - minimum + 0.001
    assert "3 transmitted, 3 received, 0% packet loss, 3 duplicates, 0 errors" in twice_block
    assert "2 transmitted, 0 received, 100% packet loss, 0 duplicates, 0 errors" in mute_block
    assert "rtt" not in mute_block


# CLI polish ------------------------------------------------------------------------


def test_help_shows_examples_and_exit_statuses(lab: Lab) -> None:
    outcome = run_trio_ping(lab, "--help")
    assert outcome.status == 0
    assert "examples:" in outcome.stdout
    assert "exit status: 0 all requests answered, 1 some unanswered" in outcome.stdout
    for option in ("--timeout", "--timestamp", "--json", "--summary", "--verbose", "-4", "-6"):
        assert option in outcome.stdout


def test_version(lab: Lab) -> None:
    outcome = run_trio_ping(lab, "--version")
    assert (outcome.status, outcome.stdout) == (0, f"trio-ping {__version__}\n")
