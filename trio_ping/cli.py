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
import socket
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from typing import TextIO

import attrs
import trio

from trio_ping import __version__
from trio_ping.engine import Session
from trio_ping.icmp_socket import SocketPermissionError
from trio_ping.output import (
    Formatter,
    OutputClosed,
    OutputError,
    format_csv,
    format_timestamp_csv,
    json_formatter,
    json_line,
    write_all,
    write_results,
)
from trio_ping.pinger import DEFAULT_TIMEOUT, Pinger, open_pinger, resolve
from trio_ping.results import PingResult, Status
from trio_ping.summary import TargetStatistics
from trio_ping.targets import Target, TargetError, address_for

PROGRAM = "trio-ping"
STDOUT = 1  # the descriptor, not sys.stdout: that is None when the shell closed it (>&-)

# The kernel refusing a destination outright (a broadcast address without SO_BROADCAST,
# ...), as opposed to a network that cannot deliver now: the first is the user's input.
_REFUSED_DESTINATION = frozenset({errno.EACCES, errno.EPERM, errno.EINVAL, errno.EADDRNOTAVAIL})

_EPILOG = """\
examples:
  trio-ping "192.0.2.1,3,1000"                3 requests, 1 s apart
  trio-ping 192.0.2.1,5,200 2001:db8::1,5,200  two targets at once
  printf '192.0.2.1,3,10\\nexample.net,1,1\\n' | trio-ping   targets from stdin
  trio-ping --json --summary localhost,3,100  JSON lines, then a summary event

output: one line per request, ADDRESS,SEQ,RTT_US (RTT in microseconds, -1 when
no valid reply came within the timeout), written as each result is known.
--timestamp: ADDRESS,SEQ,RTT_US,ORIGINATE_MS,RECEIVE_MS,TRANSMIT_MS,OFFSET_MS.

exit status: 0 all requests answered, 1 some unanswered, 2 bad input, a socket or
permission error, or a destination the kernel refuses (broadcast), 130 interrupted
(SIGINT), 143 terminated (SIGTERM), 141 standard output closed.
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
    json: bool
    summary: bool
    family: socket.AddressFamily


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
    statistics: dict[tuple[str, str], TargetStatistics] | None = None
    """Per (target, address), when a summary was asked for."""
    _said: set[str] = attrs.field(factory=set)

    def error(self, message: str) -> None:
        """Report one problem on one stderr line; the run goes on and exits 2."""
        self.errors += 1
        self.stderr.write(f"{PROGRAM}: {message}\n")
        self.stderr.flush()

    def note_once(self, message: str) -> None:
        """A remark for --verbose, said once: not an error."""
        if message not in self._said:
            self._said.add(message)
            self.stderr.write(f"{PROGRAM}: {message}\n")

    def error_once(self, message: str) -> None:
        """Report a problem that many lines may share (a socket error) the first time."""
        if message not in self._said:
            self._said.add(message)
            self.error(message)
        else:
            self.errors += 1

    def observe(self, result: PingResult) -> None:
        """Count a result towards the exit status and summary; tell what went wrong."""
        if self.statistics is not None:
            self.statistics[result.label, result.address].add(result)
        if result.answered:
            if self.verbose and not result.kernel_timestamp:
                self.note_once(
                    "the kernel gave no receive timestamps: RTTs are measured in user space "
                    "and include scheduling delay"
                )
            return
        self.unanswered += 1
        if result.status is Status.SEND_FAILED:
            if result.errno in _REFUSED_DESTINATION:
                self.error_once(f"cannot send to {result.address}: {result.reason}")
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
        description="Send ICMP Echo (or Timestamp) requests to many targets at once, "
        "over one socket per address family.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "targets",
        nargs="*",
        metavar="TARGET",
        help="ADDRESS,COUNT,INTERVAL_MS: ADDRESS an IPv4 or IPv6 address or a host name, "
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
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="report ICMP errors and send errors on stderr"
    )
    parser.add_argument("--version", action="version", version=f"{PROGRAM} {__version__}")
    # Intermixed: options may follow targets, as in "trio-ping 192.0.2.1,3,10 --json".
    arguments = parser.parse_intermixed_args(argv)
    return Config(
        targets=tuple(arguments.targets),
        timeout=arguments.timeout,
        verbose=arguments.verbose,
        timestamp=arguments.timestamp,
        json=arguments.json,
        summary=arguments.summary,
        family=arguments.family or socket.AF_UNSPEC,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    _tune_garbage_collection()
    config = parse_arguments(argv)
    if sys.stdout is None:
        # Closed by the shell (>&-). Not a mere write error: descriptor 1 would be reused
        # by the next thing opened, our own sockets included, and lines written there.
        sys.stderr.write(f"{PROGRAM}: cannot write standard output: it is closed\n")
        return ExitStatus.ERROR
    if not config.targets and sys.stdin is not None and sys.stdin.isatty():
        sys.stderr.write(
            f"usage: {PROGRAM} ADDRESS,COUNT,INTERVAL_MS ... (or target lines on stdin)\n"
            f"see '{PROGRAM} --help'\n"
        )
        return ExitStatus.ERROR
    if config.json:
        formatter = json_formatter(timestamp=config.timestamp)
    else:
        formatter = format_timestamp_csv if config.timestamp else format_csv
    run = Run(sys.stderr, config.verbose, formatter, statistics={} if config.summary else None)
    try:
        trio.run(_run, config, run)
    except* KeyboardInterrupt:  # Ctrl-C before or after the signal receiver was in place
        run.signal_number = run.signal_number or signal.SIGINT
    finally:
        _ignore_signals()  # again, for a run that ended before _run ignored them
    return run.exit_status()


def _ignore_signals() -> None:
    """From now on, SIGINT and SIGTERM do nothing.

    Once the run's status is decided, a late signal must not turn it into a traceback
    (SIGINT) or a kill that loses it (SIGTERM).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


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
    # Ignored before the receiver below opens, because it restores on closing what it
    # found. Had it found trio's own SIGINT handler, a signal during the shutdown would
    # raise KeyboardInterrupt wherever the code then stood, main's last lines included:
    # the process died of SIGINT instead of exiting 130 (seen in CI, under a storm of
    # SIGINTs).
    _ignore_signals()
    send_channel, receive_channel = trio.open_memory_channel[PingResult](math.inf)
    # The receiver stays open until everything is written: a second Ctrl-C during the
    # shutdown is then one more signal to ignore, not a KeyboardInterrupt in a nursery.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch_signals, signals, run, nursery.cancel_scope)
            # The writer ends when every session's channel clone and ours are closed.
            async with open_pinger() as pinger, trio.open_nursery() as work:
                work.start_soon(_write, receive_channel, run, nursery.cancel_scope)
                starter = _Starter(config, pinger, send_channel, run, work)
                async with send_channel:
                    await starter.start_all()
            malformed, invalid = pinger.discarded()
            if config.verbose and (malformed or invalid):
                run.note_once(
                    f"ignored {malformed} malformed packets and {invalid} replies "
                    "that did not carry their request's payload"
                )
            nursery.cancel_scope.cancel()  # every target is done: stop watching signals
        # As iputils does, the summary comes on Ctrl-C too: of the results known by then.
        if run.statistics is not None and not run.output_closed:
            starter.count_duplicates()  # only now: duplicates arrive after their first reply
            _print_summary(config, run)


def _print_summary(config: Config, run: Run) -> None:
    assert run.statistics is not None
    ordered = sorted(run.statistics.values(), key=lambda statistics: statistics.order)
    if config.json:
        try:
            write_all(STDOUT, "".join(json_line(statistics.record()) for statistics in ordered))
        except OutputClosed:
            run.output_closed = True
        except OutputError as exc:
            run.error(str(exc))
    else:
        for statistics in ordered:
            run.stderr.write(statistics.text())
        run.stderr.flush()


async def _watch_signals(signals: AsyncIterator[int], run: Run, scope: trio.CancelScope) -> None:
    async for number in signals:
        if run.signal_number is None:  # the first decides the exit status
            run.signal_number = number
            scope.cancel()  # results already known are still written on the way out


async def _write(
    results: trio.MemoryReceiveChannel[PingResult], run: Run, scope: trio.CancelScope
) -> None:
    try:
        await write_results(results, STDOUT, run.formatter, run.observe)
    except OutputClosed:
        run.output_closed = True
        scope.cancel()
    except OutputError as exc:
        run.error(str(exc))
        scope.cancel()  # nothing more can be said


@attrs.define
class _Starter:
    """Starts each target line as soon as it is read; reports the ones that cannot run."""

    config: Config
    pinger: Pinger
    results: trio.MemorySendChannel[PingResult]
    run: Run
    nursery: trio.Nursery
    _started: list[tuple[TargetStatistics, Session]] = attrs.field(factory=list)
    _read: int = 0
    """Target lines read so far: a summary lists targets in this order."""

    async def start_all(self) -> None:
        """Read every target (arguments, then stdin where '-' or none) and start it."""
        async with aclosing(_target_lines(self.config.targets, self.run)) as batches:
            async for batch in batches:
                for place, text in batch:
                    self._start_line(place, text)

    def _start_line(self, place: str, text: str) -> None:
        """Parse one target line and start it, or say why not."""
        try:
            target = Target.parse(text)
        except TargetError as exc:
            self.run.error(f"{place}: {exc}")
            return
        self._read += 1
        if target.address is not None and self.config.family != socket.AF_UNSPEC:
            try:  # -4/-6 against an address as written
                address_for(target.address, self.config.family)
            except ValueError as exc:
                self.run.error(f"{place}: {exc}")
                return
        if target.address is None:
            # A name: resolve it in its own task, so a slow resolver holds up
            # no other line. Its channel clone keeps the writer waiting for it.
            self.nursery.start_soon(
                self._resolve_and_start, place, self._read, target, self.results.clone()
            )
        else:
            self._start(place, self._read, target, target.address, self.results.clone())

    def count_duplicates(self) -> None:
        """Add each session's duplicate replies to its target's statistics."""
        for statistics, session in self._started:
            statistics.duplicates += session.duplicates

    async def _resolve_and_start(
        self,
        place: str,
        order: int,
        target: Target,
        results: trio.MemorySendChannel[PingResult],
    ) -> None:
        try:
            address = await resolve(target.host, self.config.family)
        except OSError:
            results.close()
            family = self.config.family
            wanted = {socket.AF_INET: " to an IPv4 address", socket.AF_INET6: " to an IPv6 address"}
            self.run.error(f"{place}: cannot resolve {target.host!r}{wanted.get(family, '')}")
            return
        self._start(place, order, target, address, results)

    def _start(
        self,
        place: str,
        order: int,
        target: Target,
        address: str,
        results: trio.MemorySendChannel[PingResult],
    ) -> None:
        label = None if target.host == address else target.host
        try:
            session = self.pinger.start(
                address,
                count=target.count,
                interval=target.interval_ms / 1000,
                timeout=self.config.timeout,
                results=results,
                timestamp=self.config.timestamp,
                target=label,
            )
        except SocketPermissionError as exc:
            self.run.error_once(str(exc))
        except ValueError as exc:
            self.run.error(f"{place}: {exc}")
        except OSError as exc:
            self.run.error_once(f"cannot open an ICMP socket: {exc.strerror or exc}")
        else:
            if self.run.statistics is not None:
                name = label or address
                statistics = self.run.statistics.setdefault(
                    (name, address), TargetStatistics(name, address, order)
                )
                self._started.append((statistics, session))


async def _target_lines(
    arguments: Sequence[str], run: Run
) -> AsyncGenerator[list[tuple[str, str]], None]:
    """(place, text) of each target, in batches as they come: the arguments in order,
    stdin where '-' is (or where there is no argument). A batch per read of stdin, not a
    line: at 20,000 lines, an async hop per line costs more than parsing it."""
    for number, argument in enumerate(arguments or ["-"], start=1):
        if argument != "-":
            yield [(f"argument {number}", argument)]
            continue
        if sys.stdin is None:  # closed by the shell: descriptor 0 may be reused, don't read it
            run.error("cannot read standard input: it is closed")
            continue
        try:
            async with aclosing(_read_lines(0)) as chunks:
                line_number = 0
                async for lines in chunks:
                    first = line_number + 1
                    line_number += len(lines)
                    # Blank lines and comments are skipped on stdin only: an empty
                    # argument is a mistake ("$UNSET") to report, not a no-op.
                    yield [
                        (f"line {n}", line)
                        for n, line in enumerate(lines, start=first)
                        if line.strip() and not line.lstrip().startswith("#")
                    ]
        except OSError as exc:
            run.error(f"cannot read standard input: {exc.strerror or exc}")


async def _read_lines(fd: int) -> AsyncGenerator[list[str], None]:
    """The complete lines of each read from ``fd``, as they arrive.

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
        if lines:
            yield [line.decode(errors="replace") for line in lines]
    if pending:
        yield [pending.decode(errors="replace")]
