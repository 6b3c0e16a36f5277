"""``python -m benchmarks.floor`` (as root): what the least Python pinger costs beside fping,
and what each of trio-ping's pieces adds to it.

Issue 18 asks trio-ping for at most 2x fping's CPU at 5,000 targets x 10 requests at 1 s
(the bench's case b). This measures how much of that budget the interpreter alone takes,
and where the rest goes: in a lab of its own, rounds of fping, of
``benchmarks/floor_pinger.py`` (a pinger with none of trio-ping's work but a ``sendto`` a
request and a read, a parse and a line a reply) and of the same with one more of
trio-ping's pieces at each rung (trio's run loop, the kernel's transmit stamps, a result
object a reply through a channel to a writer), and of trio-ping itself, interleaved, each
on case b's targets. Every program's CPU is its user + sys time (wait4) from start to
exit; the medians and their ratios to fping's are printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from benchmarks.batch import TIMEOUT_S, batch_cases  # noqa: E402 -- needs the path above
from tests.lab.addresses import answering  # noqa: E402
from tests.lab.netns import Lab, lab_context  # noqa: E402

_CASE_B = batch_cases(quick=False)["b"]  # the bench's own case b, not a copy of its figures
TARGETS = _CASE_B.targets
COUNT = _CASE_B.count
INTERVAL_MS = _CASE_B.interval_ms
_FLOOR = str(Path(__file__).with_name("floor_pinger.py"))
LADDER: tuple[tuple[str, ...], ...] = (
    (),
    ("trio",),
    ("trio", "stamps"),
    ("trio", "stamps", "results"),
)
"""The floor pinger's rungs: the steps of floor_pinger.py each adds."""


def main(argv: list[str] | None = None) -> int:
    """Run the rounds; print each program's CPU an echo and its ratio to fping's."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.floor")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args(argv)
    fping = shutil.which("fping")
    if fping is None:
        print("needs fping (apt-get install fping)", file=sys.stderr)
        return 1
    requests = TARGETS * COUNT
    with lab_context() as lab, tempfile.TemporaryDirectory() as scratch:
        address_file = Path(scratch) / "addresses.txt"
        address_file.write_text("".join(f"{answering(n)}\n" for n in range(1, TARGETS + 1)))
        lines_file = Path(scratch) / "targets.txt"
        lines_file.write_text(
            "".join(f"{answering(n)},{COUNT},{INTERVAL_MS}\n" for n in range(1, TARGETS + 1))
        )
        fping_options = ["-q", "-c", str(COUNT), "-i", "0", "-p", str(INTERVAL_MS)]
        fping_options += ["-t", str(TIMEOUT_S * 1000)]
        schedule = [str(address_file), str(COUNT), str(INTERVAL_MS)]
        programs: dict[str, tuple[list[str], Path | None]] = {
            "fping": ([fping, *fping_options, "-f", str(address_file)], None),
            **{
                " + ".join(("floor", *steps)): ([sys.executable, _FLOOR, *steps, *schedule], None)
                for steps in LADDER
            },
            "trio-ping": (
                [sys.executable, "-m", "trio_ping", "--timeout", str(TIMEOUT_S), "-"],
                lines_file,
            ),
        }
        costs: dict[str, list[float]] = {name: [] for name in programs}
        for round_number in range(1, options.rounds + 1):
            for name, (command, stdin_path) in programs.items():
                cpu, answered, status = _measured(lab, command, stdin_path, scratch)
                if status != 0 or (name != "fping" and answered != requests):
                    print(
                        f"{name}: exit {status}, {answered:,} of {requests:,} answered",
                        file=sys.stderr,
                    )
                    return 1
                costs[name].append(cpu / requests * 1e6)
                print(f"round {round_number} {name}: {cpu:.2f} s CPU", flush=True)
    reference = statistics.median(costs["fping"])
    print(f"Python {sys.version.split()[0]}, {TARGETS:,} x {COUNT} @ {INTERVAL_MS} ms")
    for name, values in costs.items():
        median = statistics.median(values)
        rounds = " ".join(f"{value:.2f}" for value in values)
        print(
            f"{name}: {median:.2f} us an echo, {median / reference:.2f}x fping "
            f"(user + sys, median of rounds {rounds})"
        )
    return 0


def _measured(
    lab: Lab, command: Sequence[str], stdin_path: Path | None, workdir: str
) -> tuple[float, int, int]:
    """CPU seconds (user + sys) of one run in the lab's client namespace, the replies it
    printed (a line not ending in -1), and its exit status."""
    with open(stdin_path or os.devnull, "rb") as stdin:
        process = subprocess.Popen(
            lab.command(command), stdin=stdin, stdout=subprocess.PIPE, cwd=workdir
        )
        assert process.stdout is not None
        stdout = process.stdout.read()
        _, wait_status, usage = os.wait4(process.pid, 0)
    answered = sum(1 for line in stdout.splitlines() if not line.endswith(b",-1"))
    return usage.ru_utime + usage.ru_stime, answered, os.waitstatus_to_exitcode(wait_status)


if __name__ == "__main__":
    sys.exit(main())
