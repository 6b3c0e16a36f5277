"""``trio-ping --timestamp`` against the lab's kernel peer, loopback and the misbehaving peer."""

from __future__ import annotations

import re

import pytest

from tests.lab.addresses import LOOPBACK, answering, silent
from tests.lab.netns import Lab
from tests.lab.responder import address_of
from tests.lab.run import run_trio_ping
from trio_ping._proto.timestamps import DAY_MS

TIMESTAMP_LINE = re.compile(
    r"(?P<address>[0-9.]+),(?P<seq>\d+),(?P<rtt>\d+),(?P<originate>\d+),(?P<receive>\d+),"
    r"(?P<transmit>\d+),(?P<offset>-?\d+\.\d)"
)


@pytest.mark.parametrize("target", [answering(9), LOOPBACK])
def test_kernel_answers_with_an_offset_near_zero(lab: Lab, target: str) -> None:
    outcome = run_trio_ping(lab, "--timestamp", f"{target},3,10")
    assert outcome.status == 0
    assert outcome.stderr == ""
    lines = outcome.stdout.splitlines()
    assert len(lines) == 3
    for seq, line in enumerate(sorted(lines)):
        match = TIMESTAMP_LINE.fullmatch(line)
        assert match, line
        assert (match["address"], int(match["seq"])) == (target, seq)
        assert 0 < int(match["rtt"]) < 1_000_000
        # One machine, one clock: the offset is the millisecond quantisation at most.
        assert abs(float(match["offset"])) <= 2.0
        # In order, the wrap-aware way: a run may straddle midnight UT.
        originate, receive, transmit = (int(match[k]) for k in ("originate", "receive", "transmit"))
        assert 0 <= (receive - originate) % DAY_MS <= 1000
        assert 0 <= (transmit - receive) % DAY_MS <= 1000


def test_unanswered_timestamp_request_has_empty_fields(lab: Lab) -> None:
    outcome = run_trio_ping(lab, "--timestamp", "--timeout", "0.3", f"{silent(2)},2,10")
    assert outcome.status == 1
    assert outcome.stdout.splitlines() == [f"{silent(2)},0,-1,,,,", f"{silent(2)},1,-1,,,,"]


@pytest.mark.parametrize(
    "behaviour", ["wrong-originate", "bad-checksum", "other-source", "unsent-seq", "wrong-ident"]
)
def test_bad_timestamp_replies_never_count(responder: Lab, behaviour: str) -> None:
    target = address_of(behaviour)
    outcome = run_trio_ping(responder, "--timestamp", "--timeout", "0.4", f"{target},2,10")
    assert outcome.status == 1
    assert outcome.stdout.splitlines() == [f"{target},0,-1,,,,", f"{target},1,-1,,,,"]


def test_misbehaving_peer_answering_correctly_counts(responder: Lab) -> None:
    # The control for the test above: the same peer, answering right, is believed.
    outcome = run_trio_ping(responder, "--timestamp", f"{address_of('normal')},2,10")
    assert outcome.status == 0
    assert all(TIMESTAMP_LINE.fullmatch(line) for line in outcome.stdout.splitlines())
