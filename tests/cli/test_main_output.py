"""What the command line writes, through main(argv, env): CSV, --timestamp, JSON lines,
and the --verbose notes on stderr.

In-process runs on fake sockets and the autojump clock (see tests/cli/harness.py). The
output writer's own tests (batching, flushing) are in tests/cli/test_output.py.
"""

from __future__ import annotations

import datetime
import errno

import pytest

from tests.cli.harness import answer, refusing, run_cli
from tests.fakes import (
    NOON_MS,
    NOON_NS,
    Delivery,
    Peer,
    Sent,
    error_bytes,
    reply_bytes,
    silent,
    timestamp_reply_bytes,
    to_ns,
)
from tests.lab.addresses import PEER_LINK
from trio_ping._proto import icmp

REQUEST_KEYS = ["v", "event", "target", "address", "seq", "rtt_us", "ttl"]
REQUEST_KEYS += ["error", "reason", "from", "sent_at", "send_stamp"]
TIMESTAMP_KEYS = ["originate_ms", "receive_ms", "transmit_ms", "offset_ms"]


def utc_text(ns: int) -> str:
    """RFC 3339 UTC with microseconds, computed apart from the code under test."""
    moment = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    moment += datetime.timedelta(microseconds=ns // 1000)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# CSV -------------------------------------------------------------------------------------


def test_csv_lines_are_address_seq_rtt_with_minus_one_for_no_reply() -> None:
    def every_other(sent: Sent) -> list[Delivery]:
        return [] if sent.seq % 2 else [Delivery(0.0125, reply_bytes(sent), sent.address)]

    outcome = run_cli("--timeout", "1", "127.0.0.1,3,10", peer=every_other)
    assert outcome.stdout == "127.0.0.1,0,12500\n127.0.0.1,2,12500\n127.0.0.1,1,-1\n"


def test_a_datagram_socket_gives_the_same_lines() -> None:
    # ICMP "ping" sockets: the kernel sets the identifier and strips the IP header.
    outcome = run_cli("127.0.0.1,2,10", raw=False)
    assert outcome.lines == ["127.0.0.1,0,1000", "127.0.0.1,1,1000"]


# --timestamp -----------------------------------------------------------------------------


def timestamp_peer(delay: float, ahead_ms: int) -> Peer:
    """A peer whose clock is ``ahead_ms`` ahead, answering Timestamp requests halfway."""

    def peer(sent: Sent) -> list[Delivery]:
        assert sent.type == icmp.TIMESTAMP_REQUEST
        ours = int.from_bytes(sent.packet[8:12], "big")
        stamp = ours + round(delay * 500) + ahead_ms
        data = timestamp_reply_bytes(sent, receive=stamp, transmit=stamp)
        return [Delivery(delay, data, sent.address)]

    return peer


@pytest.mark.usefixtures("wall_clock")
def test_timestamp_lines_carry_the_peers_times_and_the_offset() -> None:
    outcome = run_cli(
        "--timestamp", "127.0.0.1,2,1000", peer=timestamp_peer(0.004, 5), epoch_ns=NOON_NS
    )
    assert outcome.status == 0
    assert outcome.lines == [
        f"127.0.0.1,{seq},4000,{NOON_MS + 1000 * seq},{NOON_MS + 1000 * seq + 7},"
        f"{NOON_MS + 1000 * seq + 7},5.0"
        for seq in (0, 1)
    ]
    assert {sent.type for sent in outcome.sent} == {icmp.TIMESTAMP_REQUEST}


def test_an_unanswered_timestamp_request_has_empty_fields() -> None:
    outcome = run_cli("--timestamp", "--timeout", "0.3", "127.0.0.2,2,10", peer=silent)
    assert outcome.lines == ["127.0.0.2,0,-1,,,,", "127.0.0.2,1,-1,,,,"]


@pytest.mark.usefixtures("wall_clock")
def test_json_timestamp_events_carry_the_times() -> None:
    outcome = run_cli(
        "--json", "--timestamp", "127.0.0.1,1,1", peer=timestamp_peer(0.002, -3), epoch_ns=NOON_NS
    )
    [event] = outcome.events
    assert list(event) == REQUEST_KEYS + TIMESTAMP_KEYS
    assert event == {
        "v": 1,
        "event": "reply",
        "target": "127.0.0.1",
        "address": "127.0.0.1",
        "seq": 0,
        "rtt_us": 2000,
        "ttl": 64,
        "error": None,
        "reason": None,
        "from": None,
        "sent_at": utc_text(NOON_NS + to_ns(outcome.sent[0].time)),
        "send_stamp": "user",
        "originate_ms": NOON_MS,
        "receive_ms": NOON_MS + 1 - 3,
        "transmit_ms": NOON_MS + 1 - 3,
        "offset_ms": -3.0,
    }


# JSON lines ------------------------------------------------------------------------------


def test_json_gives_every_event_type_with_stable_keys() -> None:
    def peer(sent: Sent) -> list[Delivery]:
        if sent.address == "127.0.0.3":
            data = error_bytes(sent, icmp.DESTINATION_UNREACHABLE, 1, PEER_LINK)
            return [Delivery(0.002, data, PEER_LINK)]
        if sent.address == "127.0.0.2":
            return []
        return list(answer(0.001)(sent))

    outcome = run_cli(
        "--json",
        "--timeout",
        "0.3",
        "localhost,1,10",
        "127.0.0.2,1,10",
        "127.0.0.3,1,10",
        "127.0.0.4,1,10",
        peer=refusing("127.0.0.4", errno.ENETUNREACH, peer),
    )
    assert outcome.status == 1
    assert outcome.stderr == ""
    events = outcome.events
    assert all(list(event) == REQUEST_KEYS for event in events)
    by_address = {event["address"]: event for event in events}
    nothing = dict.fromkeys(["rtt_us", "ttl", "error", "reason", "from", "sent_at", "send_stamp"])
    sent_at = {sent.address: utc_text(to_ns(sent.time)) for sent in outcome.sent}
    assert "127.0.0.4" not in sent_at  # refused: never sent, so its sent_at is null
    assert by_address == {
        "127.0.0.1": {
            "v": 1,
            "event": "reply",
            "target": "localhost",
            "address": "127.0.0.1",
            "seq": 0,
            **nothing,
            "rtt_us": 1000,
            "ttl": 64,
            "sent_at": sent_at["127.0.0.1"],
            "send_stamp": "user",
        },
        "127.0.0.2": {
            "v": 1,
            "event": "timeout",
            "target": "127.0.0.2",
            "address": "127.0.0.2",
            "seq": 0,
            **nothing,
            "sent_at": sent_at["127.0.0.2"],
        },
        "127.0.0.3": {
            "v": 1,
            "event": "error",
            "target": "127.0.0.3",
            "address": "127.0.0.3",
            "seq": 0,
            **nothing,
            "error": "icmp",
            "reason": "Destination Host Unreachable",
            "from": PEER_LINK,
            "sent_at": sent_at["127.0.0.3"],
        },
        "127.0.0.4": {
            "v": 1,
            "event": "error",
            "target": "127.0.0.4",
            "address": "127.0.0.4",
            "seq": 0,
            **nothing,
            "error": "send",
            "reason": "Network is unreachable",
        },
    }
    # Each as soon as known: the send failure at once, the error, the reply, the timeout.
    assert [event["address"] for event in events] == [
        "127.0.0.4",
        "127.0.0.1",
        "127.0.0.3",
        "127.0.0.2",
    ]


def test_json_lines_are_compact() -> None:
    outcome = run_cli("--json", "127.0.0.1,1,1")
    assert outcome.stdout.startswith('{"v":1,"event":"reply","target":"127.0.0.1",')
    assert outcome.stdout.endswith("}\n")
    assert " " not in outcome.stdout


# --verbose notes -------------------------------------------------------------------------

USER_SPACE = (
    "trio-ping: the kernel gave no receive timestamps: RTTs are measured in user space "
    "and include scheduling delay"
)


def user_space_peer(sent: Sent) -> list[Delivery]:
    return [Delivery(0.002, reply_bytes(sent), sent.address, kernel_timestamp=False)]


@pytest.mark.parametrize("verbose", [False, True])
def test_user_space_rtts_are_noted_once_under_verbose(verbose: bool) -> None:
    flags = ["-v"] if verbose else []
    outcome = run_cli(*flags, "127.0.0.1,3,10", "127.0.0.2,1,10", peer=user_space_peer)
    assert outcome.status == 0
    assert outcome.stderr_lines == ([USER_SPACE] if verbose else [])
    assert sorted(outcome.rows()) == sorted(
        [("127.0.0.1", seq, 2000) for seq in range(3)] + [("127.0.0.2", 0, 2000)]
    )


@pytest.mark.parametrize("verbose", [False, True])
def test_discarded_packets_are_counted_under_verbose(verbose: bool) -> None:
    def hostile(sent: Sent) -> list[Delivery]:
        valid = reply_bytes(sent)
        altered = reply_bytes(sent, payload=sent.payload[:-1] + b"X")
        return [
            Delivery(0.001, valid[:24], sent.address),  # truncated in its ICMP header
            Delivery(0.002, altered, sent.address),
            Delivery(0.003, valid, sent.address),
        ]

    flags = ["--verbose"] if verbose else []
    outcome = run_cli(*flags, "127.0.0.1,2,10", peer=hostile)
    assert outcome.status == 0
    assert outcome.lines == ["127.0.0.1,0,3000", "127.0.0.1,1,3000"]
    note = (
        "trio-ping: ignored 2 malformed packets and 2 replies that did not carry their "
        "request's payload"
    )
    assert outcome.stderr_lines == ([note] if verbose else [])


def test_nothing_discarded_notes_nothing() -> None:
    outcome = run_cli("--verbose", "127.0.0.1,2,10")
    assert (outcome.status, outcome.stderr) == (0, "")
