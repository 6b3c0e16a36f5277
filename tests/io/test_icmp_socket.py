"""The async ICMP socket's pure parts: the ICMPv6 filter, a closed socket, and how a send the
kernel refuses is classified. (The datagram reader's tests are in test_datagrams.py; the
live tests read ICMP sockets in the lab.)"""

from __future__ import annotations

import errno
import os
import socket
import struct

import pytest
import trio

from trio_ping._io import send_stamps
from trio_ping._io.icmp_socket import IcmpSocket, _icmp6_filter
from trio_ping._proto import icmp


def test_icmpv6_filter_passes_replies_and_errors_only() -> None:
    words = struct.unpack("@8I", _icmp6_filter())

    def blocked(message_type: int) -> bool:  # Linux: a set bit blocks the type
        return bool(words[message_type >> 5] & (1 << (message_type & 31)))

    passed = [message_type for message_type in range(256) if not blocked(message_type)]
    assert passed == sorted(
        [
            icmp.ICMPV6_DESTINATION_UNREACHABLE,
            icmp.ICMPV6_PACKET_TOO_BIG,
            icmp.ICMPV6_TIME_EXCEEDED,
            icmp.ICMPV6_PARAMETER_PROBLEM,
            icmp.ICMPV6_ECHO_REPLY,
        ]
    )


async def test_a_closed_socket_is_not_read_again() -> None:
    # Its descriptor number may belong to another file by now. Any datagram socket will
    # do here: nothing is sent, and no privilege is needed.
    sock = IcmpSocket(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    sock.close()
    with pytest.raises(trio.ClosedResourceError):
        await sock.receive_batch()


async def test_receive_nowait_reads_what_is_queued_and_never_waits() -> None:
    # A UDP socket on loopback stands in: the reader is the same, and no privilege is needed.
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    sock = IcmpSocket(receiver)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        try:
            assert sock.receive_nowait() == []
            for index in range(3):
                sender.sendto(b"datagram %d" % index, receiver.getsockname())
            assert [d.data for d in sock.receive_nowait()] == [
                b"datagram 0",
                b"datagram 1",
                b"datagram 2",
            ]
            assert sock.receive_nowait() == []
        finally:
            sock.close()
    with pytest.raises(trio.ClosedResourceError):
        sock.receive_nowait()


class _Refusing:
    """Stands in for the stdlib socket: every sendto fails with one error number."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.options: list[tuple[int, int, int]] = []

    def setsockopt(self, level: int, option: int, value: int) -> None:
        self.options.append((level, option, value))

    def sendto(self, packet: bytes, address: tuple[str, int]) -> int:
        raise OSError(self.number, os.strerror(self.number))


@pytest.mark.parametrize("number", [errno.EAGAIN, errno.ENOBUFS])
def test_try_send_says_not_now_when_the_kernel_has_no_room(number: int) -> None:
    sock = IcmpSocket(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    real, sock._sock = sock._sock, _Refusing(number)  # type: ignore[assignment]
    try:
        assert sock.try_send(b"packet", "127.0.0.1") is None
    finally:
        real.close()


def test_try_send_raises_what_the_kernel_refuses_for_good() -> None:
    sock = IcmpSocket(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    real, sock._sock = sock._sock, _Refusing(errno.EHOSTUNREACH)  # type: ignore[assignment]
    try:
        with pytest.raises(OSError, match=os.strerror(errno.EHOSTUNREACH)) as raised:
            sock.try_send(b"packet", "127.0.0.1")
        assert raised.value.errno == errno.EHOSTUNREACH
    finally:
        real.close()


class _FailingFirst:
    """Stands in for the stdlib socket: the first ``failures`` sends (sendto or sendmsg)
    fail with EHOSTUNREACH (a pending ICMP error), the rest succeed; ``then`` is the error
    number of the last failure, if it is another."""

    def __init__(self, failures: int, then: int = errno.EHOSTUNREACH) -> None:
        self.failures = failures
        self.then = then
        self.sent = 0
        self.with_ancillary = 0
        self.options: list[tuple[int, int, int]] = []

    def setsockopt(self, level: int, option: int, value: int) -> None:
        self.options.append((level, option, value))

    def sendto(self, packet: bytes, address: tuple[str, int]) -> int:
        if self.failures:
            self.failures -= 1
            number = self.then if self.failures == 0 else errno.EHOSTUNREACH
            raise OSError(number, os.strerror(number))
        self.sent += 1
        return len(packet)

    def sendmsg(
        self,
        buffers: tuple[bytes],
        ancillary: tuple[tuple[int, int, bytes], ...],
        flags: int,
        address: tuple[str, int],
    ) -> int:
        sent = self.sendto(buffers[0], address)
        self.with_ancillary += 1
        return sent


def test_only_a_send_that_succeeds_takes_a_transmit_stamp_key() -> None:
    # The kernel counts OPT_ID keys the same way: a send refused for a pending error
    # releases the key it held, so the retry that succeeds has the next one.
    sock = IcmpSocket(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    assert sock.transmit_stamps  # this kernel stamps UDP sends as it does ICMP ones
    stub = _FailingFirst(failures=2)
    real, sock._sock = sock._sock, stub  # type: ignore[assignment]
    try:
        assert sock.sent_key == -1
        assert sock.try_send(b"packet", "127.0.0.1") is not None
        assert (stub.sent, sock.sent_key) == (1, 0)
        stub.failures = 4  # every attempt fails: the send is refused, no key taken
        with pytest.raises(OSError, match=os.strerror(errno.EHOSTUNREACH)):
            sock.try_send(b"packet", "127.0.0.1")
        assert sock.sent_key == 0
        assert sock.try_send(b"packet", "127.0.0.1") is not None
        assert (stub.sent, sock.sent_key) == (2, 1)
    finally:
        real.close()


def test_enobufs_restarts_the_transmit_stamp_keys() -> None:
    # ENOBUFS may come after the packet took its key: the count starts again from 0.
    sock = IcmpSocket(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    sock.sent_key = 41
    stub = _Refusing(errno.ENOBUFS)
    real, sock._sock = sock._sock, stub  # type: ignore[assignment]
    try:
        assert sock.try_send(b"packet", "127.0.0.1") is None
    finally:
        real.close()
    assert sock.sent_key == -1
    # OPT_ID off, then on: what makes the kernel count from 0 again.
    off, on = (value for _, _, value in stub.options)
    assert not off & send_stamps.SOF_TIMESTAMPING_OPT_ID
    assert on == send_stamps.TX_FLAGS


_TTL_5 = ((socket.IPPROTO_IP, socket.IP_TTL, (5).to_bytes(4, "little")),)


async def test_every_send_path_counts_a_key_only_for_what_the_kernel_took() -> None:
    # The inline send of try_send and send, their retries after a pending error
    # (_after_refusal), with and without control messages (sendmsg): one key each packet
    # the kernel took, none for a refused try.
    sock = IcmpSocket(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    stub = _FailingFirst(failures=0)
    real, sock._sock = sock._sock, stub  # type: ignore[assignment]
    try:
        assert sock.try_send(b"packet", "127.0.0.1", _TTL_5) is not None
        assert (stub.sent, stub.with_ancillary, sock.sent_key) == (1, 1, 0)
        stub.failures = 3  # two retries fail as well, the third goes through
        assert sock.try_send(b"packet", "127.0.0.1", _TTL_5) is not None
        assert (stub.sent, stub.with_ancillary, sock.sent_key) == (2, 2, 1)
        assert await sock.send(b"packet", "127.0.0.1") is not None
        assert (stub.sent, sock.sent_key) == (3, 2)
        stub.failures = 1
        assert await sock.send(b"packet", "127.0.0.1", _TTL_5) is not None
        assert (stub.sent, stub.with_ancillary, sock.sent_key) == (4, 3, 3)
        stub.failures = 4  # every try refused: no key
        with pytest.raises(OSError, match=os.strerror(errno.EHOSTUNREACH)):
            await sock.send(b"packet", "127.0.0.1", _TTL_5)
        assert (stub.sent, sock.sent_key) == (4, 3)
    finally:
        real.close()


def test_enobufs_on_a_retry_restarts_the_transmit_stamp_keys() -> None:
    # The pending error's retry met a full device queue: not now, and the count restarts.
    sock = IcmpSocket(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    sock.sent_key = 41
    stub = _FailingFirst(failures=2, then=errno.ENOBUFS)
    real, sock._sock = sock._sock, stub  # type: ignore[assignment]
    try:
        assert sock.try_send(b"packet", "127.0.0.1") is None
    finally:
        real.close()
    assert (stub.sent, sock.sent_key) == (0, -1)
    off, on = (value for _, _, value in stub.options)
    assert not off & send_stamps.SOF_TIMESTAMPING_OPT_ID
    assert on & send_stamps.SOF_TIMESTAMPING_OPT_ID
