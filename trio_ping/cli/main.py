"""The command line's run: one trio program that starts each target line and writes results.

The library below raises; :mod:`trio_ping.cli.status` turns what happens into messages and
the exit status.
"""

from __future__ import annotations

import math
import signal
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing

import attrs
import trio

from trio_ping._addresses import address_for
from trio_ping._garbage import collect_less_often
from trio_ping._io.icmp_socket import SocketPermissionError
from trio_ping.cli.arguments import ArgumentsExit, Config, parse_arguments
from trio_ping.cli.environment import Environment, Resolver
from trio_ping.cli.input import target_lines
from trio_ping.cli.output import (
    Backlog,
    OutputClosed,
    OutputError,
    format_csv,
    format_timestamp_csv,
    json_formatter,
    json_line,
    with_send_time,
    write_all,
    write_results,
)
from trio_ping.cli.status import PROGRAM, ExitStatus, Run, quoted
from trio_ping.cli.summary import TargetStatistics
from trio_ping.cli.targets import Target, TargetError
from trio_ping.pinger import Pinger, PingHandle, open_pinger
from trio_ping.results import PingResult

RATE_NOTE_DELAY = 0.1
"""Once the rate cap has held a due request back by more than this (seconds), the run says,
once, at its end, that the targets asked for more than ``--rate``: a shorter wait is the
cap's small burst smoothing a handful of lines that came together, not a demand beyond it."""


def main(argv: Sequence[str] | None = None, env: Environment | None = None) -> int:
    """Run the command line; return the exit status.

    Args:
        argv: the arguments, without the program's name (``sys.argv[1:]`` if None).
        env: the streams, sockets, clock and signals to run with; the real process's
            (:meth:`Environment.default`) if None.
    """
    if env is None:
        env = Environment.default()
    if env.process_wide:
        collect_less_often()
    try:
        config = parse_arguments(argv, env)
    except ArgumentsExit as exc:  # --help, --version, or a usage error already said
        return exc.status
    stdout = env.stdout
    if stdout is None:
        # Closed by the shell (>&-). Not a mere write error: descriptor 1 would be reused
        # by the next thing opened, our own sockets included, and lines written there.
        env.stderr.write(f"{PROGRAM}: cannot write standard output: it is closed\n")
        return ExitStatus.ERROR
    if not config.targets and env.stdin is not None and env.stdin_isatty:
        env.stderr.write(
            f"usage: {PROGRAM} ADDRESS,COUNT,INTERVAL_MS ... (or target lines on stdin)\n"
            f"see '{PROGRAM} --help'\n"
        )
        return ExitStatus.ERROR
    if config.json:
        formatter = json_formatter(timestamp=config.timestamp)
    else:
        formatter = format_timestamp_csv if config.timestamp else format_csv
        if config.send_times:
            formatter = with_send_time(formatter)
    run = Run(env.stderr, config.verbose, formatter, statistics={} if config.summary else None)
    try:
        trio.run(_run, config, run, env, stdout, clock=env.clock)
    except* KeyboardInterrupt:  # Ctrl-C before or after the signal receiver was in place
        run.signal_number = run.signal_number or signal.SIGINT
    finally:
        if env.process_wide:
            _ignore_signals()  # again, for a run that ended before _run ignored them
    return run.exit_status()


def _ignore_signals() -> None:
    """From now on, SIGINT and SIGTERM do nothing.

    Once the run's status is decided, a late signal must not turn it into a traceback
    (SIGINT) or a kill that loses it (SIGTERM).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


async def _run(config: Config, run: Run, env: Environment, stdout: int) -> None:
    # Ignored before the receiver below opens, because it restores on closing what it
    # found. Had it found trio's own SIGINT handler, a signal during the shutdown would
    # raise KeyboardInterrupt wherever the code then stood, main's last lines included:
    # the process died of SIGINT instead of exiting 130 (seen in CI, under a storm of
    # SIGINTs).
    if env.process_wide:
        _ignore_signals()
    send_channel, receive_channel = trio.open_memory_channel[PingResult](math.inf)
    # Unbounded, because a session whose channel is full is cancelled; the input waits
    # instead while too many results are unwritten.
    backlog = Backlog(lambda: receive_channel.statistics().current_buffer_used)
    # The receiver stays open until everything is written: a second Ctrl-C during the
    # shutdown is then one more signal to ignore, not a KeyboardInterrupt in a nursery.
    with env.signals() as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch_signals, signals, run, nursery.cancel_scope)
            # The writer ends when every session's channel clone and ours are closed.
            async with (
                open_pinger(
                    socket_factory=env.socket_factory,
                    precise_pacing=env.precise_pacing,
                    interface=config.interface,
                    source=config.source,
                    mtu_discovery=config.mtu_discovery,
                    rate=config.rate,
                ) as pinger,
                trio.open_nursery() as work,
            ):
                work.start_soon(_write, receive_channel, stdout, run, nursery.cancel_scope, backlog)
                starter = _Starter(
                    config, pinger, send_channel, run, work, env.stdin, env.resolve, backlog
                )
                async with send_channel:
                    await starter.start_all()
            if pinger.rate_delay > RATE_NOTE_DELAY:
                run.note_once(
                    f"--rate {config.rate:g}: the targets asked for more requests a second "
                    f"than that; some were sent up to {pinger.rate_delay:.1f} s late (none dropped)"
                )
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
            _print_summary(config, run, stdout)


def _print_summary(config: Config, run: Run, stdout: int) -> None:
    assert run.statistics is not None
    ordered = sorted(run.statistics.values(), key=lambda statistics: statistics.order)
    if config.json:
        try:
            write_all(stdout, "".join(json_line(statistics.record()) for statistics in ordered))
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
    results: trio.MemoryReceiveChannel[PingResult],
    stdout: int,
    run: Run,
    scope: trio.CancelScope,
    backlog: Backlog,
) -> None:
    try:
        await write_results(results, stdout, run.formatter, run.observe, backlog)
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
    stdin: int | None
    """The descriptor to read target lines from where '-' is (None: closed)."""
    resolve: Resolver
    backlog: Backlog
    """Before each read of target lines, the starter waits while output is backed up."""
    _started: list[tuple[TargetStatistics, PingHandle]] = attrs.field(factory=list)
    _read: int = 0
    """Target lines read so far: a summary lists targets in this order."""

    async def start_all(self) -> None:
        """Read every target (arguments, then stdin where '-' or none) and start it."""
        async with aclosing(target_lines(self.config.targets, self.stdin, self.run)) as batches:
            async for batch in batches:
                for place, text in batch:
                    self._start_line(place, text)
                # Stop reading while the output is backed up (a stalled reader): memory
                # stays bounded, and the lines wait in the pipe, not here.
                await self.backlog.wait_for_room()

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
            address = await self.resolve(target.host, self.config.family)
        except OSError:
            results.close()
            family = self.config.family
            wanted = {socket.AF_INET: " to an IPv4 address", socket.AF_INET6: " to an IPv6 address"}
            self.run.error(f"{place}: cannot resolve {quoted(target.host)}{wanted.get(family, '')}")
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
                size=self.config.size,
                ttl=self.config.ttl,
                tos=self.config.tos,
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
