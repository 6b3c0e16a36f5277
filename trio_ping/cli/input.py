"""Target lines as they come: the arguments in order, then standard input's lines."""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing

import trio

from trio_ping.cli.status import Run


async def target_lines(
    arguments: Sequence[str], stdin: int | None, run: Run
) -> AsyncGenerator[list[tuple[str, str]], None]:
    """(place, text) of each target, in batches as they come: the arguments in order,
    the lines of ``stdin`` (a descriptor, None if closed) where '-' is (or where there is
    no argument). A batch per read of stdin, not a line: at 20,000 lines, an async hop
    per line costs more than parsing it."""
    for number, argument in enumerate(arguments or ["-"], start=1):
        if argument != "-":
            yield [(f"argument {number}", argument)]
            continue
        if stdin is None:  # closed by the shell: descriptor 0 may be reused, don't read it
            run.error("cannot read standard input: it is closed")
            continue
        try:
            async with aclosing(_read_lines(stdin)) as chunks:
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
