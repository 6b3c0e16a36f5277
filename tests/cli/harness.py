"""The whole command line, run in-process: ``main(argv, env)`` over the in-memory socket.

The rules of these tests: no root, no namespace, no packet leaves the process. Every
socket is a :class:`tests.fakes.FakeIcmpSocket` with a scripted peer, host names resolve
through a table (``localhost`` only), signals are scripted on trio's virtual clock, and
the run's clock is a :class:`trio.testing.MockClock` that jumps whenever every task
waits, so a run of many virtual seconds takes milliseconds.

Standard input is a pipe filled and closed before the run (or a file, for more than a
pipe holds): the CLI reads it in a thread, which does not advance the virtual clock, so
everything must be there when the read starts. Standard output is a temporary file (or a
pipe for the tests that close it); stderr is a ``StringIO``.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import socket
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Literal, NoReturn

import attrs
import trio
import trio.testing

from tests.fakes import Delivery, FakeIcmpSocket, Peer, Sent, reply6_bytes, reply_bytes
from trio_ping.cli import main
from trio_ping.cli.environment import Environment, Resolver, SignalSource

LOCALHOST = {
    socket.AF_UNSPEC: "127.0.0.1",
    socket.AF_INET: "127.0.0.1",
    socket.AF_INET6: "::1",
}
"""What the fake resolver answers for ``localhost``, by the family asked for."""

STUCK_AFTER = 30.0
"""Real seconds after which a run is stuck (a channel nobody closes, ...): it fails
instead of hanging. Real, not virtual: while stdin is read in a thread the autojump
clock jumps to the next deadline, so a virtual one would fire during any read."""

PIPE_CAPACITY = 65536
"""Linux's default pipe buffer: a pipe filled before the run holds at most this."""


def answer(delay: float = 0.001) -> Peer:
    """A host of either family that answers every request correctly after ``delay``."""

    def peer(sent: Sent) -> list[Delivery]:
        if ":" in sent.address:
            return [Delivery(delay, reply6_bytes(sent), sent.address)]
        return [Delivery(delay, reply_bytes(sent), sent.address)]

    return peer


async def fake_resolve(host: str, family: socket.AddressFamily) -> str:
    """``localhost`` from a table; any other name fails as a resolver without it would."""
    await trio.lowlevel.checkpoint()
    if host.rstrip(".").lower() == "localhost":
        return LOCALHOST[family]
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@attrs.define
class ScriptedSignals:
    """Signal numbers delivered at given virtual times, as trio's receiver would yield;
    after the last, a watchdog: a run still going after :data:`STUCK_AFTER` fails."""

    schedule: list[tuple[float, int]]

    def __aiter__(self) -> ScriptedSignals:
        return self

    async def __anext__(self) -> int:
        if not self.schedule:
            await _watchdog()
        at, number = self.schedule.pop(0)
        await trio.sleep_until(at)
        return number


async def _watchdog() -> NoReturn:
    """Wait (until cancelled) :data:`STUCK_AFTER` real seconds, then fail the run."""
    token = trio.lowlevel.current_trio_token()
    stuck = trio.Event()

    def poke() -> None:
        with contextlib.suppress(trio.RunFinishedError):  # it ended meanwhile
            token.run_sync_soon(stuck.set)

    timer = threading.Timer(STUCK_AFTER, poke)
    timer.start()
    try:
        await stuck.wait()
    finally:
        timer.cancel()
    raise AssertionError(f"the run was still going after {STUCK_AFTER} real seconds")


def scripted_signals(*schedule: tuple[float, int]) -> SignalSource:
    """A signal source that delivers each (virtual time, signal number) of ``schedule``."""

    def open_source() -> contextlib.AbstractContextManager[AsyncIterator[int]]:
        return contextlib.nullcontext(ScriptedSignals(list(schedule)))

    return open_source


@attrs.frozen
class Outcome:
    """What one run of the command line did."""

    status: int
    stdout: str
    stderr: str
    sockets: dict[socket.AddressFamily, FakeIcmpSocket]
    """The sockets the run opened, by family."""
    finished_at: float
    """The virtual time when the run ended."""

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    @property
    def stderr_lines(self) -> list[str]:
        return self.stderr.splitlines()

    @property
    def events(self) -> list[dict[str, object]]:
        """Every stdout line as a JSON object (a line that is not one fails the test)."""
        return [json.loads(line) for line in self.lines]

    @property
    def sent(self) -> list[Sent]:
        """Every request any socket took, in the order of their virtual send times."""
        return sorted(
            (sent for sock in self.sockets.values() for sent in sock.sent),
            key=lambda sent: sent.time,
        )

    def rows(self) -> list[tuple[str, int, int]]:
        """Every CSV line as (address, seq, rtt_us)."""
        rows = []
        for line in self.lines:
            address, seq, rtt = line.split(",")
            rows.append((address, int(seq), int(rtt)))
        return rows


SocketFactory = Callable[[socket.AddressFamily], FakeIcmpSocket]
Stdout = Literal["file", "closed", "reader-gone", "full"]


def run_cli(
    *argv: str,
    stdin: str | bytes | None = "",
    stdin_isatty: bool = False,
    stdin_file: bool = False,
    stdin_fd: int | None = None,
    stdout: Stdout = "file",
    peer: Peer | None = None,
    raw: bool = True,
    socket_factory: Callable[[socket.AddressFamily], FakeIcmpSocket] | None = None,
    resolve: Resolver = fake_resolve,
    signals: Sequence[tuple[float, int]] = (),
    epoch_ns: int = 0,
) -> Outcome:
    """Run ``trio-ping ARGV`` in this process on fake sockets; return what it did.

    Args:
        stdin: what standard input holds (None: closed by the shell, ``<&-``).
        stdin_file: give stdin as a regular file instead of a pipe (for large inputs).
        stdin_fd: read this descriptor as stdin instead (``stdin`` is then ignored).
        stdout: a regular file, closed (``>&-``), a pipe whose reader has gone, or
            /dev/full.
        peer: how the network answers each request (default: at once, 1 ms later).
        raw: the fake sockets are raw sockets (else ICMP datagram sockets).
        socket_factory: instead of fake sockets made from ``peer``.
        signals: (virtual time, signal number) to deliver.
        epoch_ns: the fake sockets' CLOCK_REALTIME at virtual time 0.
    """
    opened: dict[socket.AddressFamily, FakeIcmpSocket] = {}
    the_peer = peer if peer is not None else answer()

    def factory(family: socket.AddressFamily) -> FakeIcmpSocket:
        assert family not in opened, "a second socket for one family"
        sock = (
            socket_factory(family)
            if socket_factory is not None
            else FakeIcmpSocket(the_peer, family, raw=raw, epoch_ns=epoch_ns)
        )
        opened[family] = sock
        return sock

    clock = trio.testing.MockClock(autojump_threshold=0)
    stderr = io.StringIO()
    with contextlib.ExitStack() as stack:
        if stdin_fd is None and stdin is not None:
            stdin_fd = stack.enter_context(_input(stdin, stdin_file))
        stdout_fd, read_stdout = stack.enter_context(_output(stdout))
        env = Environment(
            stdin=stdin_fd,
            stdin_isatty=stdin_isatty,
            stdout=stdout_fd,
            stderr=stderr,
            socket_factory=factory,
            precise_pacing=False,
            resolve=resolve,
            signals=scripted_signals(*signals),
            clock=clock,
            process_wide=False,
        )
        status = main(list(argv), env)
        written = read_stdout()
    for sock in opened.values():
        assert sock.closed, "a socket outlived the run"
    return Outcome(status, written, stderr.getvalue(), opened, clock.current_time())


@contextlib.contextmanager
def _input(data: str | bytes, as_file: bool) -> Iterator[int]:
    """A descriptor to read ``data`` from, written whole and at its end already."""
    raw = data.encode() if isinstance(data, str) else data
    if as_file:
        with tempfile.TemporaryFile() as file:
            file.write(raw)
            file.flush()
            file.seek(0)
            yield file.fileno()
        return
    assert len(raw) <= PIPE_CAPACITY, "more than a pipe holds: use stdin_file=True"
    reader, writer = os.pipe()
    try:
        os.write(writer, raw)
        os.close(writer)
        yield reader
    finally:
        os.close(reader)


@contextlib.contextmanager
def _output(kind: Stdout) -> Iterator[tuple[int | None, Callable[[], str]]]:
    """A stdout descriptor of ``kind``, and how to read what was written to it."""
    if kind == "closed":
        yield None, str
    elif kind == "full":
        fd = os.open("/dev/full", os.O_WRONLY)
        try:
            yield fd, str
        finally:
            os.close(fd)
    elif kind == "reader-gone":
        reader, writer = os.pipe()
        os.close(reader)  # writes now fail with EPIPE (Python ignores SIGPIPE)
        try:
            yield writer, str
        finally:
            os.close(writer)
    else:
        with tempfile.TemporaryFile() as file:

            def read() -> str:
                file.seek(0)
                return file.read().decode()

            yield file.fileno(), read


def refusing(refused: str, code: int = errno.EACCES, peer: Peer | None = None) -> Peer:
    """``peer`` (default :func:`answer`), but the kernel refuses every send to ``refused``."""
    inner = peer if peer is not None else answer()

    def refuse(sent: Sent) -> list[Delivery]:
        if sent.address == refused:
            raise OSError(code, os.strerror(code))
        return list(inner(sent))

    return refuse
