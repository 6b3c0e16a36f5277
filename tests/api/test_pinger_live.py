"""The trio API driven in-process against the lab, through a socket made in its namespace."""

from __future__ import annotations

import socket
from collections.abc import AsyncGenerator
from contextlib import aclosing

import trio

from tests.lab.addresses import answering, silent
from tests.lab.netns import Lab
from tests.lab.responder import DELAY, address_of
from trio_ping import IcmpSocket, Pinger, PingResult, Status, open_pinger
from trio_ping._io.socket_options import Ancillary
from trio_ping.pinger import SocketFactory


class RecordingSocket(IcmpSocket):
    """A real lab socket that remembers when each request left."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        self.sent_ns: list[int] = []

    def try_send(self, packet: bytes, address: str, ancillary: Ancillary = ()) -> int | None:
        sent_ns = super().try_send(packet, address, ancillary)
        if sent_ns is not None:
            self.sent_ns.append(sent_ns)
        return sent_ns

    async def send(self, packet: bytes, address: str, ancillary: Ancillary = ()) -> int:
        sent_ns = await super().send(packet, address, ancillary)
        self.sent_ns.append(sent_ns)
        return sent_ns


def lab_sockets(lab: Lab, made: list[RecordingSocket]) -> SocketFactory:
    """Open each family's socket inside the lab's client namespace, and keep it in ``made``."""

    def factory(family: socket.AddressFamily) -> IcmpSocket:
        protocol = socket.IPPROTO_ICMPV6 if family == socket.AF_INET6 else socket.IPPROTO_ICMP
        made.append(RecordingSocket(lab.open_socket(family, socket.SOCK_RAW, protocol)))
        return made[-1]

    return factory


async def collect(results: AsyncGenerator[PingResult, None]) -> list[PingResult]:
    """Every result of one ``ping()``."""
    async with aclosing(results) as stream:
        return [result async for result in stream]


async def test_ping_yields_one_typed_result_per_request(lab: Lab) -> None:
    made: list[RecordingSocket] = []
    with trio.fail_after(10):
        async with open_pinger(socket_factory=lab_sockets(lab, made)) as pinger:
            results = await collect(pinger.ping(answering(1), count=3, interval=0.01))
    assert sorted(result.seq for result in results) == [0, 1, 2]
    assert all(result.status is Status.REPLY for result in results)
    assert all(result.address == answering(1) for result in results)
    assert all(result.ttl == 64 for result in results)
    assert all(result.kernel_timestamp for result in results)
    assert all(result.rtt_us is not None and 0 < result.rtt_us < 1_000_000 for result in results)


async def test_concurrent_callers_share_one_socket(lab: Lab) -> None:
    made: list[RecordingSocket] = []
    gathered: dict[str, list[PingResult]] = {}

    async def ping(pinger: Pinger, address: str) -> None:
        gathered[address] = await collect(pinger.ping(address, count=2, interval=0.01, timeout=0.3))

    with trio.fail_after(10):
        async with (
            open_pinger(socket_factory=lab_sockets(lab, made)) as pinger,
            trio.open_nursery() as nursery,
        ):
            for address in (answering(1), answering(2), silent(1)):
                nursery.start_soon(ping, pinger, address)
    assert len(made) == 1
    assert [r.status for r in gathered[silent(1)]] == [Status.TIMEOUT, Status.TIMEOUT]
    for address in (answering(1), answering(2)):
        assert [r.status for r in gathered[address]] == [Status.REPLY, Status.REPLY]


async def test_requests_leave_on_schedule_while_replies_are_slow(responder: Lab) -> None:
    made: list[RecordingSocket] = []
    interval = 0.05
    with trio.fail_after(10):
        async with open_pinger(socket_factory=lab_sockets(responder, made)) as pinger:
            results = await collect(pinger.ping(address_of("delay"), count=6, interval=interval))
    assert all(r.rtt_us is not None and r.rtt_us >= DELAY * 1e6 for r in results)
    sent = made[0].sent_ns
    offsets_ms = [(ns - sent[0]) / 1e6 for ns in sent]
    # Generous: this checks the sender does not wait for replies (that would put 300 ms
    # between requests), not its precision, which the benchmark measures.
    expected_ms = [k * interval * 1e3 for k in range(6)]
    assert all(abs(got - want) < 15 for got, want in zip(offsets_ms, expected_ms, strict=True)), (
        offsets_ms
    )
