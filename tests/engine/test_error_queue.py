"""ICMP errors on an ICMP datagram socket: they come from the kernel's error queue.

The fake socket plays the kernel's part (tests/fakes.py): an error quoting one of the
socket's requests is queued, not delivered as a datagram, and the engine must read it.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from tests.engine.helpers import EXACT, ROUTER, TARGET, by_seq, collect, pinger_over
from tests.fakes import Delivery, FakeIcmpSocket, Sent, error_bytes, reply_bytes, to_ns
from trio_ping._proto import icmp
from trio_ping.results import PingResult, Status


@pytest.mark.parametrize(
    ("message_type", "code", "reason"),
    [
        (icmp.DESTINATION_UNREACHABLE, 1, "Destination Host Unreachable"),
        (icmp.TIME_EXCEEDED, 0, "Time to live exceeded"),
    ],
)
async def test_a_queued_icmp_error_ends_the_request_at_once(
    autojump_clock: trio.testing.MockClock, message_type: int, code: int, reason: str
) -> None:
    def peer(sent: Sent) -> list[Delivery]:
        error = error_bytes(sent, message_type, code, ROUTER)
        return [Delivery(0.004, error, ROUTER), Delivery(0.05, reply_bytes(sent), sent.address)]

    fake = FakeIcmpSocket(peer, raw=False)
    async with pinger_over(fake) as pinger:
        results = await collect(pinger, count=2, interval=0.5, timeout=5.0)
    ended = by_seq(results)
    assert sorted(ended) == [0, 1]
    for seq, (at, result) in ended.items():
        assert result == PingResult(
            TARGET,
            seq,
            Status.ICMP_ERROR,
            reason=reason,
            reported_by=ROUTER,
            sent_ns=to_ns(fake.sent[seq].time),
        )
        assert at == pytest.approx(fake.sent[seq].time + 0.004, abs=EXACT)


async def test_a_queued_error_quoting_another_sessions_payload_ends_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The kernel's identifier is the same for every session on the socket: only the
    # identifier inside the quoted payload says whose request it was.
    def peer(sent: Sent) -> list[Delivery]:
        payload = bytearray(sent.payload)
        payload[9] ^= 0x01  # the low byte of our identifier, in the payload
        other = Sent(sent.time, sent.packet[:8] + bytes(payload), sent.address)
        return [
            Delivery(0.004, error_bytes(other, icmp.DESTINATION_UNREACHABLE, 1, ROUTER), ROUTER)
        ]

    async with pinger_over(FakeIcmpSocket(peer, raw=False)) as pinger:
        results = await collect(pinger, count=1, interval=0.5, timeout=0.2)
    assert [result.status for _, result in results] == [Status.TIMEOUT]
