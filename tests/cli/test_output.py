"""The command line's output: formatting results and writing them to a descriptor."""

from __future__ import annotations

import errno
import math
import os
import pathlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import pytest
import trio
import trio.testing

from trio_ping.cli.output import (
    FLUSH_PAUSE,
    Backlog,
    OutputClosed,
    OutputError,
    format_csv,
    write_results,
)
from trio_ping.results import PingResult, Status

TARGET = "192.0.2.1"

# write_results ---------------------------------------------------------------------------


@contextmanager
def a_pipe() -> Iterator[tuple[int, int]]:
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    try:
        yield read_fd, write_fd
    finally:
        for fd in (read_fd, write_fd):
            with suppress(OSError):
                os.close(fd)


def read_now(fd: int) -> bytes:
    try:
        return os.read(fd, 1 << 16)
    except BlockingIOError:
        return b""


def result(seq: int, rtt_us: int | None = 250) -> PingResult:
    status = Status.REPLY if rtt_us is not None else Status.TIMEOUT
    return PingResult(TARGET, seq, status, rtt_us=rtt_us)


def ignore(_: PingResult) -> None:
    pass


def test_format_csv() -> None:
    assert format_csv(result(0, 250)) == "192.0.2.1,0,250\n"
    assert format_csv(result(3, None)) == "192.0.2.1,3,-1\n"
    error = PingResult(TARGET, 9, Status.ICMP_ERROR, reason="Destination Host Unreachable")
    assert format_csv(error) == "192.0.2.1,9,-1\n"


async def test_write_results_flushes_when_idle_before_the_channel_closes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    observed: list[PingResult] = []
    with a_pipe() as (read_fd, write_fd):
        send_channel, receive_channel = trio.open_memory_channel[PingResult](math.inf)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                write_results, receive_channel, write_fd, format_csv, observed.append
            )
            await trio.testing.wait_all_tasks_blocked()
            assert read_now(read_fd) == b""
            send_channel.send_nowait(result(0, 250))
            await trio.testing.wait_all_tasks_blocked()
            assert read_now(read_fd) == b"192.0.2.1,0,250\n"
            for seq in (1, 2, 3):
                send_channel.send_nowait(result(seq, None))
            # The writer rests FLUSH_PAUSE after a write, then writes all that came.
            await trio.sleep(FLUSH_PAUSE)
            await trio.testing.wait_all_tasks_blocked()
            assert read_now(read_fd) == b"192.0.2.1,1,-1\n192.0.2.1,2,-1\n192.0.2.1,3,-1\n"
            await send_channel.aclose()
        assert read_now(read_fd) == b""
    assert [r.seq for r in observed] == [0, 1, 2, 3]


async def test_write_results_gathers_a_burst_into_one_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writes: list[bytes] = []
    real_write = os.write

    with a_pipe() as (read_fd, write_fd):

        def counting_write(fd: int, data: bytes) -> int:
            if fd == write_fd:
                writes.append(bytes(data))
            return real_write(fd, data)

        monkeypatch.setattr(os, "write", counting_write)
        send_channel, receive_channel = trio.open_memory_channel[PingResult](math.inf)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write_results, receive_channel, write_fd, format_csv, ignore)
            await trio.testing.wait_all_tasks_blocked()
            for seq in range(100):
                send_channel.send_nowait(result(seq))
            await trio.testing.wait_all_tasks_blocked()
            assert len(writes) == 1
            await send_channel.aclose()
        monkeypatch.undo()
        assert read_now(read_fd).count(b"\n") == 100
    assert len(writes) == 1


async def test_write_results_writes_what_it_has_when_cancelled() -> None:
    with a_pipe() as (read_fd, write_fd):
        send_channel, receive_channel = trio.open_memory_channel[PingResult](math.inf)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write_results, receive_channel, write_fd, format_csv, ignore)
            await trio.testing.wait_all_tasks_blocked()
            send_channel.send_nowait(result(0))
            send_channel.send_nowait(result(1))
            nursery.cancel_scope.cancel()
        assert read_now(read_fd) == b"192.0.2.1,0,250\n192.0.2.1,1,250\n"
        send_channel.close()


async def test_write_results_raises_output_closed_when_the_reader_goes() -> None:
    with a_pipe() as (read_fd, write_fd):
        os.close(read_fd)
        send_channel, receive_channel = trio.open_memory_channel[PingResult](math.inf)
        send_channel.send_nowait(result(0))
        send_channel.close()
        with pytest.raises(OutputClosed):
            await write_results(receive_channel, write_fd, format_csv, lambda _: None)


# A stalled reader (issue 15) -------------------------------------------------------------


def fill(write_fd: int) -> int:
    """Fill a pipe until the kernel takes no more; how many bytes that took."""
    os.set_blocking(write_fd, False)
    filled = 0
    try:
        while True:
            filled += os.write(write_fd, b"x" * 4096)
    except BlockingIOError:
        pass
    finally:
        os.set_blocking(write_fd, True)
    return filled


def read_all(read_fd: int) -> bytes:
    data = b""
    while chunk := read_now(read_fd):
        data += chunk
    return data


def read_exactly(read_fd: int, size: int) -> bytes:
    """``size`` bytes, read as a reader does: the writer's thread may add more meanwhile."""
    os.set_blocking(read_fd, True)
    try:
        data = b""
        while len(data) < size:
            data += os.read(read_fd, size - len(data))
        return data
    finally:
        os.set_blocking(read_fd, False)


async def test_a_write_that_would_wait_leaves_the_event_loop_running() -> None:
    # The pipe is full: the write waits for the reader in a thread while the results that
    # come meanwhile gather, and go in the next write.
    with a_pipe() as (read_fd, write_fd):
        filled = fill(write_fd)
        send_channel, receive_channel = trio.open_memory_channel[PingResult](math.inf)
        backlog = Backlog(lambda: receive_channel.statistics().current_buffer_used, limit=2)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                write_results, receive_channel, write_fd, format_csv, ignore, backlog
            )
            await trio.testing.wait_all_tasks_blocked()
            send_channel.send_nowait(result(0))
            await trio.testing.wait_all_tasks_blocked()
            # The writer holds seq 0, waiting in its thread; this task still runs.
            assert backlog.size() == 1
            for seq in (1, 2):
                send_channel.send_nowait(result(seq))
            assert backlog.size() == 3
            room = trio.Event()

            async def wait_for_room() -> None:
                await backlog.wait_for_room()
                room.set()

            nursery.start_soon(wait_for_room)
            await trio.testing.wait_all_tasks_blocked()
            assert not room.is_set()  # more than the limit wait to be written
            assert read_exactly(read_fd, filled) == b"x" * filled  # the reader comes back
            await room.wait()
            await send_channel.aclose()
        assert read_all(read_fd) == b"192.0.2.1,0,250\n192.0.2.1,1,250\n192.0.2.1,2,250\n"
    assert backlog.size() == 0


async def test_results_are_written_when_cancelled_during_a_write_that_waits() -> None:
    with a_pipe() as (read_fd, write_fd):
        filled = fill(write_fd)
        send_channel, receive_channel = trio.open_memory_channel[PingResult](math.inf)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write_results, receive_channel, write_fd, format_csv, ignore)
            await trio.testing.wait_all_tasks_blocked()
            send_channel.send_nowait(result(0))
            await trio.testing.wait_all_tasks_blocked()
            send_channel.send_nowait(result(1))
            nursery.cancel_scope.cancel()  # a Ctrl-C while the reader is stalled
            assert read_exactly(read_fd, filled) == b"x" * filled
        assert read_all(read_fd) == b"192.0.2.1,0,250\n192.0.2.1,1,250\n"
        send_channel.close()


@pytest.mark.parametrize("kind", ["empty pipe", "regular file", "/dev/null"])
async def test_a_write_that_cannot_wait_takes_no_thread(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path, kind: str
) -> None:
    async def no_thread(*args: object, **kwargs: object) -> None:
        raise AssertionError("a thread hop for a write that cannot wait")

    monkeypatch.setattr(trio.to_thread, "run_sync", no_thread)
    with a_pipe() as (read_fd, write_fd):
        if kind == "empty pipe":
            fd = write_fd
        else:
            path = "/dev/null" if kind == "/dev/null" else tmp_path / "out"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT)
        send_channel, receive_channel = trio.open_memory_channel[PingResult](math.inf)
        for seq in range(3):
            send_channel.send_nowait(result(seq))
        send_channel.close()
        await write_results(receive_channel, fd, format_csv, ignore)
        if kind == "empty pipe":
            assert read_now(read_fd).count(b"\n") == 3
        else:
            os.close(fd)
        if kind == "regular file":
            assert (tmp_path / "out").read_bytes().count(b"\n") == 3


async def test_a_write_that_fails_part_way_is_not_repeated_by_the_final_flush(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A disk that fills: the first write takes part of the lines, the next is refused,
    # and later ones would succeed again (space freed meanwhile). What went out must not
    # go out a second time when the writer flushes on its way out.
    calls: list[bytes] = []

    def full_for_a_moment(fd: int, data: bytes | memoryview) -> int:
        calls.append(bytes(data))
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return 20 if len(calls) == 1 else len(data)

    with a_pipe() as (_, write_fd):
        monkeypatch.setattr(os, "write", full_for_a_moment)
        send_channel, receive_channel = trio.open_memory_channel[PingResult](math.inf)
        for seq in range(3):
            send_channel.send_nowait(result(seq))
        # The channel stays open: the lines are written as it runs dry, before the end.
        with pytest.raises(OutputError, match="No space left on device"):
            await write_results(receive_channel, write_fd, format_csv, ignore)
        monkeypatch.undo()
        send_channel.close()
    lines = b"".join(f"192.0.2.1,{seq},250\n".encode() for seq in range(3))
    assert calls == [lines, lines[20:]]


async def test_after_a_failed_write_nothing_more_is_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A write in the thread takes part of its lines and then fails; a result that came
    # meanwhile must not be written after the partial line on the way out (it would join
    # it into one row).
    entered, go = threading.Event(), threading.Event()
    calls: list[bytes] = []

    def slow_then_full(fd: int, data: bytes | memoryview) -> int:
        calls.append(bytes(data))
        if len(calls) == 1:
            entered.set()
            go.wait(10)
            return len(data) - 4  # all but the line's last 4 bytes
        raise OSError(errno.ENOSPC, "No space left on device")

    with a_pipe() as (_, write_fd):
        os.write(write_fd, b"unread")  # a pipe with unread data: the write takes the thread
        monkeypatch.setattr(os, "write", slow_then_full)
        send_channel, receive_channel = trio.open_memory_channel[PingResult](math.inf)
        send_channel.send_nowait(result(0))

        async def later() -> None:
            await trio.to_thread.run_sync(entered.wait, 10)
            send_channel.send_nowait(result(1))
            go.set()

        async def write() -> None:
            with pytest.raises(OutputError, match="No space left on device"):
                await write_results(receive_channel, write_fd, format_csv, ignore)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(write)
            nursery.start_soon(later)
        monkeypatch.undo()
        send_channel.close()
    line = b"192.0.2.1,0,250\n"
    assert calls == [line, line[-4:]]  # and not result 1's line after them
