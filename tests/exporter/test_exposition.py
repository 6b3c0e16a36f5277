"""The fast exposition is byte for byte what prometheus_client's encoders write, in every
format a scrape can ask for; the HTTP app serves it, and prometheus_client's app the rest."""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.openmetrics import parser
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from trio_ping.exporter import exposition
from trio_ping.exporter.config import Probe, TargetGroup
from trio_ping.exporter.exposition import FastExposition, Unexpected
from trio_ping.exporter.metrics import ExporterMetrics
from trio_ping.exporter.server import (
    WARM_DELAY,
    WARM_DELAY_PER_HOST,
    format_key,
    metrics_app,
    warm_delay,
    write_ahead,
)
from trio_ping.results import icmp_error_result, reply_result, timeout_result

TRICKY = 'back\\slash "quoted"\nnew line {braces} %s'
ESCAPING = TargetGroup(hosts=("10.0.0.1", "gw"), labels=(("site", TRICKY),))
PLAIN = TargetGroup(hosts=("10.0.0.9",), tos=16)
NAMES = ("ip", "host", "source", "tos", "site")
PEER = Probe("10.0.0.1", "10.0.0.1", ESCAPING)
NAMED = Probe("gw", "10.0.0.2", ESCAPING)
SILENT = Probe("10.0.0.9", "10.0.0.9", PLAIN)

openmetrics_families: Callable[[str], Iterable[Metric]] = parser.text_string_to_metric_families

Encoder = Callable[[Collector], bytes]
ENCODERS: dict[str, Encoder] = {
    "text 0.0.4": generate_latest,
    "text 1.0.0 allow-utf-8": partial(generate_latest, escaping=openmetrics.ALLOWUTF8),
    "openmetrics 1.0.0": partial(openmetrics.generate_latest, version="1.0.0"),
}


def filled() -> ExporterMetrics:
    """Hosts with labels to escape, one never answered (no TTL), ICMP errors by reason."""
    metrics = ExporterMetrics(NAMES, receive_errors=lambda: 3)
    peer, named, silent = metrics.add(PEER), metrics.add(NAMED), metrics.add(SILENT)
    for seq, rtt_us in enumerate((40, 150, 3_000, 30_000_000)):
        peer.observe(reply_result(PEER.ip, seq, rtt_us, 64, True, None))
    router = "10.0.0.254"
    named.observe(icmp_error_result(NAMED.ip, 0, "Destination Host Unreachable", router, None))
    named.observe(icmp_error_result(NAMED.ip, 1, 'Time "to" live\\exceeded', router, None))
    silent.observe(timeout_result(SILENT.ip, 0, None))
    return metrics


def slow(metrics: ExporterMetrics, encoder: Encoder) -> bytes:
    registry = CollectorRegistry()
    registry.register(metrics)
    return encoder(registry)


@pytest.mark.parametrize("encoder", ENCODERS.values(), ids=ENCODERS.keys())
def test_the_fast_exposition_is_the_encoders_own(encoder: Encoder) -> None:
    metrics = filled()
    fast = FastExposition(metrics, CollectorRegistry())
    assert fast.render(encoder, "key") == slow(metrics, encoder)
    # Again from the kept lines, after the figures moved on (a first TTL, a new
    # reason), a host left and the label names changed.
    _, hosts = metrics.hosts()
    peer, _, silent = (series for series, _ in hosts)  # as filled() added them
    kept = peer.templates["key"]
    peer.observe(reply_result(PEER.ip, 9, 1_234, 57, True, None))
    silent.observe(reply_result(SILENT.ip, 1, 800, 63, True, None))
    metrics.remove(NAMED)
    assert fast.render(encoder, "key") == slow(metrics, encoder)
    assert peer.templates["key"] is kept  # its shape did not change: its lines served
    metrics.relabel(("ip", "host", "source", "tos"))
    assert fast.render(encoder, "key") == slow(metrics, encoder)
    metrics.relabel(("ip", "host", "source", "tos", "zone"))
    assert fast.render(encoder, "key") == slow(metrics, encoder)
    metrics.relabel(("ip", "host", "source", "tos", "area"))  # the same values, renamed
    assert fast.render(encoder, "key") == slow(metrics, encoder)


def test_the_fast_text_parses_back() -> None:
    text = FastExposition(filled(), CollectorRegistry()).render(generate_latest, "k").decode()
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    sites = {s.labels["site"] for s in samples if s.name == "smokeping_requests_total"}
    assert sites == {TRICKY, ""}
    icmp = {s.labels["reason"]: s.value for s in samples if s.name == "trio_ping_icmp_errors_total"}
    assert icmp == {"Destination Host Unreachable": 1, 'Time "to" live\\exceeded': 1}
    ttl = {s.labels["host"]: s.value for s in samples if s.name == "smokeping_response_ttl"}
    assert ttl == {"10.0.0.1": 64}  # none yet for the others
    encoder = ENCODERS["openmetrics 1.0.0"]
    text = FastExposition(filled(), CollectorRegistry()).render(encoder, "om").decode()
    families = {f.name: f for f in openmetrics_families(text)}
    assert families["smokeping_requests"].type == "counter"
    assert len(families["smokeping_response_duration_seconds"].samples) == 3 * 23


def test_a_line_the_fast_path_does_not_expect_is_refused() -> None:
    def stamped(registry: Collector) -> bytes:  # a timestamp after every value
        text = generate_latest(registry).decode()
        return "".join(
            line if line.startswith("#") else f"{line} 1700000000000\n"
            for line in text.splitlines()
        ).encode()

    with pytest.raises(Unexpected):
        FastExposition(filled(), CollectorRegistry()).render(stamped, "stamped")


def get(app: Any, **environ: str) -> tuple[str, dict[str, str], bytes]:
    said: list[Any] = []
    body = b"".join(
        app(
            {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "wsgi.input": io.BytesIO()}
            | environ,
            lambda status, headers: said.extend((status, dict(headers))),
        )
    )
    return said[0], said[1], body


def app_over(metrics: ExporterMetrics) -> tuple[Any, CollectorRegistry]:
    registry = CollectorRegistry()
    registry.register(metrics)
    return metrics_app(FastExposition(metrics, CollectorRegistry()), registry), registry


def test_the_app_answers_the_format_asked_for_gzipped_if_accepted() -> None:
    metrics = filled()
    app, registry = app_over(metrics)
    status, headers, body = get(app)
    assert status == "200 OK"
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert body == generate_latest(registry)

    # What a Prometheus server asks for: OpenMetrics first.
    accept = (
        "application/openmetrics-text;version=1.0.0;q=0.9,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    )
    status, headers, body = get(app, HTTP_ACCEPT=accept, HTTP_ACCEPT_ENCODING="gzip")
    assert headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == ENCODERS["openmetrics 1.0.0"](registry)
    # Both answers came from the kept lines, not from the fallback.
    _, hosts = metrics.hosts()
    assert set(hosts[0][0].templates) == {
        "text/plain; version=0.0.4; charset=utf-8",
        format_key(headers["Content-Type"]),
    }


def test_the_rest_goes_to_prometheus_clients_app() -> None:
    app, _ = app_over(filled())
    _, _, body = get(app, QUERY_STRING="name[]=smokeping_response_ttl")
    names = {f.name for f in text_string_to_metric_families(body.decode())}
    assert names == {"smokeping_response_ttl"}
    status, headers, _ = get(app, REQUEST_METHOD="POST")
    assert status.startswith("405")
    assert headers["Allow"] == "OPTIONS,GET"


def test_a_hosts_first_ttl_rewrites_its_ttl_line_only() -> None:
    # A host's lines are written per family: its first reply brings a TTL line, and the
    # histogram's 23 lines, the costly ones, are kept as they were.
    metrics = ExporterMetrics(NAMES)
    silent = metrics.add(SILENT)
    fast = FastExposition(metrics, CollectorRegistry())
    fast.render(generate_latest, "key")
    _, before = silent.templates["key"]
    silent.observe(reply_result(SILENT.ip, 0, 800, 63, True, None))
    assert fast.render(generate_latest, "key") == slow(metrics, generate_latest)
    _, after = silent.templates["key"]
    changed = [
        index for index, (old, new) in enumerate(zip(before, after, strict=True)) if old is not new
    ]
    assert changed == [2]  # the TTL gauge (requests, duration, ttl, ...)


@pytest.mark.parametrize("encoder", ENCODERS.values(), ids=ENCODERS.keys())
def test_lines_written_ahead_serve_the_next_scrape(
    encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics = filled()
    fast = FastExposition(metrics, CollectorRegistry())
    fast.warm([(encoder, "key")])

    def not_again(*args: object) -> None:
        raise AssertionError("a host's lines written again by the scrape")

    monkeypatch.setattr("trio_ping.exporter.exposition._Format.host_templates", not_again)
    assert fast.render(encoder, "key") == slow(metrics, encoder)


def test_prometheus_2_and_3_share_the_openmetrics_lines_written_ahead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Prometheus 2 asks for OpenMetrics with the underscores escaping, 3 with allow-utf-8:
    # our names are valid legacy names either way, so the lines written ahead serve both,
    # byte for byte what each encoder writes.
    metrics = filled()
    registry = CollectorRegistry()
    registry.register(metrics)
    fast = FastExposition(metrics, CollectorRegistry())
    first = write_ahead(fast)
    assert write_ahead(fast) is first  # a second ask joins the thread already at it
    first.join(timeout=30)
    assert not first.is_alive()

    def not_again(*args: object) -> None:
        raise AssertionError("a host's lines written again by the scrape")

    monkeypatch.setattr("trio_ping.exporter.exposition._Format.host_templates", not_again)
    app = metrics_app(fast, registry)
    for accept in (PROMETHEUS_2, PROMETHEUS_3):
        encoder, _ = choose_encoder(accept)
        _, _, body = get(app, HTTP_ACCEPT=accept)
        assert body == encoder(registry)


def test_lines_are_written_ahead_only_after_the_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    # The writer must leave the trio thread the GIL while a first round of requests goes
    # out: it waits first, then writes (its clock and its rests recorded, not waited).
    events: list[tuple[str, float]] = []
    monkeypatch.setattr(
        "trio_ping.exporter.exposition.time.sleep", lambda seconds: events.append(("rest", seconds))
    )
    real = exposition._Format.host_templates

    def recorded(*args: Any, **kwargs: Any) -> Any:
        events.append(("write", 0.0))
        return real(*args, **kwargs)

    monkeypatch.setattr("trio_ping.exporter.exposition._Format.host_templates", recorded)
    fast = FastExposition(filled(), CollectorRegistry())
    write_ahead(fast, delay=30.0).join(timeout=30)
    assert events[0][0] == "rest"
    assert 29.0 < events[0][1] <= 30.0
    assert ("write", 0.0) in events[1:]


def test_the_delay_grows_with_the_hosts_running() -> None:
    assert warm_delay(0) == WARM_DELAY
    assert warm_delay(10_000) == pytest.approx(WARM_DELAY + 10_000 * WARM_DELAY_PER_HOST)
    assert warm_delay(10_000) > warm_delay(100)


PROMETHEUS_2 = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
PROMETHEUS_3 = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8,"
    "application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1"
)
