"""RTTs from the kernel's transmit stamps, over the in-memory socket on trio's autojump clock.

The fake socket queues each request's stamps as veth does (inside the send call, SCHED
then SND, keyed one a successful send from 0; SCHED only once the socket asked for it);
the engine must make the driver's stamp the request's send time before its reply settles
it, ask for the queueing layer's stamp where the driver gives none, and fall back to the
user-space time where no stamp comes.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable

import pytest
import trio
import trio.testing

from tests.engine.helpers import TARGET, TimedOutAt, by_seq, collect, engine_over, pinger_over
from tests.fakes import Delivery, FakeIcmpSocket, Sent, echo, reply_bytes, silent
from trio_ping._engine import engine as engine_module
from trio_ping._io.send_stamps import SCM_TSTAMP_SCHED, SCM_TSTAMP_SND
from trio_ping.results import DRIVER_STAMP, QUEUE_STAMP, USER_TIME, PingResult, Status

RTT = 0.002
RTT_US = 2000


def _veth(sent: Sent) -> list[tuple[int, float]]:
    """SCHED 1 us into the send call, SND 3 us: as veth_xmit stamps."""
    return [(SCM_TSTAMP_SCHED, 1e-6), (SCM_TSTAMP_SND, 3e-6)]


def _rtts(results: list[tuple[float, PingResult]]) -> dict[int, tuple[int | None, str | None]]:
    return {seq: (result.rtt_us, result.send_stamp) for seq, (_, result) in by_seq(results).items()}


async def test_an_rtt_starts_from_the_drivers_stamp(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeIcmpSocket(echo(RTT), stamper=_veth)
    async with pinger_over(fake) as pinger:
        results = await collect(pinger, count=3, interval=0.01)
    # The reply came 2 ms after the send call began; the packet left 3 us into it.
    assert _rtts(results) == dict.fromkeys(range(3), (RTT_US - 3, DRIVER_STAMP))
    assert all(result.kernel_timestamp for _, result in results)


def _sched_only(sent: Sent) -> list[tuple[int, float]]:
    """A device whose driver stamps nothing: the queueing layer's stamp alone, 5 us in
    (given only to a socket that asked for SCHED)."""
    return [(SCM_TSTAMP_SCHED, 5e-6)]


async def test_the_driver_s_stamp_alone_is_asked_for_where_it_comes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeIcmpSocket(echo(RTT), stamper=_veth)
    count = 2 * engine_module.SND_PROBATION
    async with pinger_over(fake) as pinger:
        results = await collect(pinger, count=count, interval=0.01)
    assert not fake.queue_stamps  # SCHED never asked for: veth's driver stamps
    assert _rtts(results) == dict.fromkeys(range(count), (RTT_US - 3, DRIVER_STAMP))


async def test_where_the_driver_stamps_nothing_the_queueing_layers_stamp_is_asked_for(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Each reply comes (2 ms) before the next request leaves (10 ms): the first
    # SND_PROBATION answered requests, with no stamp, are measured from the user-space
    # time; the socket then asks for SCHED, which every later request has.
    probation = engine_module.SND_PROBATION
    fake = FakeIcmpSocket(echo(RTT), stamper=_sched_only)
    async with pinger_over(fake) as pinger:
        results = await collect(pinger, count=probation + 8, interval=0.01)
    assert fake.queue_stamps
    assert _rtts(results) == {
        **dict.fromkeys(range(probation), (RTT_US, USER_TIME)),
        **dict.fromkeys(range(probation, probation + 8), (RTT_US - 5, QUEUE_STAMP)),
    }


async def test_one_driver_s_stamp_is_enough_to_keep_from_falling_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A stamp lost now and then (the buffer was full) is no device without SND.
    def stamper(sent: Sent) -> list[tuple[int, float]]:
        return _veth(sent) if sent.seq == 3 else []

    count = 2 * engine_module.SND_PROBATION
    fake = FakeIcmpSocket(echo(RTT), stamper=stamper)
    async with pinger_over(fake) as pinger:
        results = await collect(pinger, count=count, interval=0.01)
    assert not fake.queue_stamps
    rtts = _rtts(results)
    assert rtts.pop(3) == (RTT_US - 3, DRIVER_STAMP)
    assert set(rtts.values()) == {(RTT_US, USER_TIME)}


async def test_requests_never_answered_are_no_reason_to_fall_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Nothing came back: there is no RTT a stamp would serve.
    fake = FakeIcmpSocket(silent, stamper=_sched_only)
    count = 2 * engine_module.SND_PROBATION
    async with pinger_over(fake) as pinger:
        results = await collect(pinger, count=count, interval=0.01, timeout=0.005)
    assert {result.status for _, result in results} == {Status.TIMEOUT}
    assert not fake.queue_stamps


async def test_a_stamp_that_never_comes_leaves_the_user_space_send_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def stamper(sent: Sent) -> list[tuple[int, float]]:
        return [] if sent.seq == 1 else _veth(sent)

    fake = FakeIcmpSocket(echo(RTT), stamper=stamper)
    async with pinger_over(fake) as pinger:
        results = await collect(pinger, count=3, interval=0.01)
    assert _rtts(results) == {
        0: (RTT_US - 3, DRIVER_STAMP),
        1: (RTT_US, USER_TIME),
        2: (RTT_US - 3, DRIVER_STAMP),
    }


async def test_stamps_off_measure_as_before(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeIcmpSocket(echo(RTT))
    async with pinger_over(fake) as pinger:
        results = await collect(pinger, count=2, interval=0.01)
    assert _rtts(results) == dict.fromkeys(range(2), (RTT_US, USER_TIME))


def _each_its_own(sent: Sent) -> list[tuple[int, float]]:
    """A stamp that says which request it is: (seq + 1) us into its send call."""
    return [(SCM_TSTAMP_SND, (sent.seq + 1) * 1e-6)]


async def test_a_refused_send_takes_no_key_so_later_stamps_find_their_requests(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def peer(sent: Sent) -> Iterable[Delivery]:
        if sent.seq == 1:
            raise OSError(errno.EHOSTUNREACH, "No route to host")
        return [Delivery(RTT, reply_bytes(sent), sent.address)]

    fake = FakeIcmpSocket(peer, stamper=_each_its_own)
    async with pinger_over(fake) as pinger:
        results = await collect(pinger, count=4, interval=0.01)
    rtts = _rtts(results)
    assert rtts[1] == (None, None)
    assert {seq: rtts[seq] for seq in (0, 2, 3)} == {
        seq: (RTT_US - (seq + 1), DRIVER_STAMP) for seq in (0, 2, 3)
    }


async def test_stamp_keys_wrap_at_two_to_the_32(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeIcmpSocket(echo(RTT), stamper=_each_its_own)
    fake.sent_key = (1 << 32) - 3  # the next keys: 2**32 - 2, 2**32 - 1, 0, 1
    async with pinger_over(fake) as pinger:
        results = await collect(pinger, count=4, interval=0.01)
    assert _rtts(results) == {seq: (RTT_US - (seq + 1), DRIVER_STAMP) for seq in range(4)}


async def test_a_stamp_from_before_its_request_was_sent_is_not_its_own(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # After the count restarts (ENOBUFS), a stamp still queued under an old key is
    # earlier than the request that now has that key.
    fake = FakeIcmpSocket(echo(RTT), stamper=lambda sent: [(SCM_TSTAMP_SND, -50e-6)])
    async with pinger_over(fake) as pinger:
        results = await collect(pinger, count=2, interval=0.01)
    assert _rtts(results) == dict.fromkeys(range(2), (RTT_US, USER_TIME))


async def test_requests_that_end_without_the_drivers_stamp_are_forgotten(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Only SND takes a request out of the table at once; with SCHED alone (or no stamp
    # at all) the table is swept of ended requests whenever it doubles.
    requests = 3 * engine_module._STAMP_TABLE_FLOOR
    fake = FakeIcmpSocket(silent, stamper=lambda sent: [(SCM_TSTAMP_SCHED, 1e-6)])
    async with engine_over(fake) as engine:
        channel_in, channel_out = trio.open_memory_channel[PingResult](requests)
        engine.start(
            TARGET,
            bytes([192, 0, 2, 1]),
            count=requests,
            interval=0.001,
            timeout=0.05,
            results=channel_in,
        )
        results = [result async for result in channel_out]
        table = engine._awaiting_stamp
    assert len(results) == requests
    # At most the table's floor, and never a request that ended long ago.
    assert len(table) <= engine_module._STAMP_TABLE_FLOOR
    assert min(probe.seq for probe in table.values()) >= requests - engine_module._STAMP_TABLE_FLOOR


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "datagram"])
async def test_the_timeout_tasks_read_applies_the_stamps_before_the_replies(
    autojump_clock: trio.testing.MockClock, raw: bool
) -> None:
    # The receiving task sees nothing until 3 s; the reply reached the socket at 2 ms. The
    # timeout task reads it at the 1 s deadline, stamps and all: the RTT starts from the
    # driver's stamp there too.
    fake = FakeIcmpSocket(echo(RTT), raw=raw, stamper=_veth)
    fake.receiver_stalled_until = 3.0
    async with pinger_over(fake) as pinger:
        results = await collect(pinger, count=1, interval=1.0, timeout=1.0)
    [(at, result)] = results
    assert (result.status, result.rtt_us, result.send_stamp) == (
        Status.REPLY,
        RTT_US - 3,
        DRIVER_STAMP,
    )
    assert at == TimedOutAt(1.0)  # settled by the timeout task's read, not at 3 s


async def test_a_leftover_stamp_under_a_request_s_key_leaves_it_for_its_own(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # After a restart a stamp counted under the old keys comes first, then the request's
    # own under the same key: the old one must not take the request out of the table.
    fake = FakeIcmpSocket(echo(RTT), stamper=lambda sent: [(SCM_TSTAMP_SND, -50e-6), *_veth(sent)])
    async with pinger_over(fake) as pinger:
        results = await collect(pinger, count=2, interval=0.01)
    assert _rtts(results) == dict.fromkeys(range(2), (RTT_US - 3, DRIVER_STAMP))
