"""The command line's arguments: the parser, ``--help``'s text, and what they ask for."""

from __future__ import annotations

import argparse
import contextlib
import math
import socket
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

import attrs

from trio_ping import __version__
from trio_ping._io.socket_options import (
    MAX_PAYLOAD_IPV4,
    MAX_PAYLOAD_IPV6,
    check_interface,
    check_source,
)
from trio_ping.cli.environment import Environment
from trio_ping.cli.output import OutputClosed, OutputError, write_all
from trio_ping.cli.status import PROGRAM, ExitStatus, quoted
from trio_ping.pinger import DEFAULT_SIZE, DEFAULT_TIMEOUT, MTU_DISCOVERY_MODES

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

_EPILOG = """\
examples:
  trio-ping "192.0.2.1,3,1000"                3 requests, 1 s apart
  trio-ping 192.0.2.1,5,200 2001:db8::1,5,200  two targets at once
  printf '192.0.2.1,3,10\\nexample.net,1,1\\n' | trio-ping   targets from stdin
  trio-ping --json --summary localhost,3,100  JSON lines, then a summary event

output: one line per request, ADDRESS,SEQ,RTT_US (RTT in microseconds, -1 when
no valid reply came within the timeout), written as each result is known.
--timestamp: ADDRESS,SEQ,RTT_US,ORIGINATE_MS,RECEIVE_MS,TRANSMIT_MS,OFFSET_MS.
-D adds a last field to either: SENT, the request's send time (Unix seconds, 6 decimals;
empty if it was never sent).

exit status: 0 all requests answered, 1 some unanswered, 2 bad input, a socket or
permission error, or a destination the kernel refuses (broadcast), 130 interrupted
(SIGINT), 143 terminated (SIGTERM), 141 standard output closed.
"""


@attrs.frozen
class Config:
    """What the command line asked for."""

    targets: tuple[str, ...]
    timeout: float
    verbose: bool
    timestamp: bool
    json: bool
    summary: bool
    family: socket.AddressFamily
    size: int | None = None
    ttl: int | None = None
    tos: int | None = None
    mtu_discovery: str | None = None
    interface: str | None = None
    source: str | None = None
    send_times: bool = False
    rate: float | None = None
    """At most this many requests a second (``--rate``); None: no cap."""


_VALUE_OPTIONS = ("--timeout", "--rate", "--size", "--ttl", "--tos")
"""The options that take a value, which may be negative (and so wrong)."""

_SHORT_VALUE_OPTIONS = ("-s", "-t", "-Q")
"""Their short forms: ``-t -1`` is written ``-t-1``, which argparse reads as -t's value."""

_MESSAGE_LIMIT = 160
"""argparse's own messages (unrecognised arguments, ...) quote the input whole: cut."""


class ArgumentsExit(Exception):
    """The arguments were handled without a run (``--help``, ``--version``, a usage
    error): what was to be said is said, and the command exits with ``status``."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """argparse, writing to the environment's streams and raising instead of exiting."""

    def __init__(self, env: Environment, *, description: str, epilog: str) -> None:
        super().__init__(
            prog=PROGRAM,
            description=description,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        self._env = env

    def error(self, message: str) -> NoReturn:
        """One line, not argparse's usage block."""
        if len(message) > _MESSAGE_LIMIT:
            message = message[: _MESSAGE_LIMIT - 3] + "..."
        self.exit(ExitStatus.ERROR, f"{PROGRAM}: {message} (see '{PROGRAM} --help')\n")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            self._print_message(message, sys.stderr)
        raise ArgumentsExit(status)

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        # argparse names sys.stdout for --help and --version, sys.stderr for errors; a
        # closed stdout (None) sends it to stderr, and a failed write is ignored, as there.
        if not message:
            return
        if file is not None and file is sys.stdout and self._env.stdout is not None:
            with contextlib.suppress(OutputClosed, OutputError):
                write_all(self._env.stdout, message)
        else:
            self._env.stderr.write(message)
            self._env.stderr.flush()


def _positive(text: str, unit: str) -> float:
    """``text`` as a positive, finite number of ``unit``, or argparse's error saying so."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive number of {unit}, got {quoted(text)}")
    return value


def _positive_seconds(text: str) -> float:
    return _positive(text, "seconds")


def _whole(text: str, lowest: int, highest: int) -> int:
    # ASCII digits (or 0x and hex digits) only, as for target lines: int() alone would
    # also take "1_0", "+3" and other scripts' digits.
    value: int | None = None
    if text.isascii():
        if text.isdigit():
            value = int(text)
        elif text[:2].lower() == "0x" and len(text) > 2:
            try:
                value = int(text[2:], 16) if text[2:].isalnum() else None
            except ValueError:
                value = None
    if value is None or not lowest <= value <= highest:
        raise argparse.ArgumentTypeError(
            f"must be a whole number from {lowest} to {highest}, got {quoted(text)}"
        )
    return value


def _positive_rate(text: str) -> float:
    return _positive(text, "requests a second")


def _size(text: str) -> int:
    if text.lower().startswith("0x"):
        raise argparse.ArgumentTypeError(f"must be a decimal number of bytes, got {quoted(text)}")
    return _whole(text, 0, MAX_PAYLOAD_IPV6)


def _ttl(text: str) -> int:
    if text.lower().startswith("0x"):
        raise argparse.ArgumentTypeError(f"must be a decimal number of hops, got {quoted(text)}")
    return _whole(text, 1, 255)


def _tos(text: str) -> int:
    return _whole(text, 0, 255)


def _interface(text: str) -> str:
    try:
        check_interface(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _source(text: str) -> str:
    try:
        check_source(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _joined_values(argv: Sequence[str], options: Sequence[str]) -> list[str]:
    """``argv`` with ``--timeout VALUE`` (and each option of :data:`_VALUE_OPTIONS`, or an
    abbreviation that names only it) written ``--timeout=VALUE``, and ``-t -1`` (each of
    :data:`_SHORT_VALUE_OPTIONS` before a negative number) written ``-t-1``.

    Because ``-4`` and ``-6`` are options, argparse takes any argument that looks like a
    negative number for an option, and ``--timeout -1`` would fail as "expected one
    argument" instead of saying what is wrong with -1.
    """
    joined: list[str] = []
    arguments = iter(argv)
    for argument in arguments:
        if argument == "--":
            joined.append(argument)
            joined.extend(arguments)
            break
        if argument in _SHORT_VALUE_OPTIONS:
            value = next(arguments, None)
            if value is not None and value.startswith("-") and value[1:2].isdigit():
                joined.append(f"{argument}{value}")
            else:
                joined.append(argument)
                if value is not None:
                    joined.append(value)
            continue
        if argument.startswith("--") and "=" not in argument:
            named = [option for option in options if option.startswith(argument)]
            if len(named) == 1 and named[0] in _VALUE_OPTIONS:
                value = next(arguments, None)
                joined.append(argument if value is None else f"{argument}={value}")
                continue
        joined.append(argument)
    return joined


def parse_arguments(argv: Sequence[str] | None, env: Environment) -> Config:
    """Parse the command line (``sys.argv[1:]`` if None).

    Raises:
        ArgumentsExit: nothing to run: ``--help`` or ``--version`` was printed (status 0),
            or a usage error was said on one line (status 2).
    """
    parser = _Parser(
        env,
        description="Send ICMP Echo (or Timestamp) requests to many targets at once, "
        "over one socket per address family.",
        epilog=_EPILOG,
    )
    parser.add_argument(
        "targets",
        nargs="*",
        metavar="TARGET",
        help="ADDRESS,COUNT,INTERVAL_MS: ADDRESS an IPv4 or IPv6 address (link-local with its "
        "zone: fe80::1%%eth0) or a host name, "
        "COUNT 1..10, INTERVAL_MS 1..1000; none or '-': read targets from standard input, "
        "one per line",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"wait this long for each reply, from its send time (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--rate",
        type=_positive_rate,
        default=None,
        metavar="PPS",
        help="send at most PPS requests a second over the whole run, evenly; requests the "
        "cap holds back are sent late, never dropped (default: no cap)",
    )
    family = parser.add_mutually_exclusive_group()
    family.add_argument(
        "-4", dest="family", action="store_const", const=socket.AF_INET, help="resolve to IPv4"
    )
    family.add_argument(
        "-6", dest="family", action="store_const", const=socket.AF_INET6, help="resolve to IPv6"
    )
    parser.add_argument(
        "--timestamp",
        action="store_true",
        help="send ICMP Timestamp requests (IPv4 only) instead of Echo; lines become "
        "ADDRESS,SEQ,RTT_US,ORIGINATE_MS,RECEIVE_MS,TRANSMIT_MS,OFFSET_MS",
    )
    parser.add_argument(
        "--json", action="store_true", help="one JSON object per line (schema: README)"
    )
    parser.add_argument(
        "--summary",
        action="store_true",
        help="after the run, statistics per target on stderr (with --json: summary events)",
    )
    request = parser.add_argument_group("each request")
    request.add_argument(
        "-s",
        "--size",
        type=_size,
        metavar="BYTES",
        help=f"Echo payload bytes after the ICMP header, 0..{MAX_PAYLOAD_IPV4} for IPv4, "
        f"0..{MAX_PAYLOAD_IPV6} for IPv6 (default {DEFAULT_SIZE}); under 14 bytes a reply "
        "matches on fewer bytes (README)",
    )
    request.add_argument(
        "-t", "--ttl", type=_ttl, metavar="N", help="IPv4 TTL / IPv6 hop limit, 1..255"
    )
    request.add_argument(
        "-Q",
        "--tos",
        type=_tos,
        metavar="N",
        help="IPv4 TOS byte / IPv6 traffic class, 0..255, decimal or 0x..",
    )
    sockets = parser.add_argument_group("the sockets")
    sockets.add_argument(
        "-M",
        dest="mtu_discovery",
        choices=sorted(MTU_DISCOVERY_MODES),
        help="path MTU discovery: do (set DF, never fragment), want (fragment locally "
        "when needed), dont (never set DF) (default: the kernel's, want)",
    )
    sockets.add_argument(
        "-I",
        "--interface",
        type=_interface,
        metavar="NAME",
        help="send from this interface (SO_BINDTODEVICE): an existing interface",
    )
    sockets.add_argument(
        "-S",
        "--source",
        type=_source,
        metavar="ADDRESS",
        help="send from this address: one of this host's; targets must be of its family",
    )
    parser.add_argument(
        "-D",
        "--timestamps",
        dest="send_times",
        action="store_true",
        help="add a last CSV field: the request's send time (Unix seconds, 6 decimals)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="report ICMP errors and send errors on stderr"
    )
    parser.add_argument("--version", action="version", version=f"{PROGRAM} {__version__}")
    # Intermixed: options may follow targets, as in "trio-ping 192.0.2.1,3,10 --json".
    if argv is None:
        argv = sys.argv[1:]
    long_options = [option for option in parser._option_string_actions if option[:2] == "--"]
    arguments = parser.parse_intermixed_args(_joined_values(argv, long_options))
    if arguments.timestamp and arguments.size is not None:
        parser.error("argument -s/--size: does not apply to --timestamp (its size is fixed)")
    return Config(
        targets=tuple(arguments.targets),
        timeout=arguments.timeout,
        verbose=arguments.verbose,
        timestamp=arguments.timestamp,
        json=arguments.json,
        summary=arguments.summary,
        family=arguments.family or socket.AF_UNSPEC,
        size=arguments.size,
        ttl=arguments.ttl,
        tos=arguments.tos,
        mtu_discovery=arguments.mtu_discovery,
        interface=arguments.interface,
        source=arguments.source,
        send_times=arguments.send_times,
        rate=arguments.rate,
    )
