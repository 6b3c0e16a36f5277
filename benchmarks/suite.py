"""``python -m benchmarks [--quick] [CASE ...]``: build the lab, run the cases, print the table.

Cases (all by default):

- a, b, c, h (issues 3 and 18): trio-ping beside fping on 10,000 x 1, 5,000 x 10 and
  20,000 x 10 requests to distinct addresses of the kernel peer, and trio-ping alone on
  100,000 x 10 (100,000 requests a second), judged by the speed issue's targets;
- d, e, f (issue 6): RTT beside iputils ping, pacing seen by tcpdump, start-up time;
- g (issue 17): the exporter's soak, 10,000 hosts at 1 s for 5 minutes.

Everything runs inside the lab's client namespace, built here and removed at the end,
and is sent only to the lab's addresses (:mod:`tests.lab.addresses`) and loopback.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks.batch import ROUNDS, batch_cases, run_batch
from benchmarks.context import Bench
from benchmarks.measure import wrapper_cpu
from benchmarks.measurement import run_pacing, run_rtt, run_startup
from benchmarks.parsers import parse_trio_ping
from benchmarks.report import Row, table
from benchmarks.soak import run_soak
from benchmarks.tools import Tools, find_tools, version_line
from tests.lab import addresses
from tests.lab.netns import Lab, trio_ping_command

CASES: dict[str, str] = {
    "a": f"burst: 10,000 targets x 1 echo, trio-ping vs fping -c1 -i0, {ROUNDS} rounds each",
    "b": f"5,000 x 10 @ 1000 ms, trio-ping vs fping -c10 -p1000 -i0, {ROUNDS} rounds each",
    "c": f"20,000 x 10 @ 1000 ms, trio-ping (fping refuses: seq limit), {ROUNDS} rounds each",
    "h": f"100,000 x 10 @ 1000 ms: 100,000 requests a second, trio-ping alone, {ROUNDS} rounds",
    "d": "RTT: trio-ping vs iputils ping -c 10 -i 0.01, interleaved 3 times, each against tcpdump",
    "e": "pacing: tcpdump sees 10 requests at 1 ms, 3 runs",
    "f": "start-up: trio-ping 127.0.0.1,1,1 vs python -c 'import trio'",
    "g": "soak: trio-ping-exporter, 10,000 hosts @ 1 s for 5 min (quick: 1,000 for 60 s)",
}
_ALIASES = {
    "burst": "a",
    "many": "b",
    "scale": "c",
    "100k": "h",
    "rtt": "d",
    "pacing": "e",
    "startup": "f",
    "soak": "g",
}


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="trio-ping beside fping, iputils ping and tcpdump, in a namespace lab.",
        epilog="cases:\n" + "\n".join(f"  {key}  {text}" for key, text in CASES.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="shrink a-c and f for a smoke run of under a minute"
    )
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="do not apt-get install missing tools; skip their comparisons",
    )
    parser.add_argument(
        "cases",
        nargs="*",
        metavar="CASE",
        help="a-h (or burst, many, scale, 100k, rtt, pacing, startup, soak); default: all",
    )
    arguments = parser.parse_args(argv)
    chosen: list[str] = []
    for name in arguments.cases:
        key = _ALIASES.get(name.lower(), name.lower())
        if key not in CASES:
            parser.error(f"unknown case {name!r}: choose from {', '.join(CASES)}")
        if key not in chosen:
            chosen.append(key)
    arguments.cases = sorted(chosen) or list(CASES)
    return arguments


def _child_environment() -> dict[str, str]:
    """The environment for every child: ours, but letting Python cache bytecode.

    With PYTHONDONTWRITEBYTECODE set (as on some build machines) an editable install
    recompiles trio_ping on every start, which is not how it runs once installed.
    """
    environment = dict(os.environ)
    if environment.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
        print(
            "note: PYTHONDONTWRITEBYTECODE is set here; children run without it, so "
            "trio_ping's bytecode is cached as in a normal install",
            flush=True,
        )
    return environment


def _header(command: str, tools: Tools, python: str, trio_ping: Sequence[str]) -> list[str]:
    lines = [
        f"command: {command}",
        f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; "
        f"kernel {platform.release()}; {os.cpu_count()} CPUs; Python {platform.python_version()}",
        f"trio-ping: {' '.join(trio_ping)} ({python})",
    ]
    for name, path, flag in (
        ("fping", tools.fping, "-v"),
        ("ping", tools.ping, "-V"),
        ("tcpdump", tools.tcpdump, "--version"),
    ):
        lines.append(f"{name}: {version_line(path, flag) if path else 'missing'}")
    rss = (
        "GNU time %M of the program alone"
        if tools.gnu_time
        else "wait4 ru_maxrss (GNU time missing: at least this harness's own RSS)"
    )
    lines.append(
        "method: wall = fork to exit; CPU = user+sys of the child (wait4), less the "
        "wrappers' median (the user and sys shown include them); "
        f"RSS = {rss}; all runs in the lab's client namespace"
    )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen cases and print the table; 0 when the harness ran, 2 when it could not.

    A missed target is a result, not an error: it does not change the exit status.
    """
    arguments = _parse(argv)
    shown = ["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None else argv)]
    command = shlex.join(shown)
    print(f"$ {command}", flush=True)
    if os.geteuid() != 0:
        print(
            "benchmarks: need root (network namespaces, raw sockets, tcpdump): "
            "run 'sudo nox -s bench' or 'sudo python -m benchmarks'",
            flush=True,
        )
        return 2
    tools = find_tools(install=not arguments.no_install)
    environment = _child_environment()
    trio_ping = tuple(trio_ping_command())
    rows: list[Row] = []
    interrupted = False
    started = time.monotonic()
    lab = Lab.build()
    print(f"lab: namespaces {lab.client}, {lab.peer}, {lab.misbehaving}", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="trio-ping-bench-") as workdir:
            wrapper = wrapper_cpu(lab.command, tools.gnu_time)
            print(
                f"wrappers: 'ip netns exec' + GNU time cost {wrapper * 1000:.1f} ms CPU "
                "(median of 7): taken off each measured CPU time",
                flush=True,
            )
            bench = Bench(
                lab=lab,
                tools=tools,
                trio_ping=trio_ping,
                python=sys.executable,
                workdir=Path(workdir),
                quick=arguments.quick,
                env=environment,
                wrapper_cpu_s=wrapper,
            )
            # One unmeasured run first: bytecode, page cache, the peer's neighbour entry;
            # and proof that trio-ping runs at all, or nothing below means anything.
            first = {addresses.answering(1): 1, addresses.LOOPBACK: 1}
            warm_up = lab.run(
                [*trio_ping, *(f"{address},1,1" for address in first)],
                capture_output=True,
                env=environment,
                timeout=60,
            )
            if not parse_trio_ping(warm_up.stdout, first).clean:
                tail = warm_up.stderr.decode(errors="replace").strip().splitlines()[-3:]
                print(
                    f"benchmarks: trio-ping does not work here (exit {warm_up.returncode}, "
                    f"stdout {warm_up.stdout!r}): {' / '.join(tail)}",
                    flush=True,
                )
                return 2
            batches = batch_cases(arguments.quick)
            runners: dict[str, Callable[[], Row]] = {
                "d": lambda: run_rtt(bench),
                "e": lambda: run_pacing(bench),
                "f": lambda: run_startup(bench),
                "g": lambda: run_soak(bench),
            }
            for key in arguments.cases:
                if key in batches:
                    rounds = 1 if arguments.quick else ROUNDS
                    rows.append(run_batch(bench, batches[key], rounds))
                else:
                    rows.append(runners[key]())
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: the table below has the cases that finished", flush=True)
    finally:
        lab.destroy()
        print(f"\nlab: removed ({time.monotonic() - started:.0f} s of benchmarks)", flush=True)
    header = _header(command, tools, sys.executable, trio_ping)
    print()
    print("\n".join(header))
    print()
    print(table(rows))
    if interrupted or arguments.quick or arguments.cases != list(CASES):
        print(f"\n{RESULTS.name} is kept as it was: only a full run (every case) rewrites it")
    else:
        RESULTS.write_text(results_page(header, table(rows)))
        print(f"\nwritten: {RESULTS}")
    return 130 if interrupted else 0


RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
"""Where a full run's figures go, replacing the last run's."""


def results_page(header: Sequence[str], rendered: str) -> str:
    """benchmarks/RESULTS.md for a full run: its header and its table."""
    return (
        "# Benchmark results\n\n"
        "The latest full run of `nox -s bench` (`python -m benchmarks`), written by the run "
        "itself and\nreplaced by the next one. How to read it, and how the figures have "
        "moved:\n[docs/performance.md](../docs/performance.md).\n\n"
        "```\n" + "\n".join(header) + "\n```\n\n"
        "Cases a to c and h run three rounds, trio-ping then fping each time (fping not in "
        "h); each\nprogram's median round is shown.\n\n" + rendered + "\n"
    )
