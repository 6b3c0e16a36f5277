"""What the engine's tests share: a real Pinger over the fake socket, and result helpers."""

from __future__ import annotations

import math
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
import trio.testing

from tests.fakes import FakeIcmpSocket
from trio_ping import open_pinger
from trio_ping._engine.engine import EXPIRY_SLACK, SocketEngine
from trio_ping.pinger import Pinger
from trio_ping.results import PingResult

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


@asynccontextmanager
async def engine_over(sock: FakeIcmpSocket) -> AsyncIterator[SocketEngine]:
    """The engine alone on ``sock``, its tasks running (``nursery.start``), paced by trio's
    clock; on the way out, cancelled, then closed as the Pinger closes it."""
    engine = SocketEngine(sock, trio.sleep_until)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        yield engine
        nursery.cancel_scope.cancel()
    engine.close()
    sock.close()


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
