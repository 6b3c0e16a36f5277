"""Batches at scale, trio-ping beside fping (cases a, b, c and h), judged by the speed
issue's targets.

Both programs get the same distinct addresses of the kernel peer's answering ranges, the
same count, interval and per-reply timeout, and print one line per reply (fping without
``-q``, its per-reply lines to a file like trio-ping's CSV), so both pay for output.
fping cannot run c or h (more than its 65,535 sequence numbers outstanding): c's CPU an
echo is set beside fping's in b, h is judged on its own (nothing lost, on schedule,
memory).

CPU time on a shared VM varies by a quarter from one run to the next, so each case runs
in rounds, trio-ping then fping, and each program's median round is the one reported:
drift over the minutes hits both alike. Every round of trio-ping must lose nothing.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from benchmarks.context import Bench
from benchmarks.measure import KernelWatch, Measured
from benchmarks.parsers import FpingOutput, TrioPingOutput, parse_fping, parse_trio_ping
from benchmarks.report import Row, ratio
from tests.lab import addresses

TIMEOUT_S = 2
"""Per-reply timeout for both programs (fping -t in ms, trio-ping --timeout in s)."""
ROUNDS = 3
"""Rounds per case (one with --quick)."""

_Output = TypeVar("_Output", TrioPingOutput, FpingOutput)


@dataclass(frozen=True)
class BatchCase:
    """One row of issue 3's benchmark table."""

    key: str
    title: str
    targets: int
    count: int
    interval_ms: int
    cpu_ratio_limit: float | None = None
    """trio-ping CPU / fping CPU must stay at or below this."""
    per_echo_ratio_limit: float | None = None
    """trio-ping's CPU an echo / fping's in case :attr:`per_echo_reference` (of the same
    run) must stay at or below this."""
    per_echo_reference: str | None = None
    rss_limit_mb: float | None = None
    wall_limit_s: float | None = None
    """The whole run, start to exit, must take no longer."""
    fping: bool = True
    """Whether fping runs it too (it refuses more than 65,535 requests outstanding)."""

    @property
    def requests(self) -> int:
        """Echo requests asked of each program."""
        return self.targets * self.count

    @property
    def label(self) -> str:
        """Short description for the table."""
        return f"{self.key} {self.targets:,} x {self.count} @ {self.interval_ms} ms"


def batch_cases(quick: bool) -> dict[str, BatchCase]:
    """The speed issue's four cases; ``quick`` shrinks them to a smoke run of seconds."""

    def sized(full: int, small: int) -> int:
        return small if quick else full

    count = sized(10, 3)
    return {
        "a": BatchCase("a", "burst", sized(10_000, 1_000), 1, 1, cpu_ratio_limit=3),
        "b": BatchCase("b", "many", sized(5_000, 500), count, 1000, cpu_ratio_limit=2),
        "c": BatchCase(
            "c", "scale", sized(20_000, 2_000), count, 1000, per_echo_ratio_limit=2,
            per_echo_reference="b", rss_limit_mb=200,
        ),
        # 100,000 requests a second for 10 s, "done within 11 s" from start to exit.
        "h": BatchCase(
            "h", "100,000 a second", sized(100_000, 10_000), count, 1000, rss_limit_mb=400,
            wall_limit_s=count + 1, fping=False,
        ),
    }  # fmt: skip


def _write_targets(bench: Bench, case: BatchCase) -> tuple[Path, Path, dict[str, int]]:
    """fping's address file, trio-ping's stdin lines, and address -> count."""
    targets = [addresses.answering_many(i) for i in range(1, case.targets + 1)]
    address_file = bench.workdir / f"{case.key}-addresses.txt"
    address_file.write_text("".join(f"{address}\n" for address in targets))
    lines_file = bench.workdir / f"{case.key}-lines.txt"
    lines_file.write_text(
        "".join(f"{address},{case.count},{case.interval_ms}\n" for address in targets)
    )
    return address_file, lines_file, dict.fromkeys(targets, case.count)


def _time_limit(case: BatchCase) -> float:
    return case.count * case.interval_ms / 1000 + TIMEOUT_S + 300


def _run_trio_ping(
    bench: Bench, case: BatchCase, lines_file: Path, expected: dict[str, int]
) -> tuple[Measured, TrioPingOutput]:
    watch = KernelWatch(bench.lab)
    run = bench.measure(
        [*bench.trio_ping, "--timeout", str(TIMEOUT_S)],
        stdin_path=lines_file,
        time_limit_s=_time_limit(case),
    )
    kernel = watch.delta()
    output = parse_trio_ping(run.stdout, expected)
    print(f"  trio-ping: {run.summary()}", flush=True)
    print(f"  trio-ping: {output.summary()}", flush=True)
    print(f"  trio-ping: {kernel.summary()}", flush=True)
    if run.stderr.strip():
        print(f"  trio-ping stderr: {run.stderr_tail()}", flush=True)
    return run, output


def _run_fping(
    bench: Bench, fping: str, case: BatchCase, address_file: Path
) -> tuple[Measured, FpingOutput]:
    argv = [fping, "-c", str(case.count), "-i", "0", "-t", str(TIMEOUT_S * 1000)]
    if case.count > 1:
        argv += ["-p", str(case.interval_ms)]
    argv += ["-f", str(address_file)]
    print(f"  fping: {' '.join(argv)}", flush=True)
    watch = KernelWatch(bench.lab)
    run = bench.measure(argv, time_limit_s=_time_limit(case))
    kernel = watch.delta()
    output = parse_fping(run.stdout, run.stderr)
    print(f"  fping: {run.summary()}", flush=True)
    print(f"  fping: {output.summary(case.requests)}", flush=True)
    print(f"  fping: {kernel.summary()}", flush=True)
    return run, output


def run_batch(bench: Bench, case: BatchCase, rounds: int = 1) -> Row:
    """Run one case with both programs, ``rounds`` times each, alternating, and judge
    trio-ping's median round against the issue's targets."""
    print(
        f"\n== {case.key}: {case.title}: {case.targets:,} targets x {case.count} echo "
        f"@ {case.interval_ms} ms ({case.requests:,} requests), timeout {TIMEOUT_S} s, "
        f"{rounds} round{'s' if rounds > 1 else ''}",
        flush=True,
    )
    address_file, lines_file, expected = _write_targets(bench, case)
    row = Row(case.label)
    print(
        f"  trio-ping: {' '.join(bench.trio_ping)} --timeout {TIMEOUT_S} "
        f"< {case.targets:,} lines 'ADDRESS,{case.count},{case.interval_ms}'",
        flush=True,
    )
    trio_rounds: list[tuple[Measured, TrioPingOutput]] = []
    fping_rounds: list[tuple[Measured, FpingOutput]] = []
    for number in range(1, rounds + 1):
        if rounds > 1:
            print(f"  -- round {number} of {rounds}", flush=True)
        trio_rounds.append(_run_trio_ping(bench, case, lines_file, expected))
        if bench.tools.fping is not None and case.fping:
            fping_rounds.append(_run_fping(bench, bench.tools.fping, case, address_file))
    trio, trio_output = _median_round(trio_rounds)
    if rounds > 1:
        print(f"  trio-ping CPU by round: {_seconds(trio_rounds)}", flush=True)
        if fping_rounds:
            print(f"  fping CPU by round: {_seconds(fping_rounds)}", flush=True)
    lost = sum(output.lost for _, output in trio_rounds)
    duplicates = sum(output.duplicates for _, output in trio_rounds)
    clean = all(output.clean and run.killed_after_s is None for run, output in trio_rounds)
    row.trio_ping = (
        f"{trio_output.answered:,}/{case.requests:,} answered, wall {trio.wall_s:.2f} s, "
        f"{_cpu_text(trio)}, RSS {trio.rss_mb:.0f} MB"
    )
    if rounds > 1:
        row.trio_ping += f" (the median round of {rounds})"
    for run, _ in trio_rounds:
        if run.returncode not in (0, 1) or run.stderr.strip():
            row.notes.append(f"trio-ping exit {run.returncode}: {run.stderr_tail()}")
            break

    fping: tuple[Measured, FpingOutput] | None = None
    if not case.fping:
        row.reference = "fping cannot run it (more than 65,535 requests outstanding)"
    elif bench.tools.fping is None:
        reason = bench.tools.skip_reason("fping")
        print(f"  fping: SKIPPED: {reason}", flush=True)
        row.reference = f"fping skipped: {reason}"
    else:
        fping = _median_round(fping_rounds)
        run, output = fping
        figures = f"wall {run.wall_s:.2f} s, {_cpu_text(run)}, RSS {run.rss_mb:.0f} MB"
        if output.error:
            # "fping error: not enough sequence numbers available! (expire_timeout=...)"
            said = output.error.split(" (", 1)[0].removeprefix("fping error: ").rstrip("!")
            row.reference = (
                f"fping failed, exit {run.returncode} after {output.answered:,} replies: "
                f"'{said}' ({figures})"
            )
        else:
            row.reference = f"fping {output.answered:,}/{case.requests:,} answered, {figures}"

    per_echo = trio.cpu_s / case.requests * 1e6
    # fping's cost an echo over the echoes it got answered, kept for the cases that set
    # theirs beside it (c beside b: fping cannot run c).
    if fping is not None and fping[1].answered and fping[1].error is None:
        bench.fping_per_echo_us[case.key] = fping[0].cpu_s / fping[1].answered * 1e6
    reference = case.per_echo_reference or case.key
    fping_per_echo = bench.fping_per_echo_us.get(reference)
    fping_text = ""
    per_echo_ratio = None
    if fping_per_echo is not None:
        per_echo_ratio = ratio(per_echo, fping_per_echo)
        fping_text = f"fping {fping_per_echo:.1f} us in {reference}"
        if per_echo_ratio is not None:
            fping_text += f", {per_echo_ratio:.2f}x"
    per_echo_text = f"trio-ping {per_echo:.1f} us" + (f", {fping_text}" if fping_text else "")
    print(f"  CPU per echo: {per_echo_text}", flush=True)
    row.check(
        "0 lost",
        f"{lost} lost, {duplicates} dup" + (f" in {rounds} rounds" if rounds > 1 else ""),
        clean,
    )
    if case.cpu_ratio_limit is not None:
        target = f"CPU <= {case.cpu_ratio_limit:g}x fping"
        usable = fping is not None and fping[1].error is None and fping[0].returncode in (0, 1)
        cpu_ratio = ratio(trio.cpu_s, fping[0].cpu_s) if fping is not None and usable else None
        if cpu_ratio is None:
            row.check(target, "no fping figure", None)
        else:
            row.check(target, f"{cpu_ratio:.2f}x", cpu_ratio <= case.cpu_ratio_limit)
    if case.per_echo_ratio_limit is not None:
        target = (
            f"CPU an echo <= {case.per_echo_ratio_limit:g}x fping's in {case.per_echo_reference}"
        )
        if per_echo_ratio is None:
            row.check(target, f"{per_echo:.1f} us, no fping figure", None)
        else:
            row.check(
                target,
                f"{per_echo:.1f} us, {per_echo_ratio:.2f}x",
                per_echo_ratio <= case.per_echo_ratio_limit,
            )
    if case.wall_limit_s is not None:
        slowest = max(run.wall_s for run, _ in trio_rounds)
        row.check(
            f"done within {case.wall_limit_s:g} s (every round)",
            f"slowest {slowest:.2f} s",
            slowest <= case.wall_limit_s,
        )
    if case.rss_limit_mb is not None:
        row.check(
            f"RSS <= {case.rss_limit_mb:g} MB",
            f"{trio.rss_mb:.0f} MB",
            trio.rss_mb <= case.rss_limit_mb,
        )
    return row


def _median_round(
    rounds: list[tuple[Measured, _Output]],
) -> tuple[Measured, _Output]:
    """The round whose CPU time is the median (the lower middle one of an even number)."""
    ordered = sorted(rounds, key=lambda pair: pair[0].cpu_s)
    return ordered[(len(ordered) - 1) // 2]


def _cpu_text(run: Measured) -> str:
    """CPU time with its split: the kernel's share is much the same for both programs
    (each pays for its own sends and receives, and on veth for part of the peer's
    work), so the split shows where they differ."""
    return f"CPU {run.cpu_s:.2f} s (user {run.user_s:.2f}, sys {run.sys_s:.2f})"


def _seconds(rounds: list[tuple[Measured, _Output]]) -> str:
    cpu = [run.cpu_s for run, _ in rounds]
    return ", ".join(f"{value:.2f}" for value in cpu) + f" s (median {statistics.median(cpu):.2f})"
