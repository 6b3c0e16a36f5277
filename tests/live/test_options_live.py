"""Issue 16's options against the real kernel, in the lab: what each does on the wire.

The wire is read with tcpdump (-v, inside a lab namespace, on a lab veth); the router is
the kernel peer, the far namespace two hops away over a link of MTU 1280. Every address
is a lab address (tests/lab/addresses.py). Each path-MTU test pings an address of its
own: the client's kernel remembers a learnt path MTU per destination.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest

from tests.lab import addresses as a
from tests.lab.netns import Lab
from tests.lab.run import run_trio_ping


@contextmanager
def tcpdump(lab: Lab, namespace: str, device: str, expression: str) -> Iterator[list[str]]:
    """Capture on ``device`` (tcpdump -v -n) while the block runs; the lines once it ends."""
    lines: list[str] = []
    process = lab.spawn(
        ["tcpdump", "-l", "-n", "-v", "-i", device, expression],
        namespace=namespace,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    assert process.stdout is not None
    ready = process.stderr.readline()  # "listening on ...": the capture is open
    assert b"listening on" in ready, ready
    try:
        yield lines
    finally:
        time.sleep(0.2)  # what the last reply put on the wire reaches the capture buffer
        process.terminate()
        out, _ = process.communicate(timeout=10)
        # -v prints a header line and the ICMP line below it: join them.
        text = out.decode().replace("\n    ", " ")
        lines.extend(line for line in text.splitlines() if line)


def tx_packets(lab: Lab, device: str) -> int:
    completed = lab.run(
        ["cat", f"/sys/class/net/{device}/statistics/tx_packets"], capture_output=True
    )
    return int(completed.stdout)


def _requests(lines: Sequence[str]) -> list[str]:
    return [line for line in lines if "echo request" in line]


# -t / --ttl ------------------------------------------------------------------------------


# The kernel peer is the router. For ICMPv6 errors it picks a source address of its own
# by RFC 6724's rules, which may be either of its two links to the client.
_ROUTER = (a.PEER_LINK,)
_ROUTER6 = (a.PEER_LINK6, a.SECOND_PEER_LINK6)


@pytest.mark.parametrize(("target", "routers"), [(a.beyond(1), _ROUTER), (a.beyond6(1), _ROUTER6)])
def test_ttl_1_expires_at_the_router_and_ttl_2_is_answered(
    lab: Lab, target: str, routers: tuple[str, ...]
) -> None:
    expired = run_trio_ping(lab, "-v", "-t", "1", "--timeout", "2", f"{target},1,1")
    assert expired.status == 1
    assert expired.stdout == f"{target},0,-1\n"
    assert any(f"from {router}:" in expired.stderr for router in routers), expired.stderr
    assert re.search("[Tt]ime to live exceeded|[Hh]op limit exceeded", expired.stderr)
    answered = run_trio_ping(lab, "-t", "2", f"{target},1,1")
    assert answered.status == 0, answered.stderr
    assert answered.rows[0].rtt_us > 0


@pytest.mark.parametrize(
    ("target", "on_the_wire"),
    [(a.answering(31), "tos 0xb8, ttl 9,"), (a.answering6(31), "class 0xb8,")],
)
def test_ttl_tos_and_size_as_seen_on_the_wire(lab: Lab, target: str, on_the_wire: str) -> None:
    with tcpdump(lab, lab.client, "c0", "icmp or icmp6") as lines:
        outcome = run_trio_ping(lab, "-t", "9", "-Q", "0xb8", "-s", "200", f"{target},2,10")
    assert outcome.status == 0, outcome.stderr
    requests = _requests(lines)
    assert len(requests) == 2, lines
    for line in requests:
        assert on_the_wire in line
        if ":" in target:
            assert "hlim 9," in line
            assert "payload length: 208" in line  # ICMPv6 header + 200
        else:
            assert "length 228" in line  # IPv4 header + ICMP header + 200


def test_one_pinger_sends_each_target_with_its_own_ttl(lab: Lab) -> None:
    # The library: one socket, two sessions, two TTLs, as control messages per packet.
    import socket

    import trio

    from trio_ping import open_pinger
    from trio_ping._io.icmp_socket import IcmpSocket

    def factory(family: socket.AddressFamily) -> IcmpSocket:
        return IcmpSocket(lab.open_socket(family, socket.SOCK_RAW, socket.IPPROTO_ICMP))

    async def main() -> list[tuple[str, int | None]]:
        async with open_pinger(socket_factory=factory) as pinger:
            first = [r async for r in pinger.ping(a.answering(32), ttl=5, tos=0x20)]
            second = [r async for r in pinger.ping(a.answering(33), ttl=6)]
        return [(r.address, r.rtt_us) for r in first + second]

    with tcpdump(lab, lab.client, "c0", "icmp") as lines:
        results = trio.run(main)
    assert [address for address, _ in results] == [a.answering(32), a.answering(33)]
    requests = _requests(lines)
    assert any("tos 0x20, ttl 5," in line and a.answering(32) in line for line in requests)
    assert any("tos 0x0, ttl 6," in line and a.answering(33) in line for line in requests)


# -s / --size -----------------------------------------------------------------------------


def test_a_request_larger_than_the_mtu_leaves_in_fragments(lab: Lab) -> None:
    with tcpdump(lab, lab.client, "c0", "icmp or (ip[6:2] & 0x1fff != 0)") as lines:
        outcome = run_trio_ping(lab, "-s", "2000", f"{a.answering(34)},1,1")
    assert outcome.status == 0, outcome.stderr
    outgoing = [line for line in lines if f"{a.CLIENT_LINK} > {a.answering(34)}" in line]
    assert any("offset 0, flags [+]" in line and "length 1500" in line for line in outgoing), lines
    assert any("offset 1480," in line and "length 548" in line for line in outgoing), lines


@pytest.mark.parametrize(
    ("target", "size"),
    [
        (a.answering(40), 3000),
        (a.answering(41), 65507),
        (a.answering6(40), 3000),
        (a.answering6(41), 65527),
    ],
    ids=["ipv4-3000", "ipv4-largest", "ipv6-3000", "ipv6-largest"],
)
def test_a_reply_larger_than_the_default_read_room_is_answered(
    lab: Lab, target: str, size: int
) -> None:
    # The reader's slots hold 2,048 bytes until a session needs more: these replies are
    # longer, and the largest a family allows (an IP datagram of 65,535 bytes) as well.
    outcome = run_trio_ping(lab, "-s", str(size), "--timeout", "2", f"{target},2,10")
    assert outcome.status == 0, outcome.stderr
    assert [row.rtt_us > 0 for row in outcome.rows] == [True, True]


@pytest.mark.parametrize("size", [0, 9, 13])
def test_a_payload_shorter_than_the_head_is_answered(lab: Lab, size: int) -> None:
    outcome = run_trio_ping(lab, "-s", str(size), f"{a.answering(35)},2,10")
    assert outcome.status == 0, outcome.stderr
    assert [row.rtt_us > 0 for row in outcome.rows] == [True, True]


# -M --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        (a.beyond(2), f"Frag needed and DF set (mtu = {a.FAR_MTU})"),
        (a.beyond6(2), f"Packet too big: mtu={a.FAR_MTU}"),
    ],
)
def test_do_beyond_a_smaller_mtu_ends_with_the_routers_error(
    lab: Lab, target: str, reason: str
) -> None:
    outcome = run_trio_ping(lab, "-v", "-M", "do", "-s", "1400", "--timeout", "2", f"{target},1,1")
    assert outcome.status == 1
    assert outcome.stdout == f"{target},0,-1\n"
    assert reason in outcome.stderr
    routers = _ROUTER6 if ":" in target else _ROUTER
    assert any(f"from {router}:" in outcome.stderr for router in routers), outcome.stderr


def test_dont_lets_the_router_fragment(lab: Lab) -> None:
    outcome = run_trio_ping(lab, "-M", "dont", "-s", "1400", f"{a.beyond(3)},2,10")
    assert outcome.status == 0, outcome.stderr
    assert [row.rtt_us > 0 for row in outcome.rows] == [True, True]


@pytest.mark.parametrize("target", [a.answering(36), a.answering6(36)])
def test_do_beyond_the_local_mtu_fails_locally_with_it(lab: Lab, target: str) -> None:
    before = tx_packets(lab, "c0")
    outcome = run_trio_ping(lab, "-v", "-M", "do", "-s", "1600", f"{target},1,1")
    assert outcome.status == 1  # a request that failed, as any other send failure
    assert outcome.stdout == f"{target},0,-1\n"
    assert "message too long, mtu=1500" in outcome.stderr
    assert tx_packets(lab, "c0") - before < 1  # nothing left


# -I, -S ----------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [a.answering(37), a.answering6(37)])
def test_interface_sends_by_that_link(lab: Lab, target: str) -> None:
    before = tx_packets(lab, "c2"), tx_packets(lab, "c0")
    outcome = run_trio_ping(lab, "-I", "c2", f"{target},5,10")
    assert outcome.status == 0, outcome.stderr
    after = tx_packets(lab, "c2"), tx_packets(lab, "c0")
    assert after[0] - before[0] >= 5
    assert after[1] - before[1] < 5


@pytest.mark.parametrize(
    ("source", "target"),
    [(a.SECOND_CLIENT_LINK, a.answering(38)), (a.SECOND_CLIENT_LINK6, a.answering6(38))],
)
def test_source_is_what_the_peer_sees(lab: Lab, source: str, target: str) -> None:
    with tcpdump(lab, lab.peer, "p0", "icmp or icmp6") as lines:
        outcome = run_trio_ping(lab, "-S", source, f"{target},2,10")
    assert outcome.status == 0, outcome.stderr
    requests = _requests(lines)
    assert len(requests) == 2, lines
    assert all(f"{source} > {target}" in line for line in requests)


def test_a_source_that_is_not_the_clients_is_refused_before_sending(lab: Lab) -> None:
    before = tx_packets(lab, "c0")
    outcome = run_trio_ping(lab, "-S", a.PEER_LINK, f"{a.answering(39)},1,1")
    assert outcome.status == 2
    assert outcome.stderr_lines == [
        f"trio-ping: argument -S/--source: {a.PEER_LINK} is not an address of this host "
        "(see 'trio-ping --help')"
    ]
    assert outcome.stdout == ""
    assert tx_packets(lab, "c0") == before


# Link-local zones ------------------------------------------------------------------------


def test_a_link_local_target_with_its_zone(lab: Lab) -> None:
    target = f"{a.PEER_LINK_LOCAL}%c0"
    outcome = run_trio_ping(lab, f"{target},3,10")
    assert outcome.status == 0, outcome.stderr
    assert outcome.stdout.splitlines()[0].startswith(f"{target},0,")
    wrong_link = run_trio_ping(lab, "--timeout", "0.5", f"{a.PEER_LINK_LOCAL}%c2,1,1")
    assert wrong_link.stdout.startswith(f"{a.PEER_LINK_LOCAL}%c2,0,-1")
