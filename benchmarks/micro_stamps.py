"""``python -m benchmarks.micro_stamps`` (as root): the CPU that kernel transmit stamps cost.

In a lab of its own, a raw IPv4 ICMP socket in the client namespace, set up as the pinger
sets it up, sends 5,000 Echo Requests to 5,000 addresses of the kernel peer in bursts of
64, reading the replies after each burst (recvmmsg) as the engine does; with stamps on,
it also drains the error queue after each burst (trio_ping/_io/send_stamps.py). The
process's user + sys time (getrusage) around each run, rounds alternating between the
two, gives the cost a request of the stamps: the kernel's clone and queueing of the
driver's stamp (SND, as IcmpSocket asks) on the send path, its reading and parsing.
"""

from __future__ import annotations

import argparse
import resource
import select
import socket
import statistics
import sys
import time
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.lab.addresses import answering  # noqa: E402 -- needs the path above
from tests.lab.netns import Lab, lab_context  # noqa: E402
from trio_ping._io import send_stamps  # noqa: E402
from trio_ping._io.datagrams import DatagramReader  # noqa: E402
from trio_ping._io.icmp_socket import IcmpSocket  # noqa: E402
from trio_ping._proto import icmp  # noqa: E402

REQUESTS = 5_000
BURST = 64
IDENT = 0x7357


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one_run(lab: Lab, *, stamps: bool) -> tuple[float, int, int]:
    """CPU seconds of one run of :data:`REQUESTS`; the replies and stamps it read."""
    inner = lab.open_socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock = IcmpSocket(inner)  # receive stamps, the large buffer, non-blocking, tx stamps
    if stamps and not sock.transmit_stamps:
        raise SystemExit("this kernel gives no transmit stamps (SO_TIMESTAMPING refused)")
    if not stamps:  # IcmpSocket asked for them: take the option off again
        inner.setsockopt(socket.SOL_SOCKET, send_stamps.SO_TIMESTAMPING, 0)
    reader = DatagramReader(inner)
    queue = send_stamps.ErrorQueueReader(inner)
    packets = [
        (icmp.encode_echo_request(IDENT, seq, b"micro-stamps", ipv6=False), answering(seq + 1))
        for seq in range(REQUESTS)
    ]
    replies = stamped = 0
    started = _cpu_s()
    for start in range(0, REQUESTS, BURST):
        for packet, address in packets[start : start + BURST]:
            while sock.try_send(packet, address) is None:
                select.select([], [inner], [], 0.01)
        if stamps:
            stamped += len(queue.drain()[0])
        while True:
            try:
                replies += len(reader.read())
            except BlockingIOError:
                break
    deadline = time.monotonic() + 2
    while replies < REQUESTS and time.monotonic() < deadline:
        select.select([inner], [], [], 0.05)
        try:
            replies += len(reader.read())
        except BlockingIOError:
            continue
    if stamps:
        stamped += len(queue.drain()[0])
    spent = _cpu_s() - started
    inner.close()
    return spent, replies, stamped


def main(argv: list[str] | None = None) -> int:
    """Run the rounds and print the cost a request, in microseconds."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.micro_stamps")
    parser.add_argument("--rounds", type=int, default=7)
    options = parser.parse_args(argv)
    with lab_context() as lab:
        one_run(lab, stamps=True)  # warm up: the peer's routes and caches, our imports
        costs: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(options.rounds):
            for stamps in (False, True):
                spent, replies, stamped = one_run(lab, stamps=stamps)
                if replies != REQUESTS or stamped != (2 * REQUESTS if stamps else 0):
                    print(f"incomplete run: {replies} replies, {stamped} stamps", file=sys.stderr)
                    return 1
                costs[stamps].append(spent / REQUESTS * 1e6)
    off, on = statistics.median(costs[False]), statistics.median(costs[True])
    print(f"Python {sys.version.split()[0]}, {REQUESTS:,} requests, {options.rounds} rounds")
    print(f"without stamps: {off:.2f} us a request (user + sys, median)")
    print(f"with stamps:    {on:.2f} us a request")
    print(f"stamps cost:    {on - off:.2f} us a request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
