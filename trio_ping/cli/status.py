"""How a run ends: what it has seen, what it said on stderr, and its exit status.

This is the one place where results and failures become messages and exit statuses.
"""

from __future__ import annotations

import enum
import errno
import signal
from typing import TextIO

import attrs

from trio_ping._quoting import QUOTE_LIMIT, quoted
from trio_ping.cli.output import Formatter
from trio_ping.cli.summary import TargetStatistics
from trio_ping.results import PingResult, Status

PROGRAM = "trio-ping"

# The kernel refusing a destination outright (a broadcast address without SO_BROADCAST,
# ...), as opposed to a network that cannot deliver now: the first is the user's input.
_REFUSED_DESTINATION = frozenset({errno.EACCES, errno.EPERM, errno.EINVAL, errno.EADDRNOTAVAIL})


__all__ = ["QUOTE_LIMIT", "ExitStatus", "Run", "quoted"]


class ExitStatus(enum.IntEnum):
    """Every way a run can end, as the shell sees it."""

    OK = 0
    UNANSWERED = 1
    ERROR = 2
    INTERRUPTED = 128 + signal.SIGINT
    OUTPUT_CLOSED = 128 + signal.SIGPIPE
    TERMINATED = 128 + signal.SIGTERM


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
