"""The command line: arguments, target lines, exit statuses, and every error message.

This is the one place where failures become messages and exit statuses; the library
below raises, and the run here decides what the user sees.
"""

from __future__ import annotations

import argparse
import enum
import errno
import gc
import math
import os
import signal
import sys
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import TextIO

import attrs
import trio

from trio_ping import __version__
from trio_ping.icmp_socket import SocketPermissionError
from trio_ping.output import (
    Formatter,
    OutputClosed,
    format_csv,
    format_timestamp_csv,
    write_results,
)
from trio_ping.pinger import DEFAULT_TIMEOUT, Pinger, open_pinger
from trio_ping.results import PingResult, Status
from trio_ping.targets import Target, TargetError

PROGRAM = "trio-ping"

# The kernel refusing a destination outright (a broadcast address without SO_BROADCAST,
# ...), as opposed to a network that cannot deliver now: the first is the user's input.
_REFUSED_DESTINATION = frozenset({errno.EACCES, errno.EPERM, errno.EINVAL, errno.EADDRNOTAVAIL})

_EPILOG = """\
examples:
  trio-ping "192.0.2.1,3,1000"             3 requests, 1 s apart
  trio-ping 192.0.2.1,5,200 192.0.2.2,5,200   two targets at once
  printf '192.0.2.1,3,10\\n192.0.2.9,1,1\\n' | trio-ping   targets from stdin

output: one line per request, ADDRESS,SEQ,RTT_US (RTT in microseconds, -1 when
no valid reply came within the timeout), written as each result is known.

exit status: 0 all requests answered, 1 some unanswered, 2 bad input or a socket,
permission or send error, 130 interrupted (SIGINT), 143 terminated (SIGTERM),
141 standard output closed.
"""


class ExitStatus(enum.IntEnum):
    """Every way a run can end, as the shell sees it."""

    OK = 0
    UNANSWERED = 1
    ERROR = 2
    INTERRUPTED = 128 + signal.SIGINT
    OUTPUT_CLOSED = 128 + signal.SIGPIPE
    TERMINATED = 128 + signal.SIGTERM


@attrs.frozen
class Config:
    """What the command line asked for."""

    targets: tuple[str, ...]
    timeout: float
    verbose: bool
    timestamp: bool


@attrs.define
class Run:
    """What the run has seen so far, and so how it will exit."""

    stderr: TextIO
    verbose: bool
    formatter: Formatter
    unanswered: int = 0
    errors: int = 0
    signal_number: int | None = None
    output_closed: bool = False
    _refused: set[str] = attrs.field(factory=set)

    def error(self, message: str) -> None:
        """Report one problem on one stderr line; the run goes on and exits 2."""
        self.errors += 1
        self.stderr.write(f"{PROGRAM}: {message}\n")
        self.stderr.flush()

    def observe(self, result: PingResult) -> None:
        """Count a result towards the exit status, and tell what went wrong with it."""
        if result.answered:
            return
        self.unanswered += 1
        if result.status is Status.SEND_FAILED:
            if result.errno in _REFUSED_DESTINATION and result.address not in self._refused:
                self._refused.add(result.address)
                self.error(f"cannot send to {result.address}: {result.reason}")
            elif self.verbose:
                self.stderr.write(
                    f"{PROGRAM}: {result.address} seq={result.seq}: send failed: {result.reason}\n"
                )
        elif result.status is Status.ICMP_ERROR and self.verbose:
            self.stderr.write(
                f"{PROGRAM}: {result.address} seq={result.seq}: "
                f"from {result.reported_by}: {result.reason}\n"
            )

    def exit_status(self) -> ExitStatus:
        """The status that says the most about the run."""
        if self.signal_number is not None:
            return ExitStatus(128 + self.signal_number)
        if self.output_closed:
            return ExitStatus.OUTPUT_CLOSED
        if self.errors:
            return ExitStatus.ERROR
        return ExitStatus.UNANSWERED if self.unanswered else ExitStatus.OK


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """One line, not argparse's usage block."""
        self.exit(ExitStatus.ERROR, f"{PROGRAM}: {message} (see '{PROGRAM} --help')\n")


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def parse_arguments(argv: Sequence[str] | None) -> Config:
    """Parse the command line; on a usage error print one line and exit 2."""
    parser = _Parser(
        prog=PROGRAM,
        description="Send ICMP Echo requests to many targets at once, over one raw socket.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "targets",
        nargs="*",
        metavar="TARGET",
        help="ADDRESS,COUNT,INTERVAL_MS (COUNT 1..10, INTERVAL_MS 1..1000); "
        "none or '-': read targets from standard input, one per line",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"wait this long for each reply, from its send time (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--timestamp",
        action="store_true",
        help="send ICMP Timestamp requests (type 13) instead of Echo; lines become "
        "ADDRESS,SEQ,RTT_US,ORIGINATE_MS,RECEIVE_MS,TRANSMIT_MS,OFFSET_MS",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="report ICMP errors and send errors on stderr"
    )
    parser.add_argument("--version", action="version", version=f"{PROGRAM} {__version__}")
    arguments = parser.parse_args(argv)
    return Config(
        tuple(arguments.targets), arguments.timeout, arguments.verbose, arguments.timestamp
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    _tune_garbage_collection()
    config = parse_arguments(argv)
    if not config.targets and sys.stdin is not None and sys.stdin.isatty():
        sys.stderr.write(
            f"usage: {PROGRAM} ADDRESS,COUNT,INTERVAL_MS ... (or target lines on stdin)\n"
            f"see '{PROGRAM} --help'\n"
        )
        return ExitStatus.ERROR
    run = Run(sys.stderr, config.verbose, format_timestamp_csv if config.timestamp else format_csv)
    try:
        trio.run(_run, config, run)
    except KeyboardInterrupt:  # Ctrl-C before the signal handler was in place
        run.signal_number = signal.SIGINT
    return run.exit_status()


def _tune_garbage_collection() -> None:
    """Collect less often: a run makes many short-lived objects and next to no cycles.

    CPython's collector still walks every long-lived object (trio's, the modules') each
    time enough new ones pile up: measured at a quarter of the CPU of a 10,000 x 3 run.
    Freezing what start-up made takes those out of every pass, and a higher first
    threshold makes passes rarer. A process-wide choice, so the command makes it, never
    the library.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


async def _run(config: Config, run: Run) -> None:
    send_channel, receive_channel = trio.open_memory_channel[PingResult](math.inf)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_signals, run, nursery.cancel_scope)
        # The writer ends when every session's channel clone and ours are closed.
        async with open_pinger() as pinger, trio.open_nursery() as work:
            work.start_soon(_write, receive_channel, run, nursery.cancel_scope)
            async with send_channel:
                await _start_targets(config, pinger, send_channel, run)
        nursery.cancel_scope.cancel()  # every target is done: stop watching signals


async def _watch_signals(run: Run, scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for number in signals:
            run.signal_number = number
            scope.cancel()  # results already known are still written on the way out
            return


async def _write(
    results: trio.MemoryReceiveChannel[PingResult], run: Run, scope: trio.CancelScope
) -> None:
    try:
        await write_results(results, sys.stdout.fileno(), run.formatter, run.observe)
    except OutputClosed:
        run.output_closed = True
        scope.cancel()


async def _start_targets(
    config: Config,
    pinger: Pinger,
    results: trio.MemorySendChannel[PingResult],
    run: Run,
) -> None:
    """Start each target as soon as it is read; report the ones that cannot run."""
    socket_failed = False
    async with aclosing(_target_lines(config.targets, run)) as lines:
        async for place, text in lines:
            text = text.strip()
            if not text or text.startswith("#"):
                continue
            try:
                target = Target.parse(text)
            except TargetError as exc:
                run.error(f"{place}: {exc}")
                continue
            if socket_failed:
                continue  # said once already: nothing can be sent
            try:
                pinger.start(
                    target.address,
                    count=target.count,
                    interval=target.interval_ms / 1000,
                    timeout=config.timeout,
                    results=results.clone(),
                    timestamp=config.timestamp,
                )
            except SocketPermissionError as exc:
                socket_failed = True
                run.error(str(exc))
            except OSError as exc:
                socket_failed = True
                run.error(f"cannot open an ICMP socket: {exc.strerror or exc}")


async def _target_lines(
    arguments: Sequence[str], run: Run
) -> AsyncGenerator[tuple[str, str], None]:
    """(place, text) for each target: the arguments in order, stdin where '-' is (or none)."""
    for number, argument in enumerate(arguments or ["-"], start=1):
        if argument != "-":
            yield f"argument {number}", argument
            continue
        try:
            async with aclosing(_read_lines(0)) as lines:
                line_number = 0
                async for line in lines:
                    line_number += 1
                    yield f"line {line_number}", line
        except OSError as exc:
            run.error(f"cannot read standard input: {exc.strerror or exc}")


async def _read_lines(fd: int) -> AsyncGenerator[str, None]:
    """Lines from ``fd`` as they arrive.

    The read runs in a thread: it works the same on a pipe, a terminal and a regular file
    (which epoll cannot watch), and leaves the descriptor's blocking mode alone (it is
    shared with the parent shell). One thread hop per chunk, not per line.
    """
    pending = b""
    while True:
        chunk = await trio.to_thread.run_sync(os.read, fd, 65536, abandon_on_cancel=True)
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            yield line.decode(errors="replace")
    if pending:
        yield pending.decode(errors="replace")
