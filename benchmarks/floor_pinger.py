"""The least a pinger written in Python does, for ``benchmarks.floor`` (not a tool).

``python benchmarks/floor_pinger.py ADDRESS_FILE COUNT INTERVAL_MS`` (as root, in the lab)
sends COUNT Echo requests to every IPv4 address of the file, a round every INTERVAL_MS,
all of a round at once (as ``fping -i 0``), on one raw socket, and prints
``ADDRESS,SEQ,RTT_US`` for each, ``-1`` for one unanswered after 2 s: trio-ping's
output. No trio, no kernel stamps (RTTs from a monotonic reading after the send and
after the read), no validation beyond the identifier and a known sequence, one
checksum and one packet a round for every target (the same payload for all), lines
written once at the end. What is left is the interpreter's share of the work any pinger
does: a ``sendto`` a request, a read and a parse and a dict lookup and a line a reply.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import sys
import time

TIMEOUT_NS = 2_000_000_000
_HEADER = struct.Struct("!BBHHH")
_REPLY = struct.Struct("!12x4s4xBx2xHH")  # source at 12; at 20: type, code, checksum, id, seq


def _packet(ident: int, seq: int, payload: bytes) -> bytes:
    data = _HEADER.pack(8, 0, 0, ident, seq) + payload
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return _HEADER.pack(8, 0, ~total & 0xFFFF, ident, seq) + payload


def main() -> int:
    path, count, interval_ms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with open(path) as handle:
        addresses = [line.strip() for line in handle if line.strip()]
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    poller = select.epoll()
    poller.register(sock.fileno(), select.EPOLLIN)
    ident = os.getpid() & 0xFFFF
    payload = bytes(range(56))
    destinations = [(address, 0) for address in addresses]
    index_of = {socket.inet_aton(address): n for n, address in enumerate(addresses)}
    sent: dict[tuple[int, int], int] = {}
    lines: list[str] = []
    buffer = bytearray(2048)
    view = memoryview(buffer)
    unpack = _REPLY.unpack_from
    now = time.monotonic_ns
    start = now()
    interval_ns = interval_ms * 1_000_000

    def drain() -> None:
        while True:
            try:
                size = sock.recv_into(view)
            except BlockingIOError:
                return
            received = now()
            if size < 28:
                continue
            source, kind, reply_ident, seq = unpack(buffer)
            if kind != 0 or reply_ident != ident:
                continue
            target = index_of.get(source)
            sent_ns = sent.pop((target, seq), None) if target is not None else None
            if sent_ns is not None and target is not None:
                rtt = (received - sent_ns + 500) // 1000
                lines.append(f"{addresses[target]},{seq},{rtt}\n")

    for seq in range(count):
        due = start + seq * interval_ns
        while (left := due - now()) > 0:
            poller.poll(left / 1e9)
            drain()
        packet = _packet(ident, seq, payload)
        for target, destination in enumerate(destinations):
            sent[(target, seq)] = now()
            sock.sendto(packet, destination)
        drain()
    end = now() + TIMEOUT_NS
    while sent and (left := end - now()) > 0:
        poller.poll(left / 1e9)
        drain()
    lines.extend(f"{addresses[target]},{seq},-1\n" for target, seq in sent)
    sys.stdout.write("".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
