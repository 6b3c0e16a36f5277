"""The exporter under a real Prometheus server, both inside the lab's client namespace.

Prometheus (Debian's ``prometheus``, installed by the project's set-up as fping is) scrapes
the exporter every second over the namespace's loopback; the test asks Prometheus's HTTP
API, through a socket made in that namespace, polling each condition with a deadline.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab import addresses
from tests.lab.netns import Lab

PEER = addresses.answering(1)
ADDED = addresses.answering(2)
SILENT = addresses.silent(1)
UNREACHABLE = addresses.unreachable6(1)
# The kernel peer's ICMPv6 errors are not rate-limited (the lab sets icmp ratelimit 0);
# its IPv4 ones are, by ip_error's fixed limit, to about 5 a second in bursts.
INTERVAL = 0.2
DEADLINE = 20.0


def config(*extra_hosts: str) -> str:
    hosts = ", ".join(f'"{h}"' for h in (PEER, *extra_hosts))
    return (
        f'[[targets]]\nhosts = [{hosts}]\ninterval = {INTERVAL}\nlabels = {{ site = "lab" }}\n'
        f'[[targets]]\nhosts = ["{SILENT}", "{UNREACHABLE}"]\ninterval = {INTERVAL}\n'
        'timeout = 0.5\nlabels = { site = "void", role = "edge" }\n'
    )


def free_port(lab: Lab) -> int:
    with lab.open_socket(socket.AF_INET, socket.SOCK_STREAM, 0) as probe:
        probe.bind((addresses.LOOPBACK, 0))
        return int(probe.getsockname()[1])


class PrometheusApi:
    """Prometheus's HTTP API on the client namespace's loopback."""

    def __init__(self, lab: Lab, port: int) -> None:
        self._lab = lab
        self._port = port

    def get(self, path: str) -> tuple[int, bytes]:
        sock = self._lab.open_socket(socket.AF_INET, socket.SOCK_STREAM, 0)
        try:
            sock.settimeout(5)
            sock.connect((addresses.LOOPBACK, self._port))
        except OSError:
            sock.close()
            raise
        connection = http.client.HTTPConnection(addresses.LOOPBACK, self._port, timeout=5)
        connection.sock = sock
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def query(self, promql: str) -> list[dict[str, Any]]:
        from urllib.parse import urlencode

        status, body = self.get(f"/api/v1/query?{urlencode({'query': promql})}")
        assert status == 200, body
        answer = json.loads(body)
        assert answer["status"] == "success", answer
        return list(answer["data"]["result"])

    def value(self, promql: str) -> float | None:
        """The single value of an instant query, or None while it has none."""
        result = self.query(promql)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None


def await_true(check: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while not check():
        assert time.monotonic() < end, f"not within {deadline} s: {what}"
        time.sleep(0.25)


@pytest.fixture
def prometheus_bin() -> str:
    found = shutil.which("prometheus")
    if found is None:
        pytest.skip("needs Debian's prometheus package (nox's install_lab_tools installs it)")
    return found


@pytest.fixture
def running(lab: Lab, prometheus_bin: str, tmp_path: Path) -> Iterator[tuple[Any, ...]]:
    """(exporter process, Prometheus API, configuration path)."""
    path = tmp_path / "exporter.toml"
    path.write_text(config())
    exporter = lab.spawn(
        [
            str(Path(sys.executable).with_name("trio-ping-exporter")),
            "--config",
            str(path),
            "--listen",
            f"{addresses.LOOPBACK}:0",
        ],
        stderr=subprocess.PIPE,
    )
    assert exporter.stderr is not None
    first = exporter.stderr.readline().decode()
    assert "listening on port" in first, first
    exporter_port = int(first.rsplit(" ", 1)[1])
    os.set_blocking(exporter.stderr.fileno(), False)

    api_port = free_port(lab)
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: trio-ping\n    static_configs:\n"
        f"      - targets: ['{addresses.LOOPBACK}:{exporter_port}']\n"
    )
    server = lab.spawn(
        [
            prometheus_bin,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address={addresses.LOOPBACK}:{api_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = PrometheusApi(lab, api_port)

    def ready() -> bool:
        try:
            return api.get("/-/ready")[0] == 200
        except OSError:
            return False

    await_true(ready, "Prometheus ready")
    yield exporter, api, path
    exporter.send_signal(signal.SIGTERM)
    assert exporter.wait(timeout=10) == 0
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=10)


def test_prometheus_scrapes_the_exporter(running: tuple[Any, ...]) -> None:
    exporter, api, path = running
    peer = f'host="{PEER}"'
    requests = f"smokeping_requests_total{{{peer}}}"
    responses = f"smokeping_response_duration_seconds_count{{{peer}}}"

    # Requests grow at the interval: the slope of the scraped samples over 5 s.
    def five_seconds_scraped() -> bool:
        result = api.query(f"{requests}[6s]")
        return bool(result) and len(result[0]["values"]) >= 5

    await_true(five_seconds_scraped, "five scrapes of the kernel peer")
    (series,) = api.query(f"{requests}[6s]")
    (t0, v0), (t1, v1) = series["values"][0], series["values"][-1]
    per_second = (float(v1) - float(v0)) / (t1 - t0)
    assert 0.8 / INTERVAL <= per_second <= 1.2 / INTERVAL, series["values"]
    assert series["metric"]["site"] == "lab"
    assert series["metric"]["ip"] == PEER
    assert series["metric"]["tos"] == "0"

    # Every request to the kernel peer is answered: the same scrape has both counts equal.
    both = api.query(f"{requests} - {responses}")
    assert [float(r["value"][1]) for r in both] == [0.0]
    assert (api.value(requests) or 0) > 0

    # The median RTT on the veth pair is far under 5 ms.
    median = api.value(
        f"histogram_quantile(0.5, rate(smokeping_response_duration_seconds_bucket{{{peer}}}[5s]))"
    )
    assert median is not None
    assert 0 < median < 0.005

    # The silent range: requests counted (once their timeout passed), no response.
    silent = f'host="{SILENT}"'
    await_true(
        lambda: (api.value(f"smokeping_requests_total{{{silent}}}") or 0) >= 5,
        "requests to the silent range counted",
    )
    assert api.value(f"smokeping_response_duration_seconds_count{{{silent}}}") == 0
    assert api.query(f"smokeping_requests_total{{{silent}}}")[0]["metric"]["role"] == "edge"

    # The unreachable range: ICMP errors, by reason.
    errors = api.query(f'trio_ping_icmp_errors_total{{host="{UNREACHABLE}"}}')
    assert errors, "no ICMP error counted for the unreachable range"
    assert sum(float(e["value"][1]) for e in errors) > 0
    assert all(e["metric"]["reason"] for e in errors)
    assert api.value(f'smokeping_response_duration_seconds_count{{host="{UNREACHABLE}"}}') == 0

    # SIGHUP with one more host: its series appear, and the kept host's do not restart.
    before = api.value(requests) or 0
    path.write_text(config(ADDED))
    exporter.send_signal(signal.SIGHUP)
    added = f'smokeping_requests_total{{host="{ADDED}", site="lab"}}'
    await_true(lambda: (api.value(added) or 0) > 0, "the added host's series")
    assert (api.value(requests) or 0) > before
    assert api.value(f"resets({requests}[30s])") == 0
    assert exporter.poll() is None
