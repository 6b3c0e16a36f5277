"""What the command line takes from the process it runs in, gathered in one object.

As httpie's ``Environment`` does for its streams: :func:`trio_ping.cli.main` reads and
writes only through an :class:`Environment`. :meth:`Environment.default` describes the
real process (descriptors 0 and 1, ``sys.stderr``, real ICMP sockets, timerfd pacing,
the process's signals); a test builds one with pipes, a ``StringIO``, an in-memory socket
and trio's mock clock, and runs the whole command line without root.
"""

from __future__ import annotations

import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager
from typing import TextIO

import attrs
import trio

from trio_ping._io.icmp_socket import IcmpSocket
from trio_ping.pinger import SocketFactory, resolve

Resolver = Callable[[str, socket.AddressFamily], Awaitable[str]]
"""A host name (and the family asked for, or AF_UNSPEC) to the IP address to ping;
raises OSError when it does not resolve."""

SignalSource = Callable[[], AbstractContextManager[AsyncIterator[int]]]
"""Opens the stream of signal numbers that should end the run (SIGINT, SIGTERM)."""


def process_signals() -> AbstractContextManager[AsyncIterator[int]]:
    """SIGINT and SIGTERM as this process receives them (trio's signal receiver)."""
    return trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM)


@attrs.frozen(kw_only=True)
class Environment:
    """Everything the command line reads, writes or opens outside its own objects."""

    stdin: int | None
    """The descriptor target lines are read from; None when the shell closed it (``<&-``):
    descriptor 0 may then be reused by the next thing opened, and must not be read."""
    stdin_isatty: bool
    """Whether standard input is a terminal (no target and a terminal: print the usage)."""
    stdout: int | None
    """The descriptor results are written to, with ``os.write``; None when closed (``>&-``)."""
    stderr: TextIO
    """Where messages, notes and text summaries go."""
    socket_factory: SocketFactory = IcmpSocket.open
    """Opens the ICMP socket of a family (see :func:`trio_ping.open_pinger`)."""
    precise_pacing: bool = True
    """Pace requests with a timerfd; False: with trio's clock (which a mock clock drives)."""
    resolve: Resolver = resolve
    """Turns a target's host name into an address."""
    signals: SignalSource = process_signals
    """The signals that interrupt the run."""
    clock: trio.abc.Clock | None = None
    """The clock of the run (``trio.run(clock=...)``); None for the real one."""
    process_wide: bool = True
    """Whether to make the command's process-wide choices: tune the garbage collector,
    and ignore SIGINT and SIGTERM from the moment the run's status is being decided.
    Both would outlast the call, so an embedding process (a test runner) turns them off."""

    @classmethod
    def default(cls) -> Environment:
        """The real process: descriptors 0 and 1, ``sys.stderr``, real sockets and signals.

        Read when called, not when this module is imported: the shell's redirections
        are what they are when the command runs.
        """
        stdin = sys.stdin  # None when the shell closed descriptor 0
        return cls(
            stdin=None if stdin is None else 0,
            stdin_isatty=stdin is not None and stdin.isatty(),
            stdout=None if sys.stdout is None else 1,
            stderr=sys.stderr,
        )
