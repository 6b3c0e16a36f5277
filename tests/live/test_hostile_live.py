"""What a hostile network throws at trio-ping, and what it prints: issue 4, live.

Each behaviour comes from the misbehaving responder (tests/lab/responder.py) at its own
lab address. The rule for all of them: every sequence is printed exactly once, with a
plausible RTT or -1, and nothing that is not a valid answer counts as one.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.lab.netns import Lab
from tests.lab.responder import DELAY, address_of
from tests.lab.run import Outcome, Row, run_trio_ping, spawn_trio_ping

COUNT = 4
TIMEOUT = 0.5


def _ping(lab: Lab, behaviour: str, *extra: str) -> tuple[Outcome, list[Row]]:
    outcome = run_trio_ping(
        lab, "--timeout", str(TIMEOUT), *extra, f"{address_of(behaviour)},{COUNT},20"
    )
    rows = outcome.rows
    # The rule for every behaviour: each sequence exactly once, and nothing else.
    assert sorted(row.seq for row in rows) == list(range(COUNT)), outcome.stdout
    assert {row.address for row in rows} == {address_of(behaviour)}
    return outcome, rows


@pytest.mark.parametrize(
    ("behaviour", "low_us", "high_us"),
    [
        ("normal", 1, 100_000),
        ("duplicate", 1, 100_000),
        ("ip-options", 1, 100_000),
        ("delay", int(DELAY * 1e6), int(DELAY * 1e6) + 150_000),
        ("gauntlet", 50_000, 200_000),
    ],
)
def test_answers_that_count(responder: Lab, behaviour: str, low_us: int, high_us: int) -> None:
    outcome, rows = _ping(responder, behaviour)
    assert outcome.status == 0
    assert all(low_us <= row.rtt_us <= high_us for row in rows), rows


@pytest.mark.parametrize(
    "behaviour",
    [
        "silent",
        "bad-checksum",
        "wrong-ident",
        "unsent-seq",
        "altered-payload",
        "truncated",
        "other-source",
        "reflect",
        "late",
    ],
)
def test_answers_that_do_not_count(responder: Lab, behaviour: str) -> None:
    outcome, rows = _ping(responder, behaviour)
    assert outcome.status == 1
    assert [row.rtt_us for row in rows] == [-1] * COUNT
    assert outcome.stderr == ""


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [("unreachable", "Destination Host Unreachable"), ("time-exceeded", "Time to live exceeded")],
)
def test_icmp_errors_end_their_request_at_once(responder: Lab, behaviour: str, reason: str) -> None:
    # A timeout far beyond the test's own: only the errors can end the run in time.
    outcome = run_trio_ping(
        responder, "--timeout", "60", "--verbose", f"{address_of(behaviour)},{COUNT},20", timeout=20
    )
    assert outcome.status == 1
    assert [row.rtt_us for row in outcome.rows] == [-1] * COUNT
    router = "10.201.1.2"
    assert sorted(outcome.stderr_lines) == sorted(
        f"trio-ping: {address_of(behaviour)} seq={seq}: from {router}: {reason}"
        for seq in range(COUNT)
    )


def test_reordered_replies_each_print_once(responder: Lab) -> None:
    _, rows = _ping(responder, "reorder")
    assert [row.seq for row in rows] == [1, 3, 0, 2]


def test_concurrent_processes_never_print_each_others_results(responder: Lab) -> None:
    # Eight processes ping the same slow target, started STAGGER apart, so their requests
    # of one sequence number are in flight together. Each must take only its own
    # replies: one that took an earlier process's reply would report an RTT about
    # STAGGER (or a multiple) short of the peer's delay.
    stagger = 0.05
    slow = address_of("delay")
    processes = []
    for _ in range(8):
        processes.append(spawn_trio_ping(responder, f"{slow},{COUNT},20", stdin=subprocess.DEVNULL))
        time.sleep(stagger)  # the stagger is the test's condition, not a wait for an event
    for process in processes:
        with process:
            stdout, stderr = process.communicate(timeout=30)
            outcome = Outcome(process.returncode, stdout.decode(), stderr.decode())
            assert outcome.status == 0, outcome
            assert sorted(row.seq for row in outcome.rows) == list(range(COUNT))
            assert {row.address for row in outcome.rows} == {slow}
            assert all(row.rtt_us >= DELAY * 1e6 for row in outcome.rows), outcome.rows
            assert all(row.rtt_us < (DELAY + stagger) * 1e6 for row in outcome.rows)


def test_verbose_counts_what_was_thrown_away(responder: Lab) -> None:
    # Before each good reply the gauntlet sends, among others, one with a bad checksum
    # (malformed: on veth the kernel hands it over unchecked) and one with an altered
    # payload (invalid). Its truncated reply (4 bytes of ICMP) the client's kernel drops
    # before any socket sees it.
    outcome = run_trio_ping(responder, "--verbose", f"{address_of('gauntlet')},2,20")
    assert outcome.status == 0
    assert outcome.stderr_lines == [
        "trio-ping: ignored 2 malformed packets and 2 replies "
        "that did not carry their request's payload"
    ]
