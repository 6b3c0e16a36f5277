"""The real engine and Pinger over an in-memory socket, on trio's autojump clock.

No network and no real time: every test runs a scripted peer (tests/fakes.py) and checks
when requests left, what each result says and when it came, to the nanosecond of virtual
time. Also here: the output writer (over a pipe) and the RTT arithmetic.
"""

from __future__ import annotations

import errno
import math
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing, asynccontextmanager, contextmanager, suppress

import pytest
import trio
import trio.testing

from tests.fakes import (
    LOCAL,
    SOCKET_IDENT,
    Delivery,
    FakeIcmpSocket,
    Peer,
    Sent,
    echo,
    error_bytes,
    reply6_bytes,
    reply_bytes,
    silent,
    timestamp_reply_bytes,
    to_ns,
)
from tests.lab import packets
from trio_ping import SocketPermissionError, open_pinger
from trio_ping._engine.engine import EXPIRY_SLACK, Session, round_trip_us
from trio_ping._io.datagrams import Datagram
from trio_ping._proto import icmp
from trio_ping._proto.tracker import Probe
from trio_ping.cli.output import FLUSH_PAUSE, OutputClosed, format_csv, write_results
from trio_ping.pinger import Pinger
from trio_ping.results import PingResult, Status

TARGET = "192.0.2.1"
ROUTER = "198.51.100.254"
EXACT = 1e-9  # virtual time is exact but for float rounding in the clock's jumps


class TimedOutAt:
    """Equal to a time at ``deadline`` or up to EXPIRY_SLACK after it, and to nothing else.

    The engine promises timeouts in that window (the contract allows 20 ms), so that one
    wake-up of its timeout task ends every request due within it.
    """

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, float | int):
            return NotImplemented
        return self.deadline - EXACT <= other <= self.deadline + EXPIRY_SLACK + EXACT

    def __repr__(self) -> str:
        return f"TimedOutAt({self.deadline} .. +{EXPIRY_SLACK})"


Timed = tuple[float, PingResult]


@asynccontextmanager
async def pinger_over(sock: FakeIcmpSocket) -> AsyncIterator[Pinger]:
    """A real Pinger whose only socket is ``sock``, paced by trio's (virtual) clock."""

    opened: list[socket.AddressFamily] = []

    def factory(family: socket.AddressFamily) -> FakeIcmpSocket:
        assert family == sock.family
        opened.append(family)
        return sock

    async with open_pinger(socket_factory=factory, precise_pacing=False) as pinger:
        yield pinger
    # Opened on first use, once, and closed with the pinger.
    assert len(opened) <= 1
    assert sock.closed == bool(opened)


async def collect(
    pinger: Pinger,
    address: str = TARGET,
    *,
    count: int,
    interval: float,
    timeout: float = 5.0,
) -> list[Timed]:
    """Every result of one ``ping()``, with the virtual time it arrived."""
    results: list[Timed] = []
    async for result in pinger.ping(address, count=count, interval=interval, timeout=timeout):
        results.append((trio.current_time(), result))
    return results


def start_each(
    pinger: Pinger, addresses: list[str], *, count: int, interval: float
) -> trio.MemoryReceiveChannel[PingResult]:
    """Start every address at once; all their results come on the channel returned."""
    send_channel, receive_channel = trio.open_memory_channel[PingResult](math.inf)
    for address in addresses:
        pinger.start(
            address, count=count, interval=interval, timeout=1.0, results=send_channel.clone()
        )
    send_channel.close()  # the clones keep it open until the last session ends
    return receive_channel


async def drain(channel: trio.MemoryReceiveChannel[PingResult]) -> list[Timed]:
    """Every result on ``channel`` until it closes, with the virtual time it arrived."""
    return [(trio.current_time(), result) async for result in channel]


async def two_sessions_to_one_target(fake: FakeIcmpSocket) -> list[list[Timed]]:
    """The results of two concurrent 3 x 10 ms pings of TARGET through one pinger."""
    outcomes: list[list[Timed]] = []
    async with pinger_over(fake) as pinger, trio.open_nursery() as nursery:

        async def run() -> None:
            outcomes.append(await collect(pinger, count=3, interval=0.01))

        nursery.start_soon(run)
        nursery.start_soon(run)
    return outcomes


def by_seq(results: list[Timed]) -> dict[int, Timed]:
    seqs = [result.seq for _, result in results]
    assert len(seqs) == len(set(seqs)), f"a sequence was reported twice: {seqs}"
    return {result.seq: (at, result) for at, result in results}


# Schedule and RTT ------------------------------------------------------------------------


async def test_requests_leave_on_schedule_while_replies_are_slow(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeIcmpSocket(echo(0.3))
    async with pinger_over(fake) as pinger:
        start = trio.current_time()
        results = await collect(pinger, count=10, interval=0.01)
    send_times = [sent.time for sent in fake.sent]
    assert send_times == pytest.approx([start + k * 0.01 for k in range(10)], abs=EXACT)
    assert [sent.seq for sent in fake.sent] == list(range(10))
    # Every request went out before the first reply came back.
    assert max(send_times) < start + 0.3
    answered = by_seq(results)
    assert sorted(answered) == list(range(10))
    for seq, (at, result) in answered.items():
        assert result == PingResult(TARGET, seq, Status.REPLY, rtt_us=300_000, ttl=64)
        assert at == pytest.approx(send_times[seq] + 0.3, abs=EXACT)


@pytest.mark.parametrize("interval", [0.001, 0.0173, 1.0])
async def test_no_drift_over_a_long_run(
    autojump_clock: trio.testing.MockClock, interval: float
) -> None:
    fake = FakeIcmpSocket(echo(0.05))
    async with pinger_over(fake) as pinger:
        start = trio.current_time()
        # Past the CLI's limits on purpose: drift would show over many requests.
        results = await collect(pinger, count=500, interval=interval)
    assert len(results) == 500
    assert [sent.time for sent in fake.sent] == pytest.approx(
        [start + k * interval for k in range(500)], abs=1e-6
    )


@pytest.mark.parametrize(
    ("delay", "rtt_us"),
    [(0.0, 0), (0.000_25, 250), (0.012_345_6, 12_346), (1.5, 1_500_000), (4.999, 4_999_000)],
)
async def test_rtt_is_the_scripted_delay_in_microseconds(
    autojump_clock: trio.testing.MockClock, delay: float, rtt_us: int
) -> None:
    fake = FakeIcmpSocket(echo(delay))
    async with pinger_over(fake) as pinger:
        [(_, result)] = await collect(pinger, count=1, interval=1.0)
    assert result.status is Status.REPLY
    assert result.rtt_us == rtt_us
    assert result.kernel_timestamp


async def test_user_space_timestamps_are_reported_as_such(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def peer(sent: Sent) -> list[Delivery]:
        return [Delivery(0.002, reply_bytes(sent), sent.address, kernel_timestamp=False)]

    async with pinger_over(FakeIcmpSocket(peer)) as pinger:
        [(_, result)] = await collect(pinger, count=1, interval=1.0)
    assert (result.rtt_us, result.kernel_timestamp) == (2000, False)


# Timeouts --------------------------------------------------------------------------------


async def test_silent_target_times_out_exactly_at_send_time_plus_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeIcmpSocket(silent)
    async with pinger_over(fake) as pinger:
        results = await collect(pinger, count=3, interval=0.5, timeout=2.0)
        ended = trio.current_time()
    timed_out = by_seq(results)
    assert sorted(timed_out) == [0, 1, 2]
    for seq, (at, result) in timed_out.items():
        assert result == PingResult(TARGET, seq, Status.TIMEOUT)
        assert not result.answered
        assert at == TimedOutAt(fake.sent[seq].time + 2.0)
    # The run ends with its last timeout, not later.
    assert ended == TimedOutAt(fake.sent[2].time + 2.0)


async def test_late_reply_after_timeout_yields_no_second_result(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # seq 0 is answered after its timeout; seq 1 on time. The session stays open across
    # the late reply, so a second result for seq 0 would be seen.
    def peer(sent: Sent) -> list[Delivery]:
        delay = 1.5 if sent.seq == 0 else 0.1
        return [Delivery(delay, reply_bytes(sent), sent.address)]

    async with pinger_over(FakeIcmpSocket(peer)) as pinger:
        results = await collect(pinger, count=2, interval=2.0, timeout=1.0)
    assert [(result.seq, result.status, result.rtt_us) for _, result in results] == [
        (0, Status.TIMEOUT, None),
        (1, Status.REPLY, 100_000),
    ]
    assert [at for at, _ in results] == [TimedOutAt(1.0), pytest.approx(2.1, abs=EXACT)]


async def test_reply_just_before_the_timeout_counts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with pinger_over(FakeIcmpSocket(echo(0.999))) as pinger:
        [(_, result)] = await collect(pinger, count=1, interval=1.0, timeout=1.0)
    assert (result.status, result.rtt_us) == (Status.REPLY, 999_000)


# Duplicates and invalid replies ----------------------------------------------------------


async def test_duplicate_replies_yield_one_result_each_and_are_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def peer(sent: Sent) -> list[Delivery]:
        return [Delivery(delay, reply_bytes(sent), sent.address) for delay in (0.01, 0.02, 0.03)]

    fake = FakeIcmpSocket(peer)
    async with pinger_over(fake) as pinger:
        send_channel, receive_channel = trio.open_memory_channel[PingResult](math.inf)
        session = pinger.start(TARGET, count=3, interval=0.1, timeout=5.0, results=send_channel)
        results = await drain(receive_channel)
        await trio.sleep(1.0)  # the last request's duplicates arrive after its result
    answered = by_seq(results)
    assert sorted(answered) == [0, 1, 2]
    assert all(result.rtt_us == 10_000 for _, result in results)
    assert session.duplicates == 6


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda s: reply_bytes(s, payload=s.payload[:-1] + b"X"), id="altered-payload"),
        pytest.param(lambda s: reply_bytes(s, payload=s.payload[:-1]), id="short-payload"),
        pytest.param(lambda s: reply_bytes(s, payload=b""), id="empty-payload"),
        pytest.param(
            lambda s: reply_bytes(s, payload=bytes(8) + s.payload[8:]), id="other-runs-cookie"
        ),
        pytest.param(lambda s: reply_bytes(s, ident=s.ident ^ 1), id="wrong-ident"),
        pytest.param(lambda s: reply_bytes(s, seq=s.seq + 1), id="unsent-seq"),
        pytest.param(lambda s: reply_bytes(s, source="192.0.2.77"), id="other-source"),
        pytest.param(
            lambda s: (
                reply_bytes(s)[:30] + bytes([reply_bytes(s)[30] ^ 0xFF]) + reply_bytes(s)[31:]
            ),
            id="bad-checksum",
        ),
        pytest.param(
            lambda s: (
                reply_bytes(s)[:22] + bytes([reply_bytes(s)[22] ^ 0x01]) + reply_bytes(s)[23:]
            ),
            id="bad-checksum-field",
        ),
        pytest.param(lambda s: reply_bytes(s)[:-5], id="truncated"),
        pytest.param(lambda s: reply_bytes(s)[:24], id="truncated-header"),
        pytest.param(
            lambda s: packets.ipv4_datagram(s.address, LOCAL, s.packet), id="request-reflected"
        ),
        pytest.param(lambda s: packets.ipv4_datagram(LOCAL, LOCAL, s.packet), id="own-request"),
        pytest.param(
            lambda s: error_bytes(
                Sent(s.time, s.packet[:-1] + b"X", s.address),
                icmp.DESTINATION_UNREACHABLE,
                1,
                ROUTER,
            ),
            id="error-quoting-altered-payload",
        ),
        pytest.param(
            lambda s: error_bytes(
                Sent(s.time, icmp.encode_echo_request(s.ident ^ 1, s.seq, s.payload), s.address),
                icmp.DESTINATION_UNREACHABLE,
                1,
                ROUTER,
            ),
            id="error-for-another-ident",
        ),
        pytest.param(
            lambda s: error_bytes(
                Sent(s.time, s.packet, "192.0.2.77"), icmp.DESTINATION_UNREACHABLE, 1, ROUTER
            ),
            id="error-for-another-destination",
        ),
    ],
)
async def test_replies_that_do_not_answer_are_ignored(
    autojump_clock: trio.testing.MockClock, bad: Callable[[Sent], bytes]
) -> None:
    # The bad packet comes first; the valid reply later. Had the bad one counted, the RTT
    # would be 5 ms, or a second result would appear.
    def peer(sent: Sent) -> list[Delivery]:
        return [
            Delivery(0.005, bad(sent), sent.address),
            Delivery(0.020, reply_bytes(sent), sent.address),
        ]

    async with pinger_over(FakeIcmpSocket(peer)) as pinger:
        results = await collect(pinger, count=2, interval=0.1)
    answered = by_seq(results)
    assert sorted(answered) == [0, 1]
    assert [(result.status, result.rtt_us) for _, result in results] == [(Status.REPLY, 20_000)] * 2


async def test_reply_with_altered_payload_alone_times_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def peer(sent: Sent) -> list[Delivery]:
        altered = sent.payload[:20] + bytes([sent.payload[20] ^ 1]) + sent.payload[21:]
        return [Delivery(0.01, reply_bytes(sent, payload=altered), sent.address)]

    async with pinger_over(FakeIcmpSocket(peer)) as pinger:
        [(at, result)] = await collect(pinger, count=1, interval=1.0, timeout=3.0)
    assert result.status is Status.TIMEOUT
    assert at == TimedOutAt(3.0)


async def test_reply_with_ip_options_counts(autojump_clock: trio.testing.MockClock) -> None:
    def peer(sent: Sent) -> list[Delivery]:
        data = reply_bytes(sent, options=b"\x07\x07\x04" + bytes(5), ttl=57)
        return [Delivery(0.004, data, sent.address)]

    async with pinger_over(FakeIcmpSocket(peer)) as pinger:
        [(_, result)] = await collect(pinger, count=1, interval=1.0)
    assert (result.status, result.rtt_us, result.ttl) == (Status.REPLY, 4000, 57)


async def test_a_plain_echo_reply_that_answers_is_not_parsed_in_full(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The shortcut is the common case's whole cost saving; falling back to the full
    # parser would give the same results, so only this shows it is taken.
    sock = FakeIcmpSocket(echo(0.004))
    parsed: list[Datagram] = []
    decode = sock.decode

    def counting_decode(datagram: Datagram) -> icmp.Message:
        parsed.append(datagram)
        return decode(datagram)

    monkeypatch.setattr(sock, "decode", counting_decode)
    async with pinger_over(sock) as pinger:
        results = await collect(pinger, count=3, interval=0.01)
    assert [result.status for _, result in results] == [Status.REPLY] * 3
    assert parsed == []


async def test_the_receivers_shortcut_and_its_general_path_report_alike(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A plain Echo Reply takes the receiver's shortcut (icmp.echo_reply_ipv4 and
    # Tracker.answer); IP options send the same reply through the full parser.
    results: list[list[PingResult]] = []
    for options in (b"", b"\x07\x07\x04" + bytes(5)):

        def peer(sent: Sent, options: bytes = options) -> list[Delivery]:
            return [Delivery(0.004, reply_bytes(sent, options=options, ttl=57), sent.address)]

        async with pinger_over(FakeIcmpSocket(peer)) as pinger:
            results.append([result for _, result in await collect(pinger, count=3, interval=0.01)])
    shortcut, general = results
    assert [(result.status, result.rtt_us) for result in shortcut] == [(Status.REPLY, 4000)] * 3
    assert shortcut == general


# ICMP errors and send errors -------------------------------------------------------------


@pytest.mark.parametrize(
    ("message_type", "code", "reason"),
    [
        (icmp.DESTINATION_UNREACHABLE, 1, "Destination Host Unreachable"),
        (icmp.DESTINATION_UNREACHABLE, 13, "Packet filtered"),
        (icmp.TIME_EXCEEDED, 0, "Time to live exceeded"),
    ],
)
@pytest.mark.parametrize("quote", [28, 576], ids=["rfc792-quote", "linux-quote"])
async def test_icmp_error_ends_the_probe_at_once(
    autojump_clock: trio.testing.MockClock,
    message_type: int,
    code: int,
    reason: str,
    quote: int,
) -> None:
    def peer(sent: Sent) -> list[Delivery]:
        error = error_bytes(sent, message_type, code, ROUTER, quote=quote)
        # A reply after the error must not make a second result.
        return [Delivery(0.007, error, ROUTER), Delivery(0.05, reply_bytes(sent), sent.address)]

    fake = FakeIcmpSocket(peer)
    async with pinger_over(fake) as pinger:
        results = await collect(pinger, count=2, interval=0.5, timeout=5.0)
    errors = by_seq(results)
    assert sorted(errors) == [0, 1]
    for seq, (at, result) in errors.items():
        assert result == PingResult(
            TARGET, seq, Status.ICMP_ERROR, reason=reason, reported_by=ROUTER
        )
        assert at == pytest.approx(fake.sent[seq].time + 0.007, abs=EXACT)


async def test_send_refused_by_the_kernel_is_a_result_and_the_rest_go_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    answer = echo(0.001)

    def peer(sent: Sent) -> Iterator[Delivery]:
        if sent.seq == 1:
            raise OSError(errno.EHOSTUNREACH, os.strerror(errno.EHOSTUNREACH))
        return iter(answer(sent))

    fake = FakeIcmpSocket(peer)
    async with pinger_over(fake) as pinger:
        results = await collect(pinger, count=3, interval=0.1)
    outcome = by_seq(results)
    assert outcome[1][1] == PingResult(
        TARGET,
        1,
        Status.SEND_FAILED,
        reason=os.strerror(errno.EHOSTUNREACH),
        errno=errno.EHOSTUNREACH,
    )
    assert outcome[1][0] == pytest.approx(0.1, abs=EXACT)
    assert [outcome[seq][1].rtt_us for seq in (0, 2)] == [1000, 1000]
    assert [sent.seq for sent in fake.refused] == [1]


async def test_a_send_the_kernel_pushes_back_is_retried_and_not_lost(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeIcmpSocket(echo(0.001))
    fake.pushback_every = 2  # every second try finds the send buffer full (EAGAIN)
    async with pinger_over(fake) as pinger:
        addresses = [f"192.0.2.{last}" for last in range(1, 4)]
        outcome = await drain(start_each(pinger, addresses, count=2, interval=0.1))
    assert fake.slow_sends == 3
    assert sorted((sent.address, sent.seq) for sent in fake.sent) == [
        (f"192.0.2.{last}", seq) for last in range(1, 4) for seq in range(2)
    ]
    assert sorted((result.address, result.seq, result.rtt_us) for _, result in outcome) == [
        (f"192.0.2.{last}", seq, 1000) for last in range(1, 4) for seq in range(2)
    ]


async def test_a_backlog_with_pushbacks_still_lets_other_tasks_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Every burst stalls before its 64th send, and each retry succeeds at once without a
    # checkpoint: the sender must still yield, or nothing else runs until the backlog is out.
    targets = 200
    fake = FakeIcmpSocket(echo(0.001))
    fake.pushback_every = 30
    sent_when_others_ran: list[int] = []

    async def other_task() -> None:
        while len(fake.sent) < targets:
            sent_when_others_ran.append(len(fake.sent))
            await trio.lowlevel.checkpoint()

    async with pinger_over(fake) as pinger, trio.open_nursery() as nursery:
        addresses = [f"192.0.2.{n + 1}" for n in range(targets)]
        results = start_each(pinger, addresses, count=1, interval=1.0)
        nursery.start_soon(other_task)
        outcome = await drain(results)
    assert fake.slow_sends == targets // 30
    assert len(outcome) == targets
    assert any(0 < sent < targets for sent in sent_when_others_ran), sent_when_others_ran


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
    async with pinger_over(fake) as pinger:
        channels = []
        for _ in range(2):
            send_channel, receive_channel = trio.open_memory_channel[PingResult](math.inf)
            sessions.append(
                pinger.start(TARGET, count=3, interval=0.01, timeout=1.0, results=send_channel)
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


async def test_ipv6_uses_an_icmpv6_socket(autojump_clock: trio.testing.MockClock) -> None:
    def peer(sent: Sent) -> list[Delivery]:
        return [Delivery(0.003, reply6_bytes(sent), sent.address)]

    fake = FakeIcmpSocket(peer, family=socket.AF_INET6)
    async with pinger_over(fake) as pinger:
        results = await collect(pinger, "2001:DB8::0:1", count=2, interval=0.1)
    assert [sent.type for sent in fake.sent] == [icmp.ICMPV6_ECHO_REQUEST] * 2
    assert [sent.packet[2:4] for sent in fake.sent] == [b"\0\0"] * 2  # the kernel's to fill
    assert [result for _, result in results] == [
        # Written differently from its normalised form: the results say what was asked.
        PingResult("2001:db8::1", seq, Status.REPLY, rtt_us=3000, ttl=64, target="2001:DB8::0:1")
        for seq in (0, 1)
    ]


@pytest.mark.parametrize(
    ("address", "count", "interval", "timeout", "message"),
    [
        # Not an address, nor a host name: refused before any resolver is asked (a unit
        # test must send no DNS query).
        ("not an address", 1, 1.0, 1.0, r"not an IP address or a host name"),
        ("192.0.2.1", 0, 1.0, 1.0, "count must be at least 1"),
        ("192.0.2.1", 1, 0.0, 1.0, "must be positive"),
        ("192.0.2.1", 1, 1.0, -1.0, "must be positive"),
        ("192.0.2.1", 1, math.nan, 1.0, "must be positive"),
    ],
)
async def test_ping_rejects_bad_arguments(
    autojump_clock: trio.testing.MockClock,
    address: str,
    count: int,
    interval: float,
    timeout: float,
    message: str,
) -> None:
    fake = FakeIcmpSocket(echo(0.001))
    async with pinger_over(fake) as pinger:
        results = pinger.ping(address, count=count, interval=interval, timeout=timeout)
        with pytest.raises(ValueError, match=message):
            await anext(results)
    assert fake.sent == []


# Timestamp mode ------------------------------------------------------------------------

NOON_NS = (20_000 * 86_400 + 12 * 3600) * 1_000_000_000
"""CLOCK_REALTIME at trio's virtual time 0 in these tests: noon UT, a whole millisecond."""
NOON_MS = 12 * 3_600_000


@pytest.fixture
def wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make CLOCK_REALTIME follow trio's virtual clock from noon, as the fake's stamps do."""
    real_time_ns = time.time_ns

    def time_ns() -> int:
        try:
            return NOON_NS + to_ns(trio.current_time())
        except RuntimeError:  # outside the trio run
            return real_time_ns()

    monkeypatch.setattr(time, "time_ns", time_ns)


def timestamp_peer(
    *, delay: float, receive: Callable[[int], int], originate: Callable[[int], int] | None = None
) -> Peer:
    """A peer answering Timestamp Requests; ``receive`` maps our originate to its times."""

    def peer(sent: Sent) -> list[Delivery]:
        assert sent.type == icmp.TIMESTAMP_REQUEST
        ours = int.from_bytes(sent.packet[8:12], "big")
        echoed = ours if originate is None else originate(ours)
        data = timestamp_reply_bytes(
            sent, originate=echoed, receive=receive(ours), transmit=receive(ours)
        )
        return [Delivery(delay, data, sent.address)]

    return peer


@pytest.mark.usefixtures("wall_clock")
async def test_timestamp_reply_gives_the_peers_times_and_the_offset(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The peer's clock is 5 ms ahead; 2 ms each way: it stamps our originate + 2 + 5.
    fake = FakeIcmpSocket(timestamp_peer(delay=0.004, receive=lambda o: o + 7), epoch_ns=NOON_NS)
    async with pinger_over(fake) as pinger:
        results = [r async for r in pinger.ping(TARGET, count=2, interval=1.0, timestamp=True)]
    assert [sent.time for sent in fake.sent] == [0.0, 1.0]
    assert results == [
        PingResult(
            TARGET,
            seq,
            Status.REPLY,
            rtt_us=4000,
            ttl=64,
            originate_ms=NOON_MS + 1000 * seq,
            receive_ms=NOON_MS + 1000 * seq + 7,
            transmit_ms=NOON_MS + 1000 * seq + 7,
            offset_ms=5.0,
        )
        for seq in (0, 1)
    ]


@pytest.mark.usefixtures("wall_clock")
async def test_timestamp_reply_with_non_standard_times_has_no_offset(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeIcmpSocket(
        timestamp_peer(delay=0.001, receive=lambda _: 0x8000_1234), epoch_ns=NOON_NS
    )
    async with pinger_over(fake) as pinger:
        [(_, result)] = await collect_timestamps(pinger)
    assert (result.status, result.receive_ms, result.offset_ms) == (
        Status.REPLY,
        0x8000_1234,
        None,
    )


async def collect_timestamps(pinger: Pinger) -> list[Timed]:
    results: list[Timed] = []
    async for result in pinger.ping(TARGET, count=1, timeout=2.0, timestamp=True):
        results.append((trio.current_time(), result))
    return results


@pytest.mark.usefixtures("wall_clock")
@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(
            lambda s: timestamp_reply_bytes(
                s, originate=int.from_bytes(s.packet[8:12], "big") + 1, receive=1, transmit=1
            ),
            id="wrong-originate",
        ),
        # An Echo Reply with the same identifier, sequence and even the originate as payload:
        # a reply answers only a request of its own kind.
        pytest.param(lambda s: reply_bytes(s, payload=s.packet[8:12]), id="echo-reply"),
        pytest.param(
            lambda s: timestamp_reply_bytes(s, receive=1, transmit=1)[:-4], id="truncated"
        ),
        pytest.param(
            lambda s: packets.ipv4_datagram(s.address, LOCAL, s.packet), id="request-reflected"
        ),
    ],
)
async def test_timestamp_replies_that_do_not_answer_are_ignored(
    autojump_clock: trio.testing.MockClock, bad: Callable[[Sent], bytes]
) -> None:
    def peer(sent: Sent) -> list[Delivery]:
        return [Delivery(0.001, bad(sent), sent.address)]

    async with pinger_over(FakeIcmpSocket(peer, epoch_ns=NOON_NS)) as pinger:
        [(at, result)] = await collect_timestamps(pinger)
    assert result == PingResult(TARGET, 0, Status.TIMEOUT)
    assert at == TimedOutAt(2.0)


@pytest.mark.usefixtures("wall_clock")
async def test_icmp_error_about_a_timestamp_request(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def peer(sent: Sent) -> list[Delivery]:
        return [Delivery(0.003, error_bytes(sent, icmp.TIME_EXCEEDED, 0, ROUTER), ROUTER)]

    async with pinger_over(FakeIcmpSocket(peer, epoch_ns=NOON_NS)) as pinger:
        [(at, result)] = await collect_timestamps(pinger)
    assert result == PingResult(
        TARGET, 0, Status.ICMP_ERROR, reason="Time to live exceeded", reported_by=ROUTER
    )
    assert at == pytest.approx(0.003, abs=EXACT)


async def test_timestamp_mode_is_ipv4_only(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeIcmpSocket(silent, family=socket.AF_INET6)
    async with pinger_over(fake) as pinger:
        with pytest.raises(ValueError, match="IPv4 only"):
            await anext(pinger.ping("2001:db8::1", timestamp=True))
    assert fake.sent == []


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


async def test_timestamp_mode_needs_a_raw_socket(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeIcmpSocket(silent, raw=False)
    async with pinger_over(fake) as pinger:
        with pytest.raises(SocketPermissionError, match="raw socket"):
            await anext(pinger.ping(TARGET, timestamp=True))
    assert fake.sent == []


# round_trip_us ---------------------------------------------------------------------------


@contextmanager
def a_probe(sent_ns: int, sent_at: float) -> Iterator[Probe[Session]]:
    send_channel, receive_channel = trio.open_memory_channel[PingResult](1)
    with send_channel, receive_channel:
        session = Session(
            address=TARGET,
            packed=packets.packed(TARGET),
            count=1,
            timeout=5.0,
            request_type=icmp.ECHO_REQUEST,
            ident=1,
            payload=b"",
            results=send_channel,
            unresolved=1,
        )
        yield Probe(session, 0, b"", sent_ns, sent_at, sent_at + 5.0)


@pytest.mark.parametrize(
    ("received_ns", "now", "expected_us"),
    [
        pytest.param(1_000_250_000, 100.0003, 250, id="kernel-stamps"),
        pytest.param(1_000_000_000, 100.0003, 0, id="zero"),
        pytest.param(1_000_001_499, 100.0003, 1, id="rounds-down"),
        pytest.param(1_000_001_500, 100.0003, 2, id="rounds-half-up"),
        # Up to 1 ms beyond the monotonic elapsed time is trusted: the kernel stamp can be
        # taken a little after the monotonic reading it is compared with.
        pytest.param(1_001_100_000, 100.0003, 1100, id="within-tolerance"),
        # CLOCK_REALTIME stepped back between the stamps: the monotonic measure stands in.
        pytest.param(999_000_000, 100.0003, 300, id="stepped-back"),
        # Stepped forward by a second.
        pytest.param(2_000_250_000, 100.0003, 300, id="stepped-forward"),
    ],
)
def test_round_trip_us(received_ns: int, now: float, expected_us: int) -> None:
    with a_probe(1_000_000_000, 100.0) as probe:
        assert round_trip_us(probe, received_ns, now) == expected_us


def test_round_trip_us_is_an_int() -> None:
    with a_probe(0, 0.0) as probe:
        rtt = round_trip_us(probe, -5, 0.001234)  # fallback path: computed from floats
    assert type(rtt) is int
    assert rtt == 1234


# write_results ---------------------------------------------------------------------------


@contextmanager
def a_pipe() -> Iterator[tuple[int, int]]:
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    try:
        yield read_fd, write_fd
    finally:
        for fd in (read_fd, write_fd):
            with suppress(OSError):
                os.close(fd)


def read_now(fd: int) -> bytes:
    try:
        return os.read(fd, 1 << 16)
    except BlockingIOError:
        return b""


def result(seq: int, rtt_us: int | None = 250) -> PingResult:
    status = Status.REPLY if rtt_us is not None else Status.TIMEOUT
    return PingResult(TARGET, seq, status, rtt_us=rtt_us)


def ignore(_: PingResult) -> None:
    pass


def test_format_csv() -> None:
    assert format_csv(result(0, 250)) == "192.0.2.1,0,250\n"
    assert format_csv(result(3, None)) == "192.0.2.1,3,-1\n"
    error = PingResult(TARGET, 9, Status.ICMP_ERROR, reason="Destination Host Unreachable")
    assert format_csv(error) == "192.0.2.1,9,-1\n"


async def test_write_results_flushes_when_idle_before_the_channel_closes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    observed: list[PingResult] = []
    with a_pipe() as (read_fd, write_fd):
        send_channel, receive_channel = trio.open_memory_channel[PingResult](math.inf)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                write_results, receive_channel, write_fd, format_csv, observed.append
            )
            await trio.testing.wait_all_tasks_blocked()
            assert read_now(read_fd) == b""
            send_channel.send_nowait(result(0, 250))
            await trio.testing.wait_all_tasks_blocked()
            assert read_now(read_fd) == b"192.0.2.1,0,250\n"
            for seq in (1, 2, 3):
                send_channel.send_nowait(result(seq, None))
            # The writer rests FLUSH_PAUSE after a write, then writes all that came.
            await trio.sleep(FLUSH_PAUSE)
            await trio.testing.wait_all_tasks_blocked()
            assert read_now(read_fd) == b"192.0.2.1,1,-1\n192.0.2.1,2,-1\n192.0.2.1,3,-1\n"
            await send_channel.aclose()
        assert read_now(read_fd) == b""
    assert [r.seq for r in observed] == [0, 1, 2, 3]


async def test_write_results_gathers_a_burst_into_one_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writes: list[bytes] = []
    real_write = os.write

    with a_pipe() as (read_fd, write_fd):

        def counting_write(fd: int, data: bytes) -> int:
            if fd == write_fd:
                writes.append(bytes(data))
            return real_write(fd, data)

        monkeypatch.setattr(os, "write", counting_write)
        send_channel, receive_channel = trio.open_memory_channel[PingResult](math.inf)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write_results, receive_channel, write_fd, format_csv, ignore)
            await trio.testing.wait_all_tasks_blocked()
            for seq in range(100):
                send_channel.send_nowait(result(seq))
            await trio.testing.wait_all_tasks_blocked()
            assert len(writes) == 1
            await send_channel.aclose()
        monkeypatch.undo()
        assert read_now(read_fd).count(b"\n") == 100
    assert len(writes) == 1


async def test_write_results_writes_what_it_has_when_cancelled() -> None:
    with a_pipe() as (read_fd, write_fd):
        send_channel, receive_channel = trio.open_memory_channel[PingResult](math.inf)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write_results, receive_channel, write_fd, format_csv, ignore)
            await trio.testing.wait_all_tasks_blocked()
            send_channel.send_nowait(result(0))
            send_channel.send_nowait(result(1))
            nursery.cancel_scope.cancel()
        assert read_now(read_fd) == b"192.0.2.1,0,250\n192.0.2.1,1,250\n"
        send_channel.close()


async def test_write_results_raises_output_closed_when_the_reader_goes() -> None:
    with a_pipe() as (read_fd, write_fd):
        os.close(read_fd)
        send_channel, receive_channel = trio.open_memory_channel[PingResult](math.inf)
        send_channel.send_nowait(result(0))
        send_channel.close()
        with pytest.raises(OutputClosed):
            await write_results(receive_channel, write_fd, format_csv, lambda _: None)


# Found in review ----------------------------------------------------------------------


async def test_a_reply_read_inside_the_expiry_slack_still_times_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Arriving 3 ms after its 1 s timeout, this reply is read before the timeout task
    # (which may run up to EXPIRY_SLACK late) gets to it: the arrival decides.
    fake = FakeIcmpSocket(echo(1.003))
    async with pinger_over(fake) as pinger:
        results = await collect(pinger, count=1, interval=1.0, timeout=1.0)
    [(at, result)] = results
    assert result == PingResult(TARGET, 0, Status.TIMEOUT)
    assert at == TimedOutAt(1.0)


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


async def test_ping_raises_when_the_pinger_closes_under_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeIcmpSocket(silent)
    seen: list[PingResult] = []
    closed = pytest.RaisesExc(trio.ClosedResourceError, match="with 3 of 3 results unknown")
    with pytest.RaisesGroup(closed, flatten_subgroups=True):
        async with trio.open_nursery() as nursery, pinger_over(fake) as pinger:

            async def consume() -> None:
                async with aclosing(pinger.ping(TARGET, count=3, interval=1.0)) as stream:
                    seen.extend([result async for result in stream])

            nursery.start_soon(consume)
            await trio.sleep(0.5)  # virtual: the requests are out, none answered yet
    assert seen == []


async def test_discarded_packets_are_counted(autojump_clock: trio.testing.MockClock) -> None:
    def peer(sent: Sent) -> list[Delivery]:
        good = reply_bytes(sent)
        corrupt = bytearray(good)
        corrupt[-1] ^= 0xFF  # the IP checksum does not cover the payload; ICMP's does
        altered = reply_bytes(sent, payload=sent.packet[8:-1] + bytes([sent.packet[-1] ^ 1]))
        return [
            Delivery(0.001, bytes(corrupt), sent.address),
            Delivery(0.002, altered, sent.address),
            Delivery(0.003, good, sent.address),
        ]

    fake = FakeIcmpSocket(peer)
    async with pinger_over(fake) as pinger:
        results = await collect(pinger, count=2, interval=0.1)
        assert pinger.discarded() == (2, 2)
    assert [r.status for _, r in results] == [Status.REPLY, Status.REPLY]
