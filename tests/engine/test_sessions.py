"""The sessions of one socket: identifiers, payloads, starting, cancelling and finishing.

Driven through a real Pinger (or the engine itself) over the in-memory socket, on trio's
autojump clock; see test_engine.py for the rules of the fake.
"""

from __future__ import annotations

import math
from contextlib import aclosing

import pytest
import trio
import trio.testing

from tests.engine.helpers import (
    EXACT,
    TARGET,
    Timed,
    by_seq,
    collect,
    drain,
    engine_over,
    pinger_over,
    two_sessions_to_one_target,
)
from tests.fakes import SOCKET_IDENT, Delivery, FakeIcmpSocket, Sent, echo, reply_bytes, silent
from tests.lab import packets
from trio_ping import SocketPermissionError
from trio_ping._engine.sessions import (
    PAYLOAD_HEAD,
    PAYLOAD_SIZE,
    SHORT_PAYLOAD_IDENT,
    Session,
    Sessions,
    ident_in_payload,
)
from trio_ping._proto.schedule import Schedule
from trio_ping._proto.tracker import Tracker
from trio_ping.results import PingResult, Status

# Sessions --------------------------------------------------------------------------------


async def test_two_sessions_to_one_address_both_complete(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeIcmpSocket(echo(0.03))
    outcomes = await two_sessions_to_one_target(fake)
    assert len(outcomes) == 2
    for results in outcomes:
        assert sorted(by_seq(results)) == [0, 1, 2]
        assert all(result.rtt_us == 30_000 for _, result in results)
    assert len({sent.ident for sent in fake.sent}) == 2
    assert len({sent.payload for sent in fake.sent}) == 2


async def test_two_sessions_to_one_address_do_not_cross(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sessions: list[Session] = []

    def peer(sent: Sent) -> list[Delivery]:
        first, second = sessions
        if sent.ident == first.ident:
            # A correct answer for the first session, and the same bytes under the second
            # session's identifier: neither may settle one of the second's requests.
            return [
                Delivery(0.01, reply_bytes(sent), sent.address),
                Delivery(0.02, reply_bytes(sent, ident=second.ident), sent.address),
            ]
        return []

    fake = FakeIcmpSocket(peer)
    async with engine_over(fake) as engine:
        channels = []
        for _ in range(2):
            send_channel, receive_channel = trio.open_memory_channel[PingResult](math.inf)
            sessions.append(
                engine.start(
                    TARGET,
                    packets.packed(TARGET),
                    count=3,
                    interval=0.01,
                    timeout=1.0,
                    results=send_channel,
                )
            )
            channels.append(receive_channel)
        first_results = await drain(channels[0])
        second_results = await drain(channels[1])
    assert sessions[0].ident != sessions[1].ident
    assert {result.status for _, result in first_results} == {Status.REPLY}
    assert {result.status for _, result in second_results} == {Status.TIMEOUT}
    assert sorted(by_seq(first_results)) == sorted(by_seq(second_results)) == [0, 1, 2]


async def test_ping_yields_one_result_per_request_then_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Later requests are answered sooner, so results come out of sequence order.
    def peer(sent: Sent) -> list[Delivery]:
        return [Delivery(0.5 - 0.1 * sent.seq, reply_bytes(sent), sent.address)]

    fake = FakeIcmpSocket(peer)
    async with pinger_over(fake) as pinger:
        results = await collect(pinger, count=5, interval=0.01)
        ended = trio.current_time()
    assert [result.seq for _, result in results] == [4, 3, 2, 1, 0]
    assert [result.rtt_us for _, result in results] == [100_000, 200_000, 300_000, 400_000, 500_000]
    assert ended == pytest.approx(0.5, abs=EXACT)
    assert len(fake.sent) == 5


# trio warns when an unfinished async generator is left to the garbage collector; it still
# closes it, and closing is what must stop the sends.
@pytest.mark.filterwarnings("ignore:Async generator .* was garbage collected:ResourceWarning")
async def test_breaking_out_of_ping_stops_further_sends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeIcmpSocket(echo(0.01))
    async with pinger_over(fake) as pinger:
        async for result in pinger.ping(TARGET, count=10, interval=0.1):
            assert result.seq == 0
            break
        await trio.sleep(5.0)
        assert [sent.seq for sent in fake.sent] == [0]


async def test_closing_ping_early_stops_further_sends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeIcmpSocket(silent)
    async with pinger_over(fake) as pinger:
        generator = pinger.ping(TARGET, count=10, interval=0.1, timeout=0.25)
        async with aclosing(generator) as results:
            async for result in results:
                assert (result.seq, result.status) == (0, Status.TIMEOUT)
                break
        await trio.sleep(5.0)
    # Requests 0..2 had left by the time seq 0 timed out at 0.25 s; nothing after.
    assert [sent.seq for sent in fake.sent] == [0, 1, 2]


async def test_many_targets_share_the_socket_on_schedule(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeIcmpSocket(echo(0.2))
    addresses = [f"10.200.{n // 250}.{n % 250 + 1}" for n in range(300)]
    outcomes: dict[str, list[Timed]] = {}

    async def run(address: str) -> None:
        outcomes[address] = await collect(pinger, address, count=10, interval=0.01)

    async with pinger_over(fake) as pinger, trio.open_nursery() as nursery:
        for address in addresses:
            nursery.start_soon(run, address)
    assert len(fake.sent) == 3000
    for address in addresses:
        assert sorted(by_seq(outcomes[address])) == list(range(10))
        assert {result.rtt_us for _, result in outcomes[address]} == {200_000}
        times = [sent.time for sent in fake.sent if sent.address == address]
        assert times == pytest.approx([times[0] + k * 0.01 for k in range(10)], abs=1e-6)


# ICMP datagram ("ping") sockets ---------------------------------------------------------


async def test_datagram_socket_matches_replies_by_the_identifier_in_the_payload(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeIcmpSocket(echo(0.02), raw=False)
    outcomes = await two_sessions_to_one_target(fake)
    # The kernel gave every request the socket's identifier: only the payload tells the
    # two sessions apart.
    assert {sent.ident for sent in fake.sent} == {SOCKET_IDENT}
    assert len({sent.payload for sent in fake.sent}) == 2
    for results in outcomes:
        assert sorted(by_seq(results)) == [0, 1, 2]
        assert {(result.status, result.rtt_us, result.ttl) for _, result in results} == {
            (Status.REPLY, 20_000, 64)
        }


@pytest.mark.parametrize(
    "position",
    [0, 8, 9, 12, 55],
    ids=["cookie", "ident-high", "ident-low", "session-number", "padding"],
)
async def test_datagram_socket_reply_with_altered_payload_does_not_count(
    autojump_clock: trio.testing.MockClock, position: int
) -> None:
    def peer(sent: Sent) -> list[Delivery]:
        altered = bytearray(sent.payload)
        altered[position] ^= 0x01
        return [Delivery(0.01, reply_bytes(sent, payload=bytes(altered)), sent.address)]

    async with pinger_over(FakeIcmpSocket(peer, raw=False)) as pinger:
        results = await collect(pinger, count=2, interval=0.5, timeout=0.2)
    assert [result.status for _, result in results] == [Status.TIMEOUT] * 2


async def test_a_full_bounded_channel_ends_its_session_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeIcmpSocket(echo(0.001))
    tight_send, tight_receive = trio.open_memory_channel[PingResult](1)
    wide_send, wide_receive = trio.open_memory_channel[PingResult](math.inf)
    async with pinger_over(fake) as pinger:
        pinger.start(TARGET, count=5, interval=0.01, timeout=1.0, results=tight_send)
        pinger.start("192.0.2.7", count=5, interval=0.01, timeout=1.0, results=wide_send)
        others = await drain(wide_receive)
    # The reader of the bounded channel never read: it got what fitted, then the end.
    assert [r.seq for r in [tight_receive.receive_nowait()]] == [0]
    with pytest.raises(trio.EndOfChannel):
        tight_receive.receive_nowait()
    assert [r.status for _, r in others] == [Status.REPLY] * 5


# The registry itself ---------------------------------------------------------------------


def a_registry(*, ipv6: bool = False, raw: bool = True) -> tuple[Sessions, Schedule[Session]]:
    schedule: Schedule[Session] = Schedule()
    return Sessions(schedule, Tracker(), ipv6=ipv6, raw=raw), schedule


def start_one(
    sessions: Sessions,
    results: trio.MemorySendChannel[PingResult],
    *,
    address: str = TARGET,
    count: int = 2,
    timestamp: bool = False,
) -> Session:
    return sessions.start(
        address,
        packets.packed(address),
        start=0.0,
        count=count,
        interval=1.0,
        timeout=1.0,
        results=results,
        timestamp=timestamp,
        target=None,
    )


def test_the_payload_is_the_head_then_the_same_padding_for_every_session() -> None:
    sessions, _ = a_registry()
    send_channel, _receive = trio.open_memory_channel[PingResult](math.inf)
    first = start_one(sessions, send_channel.clone())
    second = start_one(sessions, send_channel.clone())
    heads = [PAYLOAD_HEAD.unpack_from(session.payload) for session in (first, second)]
    (cookie, ident, number), (cookie2, ident2, number2) = heads
    assert len(cookie) == 8
    assert cookie == cookie2  # one per run
    assert (ident, ident2) == (first.ident, second.ident)
    assert number2 == number + 1
    assert [len(session.payload) for session in (first, second)] == [PAYLOAD_SIZE] * 2
    assert first.payload[PAYLOAD_HEAD.size :] == second.payload[PAYLOAD_HEAD.size :]
    assert first.payload[PAYLOAD_HEAD.size :] == bytes(range(0x10, 0x10 + PAYLOAD_SIZE - 14))


def test_the_identifier_is_read_back_from_a_payload() -> None:
    sessions, _ = a_registry(raw=False)
    send_channel, _receive = trio.open_memory_channel[PingResult](math.inf)
    session = start_one(sessions, send_channel)
    assert ident_in_payload(session.payload) == session.ident
    assert ident_in_payload(session.payload + b"more") == session.ident
    assert ident_in_payload(session.payload[: PAYLOAD_HEAD.size]) == session.ident
    # The identifier follows the 8-byte cookie: 10 bytes carry it, 9 cannot.
    assert ident_in_payload(session.payload[:10]) == session.ident
    assert ident_in_payload(session.payload[:9]) == SHORT_PAYLOAD_IDENT
    assert ident_in_payload(b"") == SHORT_PAYLOAD_IDENT


def test_identifiers_are_unique_per_address_and_freed_when_a_session_ends() -> None:
    sessions, _ = a_registry()
    send_channel, _receive = trio.open_memory_channel[PingResult](math.inf)
    first = start_one(sessions, send_channel.clone())
    second = start_one(sessions, send_channel.clone())
    assert first.ident != second.ident
    holders = sessions._holders
    assert holders == {(first.packed, first.ident): 1, (second.packed, second.ident): 1}
    assert (first.wire, second.wire) == (0, 0)  # sequence numbers from 0
    sessions.cancel(first)
    assert holders == {(second.packed, second.ident): 1}
    assert sessions._held == {second.packed: 1}


def test_when_almost_every_identifier_is_taken_sessions_share_them() -> None:
    sessions, schedule = a_registry()
    packed = packets.packed(TARGET)
    taken = 0x10000 - 4096  # all but the spare ones: from here, sharing beats a search
    first_free = (sessions._next_ident + taken) & 0xFFFF
    sessions._holders.update(
        ((packed, (sessions._next_ident + n) & 0xFFFF), 1) for n in range(taken)
    )
    sessions._held[packed] = taken
    send_channel, _receive = trio.open_memory_channel[PingResult](math.inf)
    shared = start_one(sessions, send_channel.clone())
    assert sessions._holders[(packed, shared.ident)] == 2
    assert sessions._held[packed] == taken  # no new identifier taken
    assert schedule.next_due() == 0.0  # planned all the same
    assert shared.wire == shared.wire_start  # a random point of that identifier's space
    # A free one in turn is still taken whole; and another address has its own.
    sessions._next_ident = first_free
    alone = start_one(sessions, send_channel.clone())
    assert (alone.ident, alone.wire, sessions._holders[(packed, first_free)]) == (first_free, 0, 1)
    other = start_one(sessions, send_channel.clone(), address="192.0.2.2")
    assert (other.packed != packed, sessions._held[other.packed]) == (True, 1)
    sessions.cancel(shared)
    assert sessions._holders[(packed, shared.ident)] == 1


@pytest.mark.parametrize(
    ("ipv6", "raw", "error", "message"),
    [
        (True, True, ValueError, "IPv4 only"),
        (False, False, SocketPermissionError, "raw socket"),
    ],
)
def test_timestamp_sessions_need_a_raw_ipv4_socket(
    ipv6: bool, raw: bool, error: type[Exception], message: str
) -> None:
    sessions, schedule = a_registry(ipv6=ipv6, raw=raw)
    send_channel, _receive = trio.open_memory_channel[PingResult](math.inf)
    with pytest.raises(error, match=message):
        start_one(sessions, send_channel, timestamp=True)
    assert schedule.next_due() == math.inf
    assert (sessions._holders, sessions._held) == ({}, {})


def test_settle_sends_each_result_and_closes_the_channel_after_the_last() -> None:
    sessions, _ = a_registry()
    send_channel, receive_channel = trio.open_memory_channel[PingResult](math.inf)
    session = start_one(sessions, send_channel, count=2)
    results = [PingResult(TARGET, seq, Status.TIMEOUT) for seq in (1, 0)]
    sessions.settle(session, results[0])
    assert (session.outstanding, session.finished) == (1, False)
    sessions.settle(session, results[1])
    assert (session.outstanding, session.finished) == (0, True)
    assert session.plan is None
    assert (sessions._holders, sessions._held) == ({}, {})
    sessions.settle(session, results[1])  # after the end: ignored
    assert [receive_channel.receive_nowait() for _ in range(2)] == results
    with pytest.raises(trio.EndOfChannel):
        receive_channel.receive_nowait()


def test_cancel_unplans_the_session_and_closes_its_channel_once() -> None:
    sessions, schedule = a_registry()
    send_channel, receive_channel = trio.open_memory_channel[PingResult](math.inf)
    session = start_one(sessions, send_channel, count=3)
    assert schedule.next_due() == 0.0
    sessions.cancel(session)
    sessions.cancel(session)
    assert session.finished
    assert session.outstanding == 3  # never known, never sent
    assert schedule.next_due() == math.inf
    with pytest.raises(trio.EndOfChannel):
        receive_channel.receive_nowait()


def test_close_cancels_every_unfinished_session() -> None:
    sessions, schedule = a_registry()
    channels = [trio.open_memory_channel[PingResult](math.inf) for _ in range(3)]
    started = [
        start_one(sessions, send, address=f"192.0.2.{n + 1}")
        for n, (send, _) in enumerate(channels)
    ]
    sessions.close()
    assert all(session.finished for session in started)
    assert schedule.next_due() == math.inf
    for _, receive in channels:
        with pytest.raises(trio.EndOfChannel):
            receive.receive_nowait()
