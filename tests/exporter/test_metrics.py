"""The metrics: results fed in, the exposition parsed back with prometheus_client.parser."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from trio_ping.exporter.config import Probe, TargetGroup
from trio_ping.exporter.metrics import BUCKETS, ExporterMetrics
from trio_ping.results import (
    icmp_error_result,
    reply_result,
    send_failed_result,
    timeout_result,
)

SITE = TargetGroup(hosts=("10.0.0.1", "gw"), labels=(("site", "ams1"),))
PLAIN = TargetGroup(hosts=("10.0.0.9",), tos=16, source="10.0.0.100")
NAMES = ("ip", "host", "source", "tos", "site")
PEER = Probe("10.0.0.1", "10.0.0.1", SITE)
UNREACHABLE = "Destination Host Unreachable"
NAMED = Probe("gw", "10.0.0.2", SITE)
OTHER = Probe("10.0.0.9", "10.0.0.9", PLAIN)


def scrape(metrics: ExporterMetrics) -> dict[str, list[Sample]]:
    registry = CollectorRegistry()
    registry.register(metrics)
    text = generate_latest(registry).decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def by_host(samples: list[Sample], suffix: str = "") -> dict[str, float]:
    return {s.labels["host"]: s.value for s in samples if s.name.endswith(suffix)}


def test_smokeping_prober_buckets() -> None:
    assert tuple(5e-05 * 2**i for i in range(20)) == BUCKETS
    assert BUCKETS[-1] == 26.2144


def test_results_become_smokeping_series_with_every_label() -> None:
    metrics = ExporterMetrics(NAMES, receive_errors=lambda: 7)
    peer, named, other = metrics.add(PEER), metrics.add(NAMED), metrics.add(OTHER)
    for seq, rtt_us in enumerate((40, 150, 150, 3_000, 30_000_000)):
        peer.observe(reply_result(PEER.ip, seq, rtt_us, 64, True, None))
    peer.observe(timeout_result(PEER.ip, 5, None))
    named.observe(icmp_error_result(NAMED.ip, 0, UNREACHABLE, "10.0.0.254", "gw"))
    named.observe(icmp_error_result(NAMED.ip, 1, UNREACHABLE, "10.0.0.254", "gw"))
    named.observe(icmp_error_result(NAMED.ip, 2, "Time to live exceeded", "10.0.0.254", "gw"))
    other.observe(send_failed_result(OTHER.ip, 0, "Network is unreachable", 101, None))
    other.observe(reply_result(OTHER.ip, 1, 1_000, None, True, None))

    families = scrape(metrics)

    requests = families["smokeping_requests"]
    assert by_host(requests) == {"10.0.0.1": 6, "gw": 3, "10.0.0.9": 2}
    labels = {s.labels["host"]: s.labels for s in requests}
    assert labels["10.0.0.1"] == {
        "ip": "10.0.0.1",
        "host": "10.0.0.1",
        "source": "",
        "tos": "0",
        "site": "ams1",
    }
    assert labels["gw"]["ip"] == "10.0.0.2"
    # A label only another group sets is empty (Prometheus stores that as no label).
    assert labels["10.0.0.9"] == {
        "ip": "10.0.0.9",
        "host": "10.0.0.9",
        "source": "10.0.0.100",
        "tos": "16",
        "site": "",
    }

    histogram = families["smokeping_response_duration_seconds"]
    count = by_host(histogram, "_count")
    assert count == {"10.0.0.1": 5, "gw": 0, "10.0.0.9": 1}
    total = by_host(histogram, "_sum")
    assert math.isclose(total["10.0.0.1"], (40 + 150 + 150 + 3_000 + 30_000_000) / 1e6)
    peer_buckets = {
        s.labels["le"]: s.value
        for s in histogram
        if s.name.endswith("_bucket") and s.labels["host"] == "10.0.0.1"
    }
    assert len(peer_buckets) == len(BUCKETS) + 1
    assert peer_buckets["5e-05"] == 1  # 40 us
    assert peer_buckets["0.0001"] == 1
    assert peer_buckets["0.0002"] == 3  # the two of 150 us
    assert peer_buckets["0.0032"] == 4  # 3 ms
    assert peer_buckets["26.2144"] == 4
    assert peer_buckets["+Inf"] == 5  # 30 s: above every bound

    assert by_host(families["smokeping_response_ttl"]) == {"10.0.0.1": 64}
    assert by_host(families["smokeping_send_errors"], "_total") == {
        "10.0.0.1": 0,
        "gw": 0,
        "10.0.0.9": 1,
    }
    assert by_host(families["smokeping_response_duplicates"], "_total") == dict.fromkeys(
        ("10.0.0.1", "gw", "10.0.0.9"), 0
    )
    icmp = {
        (s.labels["host"], s.labels["reason"]): s.value
        for s in families["trio_ping_icmp_errors"]
        if s.name.endswith("_total")
    }
    assert icmp == {
        ("gw", UNREACHABLE): 2,
        ("gw", "Time to live exceeded"): 1,
    }
    receive = [s for s in families["smokeping_receive_errors"] if s.name.endswith("_total")]
    assert receive == [Sample("smokeping_receive_errors_total", {}, 7)]


def test_a_removed_host_takes_its_series_and_a_kept_one_keeps_its_counts() -> None:
    metrics = ExporterMetrics(NAMES)
    peer = metrics.add(PEER)
    metrics.add(NAMED)
    peer.observe(reply_result(PEER.ip, 0, 100, 64, True, None))
    metrics.remove(NAMED)
    families = scrape(metrics)
    for name in ("smokeping_requests", "smokeping_response_duration_seconds"):
        assert {s.labels["host"] for s in families[name]} == {"10.0.0.1"}
    assert by_host(families["smokeping_requests"]) == {"10.0.0.1": 1}


def test_new_label_names_relabel_every_host() -> None:
    metrics = ExporterMetrics(("ip", "host", "source", "tos"))
    metrics.add(PEER)
    assert "site" not in scrape(metrics)["smokeping_requests"][0].labels
    metrics.relabel(NAMES)
    assert metrics.label_names == NAMES
    assert scrape(metrics)["smokeping_requests"][0].labels["site"] == "ams1"
