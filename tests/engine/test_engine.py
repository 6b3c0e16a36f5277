"""The engine's sender, receiver and timeouts over an in-memory socket, on trio's autojump clock.

No network and no real time: every test runs a scripted peer (tests/fakes.py) and checks
when requests left, what each result says and when it came, to the nanosecond of virtual
time. Also here: the RTT arithmetic. The sessions' own rules are in test_sessions.py.
"""

from __future__ import annotations

import errno
import math
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import attrs
import pytest
import trio
import trio.testing

from tests.engine.helpers import (
    EXACT,
    ROUTER,
    TARGET,
    Timed,
    TimedOutAt,
    by_seq,
    collect,
    drain,
    pinger_over,
    start_each,
)
from tests.fakes import (
    LOCAL,
    NOON_MS,
    NOON_NS,
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
from trio_ping import SocketPermissionError
from trio_ping._engine.engine import round_trip_us
from trio_ping._engine.sessions import Session
from trio_ping._io.datagrams import Datagram
from trio_ping._proto import icmp
from trio_ping._proto.tracker import Probe
from trio_ping.pinger import Pinger
from trio_ping.results import USER_TIME, PingResult, Status

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
        assert result == PingResult(
            TARGET,
            seq,
            Status.REPLY,
            rtt_us=300_000,
            ttl=64,
            sent_ns=to_ns(send_times[seq]),
            send_stamp=USER_TIME,
        )
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
        assert result == PingResult(TARGET, seq, Status.TIMEOUT, sent_ns=to_ns(fake.sent[seq].time))
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
            run = [result for _, result in await collect(pinger, count=3, interval=0.01)]
        # The clock runs on from one run to the next: send times count from each run's first.
        first = run[0].sent_ns
        assert first is not None
        results.append([attrs.evolve(r, sent_ns=(r.sent_ns or 0) - first) for r in run])
    shortcut, general = results
    assert [result.sent_ns for result in shortcut] == [0, to_ns(0.01), to_ns(0.02)]
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
            TARGET,
            seq,
            Status.ICMP_ERROR,
            reason=reason,
            reported_by=ROUTER,
            sent_ns=to_ns(fake.sent[seq].time),
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
        PingResult(
            "2001:db8::1",
            seq,
            Status.REPLY,
            rtt_us=3000,
            ttl=64,
            target="2001:DB8::0:1",
            sent_ns=to_ns(fake.sent[seq].time),
            send_stamp=USER_TIME,
        )
        for seq in (0, 1)
    ]


# Timestamp mode ------------------------------------------------------------------------


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
            sent_ns=NOON_NS + to_ns(fake.sent[seq].time),
            send_stamp=USER_TIME,
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
    assert result == PingResult(TARGET, 0, Status.TIMEOUT, sent_ns=NOON_NS)
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
        TARGET,
        0,
        Status.ICMP_ERROR,
        reason="Time to live exceeded",
        reported_by=ROUTER,
        sent_ns=NOON_NS,
    )
    assert at == pytest.approx(0.003, abs=EXACT)


async def test_timestamp_mode_is_ipv4_only(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeIcmpSocket(silent, family=socket.AF_INET6)
    async with pinger_over(fake) as pinger:
        with pytest.raises(ValueError, match="IPv4 only"):
            await anext(pinger.ping("2001:db8::1", timestamp=True))
    assert fake.sent == []


# ICMP datagram ("ping") sockets ---------------------------------------------------------


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
            outstanding=1,
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
    assert result == PingResult(TARGET, 0, Status.TIMEOUT, sent_ns=to_ns(fake.sent[0].time))
    assert at == TimedOutAt(1.0)


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


# Target labels ---------------------------------------------------------------------------


async def test_every_kind_of_result_carries_the_target_it_was_started_for(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Reply, ICMP error, send failure and timeout, for requests 0 to 3: each built once,
    # with the label, by its factory in trio_ping.results.
    def peer(sent: Sent) -> list[Delivery]:
        if sent.seq == 0:
            return [Delivery(0.002, reply_bytes(sent), sent.address)]
        if sent.seq == 1:
            return [Delivery(0.003, error_bytes(sent, icmp.TIME_EXCEEDED, 0, ROUTER), ROUTER)]
        if sent.seq == 2:
            raise OSError(errno.ENETUNREACH, os.strerror(errno.ENETUNREACH))
        return []

    fake = FakeIcmpSocket(peer)
    async with pinger_over(fake) as pinger:
        send_channel, receive_channel = trio.open_memory_channel[PingResult](math.inf)
        pinger.start(
            TARGET,
            count=4,
            interval=0.1,
            timeout=1.0,
            results=send_channel,
            target="host.example",
        )
        results = sorted([result async for result in receive_channel], key=lambda r: r.seq)
    assert results == [
        PingResult(
            TARGET,
            0,
            Status.REPLY,
            rtt_us=2000,
            ttl=64,
            target="host.example",
            sent_ns=to_ns(fake.sent[0].time),
            send_stamp=USER_TIME,
        ),
        PingResult(
            TARGET,
            1,
            Status.ICMP_ERROR,
            reason="Time to live exceeded",
            reported_by=ROUTER,
            target="host.example",
            sent_ns=to_ns(fake.sent[1].time),
        ),
        PingResult(
            TARGET,
            2,
            Status.SEND_FAILED,
            reason=os.strerror(errno.ENETUNREACH),
            errno=errno.ENETUNREACH,
            target="host.example",
        ),
        # The refused request 2 was never sent: fake.sent holds those the kernel took.
        PingResult(
            TARGET, 3, Status.TIMEOUT, target="host.example", sent_ns=to_ns(fake.sent[2].time)
        ),
    ]
    assert {result.label for result in results} == {"host.example"}


# A receiver held up: the timeout task reads the socket first (issue 15) -------------------


@pytest.mark.parametrize("raw", [True, False])
async def test_a_reply_that_came_in_time_answers_however_late_it_is_read(
    autojump_clock: trio.testing.MockClock, raw: bool
) -> None:
    # The receiving task sees nothing until 3 s (a stopped process, a blocked loop), long
    # after the 1 s deadline; the reply reached the socket at 0.5 s. The timeout task wakes
    # first and must read the socket before it expires anything.
    fake = FakeIcmpSocket(echo(0.5), raw=raw)
    fake.receiver_stalled_until = 3.0
    async with pinger_over(fake) as pinger:
        results = await collect(pinger, count=1, interval=1.0, timeout=1.0)
    [(at, result)] = results
    assert (result.status, result.rtt_us) == (Status.REPLY, 500_000)
    assert at == TimedOutAt(1.0)  # settled by the timeout task's read, not at 3 s


async def test_a_reader_with_few_slots_still_reads_everything_before_expiring(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A reader whose slots grew for large replies returns 31 datagrams a read, not 256.
    # 100 replies wait unread when the timeout task wakes: a read of 31 must not pass for
    # a drained socket, or the 69 behind it would time out although they came in time.
    fake = FakeIcmpSocket(echo(0.2))
    fake.read_capacity = 31
    fake.receiver_stalled_until = 3.0
    async with pinger_over(fake) as pinger:
        receive = start_each(pinger, [f"192.0.2.{i}" for i in range(1, 101)], count=1, interval=1.0)
        results = [result async for result in receive]
    assert len(results) == 100
    assert {result.status for result in results} == {Status.REPLY}


async def test_a_reply_that_came_late_still_times_out_when_read_with_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Both replies wait unread in the socket when the timeout task wakes: the one that came
    # within the timeout answers, the one that came after it does not.
    def peer(sent: Sent) -> list[Delivery]:
        delay = 0.2 if sent.seq == 0 else 1.002
        return [Delivery(delay, reply_bytes(sent), sent.address)]

    fake = FakeIcmpSocket(peer)
    fake.receiver_stalled_until = 5.0
    async with pinger_over(fake) as pinger:
        results = await collect(pinger, count=2, interval=0.001, timeout=1.0)
    assert sorted((result.seq, result.status, result.rtt_us) for _, result in results) == [
        (0, Status.REPLY, 200_000),
        (1, Status.TIMEOUT, None),
    ]


async def test_an_icmp_error_that_came_in_time_ends_the_request_as_an_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # On a datagram socket the error is on the error queue, which the timeout task reads too.
    def peer(sent: Sent) -> list[Delivery]:
        data = error_bytes(sent, icmp.DESTINATION_UNREACHABLE, 1, ROUTER)
        return [Delivery(0.1, data, ROUTER)]

    fake = FakeIcmpSocket(peer, raw=False)
    fake.receiver_stalled_until = 3.0
    async with pinger_over(fake) as pinger:
        [(_, result)] = await collect(pinger, count=1, interval=1.0, timeout=1.0)
    assert (result.status, result.reported_by) == (Status.ICMP_ERROR, ROUTER)


async def test_the_timeout_task_reads_every_batch_the_socket_holds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # More replies wait than one read takes (256): all must be read before any expires.
    fake = FakeIcmpSocket(echo(0.01))
    fake.receiver_stalled_until = 4.0
    addresses = [f"192.0.2.{i}" for i in range(1, 201)] + [f"198.51.100.{i}" for i in range(1, 201)]
    async with pinger_over(fake) as pinger:
        results = await drain(start_each(pinger, addresses, count=1, interval=1.0))
    assert len(results) == 400
    assert {result.status for _, result in results} == {Status.REPLY}
