"""Without CAP_NET_RAW: an ICMP datagram socket where the sysctl allows it, else a clear exit 2.

The command runs as ``nobody`` (setpriv) inside the lab's client namespace, where
``net.ipv4.ping_group_range`` is the kernel's default, ``1 0`` (nobody may), unless a test
opens it for the namespace, and only that namespace.
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator

import pytest
import trio

from tests.lab.addresses import (
    MISBEHAVING_LINK,
    PEER_LINK,
    PEER_LINK6,
    answering,
    answering6,
    beyond,
    silent,
    unreachable6,
)
from tests.lab.netns import Lab, trio_ping_command
from tests.lab.responder import address_of
from tests.lab.run import Outcome, by_address
from trio_ping import IcmpSocket, Pinger, Status, open_pinger
from trio_ping._io import send_stamps

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


def _as_nobody(lab: Lab, *args: str, stdin: str = "") -> Outcome:
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed to drop privileges")
    completed = lab.run(
        [*NOBODY, *trio_ping_command(), *args],
        input=stdin.encode(),
        capture_output=True,
        timeout=30,
    )
    return Outcome(completed.returncode, completed.stdout.decode(), completed.stderr.decode())


@pytest.fixture
def datagram_sockets_allowed(lab: Lab) -> Iterator[Lab]:
    """Allow every group ICMP datagram sockets in the client namespace, for one test."""
    lab.sysctl(lab.client, "net.ipv4.ping_group_range", "0 2147483647")
    try:
        yield lab
    finally:
        lab.sysctl(lab.client, "net.ipv4.ping_group_range", "1 0")


def test_without_any_icmp_socket_one_line_says_how_to_fix_it(lab: Lab) -> None:
    outcome = _as_nobody(lab, f"{answering(1)},1,1", f"{answering(2)},1,1")
    assert outcome.status == 2
    assert outcome.stdout == ""
    [line] = outcome.stderr_lines
    assert line.startswith("trio-ping: cannot open an ICMP socket (Permission denied): ")
    assert "CAP_NET_RAW" in line
    assert "net.ipv4.ping_group_range" in line


def test_datagram_socket_pings_when_the_sysctl_allows(datagram_sockets_allowed: Lab) -> None:
    # Two sessions to one address: the kernel gives both the socket's identifier, so only
    # the payload can tell their replies apart.
    outcome = _as_nobody(
        datagram_sockets_allowed,
        "--timeout",
        "0.3",
        stdin=f"{answering(1)},3,10\n{answering(1)},2,10\n{silent(1)},1,10\n",
    )
    assert outcome.status == 1
    assert outcome.stderr == ""
    groups = by_address(outcome.rows)
    assert sorted(row.seq for row in groups[answering(1)]) == [0, 0, 1, 1, 2]
    assert all(row.rtt_us > 0 for row in groups[answering(1)])
    assert [row.rtt_us for row in groups[silent(1)]] == [-1]


@pytest.mark.parametrize("target", [answering(3), answering6(3)], ids=["ipv4", "ipv6"])
def test_a_datagram_socket_reads_large_replies_whole(
    datagram_sockets_allowed: Lab, target: str
) -> None:
    # A datagram socket hands over no IP header: its reader's room is 8 + the payload.
    outcome = _as_nobody(datagram_sockets_allowed, "-s", "4000", "--timeout", "2", f"{target},2,10")
    assert outcome.status == 0, outcome.stderr
    assert [row.rtt_us > 0 for row in outcome.rows] == [True, True]


def test_timestamp_requests_need_a_raw_socket(datagram_sockets_allowed: Lab) -> None:
    outcome = _as_nobody(datagram_sockets_allowed, "--timestamp", f"{answering(1)},1,1")
    assert outcome.status == 2
    assert outcome.stdout == ""
    assert outcome.stderr_lines == [
        "trio-ping: ICMP Timestamp requests need a raw socket, and this process may only "
        "open an ICMP datagram socket: run as root or grant CAP_NET_RAW"
    ]


@pytest.mark.parametrize(
    ("ttl", "target", "reason"),
    [
        # IPv4: the kernel peer's Time Exceeded; its IPv4 unreachables are scarce (see
        # tests/lab/netns.py).
        (("-t", "1"), beyond(1), "Time to live exceeded"),
        ((), unreachable6(1), "No route"),
    ],
    ids=["ipv4", "ipv6"],
)
def test_icmp_errors_reach_an_ordinary_user_at_once(
    datagram_sockets_allowed: Lab, ttl: tuple[str, ...], target: str, reason: str
) -> None:
    # A datagram socket is never handed the error packets: they come from the kernel's
    # error queue. Without it, both requests would wait out the 5 s timeout.
    started = time.monotonic()
    outcome = _as_nobody(datagram_sockets_allowed, "-v", *ttl, "--timeout", "5", f"{target},2,100")
    elapsed = time.monotonic() - started
    assert outcome.status == 1
    assert [(row.seq, row.rtt_us) for row in outcome.rows] == [(0, -1), (1, -1)]
    router = PEER_LINK6 if ":" in target else PEER_LINK
    assert outcome.stderr_lines == [
        f"trio-ping: {target} seq={seq}: from {router}: {reason}" for seq in (0, 1)
    ]
    # Start-up included; the second request leaves 100 ms after the first.
    assert elapsed < 2.5, f"the run took {elapsed:.2f} s: the errors were not read at once"


@pytest.mark.parametrize(
    ("family", "stamps"),
    [(socket.AF_INET, True), (socket.AF_INET6, True), (socket.AF_INET6, False)],
    ids=["ipv4", "ipv6", "ipv6-without-transmit-stamps"],
)
async def test_a_datagram_socket_ends_a_request_within_a_second_of_its_error(
    datagram_sockets_allowed: Lab,
    family: socket.AddressFamily,
    stamps: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Without transmit stamps (a kernel that refuses them), the one error-queue reader
    # still reads the errors. IPv4 asks the kernel peer for Time Exceeded: its IPv4
    # unreachables are scarce (tests/lab/netns.py).
    if not stamps:
        monkeypatch.setattr(send_stamps, "enable", lambda sock, flags=0: False)
    lab = datagram_sockets_allowed
    sockets: list[IcmpSocket] = []

    def datagram_socket(wanted: socket.AddressFamily) -> IcmpSocket:
        protocol = socket.IPPROTO_ICMPV6 if wanted == socket.AF_INET6 else socket.IPPROTO_ICMP
        sockets.append(IcmpSocket(lab.open_socket(wanted, socket.SOCK_DGRAM, protocol)))
        return sockets[-1]

    ipv6 = family == socket.AF_INET6
    target, ttl = (unreachable6(2), None) if ipv6 else (beyond(2), 1)
    with trio.fail_after(10):
        async with open_pinger(socket_factory=datagram_socket) as pinger:
            started = trio.current_time()
            results = []
            async for result in pinger.ping(target, count=1, timeout=5.0, ttl=ttl):
                results.append((trio.current_time() - started, result))
    [(after, result)] = results
    assert result.status is Status.ICMP_ERROR
    assert result.reported_by == (PEER_LINK6 if ipv6 else PEER_LINK)
    assert after < 1.0
    assert [made.transmit_stamps for made in sockets] == [stamps]


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["ipv4", "ipv6"])
async def test_an_error_for_one_target_fails_no_send_to_another(
    responder: Lab, family: socket.AddressFamily
) -> None:
    # A queued ICMP error also sets the socket's pending error, and the kernel hands a
    # pending error to the next send on the socket, whatever its destination: that send
    # fails and its packet never leaves. The socket must not blame the other target.
    # IPv4 errors come from the responder: the kernel peer's are scarce (tests/lab/netns.py).
    lab = responder
    lab.sysctl(lab.client, "net.ipv4.ping_group_range", "0 2147483647")
    protocol = socket.IPPROTO_ICMPV6 if family == socket.AF_INET6 else socket.IPPROTO_ICMP

    def datagram_socket(wanted: socket.AddressFamily) -> IcmpSocket:
        return IcmpSocket(lab.open_socket(wanted, socket.SOCK_DGRAM, protocol))

    if family == socket.AF_INET6:
        failing, answering_targets = (
            [unreachable6(i) for i in (3, 4)],
            [answering6(i) for i in (1, 2)],
        )
    else:
        failing, answering_targets = [address_of("unreachable")], [answering(i) for i in (1, 2, 3)]
    gathered: dict[str, list[Status]] = {}

    async def ping(pinger: Pinger, address: str) -> None:
        results = pinger.ping(address, count=30, interval=0.002, timeout=2.0)
        gathered[address] = [result.status async for result in results]

    try:
        with trio.fail_after(10):
            async with (
                open_pinger(socket_factory=datagram_socket) as pinger,
                trio.open_nursery() as nursery,
            ):
                for address in failing + answering_targets:
                    nursery.start_soon(ping, pinger, address)
    finally:
        lab.sysctl(lab.client, "net.ipv4.ping_group_range", "1 0")
    for address in answering_targets:
        assert gathered[address] == [Status.REPLY] * 30, address
    for address in failing:
        assert gathered[address] == [Status.ICMP_ERROR] * 30, address


def test_time_exceeded_reaches_an_ordinary_user_at_once(responder: Lab) -> None:
    lab = responder
    lab.sysctl(lab.client, "net.ipv4.ping_group_range", "0 2147483647")
    try:
        started = time.monotonic()
        outcome = _as_nobody(lab, "-v", "--timeout", "5", f"{address_of('time-exceeded')},2,100")
        elapsed = time.monotonic() - started
    finally:
        lab.sysctl(lab.client, "net.ipv4.ping_group_range", "1 0")
    assert [(row.seq, row.rtt_us) for row in outcome.rows] == [(0, -1), (1, -1)]
    assert outcome.stderr_lines == [
        f"trio-ping: {address_of('time-exceeded')} seq={seq}: from {MISBEHAVING_LINK}: "
        "Time to live exceeded"
        for seq in (0, 1)
    ]
    assert elapsed < 2.5, f"the run took {elapsed:.2f} s: the errors were not read at once"
