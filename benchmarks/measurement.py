"""Issue 6: measurement truth (cases d, e and f).

- d, RTT: trio-ping and iputils ping to the same kernel-peer address, interleaved, each
  request's RTT also against its round trip on the wire (tcpdump's nanosecond stamps of
  arrivals at both ends of the client's veth pair: see ``_on_the_wire``).
- e, pacing: tcpdump on the client's veth (kernel timestamps of packets leaving) while
  trio-ping sends 10 requests 1 ms apart.
- f, start-up: a whole trio-ping run to loopback against ``python -c 'import trio'``.
"""

from __future__ import annotations

import itertools
import os
import re
import selectors
import subprocess
import time
from collections.abc import Callable, Sequence

from benchmarks.context import Bench
from benchmarks.measure import median, percentile
from benchmarks.parsers import (
    parse_iputils_ping_by_seq,
    parse_tcpdump_times_ns,
    parse_trio_ping,
)
from benchmarks.report import Row, ratio
from tests.lab import addresses

RTT_ROUNDS = 3
RTT_COUNT = 10
RTT_INTERVAL_MS = 10
RTT_LIMIT_US = 15.0
# One-sided: trio-ping's median RTT may be at most this much above iputils ping's, and any
# amount below it. Its RTTs start from the kernel's transmit stamp (the driver's, SND) and
# end at the kernel's receive stamp, while ping's start from a time read in user space
# before sendmsg: ping's include its own send path (30 to 40 us on the lab VM), trio-ping's
# do not, so trio-ping now reads 30 to 40 us below ping, and nearer the wire (the wire
# checks judge that). Being below ping is no fault; being well above it would be one.
_RTT_CHECK = f"median no more than {RTT_LIMIT_US:g} us above ping"

PACING_RUNS = 3
PACING_COUNT = 10
PACING_INTERVAL_US = 1000
PACING_P90_LIMIT_US = 100.0
PACING_SPAN_TOLERANCE_US = 300.0

STARTUP_RATIO_LIMIT = 1.1  # the speed issue's bound (issue 6 had 1.2)


def _fmt(values: Sequence[float]) -> str:
    return " ".join(f"{value:.0f}" for value in values)


# -- d: RTT -----------------------------------------------------------------------------

_Rtts = dict[int, float]
"""RTTs in us by sequence number."""

WIRE_MEDIAN_LIMIT_US = 3.0
WIRE_WORST_LIMIT_US = 20.0
WIRE_FIRST_LIMIT_US = 20.0
_WIRE_LINE = re.compile(
    rb"^(\d+)\.(\d+) IP6? (\S+) > (\S+): ICMP6?,? echo (request|reply),? id (\d+), seq (\d+)",
    re.MULTILINE,
)


def _trio_ping_rtts(bench: Bench, address: str, count: int, interval_ms: int) -> dict[int, float]:
    """trio-ping's RTT of each request, by sequence number (from 0)."""
    completed = bench.lab.run(
        [*bench.trio_ping, "--timeout", "2", f"{address},{count},{interval_ms}"],
        capture_output=True,
        env=bench.env,
        timeout=60,
    )
    output = parse_trio_ping(completed.stdout, {address: count})
    if not output.clean:
        print(f"    trio-ping: {output.summary()} (exit {completed.returncode})", flush=True)
    rtts: dict[int, float] = {}
    for line in completed.stdout.decode(errors="replace").splitlines():
        fields = line.split(",")
        if len(fields) == 3 and fields[0] == address and int(fields[2]) >= 0:
            rtts.setdefault(int(fields[1]), float(fields[2]))
    return rtts


def _iputils_rtts(bench: Bench, ping: str, address: str, count: int) -> dict[int, float]:
    """iputils ping's RTT of each request, by its icmp_seq (from 1)."""
    interval = f"{RTT_INTERVAL_MS / 1000:g}"
    completed = bench.lab.run(
        [ping, "-n", "-c", str(count), "-i", interval, address],
        capture_output=True,
        env=bench.env,
        timeout=60,
    )
    rtts = parse_iputils_ping_by_seq(completed.stdout)
    if len(rtts) != count:
        tail = completed.stderr.decode(errors="replace").strip()
        print(f"    ping: {len(rtts)}/{count} replies (exit {completed.returncode}) {tail}")
    return rtts


def _wire_stamps(stdout: bytes, kind: bytes) -> dict[int, int]:
    """The first tcpdump stamp (ns) of each echo ``kind`` (request or reply) by sequence
    number (one identifier a capture: one program ran)."""
    stamps: dict[int, int] = {}
    for match in _WIRE_LINE.finditer(stdout):
        if match[5] == kind:
            stamp_ns = int(match[1]) * 1_000_000_000 + int(match[2].ljust(9, b"0")[:9])
            stamps.setdefault(int(match[7]), stamp_ns)
    return stamps


def _wire_rtts(requests: bytes, replies: bytes) -> dict[int, float]:
    """Each echo's round trip on the lab's client link, in us, by sequence number: its
    reply's arrival at the client's end minus its request's arrival at the peer's."""
    sent = _wire_stamps(requests, b"request")
    answered = _wire_stamps(replies, b"reply")
    return {seq: (answered[seq] - sent[seq]) / 1000 for seq in sent if seq in answered}


def _capture(
    bench: Bench, tcpdump: str, namespace: str, device: str, packet_filter: str, count: int
) -> subprocess.Popen[bytes] | None:
    """tcpdump of what arrives on ``device`` (``-Q in``), listening once this returns;
    None if it never started."""
    process = bench.lab.spawn(
        [tcpdump, "-i", device, "-Q", "in", "-nn", "-tt",
         "--time-stamp-precision=nano", "-c", str(count), packet_filter],
        namespace=namespace,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=bench.env,
    )  # fmt: skip
    try:
        _wait_for(process, b"listening on", 15)
    except TimeoutError as exc:
        process.kill()
        process.communicate()
        print(f"    tcpdump never started listening on {device}: {exc}", flush=True)
        return None
    return process


def _captured(process: subprocess.Popen[bytes]) -> bytes:
    try:
        stdout, _ = process.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        process.terminate()
        stdout, _ = process.communicate()
    return stdout


def _on_the_wire(
    bench: Bench, tcpdump: str | None, address: str, count: int, run: Callable[[], _Rtts]
) -> tuple[_Rtts, _Rtts]:
    """What ``run`` measured, and the round trips on the wire meanwhile (empty without
    tcpdump).

    The wire of a veth pair is the moment one end hands a packet to the other, and the
    receiving end stamps it then (``netif_rx``, before any tap): so each request is
    stamped as it arrives at the peer's end (p0) and each reply as it arrives at the
    client's (c0), by two captures that take arriving packets only (``-Q in``: libpcap's
    PACKET_IGNORE_OUTGOING keeps them off the sending path). A capture of outgoing
    packets on c0 would stamp a request in the kernel's tap before the driver sends it,
    and delay it by the tap's own work (7 to 8 us on the lab VM, measured with the two
    methods side by side): it would measure tcpdump, not the program.
    """
    if tcpdump is None:
        return run(), {}
    requests = _capture(
        bench, tcpdump, bench.lab.peer, "p0",
        f"dst host {address} and icmp[icmptype] == icmp-echo", count,
    )  # fmt: skip
    replies = _capture(
        bench, tcpdump, bench.lab.client, "c0",
        f"src host {address} and icmp[icmptype] == icmp-echoreply", count,
    )  # fmt: skip
    measured = run()
    if requests is None or replies is None:
        for process in (requests, replies):
            if process is not None:
                process.kill()
                process.communicate()
        return measured, {}
    return measured, _wire_rtts(_captured(requests), _captured(replies))


def _errors(measured: _Rtts, wire: _Rtts) -> list[float]:
    """|measured - wire| of each request both have, in sequence order."""
    return [abs(measured[seq] - wire[seq]) for seq in sorted(measured) if seq in wire]


def _wire_summary(name: str, errors: list[float], firsts: list[float]) -> str:
    if not errors:
        return f"{name}: no request matched on the wire"
    return (
        f"{name}: |RTT - wire| median {median(errors):.1f} us, worst {max(errors):.1f} us, "
        f"first request {max(firsts, default=float('nan')):.1f} us ({len(errors)} requests)"
    )


def run_rtt(bench: Bench) -> Row:
    """Case d: RTTs of trio-ping and iputils ping over the same path, each request's also
    against its round trip on the wire (tcpdump at both ends of the client's veth pair)."""
    address = addresses.answering(1)
    print(
        f"\n== d: RTT to the kernel peer {address}: trio-ping '{address},"
        f"{RTT_COUNT},{RTT_INTERVAL_MS}' vs 'ping -c {RTT_COUNT} -i "
        f"{RTT_INTERVAL_MS / 1000:g}', interleaved {RTT_ROUNDS} times, each under "
        "tcpdump -Q in --time-stamp-precision=nano on p0 (requests) and c0 (replies)",
        flush=True,
    )
    row = Row(f"d RTT {RTT_ROUNDS} x {RTT_COUNT} @ {RTT_INTERVAL_MS} ms")
    ping = bench.tools.ping
    tcpdump = bench.tools.tcpdump
    if ping is None:
        reason = bench.tools.skip_reason("iputils ping")
        print(f"  ping: SKIPPED: {reason}", flush=True)
        row.reference = f"ping skipped: {reason}"
    if tcpdump is None:
        print(f"  wire: SKIPPED: {bench.tools.skip_reason('tcpdump')}", flush=True)
    # Warm-up, not counted: the neighbour entry, page cache, bytecode.
    _trio_ping_rtts(bench, address, 1, 1)
    if ping is not None:
        _iputils_rtts(bench, ping, address, 1)
    trio_all: list[float] = []
    ping_all: list[float] = []
    differences: list[float] = []
    wire_errors: dict[str, list[float]] = {"trio-ping": [], "ping": []}
    first_errors: dict[str, list[float]] = {"trio-ping": [], "ping": []}
    for number in range(1, RTT_ROUNDS + 1):
        trio_rtts, trio_wire = _on_the_wire(
            bench,
            tcpdump,
            address,
            RTT_COUNT,
            lambda: _trio_ping_rtts(bench, address, RTT_COUNT, RTT_INTERVAL_MS),
        )
        trio = [trio_rtts[seq] for seq in sorted(trio_rtts)]
        trio_all += trio
        errors = _errors(trio_rtts, trio_wire)
        wire_errors["trio-ping"] += errors
        if 0 in trio_rtts and 0 in trio_wire:
            first_errors["trio-ping"].append(abs(trio_rtts[0] - trio_wire[0]))
        line = f"  round {number}: trio-ping median {median(trio):.0f} us [{_fmt(trio)}]"
        if tcpdump is not None:
            line += f" (off the wire by [{_fmt1(errors)}] us)"
        if ping is not None:
            ping_rtts, ping_wire = _on_the_wire(
                bench,
                tcpdump,
                address,
                RTT_COUNT,
                lambda: _iputils_rtts(bench, ping, address, RTT_COUNT),
            )
            reference = [ping_rtts[seq] for seq in sorted(ping_rtts)]
            ping_all += reference
            errors = _errors(ping_rtts, ping_wire)
            wire_errors["ping"] += errors
            if 1 in ping_rtts and 1 in ping_wire:
                first_errors["ping"].append(abs(ping_rtts[1] - ping_wire[1]))
            difference = median(trio) - median(reference)
            differences.append(difference)
            line += (
                f"; ping median {median(reference):.0f} us [{_fmt(reference)}]"
                + (f" (off the wire by [{_fmt1(errors)}] us)" if tcpdump is not None else "")
                + f"; difference {difference:+.0f} us"
            )
        print(line, flush=True)
    row.trio_ping = f"median {median(trio_all):.0f} us ({len(trio_all)} RTTs)"
    _wire_checks(row, tcpdump is not None, wire_errors, first_errors)
    if ping is None:
        row.check(_RTT_CHECK, "no ping figure", None)
        return row
    row.reference = f"ping median {median(ping_all):.0f} us ({len(ping_all)} RTTs)"
    if tcpdump is not None and wire_errors["ping"]:
        row.reference += (
            f"; off the wire: median {median(wire_errors['ping']):.1f} us, worst "
            f"{max(wire_errors['ping']):.1f} us, first {max(first_errors['ping']):.1f} us"
        )
    difference = median(differences)
    print(
        f"  pooled medians: trio-ping {median(trio_all):.1f} us, ping {median(ping_all):.1f} us; "
        f"median of the round differences {difference:+.1f} us",
        flush=True,
    )
    judged = len(trio_all) == RTT_ROUNDS * RTT_COUNT and len(ping_all) == len(trio_all)
    row.check(
        _RTT_CHECK,
        f"{difference:+.0f} us",
        difference <= RTT_LIMIT_US if judged else False,
    )
    return row


def _wire_checks(
    row: Row,
    captured: bool,
    wire_errors: dict[str, list[float]],
    first_errors: dict[str, list[float]],
) -> None:
    """The issue's targets for trio-ping against the wire; iputils ping's figures beside."""
    targets = (
        f"|RTT - wire| median <= {WIRE_MEDIAN_LIMIT_US:g} us",
        f"worst <= {WIRE_WORST_LIMIT_US:g} us",
        f"first request <= {WIRE_FIRST_LIMIT_US:g} us",
    )
    errors, firsts = wire_errors["trio-ping"], first_errors["trio-ping"]
    if not captured or not errors or not firsts:
        for target in targets:
            row.check(target, "not measured", None)
        return
    for name in wire_errors:
        print("  " + _wire_summary(name, wire_errors[name], first_errors[name]), flush=True)
    complete = len(errors) == RTT_ROUNDS * RTT_COUNT and len(firsts) == RTT_ROUNDS
    figures = (median(errors), max(errors), max(firsts))
    limits = (WIRE_MEDIAN_LIMIT_US, WIRE_WORST_LIMIT_US, WIRE_FIRST_LIMIT_US)
    for target, figure, limit in zip(targets, figures, limits, strict=True):
        row.check(target, f"{figure:.1f} us", figure <= limit if complete else False)
    row.notes.append(
        f"trio-ping off the wire (tcpdump -Q in on p0 and c0, ns): median {figures[0]:.1f} us, "
        f"worst {figures[1]:.1f} us, first request {figures[2]:.1f} us "
        f"(worst of {len(firsts)} runs)"
    )


def _fmt1(values: Sequence[float]) -> str:
    return " ".join(f"{value:.1f}" for value in values)


# -- e: pacing --------------------------------------------------------------------------


def _wait_for(process: subprocess.Popen[bytes], text: bytes, timeout_s: float) -> bytes:
    """Read the process's stderr until ``text`` appears; return what was read.

    Raises:
        TimeoutError: it did not appear in time (or the process ended first).
    """
    assert process.stderr is not None
    fd = process.stderr.fileno()
    seen = b""
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while text not in seen:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise TimeoutError(seen.decode(errors="replace").strip())
            chunk = os.read(fd, 4096)
            if not chunk:
                raise TimeoutError(seen.decode(errors="replace").strip() or "tcpdump ended")
            seen += chunk
    return seen


def _capture_one_run(bench: Bench, tcpdump: str, address: str) -> tuple[list[int], str]:
    """Packet times (ns) of trio-ping's requests as tcpdump saw them leave, and a note."""
    packet_filter = f"icmp and icmp[icmptype] == icmp-echo and dst host {address}"
    for precision in (["--time-stamp-precision=nano"], []):
        process = bench.lab.spawn(
            [tcpdump, "-i", "c0", "-nn", "-tt", "-l", *precision, "-c", str(PACING_COUNT),
             packet_filter],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=bench.env,
        )  # fmt: skip
        try:
            _wait_for(process, b"listening on", 15)
        except TimeoutError as exc:
            process.kill()
            process.communicate()
            if precision:
                print(f"    tcpdump with nanoseconds failed ({exc}); trying microseconds")
                continue
            return [], f"tcpdump never started listening: {exc}"
        trio = bench.lab.run(
            [*bench.trio_ping, "--timeout", "2", f"{address},{PACING_COUNT},1"],
            capture_output=True,
            env=bench.env,
            timeout=60,
        )
        try:
            stdout, stderr = process.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            process.terminate()
            stdout, stderr = process.communicate()
        notes = [] if trio.returncode == 0 else [f"trio-ping exit {trio.returncode}"]
        notes += [
            line.strip()
            for line in stderr.decode(errors="replace").splitlines()
            if "dropped by kernel" in line and not line.startswith("0 ")
        ]
        return parse_tcpdump_times_ns(stdout), "; ".join(notes)
    return [], "unreachable"


def run_pacing(bench: Bench) -> Row:
    """Case e: gaps between trio-ping's requests on the wire at a 1 ms interval."""
    address = addresses.answering(2)
    row = Row(f"e pacing {PACING_RUNS} x {PACING_COUNT} @ 1 ms")
    print(
        f"\n== e: pacing: tcpdump on c0 while trio-ping sends '{address},{PACING_COUNT},1', "
        f"{PACING_RUNS} runs",
        flush=True,
    )
    tcpdump = bench.tools.tcpdump
    if tcpdump is None:
        reason = bench.tools.skip_reason("tcpdump")
        print(f"  SKIPPED: {reason}", flush=True)
        row.trio_ping = "not measured"
        row.reference = f"tcpdump skipped: {reason}"
        row.check(f"p90 of abs(gap - 1 ms) <= {PACING_P90_LIMIT_US:g} us", "not measured", None)
        return row
    deviations: list[float] = []
    spans: list[float] = []
    complete = True
    for number in range(1, PACING_RUNS + 1):
        times, note = _capture_one_run(bench, tcpdump, address)
        gaps = [(later - earlier) / 1000 for earlier, later in itertools.pairwise(times)]
        deviations += [abs(gap - PACING_INTERVAL_US) for gap in gaps]
        if len(times) == PACING_COUNT:
            spans.append((times[-1] - times[0]) / 1000)
        else:
            complete = False
        span = f"{(times[-1] - times[0]) / 1000:.0f} us" if len(times) > 1 else "-"
        print(
            f"  run {number}: {len(times)} packets, span {span}, gaps us [{_fmt(gaps)}]"
            + (f" ({note})" if note else ""),
            flush=True,
        )
    p90 = percentile(deviations, 0.9)
    worst = max(deviations, default=float("nan"))
    row.trio_ping = f"gaps off 1 ms by p90 {p90:.0f} us, max {worst:.0f} us; spans {_fmt(spans)} us"
    row.reference = "tcpdump -i c0 (kernel timestamps)"
    row.check(
        f"p90 of abs(gap - 1 ms) <= {PACING_P90_LIMIT_US:g} us",
        f"{p90:.0f} us",
        p90 <= PACING_P90_LIMIT_US if complete else False,
    )
    span_target = (PACING_COUNT - 1) * PACING_INTERVAL_US
    worst_span = max(spans, key=lambda span: abs(span - span_target), default=float("nan"))
    row.check(
        f"span 9 ms +- {PACING_SPAN_TOLERANCE_US / 1000:g} ms (every run)",
        f"worst {worst_span / 1000:.3f} ms",
        abs(worst_span - span_target) <= PACING_SPAN_TOLERANCE_US if complete else False,
    )
    return row


# -- f: start-up ------------------------------------------------------------------------


def _timed(argv: Sequence[str], env: dict[str, str]) -> tuple[float, bytes, int]:
    start = time.perf_counter()
    completed = subprocess.run(argv, capture_output=True, env=env, check=False, timeout=60)
    return time.perf_counter() - start, completed.stdout, completed.returncode


def run_startup(bench: Bench) -> Row:
    """Case f: a whole trio-ping run to loopback against ``python -c 'import trio'``.

    Both run under ``ip netns exec`` in the client namespace; that wrapper's own cost
    (``ip netns exec NS true``) is measured too and taken off both before the ratio.
    """
    repeats = 5 if bench.quick else 10
    target = f"{addresses.LOOPBACK},1,1"
    commands = {
        "trio-ping": bench.trio_ping_in_client(target),
        "import trio": bench.in_client([bench.python, "-c", "import trio"]),
        "netns exec": bench.in_client(["true"]),
    }
    print(
        f"\n== f: start-up: '{' '.join(bench.trio_ping)} {target}' vs "
        f"'{bench.python} -c \"import trio\"', interleaved, median of {repeats} runs each "
        "(after 2 warm-ups)",
        flush=True,
    )
    times: dict[str, list[float]] = {name: [] for name in commands}
    bad_runs = 0
    for repeat in range(repeats + 2):
        for name, argv in commands.items():
            elapsed, stdout, returncode = _timed(argv, bench.env)
            if name == "trio-ping" and (
                returncode != 0 or not parse_trio_ping(stdout, {addresses.LOOPBACK: 1}).clean
            ):
                bad_runs += 1
            if repeat >= 2:
                times[name].append(elapsed * 1000)
    for name, values in times.items():
        print(f"  {name}: median {median(values):.1f} ms [{_fmt(values)}]", flush=True)
    trio, python, wrapper = (median(times[name]) for name in commands)
    raw = ratio(trio, python)
    net = ratio(trio - wrapper, python - wrapper)
    print(
        f"  ratio {raw or float('nan'):.2f}x as measured; {net or float('nan'):.2f}x without "
        f"the {wrapper:.1f} ms of 'ip netns exec'",
        flush=True,
    )
    row = Row(f"f start-up x {repeats}")
    row.trio_ping = f"median {trio:.1f} ms ({trio - wrapper:.1f} ms net)"
    row.reference = f"import trio {python:.1f} ms ({python - wrapper:.1f} ms net)"
    if bad_runs:
        row.notes.append(f"{bad_runs} trio-ping runs did not answer cleanly")
    row.check(
        f"net ratio <= {STARTUP_RATIO_LIMIT:g}x",
        f"{net:.2f}x (raw {raw:.2f}x)" if net is not None and raw is not None else "n/a",
        None if net is None else net <= STARTUP_RATIO_LIMIT and not bad_runs,
    )
    return row
