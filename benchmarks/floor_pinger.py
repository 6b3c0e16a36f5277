"""The least a pinger written in Python does, for ``benchmarks.floor`` (not a tool).

``python benchmarks/floor_pinger.py [STEP ...] ADDRESS_FILE COUNT INTERVAL_MS`` (as root,
in the lab) sends COUNT Echo requests to every IPv4 address of the file, a round every
INTERVAL_MS, all of a round at once (as ``fping -i 0``), on one raw socket, and prints
``ADDRESS,SEQ,RTT_US`` for each, ``-1`` for one unanswered after 2 s: trio-ping's
output. With no STEP: no trio, no kernel stamps (RTTs from a monotonic reading after the
send and after the read), no validation beyond the identifier and a known sequence, one
checksum and one packet a round for every target (the same payload for all), lines
written once at the end. What is left is the interpreter's share of the work any pinger
does: a ``sendto`` a request, a read and a parse and a dict lookup and a line a reply.

Each STEP adds one piece of what trio-ping does, so that ``benchmarks.floor`` can say
what each costs:

- ``trio``: the same loop in trio, waiting with ``trio.lowlevel.wait_readable`` and
  ``trio.sleep_until``, and a checkpoint every 64 sends (as the engine's sender);
- ``stamps``: the kernel's transmit stamps (trio-ping's flags), each read off the error
  queue, one ``recvmsg`` an entry, its key unpacked (exit status 1 if none came);
- ``results`` (with ``trio``): a ``PingResult`` a reply (trio-ping's factory), sent
  through a trio memory channel to trio-ping's own writer (``write_results``, its CSV).
"""

from __future__ import annotations

import math
import os
import select
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterator

STEPS = ("trio", "stamps", "results")
TIMEOUT_NS = 2_000_000_000
_HEADER = struct.Struct("!BBHHH")
_REPLY = struct.Struct("!12x4s4xBx2xHH")  # source at 12; at 20: type, code, checksum, id, seq
_SENDS_BETWEEN_CHECKPOINTS = 64


def _packet(ident: int, seq: int, payload: bytes) -> bytes:
    data = _HEADER.pack(8, 0, 0, ident, seq) + payload
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return _HEADER.pack(8, 0, ~total & 0xFFFF, ident, seq) + payload


class Pinger:
    """The whole pinger; ``run`` (plain) or ``run_trio`` drives it."""

    def __init__(self, addresses: list[str], steps: set[str]) -> None:
        self.addresses = addresses
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.stamps = "stamps" in steps
        if self.stamps:
            from trio_ping._io import send_stamps

            send_stamps.enable(self.sock)
        self.ident = os.getpid() & 0xFFFF
        self.payload = bytes(range(56))
        self.destinations = [(address, 0) for address in addresses]
        self.index_of = {socket.inet_aton(address): n for n, address in enumerate(addresses)}
        self.sent: dict[tuple[int, int], int] = {}
        self.lines: list[str] = []
        self.stamped = 0
        self.last_key = -1
        self.buffer = bytearray(2048)
        self.view = memoryview(self.buffer)
        self.emit: Callable[[int, int, int], None] = self._line

    def _line(self, target: int, seq: int, rtt_us: int) -> None:
        self.lines.append(f"{self.addresses[target]},{seq},{rtt_us}\n")

    def drain(self) -> None:
        """Read every reply (and stamp) waiting, without blocking."""
        sock, view, buffer = self.sock, self.view, self.buffer
        unpack, now, sent, index_of = (
            _REPLY.unpack_from,
            time.monotonic_ns,
            self.sent,
            self.index_of,
        )
        ident, emit = self.ident, self.emit
        if self.stamps:
            self.drain_stamps()
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
                emit(target, seq, (received - sent_ns + 500) // 1000)

    def drain_stamps(self) -> None:
        flags = socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT
        key_at = struct.Struct("@I")
        while True:
            try:
                _, ancillary, _, _ = self.sock.recvmsg(0, 512, flags)
            except BlockingIOError:
                return
            for level, _, data in ancillary:
                if level != socket.SOL_SOCKET and len(data) >= 16:  # IP_RECVERR
                    self.last_key = key_at.unpack_from(data, 12)[0]  # ee_data: the stamp's key
                    self.stamped += 1

    def sending(self, seq: int) -> Iterator[None]:
        """Send round ``seq`` to every target, pausing (a yield) after every
        _SENDS_BETWEEN_CHECKPOINTS sends: the trio loop checkpoints there."""
        packet = _packet(self.ident, seq, self.payload)
        sent, now, sendto = self.sent, time.monotonic_ns, self.sock.sendto
        for target, destination in enumerate(self.destinations):
            sent[(target, seq)] = now()
            sendto(packet, destination)
            if target % _SENDS_BETWEEN_CHECKPOINTS == _SENDS_BETWEEN_CHECKPOINTS - 1:
                yield

    def finish(self) -> None:
        self.lines.extend(f"{self.addresses[target]},{seq},-1\n" for target, seq in self.sent)
        sys.stdout.write("".join(self.lines))

    def run(self, count: int, interval_ms: int) -> None:
        poller = select.epoll()
        poller.register(self.sock.fileno(), select.EPOLLIN | select.EPOLLERR)
        now = time.monotonic_ns
        start, interval_ns = now(), interval_ms * 1_000_000
        for seq in range(count):
            due = start + seq * interval_ns
            while (left := due - now()) > 0:
                poller.poll(left / 1e9)
                self.drain()
            for _ in self.sending(seq):
                pass
            self.drain()
        end = now() + TIMEOUT_NS
        while self.sent and (left := end - now()) > 0:
            poller.poll(left / 1e9)
            self.drain()
        self.finish()

    async def run_trio(self, count: int, interval_ms: int, results: bool) -> None:
        import trio

        if results:
            from trio_ping.cli.output import format_csv, write_results
            from trio_ping.results import PingResult, reply_result

            channel, receive = trio.open_memory_channel[PingResult](math.inf)
            addresses = self.addresses

            def emit(target: int, seq: int, rtt_us: int) -> None:
                address = addresses[target]
                channel.send_nowait(reply_result(address, seq, rtt_us, 64, False, None))

            self.emit = emit

            async def write() -> None:  # trio-ping's own writer, to standard output
                await write_results(receive, sys.stdout.fileno(), format_csv, lambda _: None)

        async def receive_loop() -> None:
            while True:
                await trio.lowlevel.wait_readable(self.sock)
                self.drain()

        async with trio.open_nursery() as nursery:
            if results:
                nursery.start_soon(write)
            async with trio.open_nursery() as io:
                io.start_soon(receive_loop)
                start = trio.current_time()
                for seq in range(count):
                    await trio.sleep_until(start + seq * interval_ms / 1000)
                    for _ in self.sending(seq):
                        await trio.lowlevel.checkpoint()
                io.cancel_scope.cancel()
            with trio.move_on_after(TIMEOUT_NS / 1e9):  # the last replies
                while self.sent:
                    await trio.lowlevel.wait_readable(self.sock)
                    self.drain()
            if results:
                channel.close()  # the writer takes what is left, then ends
        self.finish()


def main() -> int:
    arguments = sys.argv[1:]
    steps = set()
    while arguments and arguments[0] in STEPS:
        steps.add(arguments.pop(0))
    if "results" in steps and "trio" not in steps:
        print("floor_pinger.py: the results step needs the trio step", file=sys.stderr)
        return 2
    path, count, interval_ms = arguments[0], int(arguments[1]), int(arguments[2])
    with open(path) as handle:
        addresses = [line.strip() for line in handle if line.strip()]
    pinger = Pinger(addresses, steps)
    if "trio" in steps:
        import trio

        trio.run(pinger.run_trio, count, interval_ms, "results" in steps)
    else:
        pinger.run(count, interval_ms)
    if pinger.stamps and not pinger.stamped:
        print("floor_pinger.py: the stamps step read no transmit stamp", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
