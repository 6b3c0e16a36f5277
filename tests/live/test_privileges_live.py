"""Without CAP_NET_RAW: an ICMP datagram socket where the sysctl allows it, else a clear exit 2.

The command runs as ``nobody`` (setpriv) inside the lab's client namespace, where
``net.ipv4.ping_group_range`` is the kernel's default, ``1 0`` (nobody may), unless a test
opens it for the namespace, and only that namespace.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.lab.addresses import answering, silent
from tests.lab.netns import Lab, trio_ping_command
from tests.lab.run import Outcome, by_address

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


def test_timestamp_requests_need_a_raw_socket(datagram_sockets_allowed: Lab) -> None:
    outcome = _as_nobody(datagram_sockets_allowed, "--timestamp", f"{answering(1)},1,1")
    assert outcome.status == 2
    assert outcome.stdout == ""
    assert outcome.stderr_lines == [
        "trio-ping: ICMP Timestamp requests need a raw socket, and this process may only "
        "open an ICMP datagram socket: run as root or grant CAP_NET_RAW"
    ]
