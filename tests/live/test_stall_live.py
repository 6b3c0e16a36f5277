"""Issue 15.1, live: a stalled reader or a stopped process never turns an answer into -1.

The real command in the lab's client namespace against the kernel peer, which answers
within microseconds: every request is answered, so any -1 is a false loss. The stalls
are real time on purpose (a reader that does not read, a process stopped), so these
tests sleep: what they test is what happens while nothing else does.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
import time

from tests.lab.addresses import answering
from tests.lab.netns import Lab
from tests.lab.run import CSV_LINE, Row, by_address, spawn_trio_ping
from trio_ping.cli.output import BACKLOG_LIMIT

COUNT = 10


def target_lines(lines: int, interval_ms: int, width: int = 0) -> list[bytes]:
    """``lines`` stdin lines ADDRESS,COUNT,INTERVAL_MS, each to its own answering address,
    padded with spaces (which a line may carry) to ``width`` bytes."""
    return [
        f"{answering(index)},{COUNT},{interval_ms}".ljust(width).encode() + b"\n"
        for index in range(1, lines + 1)
    ]


def rows_of(output: bytes) -> list[Row]:
    rows = []
    for line in output.decode().splitlines():
        match = CSV_LINE.fullmatch(line)
        assert match, f"not an ADDRESS,SEQ,RTT_US line: {line!r}"
        rows.append(Row(match["address"], int(match["seq"]), int(match["rtt"])))
    return rows


def assert_every_request_answered(output: bytes, lines: int) -> None:
    rows = rows_of(output)
    false_losses = [row for row in rows if row.rtt_us == -1]
    assert false_losses == [], f"{len(false_losses)} answered requests printed as -1"
    groups = by_address(rows)
    assert sorted(groups) == sorted(answering(index) for index in range(1, lines + 1))
    assert all([row.seq for row in group] == list(range(COUNT)) for group in groups.values())


def finish(process: subprocess.Popen[bytes]) -> tuple[bytes, bytes, int]:
    """Read stdout and stderr to their ends (stdin already closed); the exit status."""
    assert process.stdout is not None
    assert process.stderr is not None
    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.append(process.stderr.read()))  # type: ignore[union-attr]
    reader.start()
    output = process.stdout.read()
    reader.join(timeout=60)
    return output, errors[0], process.wait(timeout=60)


def test_a_reader_stalled_for_8_s_loses_nothing(lab: Lab) -> None:
    # 10,000 results, all answered within a millisecond, 2 s of requests; the reader reads
    # nothing for 8 s (a pipe holds about 3,000 lines), then everything.
    with spawn_trio_ping(lab) as process:
        assert process.stdin is not None
        process.stdin.write(b"".join(target_lines(1000, 200)))
        process.stdin.close()
        time.sleep(8)
        output, stderr, status = finish(process)
    assert_every_request_answered(output, 1000)
    assert (status, stderr) == (0, b"")


def test_a_run_stopped_for_7_s_then_continued_loses_nothing(lab: Lab) -> None:
    # Stopped while requests are in flight: their replies reach the kernel within
    # microseconds and wait there, and their 5 s deadlines pass while the process is
    # stopped. A reply that came before its deadline answers its request.
    with spawn_trio_ping(lab) as process:
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(b"".join(target_lines(1000, 200)))
        process.stdin.close()
        ready, _, _ = select.select([process.stdout], [], [], 15)
        assert ready, "no output within 15 s"
        # `ip netns exec` execs the command: the process is trio-ping itself.
        os.kill(process.pid, signal.SIGSTOP)
        try:
            time.sleep(7)
        finally:
            os.kill(process.pid, signal.SIGCONT)
        output, stderr, status = finish(process)
    assert_every_request_answered(output, 1000)
    assert (status, stderr) == (0, b"")


def test_input_waits_while_output_is_stalled_then_resumes(lab: Lab) -> None:
    # Lines padded to 1,000 bytes, so that the stdin pipe holds few of them. The first
    # lines make more results than BACKLOG_LIMIT and a pipe hold, within 10 ms each; the
    # rest come one a millisecond (the feed's own rhythm), and once BACKLOG_LIMIT results
    # wait to be written trio-ping stops reading them: the test's writes find no room.
    lines = target_lines(2 * BACKLOG_LIMIT // COUNT, 1, width=1000)
    burst = 5 * BACKLOG_LIMIT // (4 * COUNT)
    with spawn_trio_ping(lab) as process:
        assert process.stdin is not None
        stdin = process.stdin.fileno()
        os.set_blocking(stdin, False)
        accepted = 0
        while accepted < len(lines):
            try:
                os.write(stdin, lines[accepted])  # 1,000 bytes: under PIPE_BUF, whole
            except BlockingIOError:
                # A run reads its stdin as soon as there is room: 3 s without means it
                # has stopped reading.
                _, writable, _ = select.select([], [stdin], [], 3)
                if not writable:
                    break
                continue
            accepted += 1
            if accepted > burst:
                time.sleep(0.001)
        assert accepted < len(lines), "the input never paused"
        # It paused only once more than BACKLOG_LIMIT results were unwritten, not before.
        assert accepted * COUNT > BACKLOG_LIMIT
        reading: list[bytes] = []
        assert process.stdout is not None
        reader = threading.Thread(target=lambda: reading.append(process.stdout.read()))  # type: ignore[union-attr]
        reader.start()  # the reader is back: the input resumes
        os.set_blocking(stdin, True)
        for line in lines[accepted:]:
            process.stdin.write(line)
        process.stdin.close()
        status = process.wait(timeout=60)
        reader.join(timeout=60)
        assert process.stderr is not None
        stderr = process.stderr.read()
    assert_every_request_answered(reading[0], len(lines))
    assert (status, stderr) == (0, b"")
