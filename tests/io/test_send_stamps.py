"""Transmit stamps from the control data the kernel writes with each error-queue entry
(linux/errqueue.h, linux/net_tstamp.h): built here as the kernel lays it out, no socket."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from tests.io.test_datagrams import control_message
from trio_ping._io import error_queue, send_stamps
from trio_ping._io.datagrams import SO_TIMESTAMPNS
from trio_ping._io.send_stamps import SCM_TSTAMP_SCHED, SCM_TSTAMP_SND, SendStamp

SECONDS, NANOSECONDS = 1_796_190_495, 216_786_977
STAMP_NS = SECONDS * 1_000_000_000 + NANOSECONDS


def _entry(
    *,
    ipv6: bool,
    kind: int = SCM_TSTAMP_SND,
    key: int = 0,
    origin: int = send_stamps.SO_EE_ORIGIN_TIMESTAMPING,
    receive_stamp: bool = True,
    stamp: tuple[int, int] = (SECONDS, NANOSECONDS),
) -> bytes:
    """An entry's control data as the kernel writes it for an ICMP socket with
    SO_TIMESTAMPNS (when ``receive_stamp``) and send_stamps.TX_FLAGS."""
    offender = bytes(28 if ipv6 else 16)
    errno_value = 42 if origin == send_stamps.SO_EE_ORIGIN_TIMESTAMPING else 113
    extended = struct.pack("@IBBBBII", errno_value, origin, 0, 0, 0, kind, key) + offender
    level, option = (
        (socket.IPPROTO_IPV6, error_queue.IPV6_RECVERR)
        if ipv6
        else (socket.IPPROTO_IP, error_queue.IP_RECVERR)
    )
    parts = []
    if receive_stamp:
        parts.append(control_message(socket.SOL_SOCKET, SO_TIMESTAMPNS, struct.pack("@qq", *stamp)))
    timestamps = struct.pack("@qq", *stamp) + bytes(32)
    parts.append(control_message(socket.SOL_SOCKET, send_stamps.SCM_TIMESTAMPING, timestamps))
    parts.append(control_message(level, option, extended))
    return b"".join(parts)


@pytest.mark.parametrize("ipv6", [False, True])
@pytest.mark.parametrize("kind", [SCM_TSTAMP_SND, SCM_TSTAMP_SCHED])
def test_an_entry_gives_its_key_kind_and_stamp(ipv6: bool, kind: int) -> None:
    control = _entry(ipv6=ipv6, kind=kind, key=0xDEADBEEF)
    assert send_stamps.parse_stamp(control, ipv6=ipv6) == SendStamp(0xDEADBEEF, kind, STAMP_NS)


@pytest.mark.parametrize("ipv6", [False, True])
def test_without_the_receive_stamp_option_the_entry_still_parses(ipv6: bool) -> None:
    control = _entry(ipv6=ipv6, key=7, receive_stamp=False)
    assert send_stamps.parse_stamp(control, ipv6=ipv6) == SendStamp(7, SCM_TSTAMP_SND, STAMP_NS)


@pytest.mark.parametrize("ipv6", [False, True])
def test_the_fast_layout_and_the_walk_agree(ipv6: bool) -> None:
    # With and without the SO_TIMESTAMPNS message: one goes through the one-unpack layout,
    # the other through the message walk; both read the same stamp.
    stamp = (SECONDS + 5, 999_999_999)
    fast = send_stamps.parse_stamp(_entry(ipv6=ipv6, key=3, stamp=stamp), ipv6=ipv6)
    walked = send_stamps.parse_stamp(
        _entry(ipv6=ipv6, key=3, stamp=stamp, receive_stamp=False), ipv6=ipv6
    )
    assert fast == walked == SendStamp(3, SCM_TSTAMP_SND, (SECONDS + 5) * 10**9 + 999_999_999)


@pytest.mark.parametrize("ipv6", [False, True])
def test_an_icmp_error_entry_is_not_a_stamp(ipv6: bool) -> None:
    origin = error_queue.SO_EE_ORIGIN_ICMP6 if ipv6 else error_queue.SO_EE_ORIGIN_ICMP
    for receive_stamp in (True, False):
        control = _entry(ipv6=ipv6, origin=origin, receive_stamp=receive_stamp)
        assert send_stamps.parse_stamp(control, ipv6=ipv6) is None


def test_the_wrong_family_s_record_is_not_read() -> None:
    # An IPv4 entry read as IPv6: its IP_RECVERR is not the IPV6_RECVERR looked for.
    assert send_stamps.parse_stamp(_entry(ipv6=False), ipv6=True) is None


@pytest.mark.parametrize("cut", [1, 8, 20, 40])
def test_control_data_cut_short_is_none(cut: int) -> None:
    control = _entry(ipv6=False, receive_stamp=False)
    assert send_stamps.parse_stamp(control[:-cut], ipv6=False) is None


def test_no_control_data_is_none() -> None:
    assert send_stamps.parse_stamp(b"", ipv6=False) is None


def test_the_driver_stamp_is_preferred_whatever_the_order() -> None:
    sched0, send0 = SendStamp(0, SCM_TSTAMP_SCHED, 100), SendStamp(0, SCM_TSTAMP_SND, 104)
    sched1, send1 = SendStamp(1, SCM_TSTAMP_SCHED, 200), SendStamp(1, SCM_TSTAMP_SND, 201)
    only_sched = SendStamp(2, SCM_TSTAMP_SCHED, 300)
    best = send_stamps.best_stamps([sched0, send0, send1, sched1, only_sched])
    assert best == {0: send0, 1: send1, 2: only_sched}


def test_a_second_driver_stamp_does_not_replace_the_first() -> None:
    first, second = SendStamp(5, SCM_TSTAMP_SND, 1), SendStamp(5, SCM_TSTAMP_SND, 2)
    assert send_stamps.best_stamps([first, second]) == {5: first}


def _loopback_sends(sock: socket.socket, sends: int) -> list[tuple[int, int]]:
    windows = []
    for _ in range(sends):
        before = time.time_ns()
        sock.sendto(b"stamp me", sock.getsockname())
        windows.append((before, time.time_ns()))
    return windows


@pytest.mark.parametrize(
    ("flags", "kinds"),
    [
        (send_stamps.TX_FLAGS, (SCM_TSTAMP_SND,)),
        (send_stamps.QUEUE_FLAGS, (SCM_TSTAMP_SCHED, SCM_TSTAMP_SND)),
    ],
    ids=["driver-only", "with-queue"],
)
def test_a_udp_socket_on_loopback_gets_the_stamps_it_asked_for_in_order(
    flags: int, kinds: tuple[int, ...]
) -> None:
    # No privilege needed: the same option and reader on a UDP socket talking to itself.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        assert send_stamps.enable(sock, flags)
        reader = send_stamps.ErrorQueueReader(sock)
        windows = _loopback_sends(sock, 3)
        stamps, errors = reader.drain()
    assert errors == []
    # loopback_xmit stamps in the sendto call itself: SCHED (if asked), then SND, each send.
    assert [(stamp.key, stamp.kind) for stamp in stamps] == [
        (key, kind) for key in range(3) for kind in kinds
    ]
    for stamp in stamps:
        before, after = windows[stamp.key]
        assert before <= stamp.stamp_ns <= after


def test_asking_for_the_queueing_layers_stamp_too_keeps_the_key_count() -> None:
    # What the fallback to SCHED relies on: setting the option again with OPT_ID still on
    # does not restart the count (sock_set_timestamping), and SCHED comes from then on.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        assert send_stamps.enable(sock)
        reader = send_stamps.ErrorQueueReader(sock)
        _loopback_sends(sock, 2)
        assert send_stamps.enable(sock, send_stamps.QUEUE_FLAGS)
        _loopback_sends(sock, 2)
        stamps, _ = reader.drain()
    assert [(stamp.key, stamp.kind) for stamp in stamps] == [
        (0, SCM_TSTAMP_SND),
        (1, SCM_TSTAMP_SND),
        (2, SCM_TSTAMP_SCHED),
        (2, SCM_TSTAMP_SND),
        (3, SCM_TSTAMP_SCHED),
        (3, SCM_TSTAMP_SND),
    ]


def test_an_empty_queue_drains_to_nothing() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        assert send_stamps.enable(sock)
        assert send_stamps.ErrorQueueReader(sock).drain() == ([], [])
