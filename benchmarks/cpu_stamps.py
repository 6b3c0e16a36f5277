"""``python -m benchmarks.cpu_stamps`` (as root): what transmit stamps cost the whole CLI.

In a lab of its own, the trio-ping command line runs 5,000 stdin lines ``ADDRESS,10,1000``
(5,000 targets x 10 requests at 1 s, the bench's case b) against the kernel peer, in
rounds alternating between stamps on (as shipped: the driver's stamp, SND, alone) and
stamps off (``send_stamps.enable`` made to answer False, the fallback path: send times
read in user space). The child's user + sys time (wait4) a request, the median of each,
and their difference: the cost of the kernel's stamps, their draining and their
matching, end to end. ``--with-sched`` asks for the queueing layer's stamp too from the
start (``send_stamps.QUEUE_FLAGS``: two error-queue entries a request), what a socket
falls back to where the driver stamps nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from benchmarks.batch import batch_cases  # noqa: E402 -- needs the path above
from benchmarks.parsers import parse_trio_ping  # noqa: E402
from tests.lab.addresses import answering  # noqa: E402
from tests.lab.netns import Lab, lab_context  # noqa: E402

_CASE_B = batch_cases(quick=False)["b"]  # the bench's own case b, not a copy of its figures
TARGETS = _CASE_B.targets
COUNT = _CASE_B.count
INTERVAL_MS = _CASE_B.interval_ms

_PRELUDE = """\
import sys
from trio_ping._io import send_stamps
mode = sys.argv.pop(1)
if mode == "off":
    send_stamps.enable = lambda sock, flags=0: False
elif mode == "with-sched":
    send_stamps.TX_FLAGS = send_stamps.QUEUE_FLAGS  # read by IcmpSocket.__init__
from trio_ping.cli import main
sys.exit(main())
"""


def main(argv: list[str] | None = None) -> int:
    """Run the rounds; print the CPU a request with and without stamps."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cpu_stamps")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument(
        "--with-sched",
        action="store_true",
        help="stamps on with TX_SCHED from the start: SND and SCHED, twice the entries",
    )
    options = parser.parse_args(argv)
    on_mode = "with-sched" if options.with_sched else "on"
    costs: dict[bool, list[float]] = {False: [], True: []}
    requests = TARGETS * COUNT
    with lab_context() as lab, tempfile.TemporaryDirectory() as scratch:
        stdin_path = Path(scratch) / "targets.txt"
        stdin_path.write_text(
            "".join(
                f"{answering(index)},{COUNT},{INTERVAL_MS}\n" for index in range(1, TARGETS + 1)
            )
        )
        _measured(lab, stdin_path, on_mode)  # warm up: bytecode, the peer's neighbours
        for round_number in range(1, options.rounds + 1):
            for stamps in (round_number % 2 == 1, round_number % 2 == 0):
                cpu, clean = _measured(lab, stdin_path, on_mode if stamps else "off")
                label = on_mode if stamps else "off"
                print(
                    f"round {round_number} stamps {label}: {cpu:.2f} s CPU, "
                    f"{cpu / requests * 1e6:.2f} us a request"
                    + ("" if clean else " (NOT every request answered once)"),
                    flush=True,
                )
                if not clean:
                    return 1
                costs[stamps].append(cpu / requests * 1e6)
    off, on = statistics.median(costs[False]), statistics.median(costs[True])
    print(f"Python {sys.version.split()[0]}, {TARGETS:,} x {COUNT}, {options.rounds} rounds each")
    print(f"stamps off: {off:.2f} us a request (user + sys, median; rounds {_fmt(costs[False])})")
    print(f"stamps {on_mode}:  {on:.2f} us a request (rounds {_fmt(costs[True])})")
    print(f"stamps cost: {on - off:+.2f} us a request ({(on - off) / off * 100:+.1f} %)")
    return 0


def _measured(lab: Lab, stdin_path: Path, mode: str) -> tuple[float, bool]:
    """CPU seconds (user + sys, the child and what it waited for) of one CLI run, and
    whether every request was answered and printed once."""
    argv = lab.command([sys.executable, "-c", _PRELUDE, mode, "-"])
    with stdin_path.open("rb") as stdin:
        process = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE)
        assert process.stdout is not None
        stdout = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    expected = {answering(index): COUNT for index in range(1, TARGETS + 1)}
    clean = parse_trio_ping(stdout, expected).clean and process.returncode == 0
    return usage.ru_utime + usage.ru_stime, clean


def _fmt(values: list[float]) -> str:
    return " ".join(f"{value:.2f}" for value in values)


if __name__ == "__main__":
    sys.exit(main())
