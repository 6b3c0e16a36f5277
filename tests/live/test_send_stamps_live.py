"""RTTs from kernel transmit stamps, live: the pinger on real sockets in the lab's client
namespace (raw and datagram, IPv4 and IPv6), against the kernel peer over veth."""

from __future__ import annotations

import math
import socket
import statistics
import struct
from collections.abc import Iterator

import pytest
import trio

from tests.api.test_pinger_live import collect
from tests.lab.addresses import answering, answering6
from tests.lab.netns import Lab
from trio_ping import IcmpSocket, PingResult, Status, open_pinger
from trio_ping._io.datagrams import CAPACITY, Datagram
from trio_ping._io.socket_options import Ancillary
from trio_ping._proto import icmp
from trio_ping.pinger import SocketFactory
from trio_ping.results import DRIVER_STAMP

_SEQ = struct.Struct("!H")


class TimesRecordingSocket(IcmpSocket):
    """A lab socket that remembers each request's user-space send time and each reply's
    kernel receive stamp, by sequence number: the RTT trio-ping measured before stamps."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        self.user_sent_ns: dict[int, int] = {}
        self.received_ns: dict[int, int] = {}

    def try_send(self, packet: bytes, address: str, ancillary: Ancillary = ()) -> int | None:
        sent_ns = super().try_send(packet, address, ancillary)
        if sent_ns is not None:
            self.user_sent_ns[_SEQ.unpack_from(packet, 6)[0]] = sent_ns
        return sent_ns

    async def send(self, packet: bytes, address: str, ancillary: Ancillary = ()) -> int:
        sent_ns = await super().send(packet, address, ancillary)
        self.user_sent_ns[_SEQ.unpack_from(packet, 6)[0]] = sent_ns
        return sent_ns

    async def receive_batch(self, limit: int = CAPACITY) -> list[Datagram]:
        batch = await super().receive_batch(limit)
        for datagram in batch:
            try:
                message = self.decode(datagram)
            except icmp.MalformedPacket:
                continue
            if type(message) is icmp.EchoReply:
                self.received_ns.setdefault(message.seq, datagram.timestamp_ns)
        return batch


def _factory(lab: Lab, kind: socket.SocketKind, made: list[TimesRecordingSocket]) -> SocketFactory:
    def factory(family: socket.AddressFamily) -> IcmpSocket:
        protocol = socket.IPPROTO_ICMPV6 if family == socket.AF_INET6 else socket.IPPROTO_ICMP
        made.append(TimesRecordingSocket(lab.open_socket(family, kind, protocol)))
        return made[-1]

    return factory


@pytest.fixture
def datagram_sockets_allowed(lab: Lab) -> Iterator[Lab]:
    """Allow every group ICMP datagram sockets in the client namespace, for one test."""
    lab.sysctl(lab.client, "net.ipv4.ping_group_range", "0 2147483647")
    try:
        yield lab
    finally:
        lab.sysctl(lab.client, "net.ipv4.ping_group_range", "1 0")


@pytest.mark.parametrize("kind", [socket.SOCK_RAW, socket.SOCK_DGRAM], ids=["raw", "datagram"])
@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["ipv4", "ipv6"])
async def test_rtts_start_from_the_kernels_send_stamp_below_the_user_space_measure(
    datagram_sockets_allowed: Lab, family: socket.AddressFamily, kind: socket.SocketKind
) -> None:
    address = answering6(1) if family == socket.AF_INET6 else answering(1)
    made: list[TimesRecordingSocket] = []
    with trio.fail_after(10):
        async with open_pinger(
            socket_factory=_factory(datagram_sockets_allowed, kind, made)
        ) as pinger:
            results = await collect(pinger.ping(address, count=20, interval=0.002))
    [sock] = made
    assert sock.transmit_stamps
    assert sock.raw == (kind == socket.SOCK_RAW)
    assert [result.status for result in results] == [Status.REPLY] * 20
    assert all(result.kernel_timestamp for result in results)
    # veth's driver stamps every packet it sends (veth_xmit): every RTT starts there.
    assert [result.send_stamp for result in results] == [DRIVER_STAMP] * 20
    # The user-space time was read before the system call, the stamp inside it, as the
    # packet left: the stamped RTT is the shorter, request by request.
    gains_ns = []
    for result in results:
        assert result.rtt_us is not None
        user_rtt_ns = sock.received_ns[result.seq] - sock.user_sent_ns[result.seq]
        assert 0 < result.rtt_us * 1000 < user_rtt_ns
        gains_ns.append(user_rtt_ns - result.rtt_us * 1000)
    assert statistics.median(gains_ns) >= 1000  # the send path takes microseconds


async def test_a_burst_of_five_thousand_requests_loses_no_reply_to_the_stamps(lab: Lab) -> None:
    # Each request queues two stamps on the error queue, which shares the receive buffer
    # with the replies: all of them must fit, and be read before the replies need them.
    targets = [answering(index) for index in range(1, 5001)]
    made: list[TimesRecordingSocket] = []
    send_channel, receive_channel = trio.open_memory_channel[PingResult](math.inf)
    with trio.fail_after(30):
        async with open_pinger(socket_factory=_factory(lab, socket.SOCK_RAW, made)) as pinger:
            async with send_channel:
                for target in targets:
                    pinger.start(
                        target,
                        count=1,
                        interval=1.0,
                        timeout=5.0,
                        results=send_channel.clone(),
                    )
            results = [result async for result in receive_channel]
    assert made[0].transmit_stamps
    assert len(results) == 5000
    assert sorted(result.address for result in results) == sorted(targets)
    assert all(result.status is Status.REPLY for result in results)
    stamped = sum(result.send_stamp == DRIVER_STAMP for result in results)
    assert stamped == 5000
