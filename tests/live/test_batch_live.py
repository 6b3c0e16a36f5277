"""Batches and failure modes at the socket, live: issues 3, 4 and 6."""

from __future__ import annotations

import gc
import itertools
import statistics

import trio

from tests.api.test_pinger_live import RecordingSocket, collect, lab_sockets
from tests.lab.addresses import LOOPBACK, answering, refused, silent
from tests.lab.netns import Lab
from tests.lab.run import by_address, run_trio_ping
from trio_ping import Status, open_pinger


def test_two_thousand_lines_each_request_answered_and_printed_once(lab: Lab) -> None:
    targets = [answering(index) for index in range(1, 2001)]
    stdin = "".join(f"{target},2,10\n" for target in targets)
    outcome = run_trio_ping(lab, "--timeout", "3", stdin=stdin, timeout=120)
    assert outcome.status == 0, outcome.stderr
    assert outcome.stderr == ""
    rows = outcome.rows
    assert len(rows) == 4000
    assert len({(row.address, row.seq) for row in rows}) == 4000
    groups = by_address(rows)
    assert sorted(groups) == sorted(targets)
    assert all([row.seq for row in group] == [0, 1] for group in groups.values())
    assert all(row.rtt_us > 0 for row in rows)


def test_mixed_batch_gives_the_right_lines_and_status(lab: Lab) -> None:
    lines = []
    for index in range(1, 101):
        lines.append(f"{answering(index)},2,10")
        lines.append(f"{silent(index)},1,10")
        lines.append(f"{answering(index)},11,10")  # invalid: count
    outcome = run_trio_ping(lab, "--timeout", "0.5", stdin="\n".join(lines) + "\n", timeout=60)
    assert outcome.status == 2  # bad lines outrank unanswered requests
    assert outcome.stderr_lines == [
        f"trio-ping: line {3 * index}: count must be a whole number from 1 to 10, got '11'"
        for index in range(1, 101)
    ]
    groups = by_address(outcome.rows)
    assert len(outcome.rows) == 300
    for index in range(1, 101):
        assert [row.seq for row in groups[answering(index)]] == [0, 1]
        assert all(row.rtt_us > 0 for row in groups[answering(index)])
        assert [(row.seq, row.rtt_us) for row in groups[silent(index)]] == [(0, -1)]


def test_a_send_the_kernel_refuses_is_minus_one_and_the_rest_go_on(lab: Lab) -> None:
    outcome = run_trio_ping(lab, "--verbose", f"{refused(1)},2,10", f"{answering(1)},2,10")
    assert outcome.status == 1
    groups = by_address(outcome.rows)
    assert [row.rtt_us for row in groups[refused(1)]] == [-1, -1]
    assert all(row.rtt_us > 0 for row in groups[answering(1)])
    assert outcome.stderr_lines == [
        f"trio-ping: {refused(1)} seq={seq}: send failed: No route to host" for seq in (0, 1)
    ]


async def test_loopback_rtts_are_positive_and_plausible(lab: Lab) -> None:
    made: list[RecordingSocket] = []
    with trio.fail_after(10):
        async with open_pinger(socket_factory=lab_sockets(lab, made)) as pinger:
            results = await collect(pinger.ping(LOOPBACK, count=10, interval=0.001))
    assert [result.status for result in results] == [Status.REPLY] * 10
    # Kernel stamps on loopback: tens of microseconds. Generous: this checks sign, units
    # and the clock, not speed.
    assert all(result.rtt_us is not None and 0 < result.rtt_us < 50_000 for result in results)
    assert all(result.kernel_timestamp for result in results)


async def test_pacing_does_not_fall_back_to_whole_milliseconds(lab: Lab) -> None:
    # trio's own sleeps end through epoll_wait, which rounds up to whole milliseconds: at a
    # 1 ms interval each gap would then miss by a random part of a millisecond (a median
    # error of a few hundred microseconds). The timerfd keeps to tens. Generous bounds:
    # not a speed target (the benchmark measures that), a check of the mechanism.
    #
    # The garbage collector is held off for the 10 ms measured: by now this pytest process
    # holds every earlier test's objects, and a collection pauses it (a full one took 37
    # ms on the project's VM, the younger ones fractions of a millisecond), which says
    # nothing about pacing. The CLI tunes the collector for the same reason; the library
    # leaves it alone.
    made: list[RecordingSocket] = []
    collecting = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        with trio.fail_after(10):
            async with open_pinger(socket_factory=lab_sockets(lab, made)) as pinger:
                await collect(pinger.ping(answering(1), count=10, interval=0.001))
    finally:
        if collecting:
            gc.enable()
    sent = made[0].sent_ns
    gaps_us = [(later - earlier) / 1000 for earlier, later in itertools.pairwise(sent)]
    assert len(gaps_us) == 9
    assert statistics.median(abs(gap - 1000) for gap in gaps_us) < 250, gaps_us
    assert (sent[-1] - sent[0]) / 1e6 < 12, gaps_us
