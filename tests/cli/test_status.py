"""The CLI's bookkeeping, without a network: what is said on stderr, and the exit status."""

from __future__ import annotations

import io

import pytest

from trio_ping.cli.output import format_csv
from trio_ping.cli.status import ExitStatus, Run
from trio_ping.results import PingResult, Status

REPLY = PingResult("192.0.2.1", 0, Status.REPLY, rtt_us=10)
TIMEOUT = PingResult("192.0.2.1", 1, Status.TIMEOUT)


def _run(*, verbose: bool = False) -> tuple[Run, io.StringIO]:
    stderr = io.StringIO()
    return Run(stderr, verbose, format_csv), stderr


def test_user_space_rtts_are_noted_once_under_verbose() -> None:
    run, stderr = _run(verbose=True)
    for seq in range(3):
        run.observe(PingResult("192.0.2.1", seq, Status.REPLY, rtt_us=10, kernel_timestamp=False))
    assert stderr.getvalue() == (
        "trio-ping: the kernel gave no receive timestamps: RTTs are measured in user space "
        "and include scheduling delay\n"
    )
    assert run.exit_status() is ExitStatus.OK


def test_user_space_rtts_are_not_noted_without_verbose() -> None:
    run, stderr = _run()
    run.observe(PingResult("192.0.2.1", 0, Status.REPLY, rtt_us=10, kernel_timestamp=False))
    assert stderr.getvalue() == ""


def test_a_refused_destination_is_said_once_but_counts_every_time() -> None:
    run, stderr = _run()
    for seq in range(3):
        run.observe(
            PingResult("192.0.2.255", seq, Status.SEND_FAILED, reason="Permission denied", errno=13)
        )
    assert stderr.getvalue() == "trio-ping: cannot send to 192.0.2.255: Permission denied\n"
    assert run.errors == 3
    assert run.exit_status() is ExitStatus.ERROR


@pytest.mark.parametrize(
    ("results", "errors", "signal_number", "closed", "status"),
    [
        ([REPLY], 0, None, False, ExitStatus.OK),
        ([REPLY, TIMEOUT], 0, None, False, ExitStatus.UNANSWERED),
        ([TIMEOUT], 1, None, False, ExitStatus.ERROR),
        ([TIMEOUT], 1, None, True, ExitStatus.OUTPUT_CLOSED),
        ([TIMEOUT], 1, 2, True, ExitStatus.INTERRUPTED),
        ([REPLY], 0, 15, False, ExitStatus.TERMINATED),
    ],
)
def test_the_exit_status_that_says_the_most_wins(
    results: list[PingResult],
    errors: int,
    signal_number: int | None,
    closed: bool,
    status: ExitStatus,
) -> None:
    run, _ = _run()
    for result in results:
        run.observe(result)
    for _ in range(errors):
        run.error("line 1: bad")
    run.signal_number = signal_number
    run.output_closed = closed
    assert run.exit_status() is status
    assert int(status) in (0, 1, 2, 130, 141, 143)
