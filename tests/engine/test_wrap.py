"""Runs of any length: ICMP sequence numbers wrap at 65,536 and never take the key of a
request in flight; identifiers are shared when one address has more sessions than there
are identifiers.

On the in-memory socket and trio's autojump clock (see test_engine.py for the fake's rules).
Requests go 10 us apart, so that the sender sends them in batches (its window is 0.5 ms)
and 70,000 of them cost seconds of real time, not a wake-up each.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from tests.engine.helpers import TARGET, by_seq, collect, drain, pinger_over, start_each
from tests.fakes import Delivery, FakeIcmpSocket, Peer, Sent, echo, reply_bytes, silent
from trio_ping._proto.tracker import ProbeKey, Tracker
from trio_ping.results import PingResult, Status

ROUND = 0x10000


def numbered_peer(delays: dict[int, float], default: float = 0.001) -> Peer:
    """A host answering the n-th request it sees after ``delays.get(n, default)`` seconds."""
    seen = 0

    def peer(sent: Sent) -> list[Delivery]:
        nonlocal seen
        delay = delays.get(seen, default)
        seen += 1
        return [Delivery(delay, reply_bytes(sent), sent.address)]

    return peer


async def test_a_long_run_wraps_and_skips_a_sequence_still_in_flight(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Request 5 is answered after 1 s, with a timeout of 2 s: when the sequence numbers
    # come round again (0.655 s later, at 10 us), its key is still awaiting that answer.
    peer = numbered_peer({5: 1.0})
    fake = FakeIcmpSocket(peer)
    total = 70_000
    async with pinger_over(fake) as pinger:
        results = by_seq(await collect(pinger, count=total, interval=1e-5, timeout=2.0))
    assert sorted(results) == list(range(total))
    assert all(result.answered for _, result in results.values())
    assert results[5][1].rtt_us == 1_000_000
    assert results[6][1].rtt_us == 1_000
    wire = [sent.seq for sent in fake.sent]
    assert len(wire) == total
    assert wire[:ROUND] == list(range(ROUND))
    # The second round skips 5, whose first-round request was still in flight.
    assert wire[ROUND : ROUND + 10] == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10]
    assert wire[ROUND:] == [seq for seq in range(total - ROUND + 1) if seq != 5]
    assert len({sent.ident for sent in fake.sent}) == 1
    # Each round has a payload of its own.
    assert len({sent.payload for sent in fake.sent[:ROUND]}) == 1
    assert fake.sent[ROUND].payload != fake.sent[0].payload
    assert len({sent.payload for sent in fake.sent[ROUND:]}) == 1


async def test_a_late_reply_from_the_previous_round_answers_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Request 7 times out after 0.1 s; its reply comes 0.7 s late, while request 65,543
    # (the same sequence number, a round later, at 0.655 s) waits for its own, which takes
    # 80 ms.
    peer = numbered_peer({7: 0.7, ROUND + 7: 0.08})
    fake = FakeIcmpSocket(peer)
    async with pinger_over(fake) as pinger:
        results = by_seq(await collect(pinger, count=ROUND + 10, interval=1e-5, timeout=0.1))
        discarded = pinger.discarded()
    assert fake.sent[7].seq == fake.sent[ROUND + 7].seq == 7
    assert not results[7][1].answered
    assert results[ROUND + 7][1].rtt_us == 80_000  # its own reply, not the late one
    assert discarded == (0, 1)  # the late reply: the key, without its payload
    assert sum(result.answered for _, result in results.values()) == ROUND + 9


async def test_more_sessions_to_one_address_than_there_are_identifiers_all_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeIcmpSocket(echo(0.001))
    total = 70_000
    async with pinger_over(fake) as pinger:
        receive_channel = start_each(pinger, [TARGET] * total, count=1, interval=1.0)
        results = await drain(receive_channel)
    assert len(results) == total
    assert all(result.answered and result.seq == 0 for _, result in results)
    # All were in flight at once (virtual time stood still while they were sent): no two
    # shared a key, though 4,464 shared an identifier once every one was taken.
    keys = {(sent.ident, sent.seq) for sent in fake.sent}
    assert len(keys) == len(fake.sent) == total
    assert len({sent.ident for sent in fake.sent}) == 0x10000
    assert len({sent.payload for sent in fake.sent}) == total


async def test_a_short_payload_session_with_every_key_in_flight_fails_a_request_not_the_loop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # On a datagram socket a payload under 10 bytes cannot say which session it is, so
    # the session has one identifier for good. Nothing answers and the timeout is long:
    # once 65,536 requests are in flight, the next has no key of its own. It fails (it is
    # not sent, and the sender goes on) instead of the sender searching for a key forever.
    fake = FakeIcmpSocket(silent, raw=False)
    async with pinger_over(fake) as pinger:
        results: list[PingResult] = []
        async for result in pinger.ping(
            TARGET, count=ROUND + 2, interval=1e-5, timeout=5.0, size=4
        ):
            results.append(result)
    assert len(fake.sent) == ROUND
    unsent = [result for result in results if result.status is Status.SEND_FAILED]
    assert [result.seq for result in unsent] == [ROUND, ROUND + 1]
    assert "65,536 sequence numbers" in str(unsent[0].reason)
    assert sum(result.status is Status.TIMEOUT for result in results) == ROUND


async def test_a_saturated_short_payload_session_fails_at_once_and_sends_once_a_key_frees(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # After one walk of all 65,536 keys, the session's next requests fail without another
    # walk (the sender would hold the loop for seconds), and once its oldest requests time
    # out their keys serve again: requests are sent again.
    looks = 0
    look = Tracker.is_outstanding

    def counted(self: Tracker[object], key: ProbeKey) -> bool:
        nonlocal looks
        looks += 1
        if looks > 4 * ROUND:
            raise AssertionError("the keys were walked again for a saturated session")
        return look(self, key)

    monkeypatch.setattr(Tracker, "is_outstanding", counted)
    fake = FakeIcmpSocket(silent, raw=False)
    async with pinger_over(fake) as pinger:
        statuses: list[Status] = []
        # Saturated at 0.655 s (65,536 requests 10 us apart); the first expires at 0.67 s.
        async for result in pinger.ping(
            TARGET, count=ROUND + 3_000, interval=1e-5, timeout=0.67, size=4
        ):
            statuses.append(result.status)
    failed = statuses.count(Status.SEND_FAILED)
    assert 1_000 < failed < 2_000  # those due between 0.655 s and 0.67 s
    assert len(fake.sent) + failed == ROUND + 3_000  # the rest were sent, keys freed
