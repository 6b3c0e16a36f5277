"""Case g (issue 17): trio-ping-exporter pinging 10,000 hosts at 1 s for 5 minutes.

The exporter runs in the lab's client namespace against the kernel peer; the harness
samples its RSS and CPU time from /proc every few seconds and scrapes /metrics itself at
the baseline (one minute) and at the end, through a socket made in that namespace.
Targets: RSS after the baseline stays within 5 % of its value there; CPU per echo in the
steady state no worse than the CLI's at 20,000 x 10 (run here too, as case c runs it);
a scrape of every host's metrics answers in under 1 s; no request lost.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from benchmarks.batch import _run_trio_ping, _write_targets, batch_cases
from benchmarks.context import Bench
from benchmarks.report import Row
from tests.lab import addresses

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class SoakCase:
    hosts: int
    duration_s: float
    baseline_s: float
    """When the RSS and CPU baselines are taken (one minute in the full case)."""
    interval_s: float = 1.0


def soak_case(quick: bool) -> SoakCase:
    """The issue's case, or with ``quick`` 1,000 hosts for 60 s (baseline at 20 s)."""
    return SoakCase(1_000, 60, 20) if quick else SoakCase(10_000, 300, 60)


@dataclass(frozen=True)
class Sample:
    at_s: float
    rss_kib: int
    cpu_s: float


@dataclass(frozen=True)
class Scrape:
    seconds: float
    size: int
    hosts: int
    requests: float
    responses: float


def _sample(pid: int, started: float) -> Sample:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    # /proc/PID/stat: fields after the command's closing parenthesis; utime and stime
    # are the 14th and 15th fields of the whole line.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / _TICKS
    return Sample(time.monotonic() - started, rss, cpu)


def _scrape(bench: Bench, port: int) -> Scrape:
    sock = bench.lab.open_socket(socket.AF_INET, socket.SOCK_STREAM, 0)
    connection = http.client.HTTPConnection(addresses.LOOPBACK, port, timeout=30)
    try:
        sock.settimeout(30)
        sock.connect((addresses.LOOPBACK, port))
        connection.sock = sock
        began = time.monotonic()
        connection.request("GET", "/metrics")
        body = connection.getresponse().read()
        seconds = time.monotonic() - began
    finally:
        connection.close()
        sock.close()
    hosts: set[str] = set()
    requests = responses = 0.0
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "smokeping_requests_total":
                hosts.add(sample.labels["host"])
                requests += sample.value
            elif sample.name == "smokeping_response_duration_seconds_count":
                responses += sample.value
    return Scrape(seconds, len(body), len(hosts), requests, responses)


def run_soak(bench: Bench, case: SoakCase | None = None) -> Row:
    """Run the soak and judge it against issue 17's targets."""
    case = case or soak_case(bench.quick)
    print(
        f"\n== g: soak: trio-ping-exporter, {case.hosts:,} hosts @ {case.interval_s:g} s "
        f"for {case.duration_s:g} s (baseline at {case.baseline_s:g} s)",
        flush=True,
    )
    row = Row(f"g soak {case.hosts:,} hosts @ {case.interval_s:g} s, {case.duration_s:g} s")
    config = bench.workdir / "soak.toml"
    hosts = ", ".join(f'"{addresses.answering(i)}"' for i in range(1, case.hosts + 1))
    config.write_text(f"[[targets]]\nhosts = [{hosts}]\ninterval = {case.interval_s}\n")
    exporter = str(Path(bench.python).with_name("trio-ping-exporter"))
    process = bench.lab.spawn(
        [exporter, "--config", str(config), "--listen", f"{addresses.LOOPBACK}:0"],
        stderr=subprocess.PIPE,
        env=bench.env,
    )
    started = time.monotonic()
    assert process.stderr is not None
    first = process.stderr.readline().decode()
    if "listening on port" not in first:
        process.kill()
        row.notes.append(f"the exporter did not start: {first.strip()}")
        return row
    port = int(first.rsplit(" ", 1)[1])
    samples: list[Sample] = []
    baseline: tuple[Sample, Scrape] | None = None
    try:
        while (elapsed := time.monotonic() - started) < case.duration_s:
            if baseline is None and elapsed >= case.baseline_s:
                # Scrape first: Prometheus scrapes all along, so what a scrape allocates is
                # part of the steady state the baseline stands for.
                scraped = _scrape(bench, port)
                baseline = (_sample(process.pid, started), scraped)
                print(f"  baseline: {baseline[0]}, {baseline[1]}", flush=True)
            samples.append(_sample(process.pid, started))
            time.sleep(min(5.0, case.duration_s - elapsed))
        end_sample = _sample(process.pid, started)
        end_scrape = _scrape(bench, port)
        samples.append(end_sample)
    finally:
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=30)
    print(f"  end: {end_sample}, {end_scrape}; exit {status}", flush=True)
    if status != 0:
        said = process.stderr.read().decode(errors="replace").strip().splitlines()
        print("  exporter stderr: " + " / ".join(said[-8:]), flush=True)
        row.notes.append(f"exit {status}: {said[-1] if said else 'nothing on stderr'}")
    assert baseline is not None
    base_sample, base_scrape = baseline

    peak_after = max(s.rss_kib for s in samples if s.at_s >= base_sample.at_s)
    growth = peak_after / base_sample.rss_kib - 1
    echoes = end_scrape.responses - base_scrape.responses
    per_echo = (end_sample.cpu_s - base_sample.cpu_s) / echoes * 1e6 if echoes else float("inf")
    lost = end_scrape.requests - end_scrape.responses
    expected = case.hosts * (end_sample.at_s // case.interval_s)

    reference_case = batch_cases(bench.quick)["c"]
    _, lines_file, counts = _write_targets(bench, reference_case)
    cli_run, _ = _run_trio_ping(bench, reference_case, lines_file, counts)
    cli_per_echo = cli_run.cpu_s / reference_case.requests * 1e6

    row.trio_ping = (
        f"RSS {base_sample.rss_kib / 1024:.0f} MiB at {base_sample.at_s:.0f} s, peak after "
        f"{peak_after / 1024:.0f} MiB; {end_scrape.requests:,.0f} requests "
        f"(schedule {expected:,.0f}); scrape {end_scrape.seconds:.2f} s, "
        f"{end_scrape.size / 1e6:.1f} MB"
    )
    row.reference = f"CLI {reference_case.label}: {cli_per_echo:.1f} us/echo"
    row.check("RSS after baseline <= +5 %", f"{growth * 100:+.1f} %", growth <= 0.05)
    row.check(
        "CPU/echo <= CLI's",
        f"{per_echo:.1f} us vs {cli_per_echo:.1f} us",
        per_echo <= cli_per_echo,
    )
    row.check(
        "scrape of all hosts < 1 s",
        f"{end_scrape.seconds:.2f} s ({end_scrape.hosts:,} hosts)",
        end_scrape.seconds < 1 and end_scrape.hosts == case.hosts,
    )
    row.check("0 lost", f"{lost:,.0f} lost", lost == 0 and status == 0)
    if end_scrape.requests < 0.98 * expected:
        row.notes.append(
            f"requests {end_scrape.requests:,.0f} fell behind the schedule's {expected:,.0f}"
        )
    return row


if __name__ == "__main__":  # a short run by hand: python -m benchmarks.soak HOSTS SECONDS
    import tempfile

    from benchmarks.measure import wrapper_cpu
    from benchmarks.tools import find_tools
    from tests.lab.netns import Lab, trio_ping_command

    hosts_arg, seconds_arg = int(sys.argv[1]), float(sys.argv[2])
    lab = Lab.build()
    try:
        with tempfile.TemporaryDirectory() as workdir:
            tools = find_tools(install=False)
            bench = Bench(
                lab,
                tools,
                tuple(trio_ping_command()),
                sys.executable,
                Path(workdir),
                True,
                dict(os.environ),
                wrapper_cpu(lab.command, tools.gnu_time),
            )
            result = run_soak(bench, SoakCase(hosts_arg, seconds_arg, min(60, seconds_arg / 3)))
            print(result)
    finally:
        lab.destroy()
