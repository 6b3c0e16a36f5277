"""The Pinger's own API over the in-memory socket: arguments, handles, closing."""

from __future__ import annotations

import math
from contextlib import aclosing

import attrs
import pytest
import trio
import trio.testing

import trio_ping
from tests.engine.helpers import TARGET, pinger_over
from tests.fakes import FakeIcmpSocket, echo, silent
from trio_ping import PingHandle
from trio_ping.results import PingResult, ResultSink


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


# The handle Pinger.start returns ---------------------------------------------------------


async def test_start_returns_a_frozen_handle_that_counts_down_and_cancels(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeIcmpSocket(echo(0.001))
    async with pinger_over(fake) as pinger:
        send_channel, receive_channel = trio.open_memory_channel[PingResult](math.inf)
        handle = pinger.start(TARGET, count=5, interval=1.0, timeout=1.0, results=send_channel)
        assert isinstance(handle, PingHandle)
        assert (handle.remaining, handle.duplicates) == (5, 0)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            handle.x = 1  # type: ignore[attr-defined]
        first = await receive_channel.receive()
        assert (first.seq, handle.remaining) == (0, 4)
        await trio.sleep(1.5)  # virtual: the second result is in
        handle.cancel()
        handle.cancel()  # again: nothing
        rest = [result async for result in receive_channel]
        await trio.sleep(5.0)
    assert [result.seq for result in rest] == [1]
    assert handle.remaining == 3  # never sent, never known
    assert [sent.seq for sent in fake.sent] == [0, 1]


def test_the_handle_and_the_sink_protocol_are_public() -> None:
    assert "PingHandle" in trio_ping.__all__
    assert trio_ping.PingHandle is PingHandle
    assert "ResultSink" in trio_ping.__all__
    assert trio_ping.ResultSink is ResultSink


# Runs without a count, and of any length ---------------------------------------------------


async def test_a_ping_without_a_count_runs_until_the_caller_stops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeIcmpSocket(echo(0.001))
    seqs: list[int] = []
    async with pinger_over(fake) as pinger:
        with trio.move_on_after(10.005):  # virtual seconds: requests 0 .. 10 are answered
            async with aclosing(pinger.ping(TARGET, count=None, interval=1.0)) as results:
                async for result in results:
                    assert result.answered
                    seqs.append(result.seq)
        sent = len(fake.sent)
        await trio.sleep(5.0)  # virtual: nothing more goes out once it was cancelled
        assert len(fake.sent) == sent
    assert seqs == list(range(11))
    assert [sent.seq for sent in fake.sent] == seqs


async def test_a_handle_without_a_count_has_no_remaining_and_stops_on_cancel(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeIcmpSocket(echo(0.001))
    async with pinger_over(fake) as pinger:
        send_channel, receive_channel = trio.open_memory_channel[PingResult](math.inf)
        handle = pinger.start(TARGET, count=None, interval=0.5, timeout=1.0, results=send_channel)
        assert handle.remaining is None
        got = [await receive_channel.receive() for _ in range(7)]
        handle.cancel()
        rest = [result async for result in receive_channel]  # ends: the channel is closed
        assert handle.remaining is None
    assert [result.seq for result in got + rest] == list(range(7))


async def test_a_run_without_a_count_says_when_the_pinger_closes_under_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeIcmpSocket(echo(0.001))
    seen: list[PingResult] = []
    closed = pytest.RaisesExc(trio.ClosedResourceError, match="during a run without a count")
    with pytest.RaisesGroup(closed, flatten_subgroups=True):
        async with trio.open_nursery() as nursery, pinger_over(fake) as pinger:

            async def consume() -> None:
                async with aclosing(pinger.ping(TARGET, count=None, interval=0.1)) as stream:
                    async for result in stream:
                        seen.append(result)

            nursery.start_soon(consume)
            await trio.sleep(1.05)  # virtual: requests 0 .. 10 are answered
    assert [result.seq for result in seen] == list(range(11))


@pytest.mark.parametrize("rate", [0, -1.0, math.nan, math.inf])
async def test_open_pinger_refuses_a_rate_that_is_not_positive(rate: float) -> None:
    with pytest.raises(ValueError, match="rate must be a positive number"):
        async with trio_ping.open_pinger(rate=rate):
            pass  # pragma: no cover


async def test_a_rate_holds_requests_back_and_says_how_long(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeIcmpSocket(echo(0.001))
    got: list[PingResult] = []
    async with trio_ping.open_pinger(
        socket_factory=lambda _: fake, precise_pacing=False, rate=1000
    ) as pinger:
        assert pinger.rate_delay == 0.0
        got = [result async for result in pinger.ping(TARGET, count=100, interval=0.0001)]
        delay = pinger.rate_delay
    assert [result.seq for result in got] == list(range(100))
    times = [sent.time for sent in fake.sent]
    # A burst of 10 (a hundredth of a second's worth) in the first 0.6 ms, as they fall
    # due, then one a millisecond: the 100 ask for 10,000 a second.
    assert max(times[:10]) < 0.001
    assert times[10:] == pytest.approx([0.001 * k for k in range(1, 91)])
    assert delay == pytest.approx(0.09 - 99 * 0.0001)


@attrs.define
class Recorder:
    """A results sink that is not a channel: it keeps what it is given, and when it closed;
    with ``refuse_after``, it says it is full (trio.WouldBlock) from that many on."""

    results: list[PingResult] = attrs.field(factory=list)
    closed_at: int | None = None
    refuse_after: int | None = None

    def send_nowait(self, value: PingResult, /) -> None:
        if self.refuse_after is not None and len(self.results) >= self.refuse_after:
            raise trio.WouldBlock
        self.results.append(value)

    def close(self) -> None:
        assert self.closed_at is None, "closed twice"
        self.closed_at = len(self.results)


async def test_a_sink_that_is_not_a_channel_takes_each_result_as_it_is_settled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeIcmpSocket(echo(0.001))
    sink = Recorder()
    async with pinger_over(fake) as pinger:
        pinger.start(TARGET, count=3, interval=1.0, timeout=1.0, results=sink)
        await trio.sleep(0.5)  # virtual: the first reply came at 1 ms
        assert [result.seq for result in sink.results] == [0]  # no reader task in between
        await trio.sleep(5.0)
    assert [(result.seq, result.answered) for result in sink.results] == [
        (0, True),
        (1, True),
        (2, True),
    ]
    assert sink.closed_at == 3  # closed once, after the last


async def test_a_sink_that_says_it_is_full_ends_its_session_alone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeIcmpSocket(echo(0.001))
    full, other = Recorder(refuse_after=2), Recorder()
    async with pinger_over(fake) as pinger:
        pinger.start(TARGET, count=5, interval=1.0, timeout=1.0, results=full)
        pinger.start("192.0.2.2", count=5, interval=1.0, timeout=1.0, results=other)
        await trio.sleep(10.0)
    assert [result.seq for result in full.results] == [0, 1]
    assert full.closed_at == 2
    assert len(other.results) == 5
    assert sum(1 for sent in fake.sent if sent.address == TARGET) == 3  # then it stopped
