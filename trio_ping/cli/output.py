"""Writing results: CSV lines, buffered and flushed whenever the results run dry."""

from __future__ import annotations

import fcntl
import math
import os
import stat
import struct
import termios
import time
from collections.abc import Callable
from typing import Final

import attrs
import trio

from trio_ping._proto.batching import busy
from trio_ping.results import PingResult, Status

Formatter = Callable[[PingResult], str]

FLUSH_PAUSE: Final = 0.002
"""After each write, gather for this long: at 20,000 results a second that is 40 lines a
write instead of one, and no line waits much longer than this (the contract: ~10 ms)."""


BACKLOG_LIMIT: Final = 20_000
"""Results received and not yet written beyond which no new target line is read.

About 600 bytes each (the result, its line, its place in the channel), so some 12 MB,
and a second of output at 20,000 results a second: a writer that keeps up holds a few
dozen lines between writes (FLUSH_PAUSE), so only a reader stalled for about a second
(or slower than the run) ever pauses the input. Sessions already started go on and their
results are kept: nothing is dropped, so the bound is this plus what those sessions
still have to send."""


_MEMORY_DEVICES: Final = 1
"""The major number of /dev/null, /dev/zero, /dev/full (Linux
Documentation/admin-guide/devices.txt)."""


class OutputClosed(Exception):
    """Standard output's reader went away (``trio-ping ... | head -1``)."""


class OutputError(Exception):
    """Standard output cannot be written (a full disk, a closed descriptor, ...)."""


def format_csv(result: PingResult) -> str:
    """``ADDRESS,SEQ,RTT_US`` with ``-1`` for a request that got no valid reply."""
    rtt = result.rtt_us if result.rtt_us is not None else -1
    return f"{result.address},{result.seq},{rtt}\n"


def format_timestamp_csv(result: PingResult) -> str:
    """``ADDRESS,SEQ,RTT_US,ORIGINATE_MS,RECEIVE_MS,TRANSMIT_MS,OFFSET_MS``.

    The peer's two times are printed as the raw 32-bit values it sent, and the offset is
    empty when those are not standard times. Unanswered: ``ADDRESS,SEQ,-1,,,,``.
    """
    if result.rtt_us is None or result.originate_ms is None:
        return f"{result.address},{result.seq},-1,,,,\n"
    offset = "" if result.offset_ms is None else f"{result.offset_ms:.1f}"
    return (
        f"{result.address},{result.seq},{result.rtt_us},{result.originate_ms},"
        f"{result.receive_ms},{result.transmit_ms},{offset}\n"
    )


def with_send_time(formatter: Formatter) -> Formatter:
    """``formatter``'s CSV line with one more field (``-D``): the request's send time in
    Unix seconds with 6 decimals, empty for a request that was never sent."""

    def format_with_send_time(result: PingResult) -> str:
        line = formatter(result)
        return f"{line[:-1]},{unix_seconds(result.sent_ns)}\n"

    return format_with_send_time


def unix_seconds(ns: int | None) -> str:
    """ns since the epoch as seconds with 6 decimals, exactly (no float rounding)."""
    if ns is None:
        return ""
    seconds, microseconds = divmod(ns // 1000, 1_000_000)
    return f"{seconds}.{microseconds:06d}"


def rfc3339(ns: int | None) -> str | None:
    """ns since the epoch in RFC 3339 UTC with microseconds, 2026-12-02T04:17:47.900813Z."""
    if ns is None:
        return None
    seconds, microseconds = divmod(ns // 1000, 1_000_000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{microseconds:06d}Z"


JSON_SCHEMA_VERSION: Final = 1

_EVENTS: Final = {Status.REPLY: "reply", Status.TIMEOUT: "timeout"}
_ERROR_KINDS: Final = {Status.ICMP_ERROR: "icmp", Status.SEND_FAILED: "send"}


def json_line(record: dict[str, object]) -> str:
    """One JSON event as one compact line, as every event of the schema is written."""
    import json  # only when asked for: start-up time counts

    return json.dumps(record, separators=(",", ":")) + "\n"


def json_formatter(*, timestamp: bool) -> Formatter:
    """One JSON object per line (schema version 1, documented in the README).

    Every request event has the same keys, null where they do not apply, so a consumer
    never has to test for a key: ``v, event, target, address, seq, rtt_us, ttl, error,
    reason, from, sent_at, send_stamp`` (``sent_at``: the send time, RFC 3339 UTC; null if
    never sent), and in timestamp mode also ``originate_ms, receive_ms, transmit_ms,
    offset_ms``. ``send_stamp`` (a reply's: whose send time its RTT starts from,
    PingResult.send_stamp) came later in version 1: a key added, none changed.
    """

    def format_json(result: PingResult) -> str:
        record: dict[str, object] = {
            "v": JSON_SCHEMA_VERSION,
            "event": _EVENTS.get(result.status, "error"),
            "target": result.label,
            "address": result.address,
            "seq": result.seq,
            "rtt_us": result.rtt_us,
            "ttl": result.ttl,
            "error": _ERROR_KINDS.get(result.status),
            "reason": result.reason,
            "from": result.reported_by,
            "sent_at": rfc3339(result.sent_ns),
            "send_stamp": result.send_stamp,
        }
        if timestamp:
            record.update(
                originate_ms=result.originate_ms,
                receive_ms=result.receive_ms,
                transmit_ms=result.transmit_ms,
                offset_ms=result.offset_ms,
            )
        return json_line(record)

    return format_json


def write_all(fd: int, text: str) -> None:
    """Write ``text`` whole, however many calls the pipe needs.

    A blocking write, on purpose: making a shared stdout non-blocking would change it for
    every process that shares it (the user's shell included). Inside the run, results go
    through :func:`write_results`, which keeps such writes off the event loop.

    Raises:
        OutputClosed: the reader has gone.
        OutputError: any other refusal, with the reason as its message.
    """
    _write_bytes(fd, text.encode())


def _write_bytes(fd: int, data: bytes) -> None:
    """:func:`write_all` of bytes already encoded."""
    try:
        while data:
            data = data[os.write(fd, data) :]
    except BrokenPipeError:
        raise OutputClosed from None
    except OSError as exc:
        raise OutputError(f"cannot write standard output: {exc.strerror or exc}") from None


@attrs.define
class Backlog:
    """How many results are received and not yet written; input waits while too many are.

    ``queued`` counts those still in the results channel; the writer adds the lines it
    holds (gathered, or being written).
    """

    queued: Callable[[], int]
    limit: int = BACKLOG_LIMIT
    held: int = 0
    """Lines the writer has taken from the channel and not yet written."""
    _wrote: trio.Event = attrs.field(factory=trio.Event)

    def size(self) -> int:
        """Results received and not yet written."""
        return self.queued() + self.held

    async def wait_for_room(self) -> None:
        """Return once at most :attr:`limit` results wait to be written (at once if so)."""
        while self.size() > self.limit:
            await self._wrote.wait()

    def written(self) -> None:
        """The writer has written all it held."""
        self.held = 0
        self._wrote.set()
        self._wrote = trio.Event()


def _never_blocks(fd: int) -> Callable[[int], bool]:
    """Whether a write of so many bytes to ``fd`` is sure to return at once.

    A regular file has no reader to wait for. A pipe with nothing unread (FIONREAD 0) has
    every one of its buffers free, so it takes a write up to its size (F_GETPIPE_SZ) whole
    without waiting: the room is certain only when it is empty, because each unread
    buffer may hold as little as one write, and FIONREAD tells bytes, not buffers. (A
    second writer to the same pipe could fill it in between: then the write waits as
    every write did before the writer had its thread.) The kernel's memory devices
    (/dev/null, /dev/full, ...: major 1) take or refuse a write at once. Anything else (a
    terminal, a socket, another device) may wait.
    """
    try:
        status = os.fstat(fd)
    except OSError:
        return lambda _: False  # the write will say what is wrong, in the thread
    mode = status.st_mode
    if stat.S_ISREG(mode) or (stat.S_ISCHR(mode) and os.major(status.st_rdev) == _MEMORY_DEVICES):
        return lambda _: True
    if not stat.S_ISFIFO(mode):
        return lambda _: False
    unread = bytearray(4)

    def empty_pipe_holds(size: int) -> bool:
        try:
            fcntl.ioctl(fd, termios.FIONREAD, unread)
            if struct.unpack("i", unread)[0]:
                return False
            return size <= fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
        except OSError:
            return False

    return empty_pipe_holds


async def write_results(
    results: trio.MemoryReceiveChannel[PingResult],
    fd: int,
    formatter: Formatter,
    observe: Callable[[PingResult], None],
    backlog: Backlog | None = None,
) -> None:
    """Write each result as ``formatter`` has it, until every sender has closed.

    Lines are gathered while results are waiting and written together as soon as none
    is; when results come thick and fast, the writer then rests for :data:`FLUSH_PAUSE`
    before it looks again (see :mod:`trio_ping._proto.batching`). A lone result is written at
    once, a stream of thousands costs a write every few milliseconds. Results already
    received when the task is cancelled (Ctrl-C) are still written.

    The event loop never waits on ``fd``: a write that might wait (a pipe with unread
    data, a terminal) runs in a worker thread, blocking there, while results gather in
    the channel for the next write; one that cannot (an empty pipe, a regular file) is
    written at once, saving the thread's two hops (benchmarks/micro.py:
    write_thread_hop). ``backlog`` is told how many lines are held and when they are
    written.

    Raises:
        OutputClosed: standard output's reader went away.
        OutputError: standard output cannot be written.
    """
    pending: list[str] = []
    last_write = -math.inf
    never_blocks = _never_blocks(fd)
    broken = False
    """A write failed: nothing more is written, not even the final flush, which would
    follow the failed write's last partial line with a line of its own."""

    async def write_pending() -> None:
        nonlocal broken
        data = "".join(pending).encode()
        if backlog is not None:
            backlog.held = len(pending)
        try:
            if never_blocks(len(data)):
                _write_bytes(fd, data)
            else:
                # Shielded: a cancel (Ctrl-C) neither abandons the thread nor strikes
                # before it starts; either would leave lines to be written twice.
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(_write_bytes, fd, data)
        except (OutputClosed, OutputError):
            broken = True
            raise
        finally:
            # Written, or the output failed part way through them: the final flush must
            # not write again what already went out.
            pending.clear()
        if backlog is not None:
            backlog.written()

    try:
        while True:
            try:
                result = results.receive_nowait()
            except trio.WouldBlock:
                if pending:
                    written = len(pending)
                    await write_pending()
                    now = trio.current_time()
                    if busy(written, now - last_write):
                        await trio.sleep(FLUSH_PAUSE)
                    last_write = now
                    continue
                try:
                    result = await results.receive()
                except trio.EndOfChannel:
                    return
            except trio.EndOfChannel:
                break
            observe(result)
            pending.append(formatter(result))
    finally:
        while True:
            try:
                result = results.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            observe(result)
            pending.append(formatter(result))
        if pending and not broken:
            with trio.CancelScope(shield=True):
                await write_pending()
