"""``python -m benchmarks.instructions`` (as root): user-space instructions a CLI request.

The method of docs/performance.md ("Instruction counts"). In a lab of its own, the
trio-ping command line runs under valgrind (callgrind) against the kernel peer, once with
``--targets`` stdin lines ``ADDRESS,10,1000`` and once with ``ADDRESS,5,1000``. The
difference between the two counts, over the extra requests, is the instructions a request
with start-up cancelled out. Valgrind counts only user space, so the kernel's share never
enters; a count is deterministic for a given run, but the batches a run forms vary, so
compare medians of rounds made in one run of this script.

Each ``--python`` (default: this interpreter) is an environment with trio-ping installed;
with several, their rounds alternate (A/B), e.g. a compiled and a pure install. The
command line runs with the scratch folder as its working directory, so it imports the
package its interpreter has installed, not one lying in the current directory.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from benchmarks.parsers import parse_trio_ping  # noqa: E402 -- needs the path above
from tests.lab.addresses import answering  # noqa: E402
from tests.lab.netns import Lab, lab_context  # noqa: E402

COUNTS = (10, 5)
"""Requests a target in the long run and in the short one."""
INTERVAL_MS = 1000

_COLLECTED = re.compile(rb"Collected : (\d+)")


def main(argv: list[str] | None = None) -> int:
    """Run the rounds; print each count and, per interpreter, the median a request."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions")
    parser.add_argument("--targets", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--python",
        action="append",
        help="an interpreter with trio-ping installed (repeat to compare); default: this one",
    )
    options = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 1
    pythons: list[str] = options.python or [sys.executable]
    per_request: dict[str, list[float]] = {python: [] for python in pythons}
    extra_requests = options.targets * (COUNTS[0] - COUNTS[1])
    with lab_context() as lab, tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        for round_number in range(1, options.rounds + 1):
            # Alternate who goes first, so a drift of the machine's state favours none.
            order = pythons if round_number % 2 else pythons[::-1]
            for python in order:
                long_run, short_run = (
                    _counted(lab, workdir, python, options.targets, count) for count in COUNTS
                )
                if long_run is None or short_run is None:
                    print(f"{python}: NOT every request answered once", file=sys.stderr)
                    return 1
                cost = (long_run - short_run) / extra_requests
                per_request[python].append(cost)
                print(
                    f"round {round_number} {python}: {long_run:,} and {short_run:,} "
                    f"instructions, {cost:,.0f} a request",
                    flush=True,
                )
    print(f"{options.targets:,} targets, {COUNTS[0]} - {COUNTS[1]} requests each at 1 s")
    for python, costs in per_request.items():
        figures = " ".join(f"{cost:,.0f}" for cost in costs)
        print(f"{python}: median {statistics.median(costs):,.0f} a request (rounds {figures})")
    return 0


def _counted(lab: Lab, workdir: Path, python: str, targets: int, count: int) -> int | None:
    """User-space instructions of one CLI run under callgrind, or None unless every
    request was answered and printed once."""
    stdin_path = workdir / f"targets-{count}.txt"
    stdin_path.write_text(
        "".join(f"{answering(index)},{count},{INTERVAL_MS}\n" for index in range(1, targets + 1))
    )
    argv = lab.command(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={workdir / 'callgrind.out'}",
            python,
            "-m",
            "trio_ping",
            "-",
        ]
    )
    with stdin_path.open("rb") as stdin:
        process = subprocess.run(argv, stdin=stdin, capture_output=True, cwd=workdir, check=False)
    expected = {answering(index): count for index in range(1, targets + 1)}
    collected = _COLLECTED.search(process.stderr)
    if process.returncode != 0 or collected is None:
        return None
    if not parse_trio_ping(process.stdout, expected).clean:
        return None
    return int(collected.group(1))


if __name__ == "__main__":
    sys.exit(main())
