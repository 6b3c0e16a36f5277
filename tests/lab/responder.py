"""A misbehaving ICMP peer: answers requests for 10.205.x.y in whatever wrong way a test needs.

Runs inside the lab's misbehaving namespace (``python -m tests.lab.responder``). Its kernel
drops the range, so this is the only thing that answers. It sniffs IPv4 on ``m0`` with a
packet socket and replies through a raw ``IP_HDRINCL`` socket, so it can pick any source
address, header length or checksum. Each address of the range has one behaviour: see
:data:`BEHAVIOURS` and :func:`address_of`.

Prints ``ready`` on stdout once it is listening.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
import sys
from collections.abc import Callable
from typing import Final

import trio

from tests.lab import addresses
from tests.lab import packets as pk
from trio_ping._proto import icmp

_ETH_P_IP: Final = 0x0800
_PACKET_OUTGOING: Final = 4
_ROUTER: Final = addresses.MISBEHAVING_LINK

DELAY: Final = 0.3
"""Seconds the ``delay`` behaviour holds each reply."""
LATE: Final = 1.0
"""Seconds the ``late`` behaviour holds each reply: run the client with a shorter timeout."""
REORDER_DELAY: Final = 0.1
"""Seconds the ``reorder`` behaviour holds even sequences; odd ones go at once."""

Send = Callable[[bytes], None]
# (request datagram, parsed request header fields) -> list of (delay, datagram to send)
Reply = list[tuple[float, bytes]]


def _header(datagram: bytes) -> tuple[int, str, str, bytes]:
    """(IP header length, source, destination, ICMP message) of a request."""
    length = (datagram[0] & 0x0F) * 4
    source = socket.inet_ntoa(datagram[12:16])
    destination = socket.inet_ntoa(datagram[16:20])
    return length, source, destination, datagram[length:]


def _answer(request: bytes, *, ttl: int = 64) -> bytes:
    """The reply a correct host sends: Echo Reply, or Timestamp Reply with real times."""
    _, client, target, message = _header(request)
    if message[0] == icmp.TIMESTAMP_REQUEST:
        ident, seq, originate = struct.unpack_from("!HHI", message, 4)
        now = _ms_since_midnight()
        reply = pk.timestamp_reply(ident, seq, originate, now, now)
    else:
        reply = pk.echo_reply_for(message)
    return pk.ipv4_datagram(target, client, reply, ttl=ttl)


def _ms_since_midnight() -> int:
    import time

    return int(time.time() * 1000) % 86_400_000


def _with_icmp(request: bytes, change: Callable[[bytearray], None], *, fix_checksum: bool) -> bytes:
    """The correct reply, with its ICMP message changed by ``change``."""
    reply = _answer(request)
    length = (reply[0] & 0x0F) * 4
    message = bytearray(reply[length:])
    change(message)
    if fix_checksum:
        message[2:4] = b"\0\0"
        message[2:4] = icmp.checksum(bytes(message)).to_bytes(2, "big")
    return reply[:length] + bytes(message)


def _seq(request: bytes) -> int:
    length = (request[0] & 0x0F) * 4
    return int(struct.unpack_from("!H", request, length + 6)[0])


def _flip_payload(message: bytearray) -> None:
    message[-1] ^= 0xFF


def _next_ident(message: bytearray) -> None:
    message[4:6] = ((int.from_bytes(message[4:6], "big") + 1) & 0xFFFF).to_bytes(2, "big")


def _unsent_seq(message: bytearray) -> None:
    message[6:8] = ((int.from_bytes(message[6:8], "big") + 1000) & 0xFFFF).to_bytes(2, "big")


def _corrupt_checksum(message: bytearray) -> None:
    message[2] ^= 0x55


def _wrong_originate(message: bytearray) -> None:
    message[8:12] = ((int.from_bytes(message[8:12], "big") + 1) & 0xFFFFFFFF).to_bytes(4, "big")


def _from_other_source(request: bytes) -> bytes:
    _, client, target, _message = _header(request)
    other = str(ipaddress.IPv4Address(target) + 1)
    reply = _answer(request)
    return pk.ipv4_datagram(other, client, reply[(reply[0] & 0x0F) * 4 :])


def _reflected(request: bytes) -> bytes:
    """Our own request sent back at us, as a type 8 from the target."""
    _, client, target, message = _header(request)
    return pk.ipv4_datagram(target, client, message)


def _error(message_type: int, code: int) -> Callable[[bytes], Reply]:
    def reply(request: bytes) -> Reply:
        _, client, _, _ = _header(request)
        error = pk.error_quoting(message_type, code, request, quote=len(request))
        return [(0.0, pk.ipv4_datagram(_ROUTER, client, error))]

    return reply


def _with_options(request: bytes) -> bytes:
    _, client, target, _ = _header(request)
    reply = _answer(request)
    # Three NOPs and an End of Options list: IHL 6, a valid header carrying options.
    return pk.ipv4_datagram(
        target, client, reply[(reply[0] & 0x0F) * 4 :], options=b"\x01\x01\x01\x00"
    )


BEHAVIOURS: Final[dict[str, Callable[[bytes], Reply]]] = {
    "normal": lambda r: [(0.0, _answer(r))],
    "delay": lambda r: [(DELAY, _answer(r))],
    "late": lambda r: [(LATE, _answer(r))],
    "duplicate": lambda r: [(0.0, _answer(r)), (0.0, _answer(r))],
    "reorder": lambda r: [(REORDER_DELAY if _seq(r) % 2 == 0 else 0.0, _answer(r))],
    "silent": lambda r: [],
    "bad-checksum": lambda r: [(0.0, _with_icmp(r, _corrupt_checksum, fix_checksum=False))],
    "wrong-ident": lambda r: [(0.0, _with_icmp(r, _next_ident, fix_checksum=True))],
    "unsent-seq": lambda r: [(0.0, _with_icmp(r, _unsent_seq, fix_checksum=True))],
    "altered-payload": lambda r: [(0.0, _with_icmp(r, _flip_payload, fix_checksum=True))],
    "truncated": lambda r: [(0.0, _answer(r)[:24])],
    "other-source": lambda r: [(0.0, _from_other_source(r))],
    "ip-options": lambda r: [(0.0, _with_options(r))],
    "reflect": lambda r: [(0.0, _reflected(r))],
    "unreachable": _error(icmp.DESTINATION_UNREACHABLE, 1),
    "time-exceeded": _error(icmp.TIME_EXCEEDED, 0),
    "wrong-originate": lambda r: [(0.0, _with_icmp(r, _wrong_originate, fix_checksum=True))],
    # Every wrong answer first, then the right one: only the last may count.
    "gauntlet": lambda r: [
        (0.0, _with_icmp(r, _corrupt_checksum, fix_checksum=False)),
        (0.0, _with_icmp(r, _next_ident, fix_checksum=True)),
        (0.0, _with_icmp(r, _flip_payload, fix_checksum=True)),
        (0.0, _from_other_source(r)),
        (0.0, _reflected(r)),
        (0.0, _answer(r)[:24]),
        (0.05, _answer(r)),
    ],
}

_NAMES: Final = tuple(BEHAVIOURS)


def address_of(behaviour: str) -> str:
    """The lab address whose requests get ``behaviour``."""
    return addresses.host(addresses.MISBEHAVING, _NAMES.index(behaviour) + 1)


def behaviour_of(address: str) -> str | None:
    """The behaviour for ``address``, or None outside the table (no answer)."""
    index = int(ipaddress.IPv4Address(address)) - int(
        ipaddress.IPv4Network(addresses.MISBEHAVING).network_address
    )
    return _NAMES[index - 1] if 0 < index <= len(_NAMES) else None


async def serve(interface: str) -> None:
    """Answer every Echo and Timestamp request arriving on ``interface``."""
    sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(_ETH_P_IP))
    sniffer.bind((interface, _ETH_P_IP))
    sniffer.setblocking(False)
    sender = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    network = ipaddress.IPv4Network(addresses.MISBEHAVING)

    async def send_later(delay: float, datagram: bytes, destination: str) -> None:
        await trio.sleep(delay)
        sender.sendto(datagram, (destination, 0))

    print("ready", flush=True)
    async with trio.open_nursery() as nursery:
        while True:
            await trio.lowlevel.wait_readable(sniffer)
            try:
                datagram, (_, _, packet_type, _, _) = sniffer.recvfrom(65535)
            except BlockingIOError:
                continue
            if packet_type == _PACKET_OUTGOING or len(datagram) < 28 or datagram[9] != 1:
                continue
            _, client, target, message = _header(datagram)
            if ipaddress.IPv4Address(target) not in network or message[0] not in (
                icmp.ECHO_REQUEST,
                icmp.TIMESTAMP_REQUEST,
            ):
                continue
            behaviour = behaviour_of(target)
            if behaviour is None:
                continue
            for delay, reply in BEHAVIOURS[behaviour](datagram):
                if delay:
                    nursery.start_soon(send_later, delay, reply, client)
                else:
                    sender.sendto(reply, (client, 0))


def main() -> None:
    """Serve until killed."""
    interface = sys.argv[1] if len(sys.argv) > 1 else "m0"
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(serve, interface)


if __name__ == "__main__":
    main()
