"""Writing results: CSV lines, buffered and flushed whenever the results run dry."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Final

import trio

from trio_ping._proto.batching import busy
from trio_ping.results import PingResult, Status

Formatter = Callable[[PingResult], str]

FLUSH_PAUSE: Final = 0.002
"""After each write, gather for this long: at 20,000 results a second that is 40 lines a
write instead of one, and no line waits much longer than this (the contract: ~10 ms)."""


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
    reason, from, send_stamp``, and in timestamp mode also ``originate_ms, receive_ms,
    transmit_ms, offset_ms``. ``send_stamp`` (a reply's: whose send time its RTT starts
    from, PingResult.send_stamp) came later in version 1: a key added, none changed.
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
    every process that shares it (the user's shell included). A stalled reader holds the
    run up, like ping; RTTs stay right because they come from kernel timestamps.

    Raises:
        OutputClosed: the reader has gone.
        OutputError: any other refusal, with the reason as its message.
    """
    data = text.encode()
    try:
        while data:
            data = data[os.write(fd, data) :]
    except BrokenPipeError:
        raise OutputClosed from None
    except OSError as exc:
        raise OutputError(f"cannot write standard output: {exc.strerror or exc}") from None


async def write_results(
    results: trio.MemoryReceiveChannel[PingResult],
    fd: int,
    formatter: Formatter,
    observe: Callable[[PingResult], None],
) -> None:
    """Write each result as ``formatter`` has it, until every sender has closed.

    Lines are gathered while results are waiting and written together as soon as none
    is; when results come thick and fast, the writer then rests for :data:`FLUSH_PAUSE`
    before it looks again (see :mod:`trio_ping._proto.batching`). A lone result is written at
    once, a stream of thousands costs a write every few milliseconds. Results already
    received when the task is cancelled (Ctrl-C) are still written.

    Raises:
        OutputClosed: standard output's reader went away.
        OutputError: standard output cannot be written.
    """
    pending: list[str] = []
    last_write = -math.inf
    try:
        while True:
            try:
                result = results.receive_nowait()
            except trio.WouldBlock:
                if pending:
                    write_all(fd, "".join(pending))
                    written = len(pending)
                    pending.clear()  # before the rest: a cancel there must not rewrite them
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
        if pending:
            write_all(fd, "".join(pending))
