"""Kernel transmit stamps on real ICMP sockets in the lab's client namespace: raw and
datagram, IPv4 and IPv6, over the client's veth (whose driver stamps, as loopback does)."""

from __future__ import annotations

import select
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from tests.lab.addresses import answering, answering6, unreachable, unreachable6
from tests.lab.netns import Lab
from trio_ping._io import send_stamps, socket_options
from trio_ping._io.datagrams import datagram_from
from trio_ping._io.icmp_socket import IcmpSocket
from trio_ping._io.send_stamps import SCM_TSTAMP_SCHED, SCM_TSTAMP_SND, SendStamp
from trio_ping._proto import icmp

REQUESTS = 40
IDENT = 0x5A17


@pytest.fixture
def datagram_sockets_allowed(lab: Lab) -> Iterator[Lab]:
    """Allow every group ICMP datagram sockets in the client namespace, for one test."""
    lab.sysctl(lab.client, "net.ipv4.ping_group_range", "0 2147483647")
    try:
        yield lab
    finally:
        lab.sysctl(lab.client, "net.ipv4.ping_group_range", "1 0")


def _open(
    lab: Lab, family: socket.AddressFamily, kind: socket.SocketKind
) -> tuple[IcmpSocket, socket.socket]:
    """An ICMP socket in the client namespace, set up as the pinger's (receive stamps, a
    large buffer, IP_RECVERR on a datagram socket), and the stdlib socket inside it."""
    protocol = socket.IPPROTO_ICMPV6 if family == socket.AF_INET6 else socket.IPPROTO_ICMP
    inner = lab.open_socket(family, kind, protocol)
    return IcmpSocket(inner), inner


def _send_all(
    sock: IcmpSocket,
    addresses: list[str],
    *,
    ipv6: bool,
    ancillary: socket_options.Ancillary = (),
) -> list[tuple[int, int]]:
    """Send one Echo Request to each address in order, every other one with ``ancillary``
    (sendmsg) if given; each send's user-space window."""
    windows = []
    for seq, address in enumerate(addresses):
        packet = icmp.encode_echo_request(IDENT, seq, b"send-stamps-live", ipv6=ipv6)
        sent_ns = sock.try_send(packet, address, ancillary if seq % 2 else ())
        assert sent_ns is not None
        windows.append((sent_ns, time.time_ns()))
    return windows


def _check_stamps(
    stamps: list[SendStamp],
    windows: list[tuple[int, int]],
    kinds: tuple[int, ...] = (SCM_TSTAMP_SND,),
) -> None:
    # veth_xmit stamps in the sendto call: per packet the driver's stamp (SND), after the
    # queueing layer's (SCHED) where that was asked for, in send order, keys counting from
    # 0; each inside the user-space window around the call.
    assert [(stamp.key, stamp.kind) for stamp in stamps] == [
        (key, kind) for key in range(len(windows)) for kind in kinds
    ]
    for stamp in stamps:
        before, after = windows[stamp.key]
        assert before <= stamp.stamp_ns <= after
    best = send_stamps.best_stamps(stamps)
    assert all(stamp.kind == SCM_TSTAMP_SND for stamp in best.values())


def _replies(sock: IcmpSocket, inner: socket.socket, expected: int) -> dict[int, int]:
    """Each reply's sequence number and kernel receive stamp, waiting up to 2 s for all."""
    received: dict[int, int] = {}
    deadline = time.monotonic() + 2
    while len(received) < expected and time.monotonic() < deadline:
        select.select([inner], [], [], max(0.0, deadline - time.monotonic()))
        try:
            data, control, _, address = inner.recvmsg(2048, 1024)
        except BlockingIOError:
            continue
        # What a reply carries is unchanged by the transmit stamps (OPT_RX_FILTER): the
        # SO_TIMESTAMPNS stamp, and on IPv6 the hop limit; no SCM_TIMESTAMPING.
        kinds = [(level, kind) for level, kind, _ in control]
        assert (socket.SOL_SOCKET, send_stamps.SCM_TIMESTAMPING) not in kinds
        source = socket.inet_pton(inner.family, address[0])
        datagram = datagram_from(data, source, b"".join(_pack(*message) for message in control))
        assert datagram.kernel_timestamp
        message = sock.decode(datagram)
        if isinstance(message, icmp.EchoReply) and message.ident == IDENT:
            received[message.seq] = datagram.timestamp_ns
    return received


def _pack(level: int, kind: int, data: bytes) -> bytes:
    header = struct.pack("@Nii", socket.CMSG_LEN(len(data)), level, kind)
    return (header + data).ljust(socket.CMSG_SPACE(len(data)), b"\0")


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
async def test_every_request_on_a_raw_socket_gets_its_send_stamp(
    lab: Lab, family: socket.AddressFamily
) -> None:
    ipv6 = family == socket.AF_INET6
    sock, raw = _open(lab, family, socket.SOCK_RAW)
    try:
        assert send_stamps.enable(raw)
        reader = send_stamps.ErrorQueueReader(raw)
        address = answering6 if ipv6 else answering
        windows = _send_all(sock, [address(index + 1) for index in range(REQUESTS)], ipv6=ipv6)
        stamps, errors = reader.drain()
        replies = _replies(sock, raw, REQUESTS)
    finally:
        sock.close()
    assert errors == []
    _check_stamps(stamps, windows)
    # The receive path is as before (OPT_RX_FILTER): kernel receive stamps, every reply,
    # each after its request's send stamp.
    assert sorted(replies) == list(range(REQUESTS))
    best = send_stamps.best_stamps(stamps)
    assert all(replies[seq] > best[seq].stamp_ns for seq in range(REQUESTS))


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
async def test_a_datagram_socket_drains_stamps_and_an_icmp_error_together(
    datagram_sockets_allowed: Lab, family: socket.AddressFamily
) -> None:
    ipv6 = family == socket.AF_INET6
    sock, dgram = _open(datagram_sockets_allowed, family, socket.SOCK_DGRAM)
    try:
        assert send_stamps.enable(dgram)
        reader = send_stamps.ErrorQueueReader(dgram)
        answered, refused = (answering6, unreachable6) if ipv6 else (answering, unreachable)
        # The unreachable request goes last: the error it draws is also the socket's
        # pending error, which the next send would return instead of sending.
        addresses = [answered(index + 1) for index in range(REQUESTS - 1)] + [refused(1)]
        windows = _send_all(sock, addresses, ipv6=ipv6)
        stamps: list[SendStamp] = []
        errors: list[icmp.ErrorReport] = []
        poller = select.poll()
        poller.register(dgram, select.POLLERR)
        deadline = time.monotonic() + 2
        while not errors and time.monotonic() < deadline:
            poller.poll(max(0, int((deadline - time.monotonic()) * 1000)))
            more_stamps, more_errors = reader.drain()
            stamps += more_stamps
            errors += more_errors
        stamps += reader.drain()[0]
    finally:
        sock.close()
    _check_stamps(stamps, windows)
    [error] = errors
    assert error.destination == socket.inet_pton(family, refused(1))
    assert error.seq == REQUESTS - 1
    assert error.type == (
        icmp.ICMPV6_DESTINATION_UNREACHABLE if ipv6 else icmp.DESTINATION_UNREACHABLE
    )


async def test_restarting_the_keys_counts_the_next_packet_from_zero(lab: Lab) -> None:
    sock, raw = _open(lab, socket.AF_INET, socket.SOCK_RAW)
    try:
        assert sock.transmit_stamps
        reader = send_stamps.ErrorQueueReader(raw)
        _send_all(sock, [answering(index + 1) for index in range(3)], ipv6=False)
        assert sock.sent_key == 2
        sock._restart_keys()
        assert sock.sent_key == -1
        _send_all(sock, [answering(index + 1) for index in range(2)], ipv6=False)
        stamps, _ = reader.drain()
    finally:
        sock.close()
    assert sock.sent_key == 1
    assert [stamp.key for stamp in stamps if stamp.kind == SCM_TSTAMP_SND] == [0, 1, 2, 0, 1]


@pytest.mark.parametrize("kind", [socket.SOCK_RAW, socket.SOCK_DGRAM], ids=["raw", "datagram"])
@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["ipv4", "ipv6"])
async def test_a_send_with_control_messages_takes_its_key_as_sendto_does(
    datagram_sockets_allowed: Lab, family: socket.AddressFamily, kind: socket.SocketKind
) -> None:
    # Every other request goes by sendmsg with a TTL (hop limit) of its own, as -t sends
    # it: the kernel counts its key as for sendto (ip_append_data, ip6_append_data), and
    # receive_nowait, the timeout task's read, drains the stamps after the replies.
    ipv6 = family == socket.AF_INET6
    sock, _ = _open(datagram_sockets_allowed, family, kind)
    address = answering6 if ipv6 else answering
    received = 0
    stamps: list[SendStamp] = []
    try:
        assert sock.transmit_stamps
        ttl = socket_options.ancillary(family, 9, None)
        windows = _send_all(
            sock, [address(index + 1) for index in range(REQUESTS)], ipv6=ipv6, ancillary=ttl
        )
        assert sock.sent_key == REQUESTS - 1
        deadline = time.monotonic() + 2
        while received < REQUESTS and time.monotonic() < deadline:
            batch = sock.receive_nowait()
            received += sum(type(sock.decode(d)) is icmp.EchoReply for d in batch)
            stamps += sock.take_stamps()
            if not batch:
                select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
    finally:
        sock.close()
    assert received == REQUESTS
    _check_stamps(stamps, windows)


async def test_the_fallback_to_the_queueing_layers_stamp_keeps_counting_keys(lab: Lab) -> None:
    # IcmpSocket.add_queue_stamps sets the option again with SCHED: the count goes on.
    sock, raw = _open(lab, socket.AF_INET, socket.SOCK_RAW)
    try:
        assert sock.transmit_stamps
        assert not sock.queue_stamps
        reader = send_stamps.ErrorQueueReader(raw)
        windows = _send_all(sock, [answering(index + 1) for index in range(2)], ipv6=False)
        sock.add_queue_stamps()
        assert sock.queue_stamps
        windows += _send_all(sock, [answering(index + 1) for index in range(2)], ipv6=False)
        stamps, _ = reader.drain()
    finally:
        sock.close()
    assert sock.sent_key == 3
    assert [(stamp.key, stamp.kind) for stamp in stamps] == [
        (0, SCM_TSTAMP_SND),
        (1, SCM_TSTAMP_SND),
        (2, SCM_TSTAMP_SCHED),
        (2, SCM_TSTAMP_SND),
        (3, SCM_TSTAMP_SCHED),
        (3, SCM_TSTAMP_SND),
    ]
    for stamp in stamps:
        before, after = windows[stamp.key]
        assert before <= stamp.stamp_ns <= after
