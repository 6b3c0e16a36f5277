"""The recvmmsg reader and what it builds: kernel timestamps and hop limits from control
messages, and the reader itself on a UDP socket talking to itself on loopback (and, in the
lab, on a raw ICMP socket)."""

from __future__ import annotations

import select
import socket
import struct
import sys
import time

from tests.lab import addresses
from tests.lab.netns import Lab
from trio_ping._io.datagrams import SO_TIMESTAMPNS, Datagram, DatagramReader, datagram_from
from trio_ping._proto import icmp

STAMP = struct.Struct("@qq")
SOURCE = bytes([10, 202, 0, 1])


def control_message(level: int, kind: int, data: bytes) -> bytes:
    """One struct cmsghdr with its data, padded as the kernel lays them out."""
    header = struct.pack("@Nii", socket.CMSG_LEN(len(data)), level, kind)
    return (header + data).ljust(socket.CMSG_SPACE(len(data)), b"\0")


def test_kernel_timestamp_is_converted_to_nanoseconds_since_the_epoch() -> None:
    control = control_message(
        socket.SOL_SOCKET, SO_TIMESTAMPNS, STAMP.pack(1_795_000_000, 123_456_789)
    )
    datagram = datagram_from(b"data", SOURCE, control)
    assert datagram.timestamp_ns == 1_795_000_000_123_456_789
    assert datagram.kernel_timestamp
    assert (datagram.data, datagram.source, datagram.hop_limit) == (b"data", SOURCE, None)


def test_without_a_kernel_stamp_the_time_now_stands_in_and_says_so() -> None:
    before = time.time_ns()
    datagram = datagram_from(b"data", SOURCE, b"")
    after = time.time_ns()
    assert before <= datagram.timestamp_ns <= after
    assert not datagram.kernel_timestamp


def test_hop_limit_and_ttl_come_from_ancillary_data() -> None:
    stamp = control_message(socket.SOL_SOCKET, SO_TIMESTAMPNS, STAMP.pack(1, 2))
    hop_limit = control_message(
        socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, (57).to_bytes(4, sys.byteorder)
    )
    ttl = control_message(socket.IPPROTO_IP, socket.IP_TTL, (63).to_bytes(4, sys.byteorder))
    from_ipv6 = datagram_from(b"", socket.inet_pton(socket.AF_INET6, "fd00:202::1"), hop_limit)
    assert from_ipv6.hop_limit == 57
    assert datagram_from(b"", SOURCE, ttl).hop_limit == 63
    # Both, in either order, as the kernel may put them.
    for control in (stamp + ttl, ttl + stamp):
        datagram = datagram_from(b"", SOURCE, control)
        assert (datagram.hop_limit, datagram.timestamp_ns) == (63, 1_000_000_002)


def test_a_truncated_or_malformed_control_message_ends_the_walk() -> None:
    stamp = control_message(socket.SOL_SOCKET, SO_TIMESTAMPNS, STAMP.pack(1, 2))
    # A header claiming less than itself must not loop forever or raise.
    bogus = struct.pack("@Nii", 0, socket.IPPROTO_IP, socket.IP_TTL)
    datagram = datagram_from(b"", SOURCE, stamp + bogus)
    assert (datagram.timestamp_ns, datagram.hop_limit) == (1_000_000_002, None)
    assert not datagram_from(b"", SOURCE, stamp[:20]).kernel_timestamp
    # A stamp whose own length says it is cut short: no stamp rather than an exception.
    short = struct.pack("@Nii", socket.CMSG_LEN(4), socket.SOL_SOCKET, SO_TIMESTAMPNS)
    assert not datagram_from(b"", SOURCE, short + bytes(8)).kernel_timestamp


def test_the_reader_builds_datagrams_as_the_class_does() -> None:
    # DatagramReader builds its Datagrams with tuple.__new__ on the stamped fast path;
    # they must be indistinguishable from the class's own. A UDP socket to itself on
    # loopback gives a real recvmmsg slot with a real SO_TIMESTAMPNS stamp.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setblocking(False)
        before = time.time_ns()
        sock.sendto(b"hello", sock.getsockname())
        [datagram] = DatagramReader(sock).read()
    expected = Datagram(b"hello", socket.inet_aton("127.0.0.1"), datagram.timestamp_ns, True, None)
    assert type(datagram) is Datagram
    assert datagram == expected
    assert repr(datagram) == repr(expected)
    assert before <= datagram.timestamp_ns <= time.time_ns()


def test_a_raw_ipv4_reader_takes_the_source_from_the_header_as_the_kernel_does(
    lab: Lab,
) -> None:
    # On a raw IPv4 socket the reader has the kernel write no msg_name and reads the
    # source from the IP header. A second raw socket, read with recvfrom, gets the
    # kernel's own msg_name for the same packets, from three sources: our request to
    # 127.0.0.2, looped back (from 127.0.0.1), its reply, and the lab peer's reply.
    # Both sides keep only packets with our identifier: a late reply from another test
    # may still arrive.
    ident = 0x7E57
    peer = addresses.answering(7)

    def ours_only(packet: bytes) -> bool:
        return len(packet) >= 28 and struct.unpack_from("!H", packet, 24)[0] == ident

    with (
        lab.open_socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as ours,
        lab.open_socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as witness,
    ):
        ours.setblocking(False)
        witness.settimeout(2)
        reader = DatagramReader(ours)
        for seq, destination in enumerate(["127.0.0.2", peer]):
            ours.sendto(icmp.encode_echo_request(ident, seq, b"source"), (destination, 0))
        seen: list[tuple[bytes, bytes]] = []
        while len(seen) < 3:
            data, (address, _) = witness.recvfrom(2048)
            if ours_only(data):
                seen.append((data, socket.inet_aton(address)))
        read: list[Datagram] = []
        while len(read) < 3 and select.select([ours], [], [], 2)[0]:
            read += [datagram for datagram in reader.read() if ours_only(datagram.data)]
    assert sorted((datagram.data, datagram.source) for datagram in read) == sorted(seen)
    assert {source for _, source in seen} == {
        socket.inet_aton("127.0.0.1"),
        socket.inet_aton("127.0.0.2"),
        socket.inet_aton(peer),
    }


def test_a_datagram_longer_than_a_slot_is_skipped_until_the_reader_fits_it() -> None:
    # 5,000 bytes do not fit the default 2,048-byte slot (MSG_TRUNC: skipped); once
    # fitted, the same datagram comes back whole, and a shorter one beside it too.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        reader = DatagramReader(sock)
        long, short = bytes(range(256)) * 19 + b"tail", b"short"
        sock.sendto(long, sock.getsockname())
        sock.sendto(short, sock.getsockname())
        assert [datagram.data for datagram in reader.read()] == [short]
        reader.fit(len(long))
        reader.fit(100)  # never shrinks
        assert reader.slot_size == len(long)
        assert reader.capacity == 256  # 2 MiB of 5,004-byte slots would be 419
        sock.sendto(long, sock.getsockname())
        sock.sendto(short, sock.getsockname())
        assert [datagram.data for datagram in reader.read()] == [long, short]
        reader.fit(65_575)  # the largest IPv4 reply on a raw socket, header and all
        assert reader.capacity == 31
        sock.sendto(long, sock.getsockname())
        sock.sendto(short, sock.getsockname())
        assert [datagram.data for datagram in reader.read()] == [long, short]
