"""The exporter's metrics: smokeping_prober's names, one set of series per probed host.

A ``prometheus_client`` custom collector: each host's figures live in a
:class:`HostSeries`, which the trio thread updates for each result, and the collector
turns them into metric families when the HTTP server's thread asks (``prometheus_client``
writes the exposition). A host removed by a reload takes its series with it, and a host
kept keeps its counters, since its :class:`HostSeries` is the same object.

Names, help texts and buckets are smokeping_prober's (``collector.go``, ``main.go``), so its
dashboards and alerts work unchanged; ``trio_ping_icmp_errors_total`` is our own.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from itertools import accumulate
from typing import Final, NamedTuple

import attrs
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from trio_ping.exporter.config import Probe
from trio_ping.pinger import PingHandle
from trio_ping.results import PingResult, Status

BUCKETS: Final = (
    5e-05,
    0.0001,
    0.0002,
    0.0004,
    0.0008,
    0.0016,
    0.0032,
    0.0064,
    0.0128,
    0.0256,
    0.0512,
    0.1024,
    0.2048,
    0.4096,
    0.8192,
    1.6384,
    3.2768,
    6.5536,
    13.1072,
    26.2144,
)
"""smokeping_prober's default buckets, in seconds: ExponentialBuckets(0.00005, 2, 20)."""

# As the exposition writes bounds (Go's float format, which repr matches for these).
_BOUNDS: Final = (*(repr(b) for b in BUCKETS), "+Inf")

REQUESTS: Final = "smokeping_requests_total"
DURATION: Final = "smokeping_response_duration_seconds"
TTL: Final = "smokeping_response_ttl"
DUPLICATES: Final = "smokeping_response_duplicates_total"
SEND_ERRORS: Final = "smokeping_send_errors_total"
RECEIVE_ERRORS: Final = "smokeping_receive_errors_total"
ICMP_ERRORS: Final = "trio_ping_icmp_errors_total"

_REPLY: Final = Status.REPLY
_ICMP_ERROR: Final = Status.ICMP_ERROR
_SEND_FAILED: Final = Status.SEND_FAILED


@attrs.define
class HostSeries:
    """One probed host's figures. A request counts once its outcome is known (a reply,
    a timeout, an ICMP error or a refused send), so ``requests`` lags the wire by at most
    the timeout, and ``1 - responses / requests`` never counts a request still in flight
    as lost."""

    label_values: tuple[str, ...]
    requests: int = 0
    responses: int = 0
    rtt_sum: float = 0.0
    buckets: list[int] = attrs.field(factory=lambda: [0] * (len(BUCKETS) + 1))
    """Replies per bucket (not cumulative), the last for those above every bound."""
    ttl: int | None = None
    """The last reply's TTL or hop limit, if one came with it."""
    send_errors: int = 0
    icmp_errors: dict[str, int] = attrs.field(factory=dict)
    handle: PingHandle | None = None
    """The session pinging this host, which counts its duplicate replies."""
    templates: dict[str, tuple[tuple[tuple[object, ...], ...], tuple[str, ...]]] = attrs.field(
        factory=dict
    )
    """By exposition format: this host's sample lines with their values left out, one
    format string a family, and the shapes (:meth:`HostSnapshot.shapes`) they were written
    for (see exposition.py). Only the HTTP server's threads and the thread that writes
    them ahead use it."""

    def observe(self, result: PingResult) -> None:
        """Count one result. Called by the trio thread for each."""
        self.requests += 1
        status = result.status
        if status is _REPLY:
            seconds = (result.rtt_us or 0) / 1e6
            self.responses += 1
            self.rtt_sum += seconds
            # bisect_left: a reply of exactly a bucket's bound is in it (le is <=).
            self.buckets[bisect_left(BUCKETS, seconds)] += 1
            if result.ttl is not None:
                self.ttl = result.ttl
        elif status is _ICMP_ERROR:
            reason = result.reason or "unknown"
            self.icmp_errors[reason] = self.icmp_errors.get(reason, 0) + 1
        elif status is _SEND_FAILED:
            self.send_errors += 1

    @property
    def duplicates(self) -> int:
        return 0 if self.handle is None else self.handle.duplicates


def label_values(probe: Probe, names: Sequence[str]) -> tuple[str, ...]:
    """``probe``'s value for each label name: its own four, then its group's labels, and
    the empty string for a label only other groups set."""
    own = {"ip": probe.ip, "host": probe.host, "source": probe.source_label}
    own["tos"] = probe.tos_label
    extra = dict(probe.group.labels)
    return tuple(own[name] if name in own else extra.get(name, "") for name in names)


class HostSnapshot(NamedTuple):
    """One host's figures as one scrape sees them: a value for each sample, family by
    family in :func:`host_families` order, in the order ``prometheus_client`` writes the
    samples."""

    label_values: tuple[str, ...]
    values: tuple[list[float], ...]
    reasons: tuple[str, ...]
    """The ICMP errors' reasons, in the order of their values."""

    def shapes(self, names: Sequence[str]) -> tuple[tuple[object, ...], ...]:
        """What decides each family's sample lines of this host but for their values: the
        label names and values, how many samples (the TTL's only once one came), and for
        the ICMP errors their reasons. A family's lines are written again only when its
        shape changes: a host's first TTL costs its one line, not its histogram's 23."""
        reasons = self.reasons
        last = len(self.values) - 1  # the ICMP errors, by reason
        return tuple(
            (names, self.label_values, len(values), reasons if family == last else ())
            for family, values in enumerate(self.values)
        )


def snapshot(series: HostSeries, label_values: tuple[str, ...]) -> HostSnapshot:
    """``series``' figures now, read by the HTTP server's thread while the trio thread
    counts: each once, so that the lines a scrape writes and the values it puts in
    them agree (a new ICMP error's reason between the two would otherwise be a value
    without a line)."""
    cumulative = list(accumulate(series.buckets))
    errors = list(series.icmp_errors.items())  # one C call: safe against a new reason
    ttl = series.ttl
    values: tuple[list[float], ...] = (
        [series.requests],
        [*cumulative, cumulative[-1], series.rtt_sum],  # the buckets, _count, _sum
        [] if ttl is None else [ttl],
        [series.duplicates],
        [series.send_errors],
        [count for _, count in errors],
    )
    return HostSnapshot(label_values, values, tuple(reason for reason, _ in errors))


class ExporterMetrics(Collector):
    """Every probed host's series, as a ``prometheus_client`` collector.

    The trio thread adds, updates and removes hosts; the HTTP server's thread collects.
    A lock keeps a collection from seeing the set of hosts change under it; the counters
    themselves are plain ints that only the trio thread writes.
    """

    def __init__(
        self,
        label_names: Sequence[str],
        receive_errors: Callable[[], int] = lambda: 0,
    ) -> None:
        """``receive_errors`` counts what the pinger received and threw away (malformed
        packets, replies with a wrong payload): smokeping_receive_errors_total."""
        self._label_names = tuple(label_names)
        self._series: dict[Probe, HostSeries] = {}
        self._lock = threading.Lock()
        self._receive_errors = receive_errors

    @property
    def label_names(self) -> tuple[str, ...]:
        return self._label_names

    def relabel(self, label_names: Sequence[str]) -> None:
        """Use these label names from now on (a reload may bring new ones)."""
        with self._lock:
            self._label_names = tuple(label_names)
            for probe, series in self._series.items():
                series.label_values = label_values(probe, self._label_names)

    def add(self, probe: Probe) -> HostSeries:
        """Start the series of ``probe``, at zero."""
        series = HostSeries(label_values(probe, self._label_names))
        with self._lock:
            self._series[probe] = series
        return series

    def remove(self, probe: Probe) -> None:
        """End the series of ``probe``: the next scrape no longer has them."""
        with self._lock:
            self._series.pop(probe, None)

    def hosts(self) -> tuple[tuple[str, ...], list[tuple[HostSeries, tuple[str, ...]]]]:
        """The label names and every host's series with its label values, as they are
        now: read together, under the lock a relabel takes, so that a scrape never pairs
        the names before a reload with the values after it."""
        with self._lock:
            names = self._label_names
            return names, [(series, series.label_values) for series in self._series.values()]

    def receive_errors(self) -> CounterMetricFamily:
        """smokeping_receive_errors_total, with its one sample."""
        family = _receive_errors_family()
        family.add_metric((), self._receive_errors())
        return family

    def describe(self) -> Iterable[Metric]:
        """The families, without samples: enough for the registry to check names."""
        families = host_families(self._label_names, [])
        families.insert(RECEIVE_ERRORS_AT, _receive_errors_family())
        return families

    def collect(self) -> Iterable[Metric]:
        """Every series' current value (called by ``prometheus_client`` per scrape)."""
        names, hosts = self.hosts()
        families = host_families(names, [snapshot(*host) for host in hosts])
        families.insert(RECEIVE_ERRORS_AT, self.receive_errors())
        return families


def host_families(names: Sequence[str], hosts: Iterable[HostSnapshot]) -> list[Metric]:
    """The families with a series per host, with every one of ``hosts``' samples, in the
    exposition's order; smokeping_receive_errors_total goes before the last
    (:data:`RECEIVE_ERRORS_AT`)."""
    requests, duration, ttl = _requests(names), _duration(names), _ttl(names)
    duplicates, send_errors, icmp_errors = _duplicates(names), _send_errors(names), _icmp(names)
    for host in hosts:
        labels = host.label_values
        values = host.values
        requests.add_metric(labels, values[0][0])
        *cumulative, _count, rtt_sum = values[1]
        duration.add_metric(labels, list(zip(_BOUNDS, cumulative, strict=True)), rtt_sum)
        for value in values[2]:
            ttl.add_metric(labels, value)
        duplicates.add_metric(labels, values[3][0])
        send_errors.add_metric(labels, values[4][0])
        for reason, value in zip(host.reasons, values[5], strict=True):
            icmp_errors.add_metric((*labels, reason), value)
    return [requests, duration, ttl, duplicates, send_errors, icmp_errors]


def _requests(labels: Sequence[str]) -> CounterMetricFamily:
    return CounterMetricFamily(REQUESTS, "Number of ping requests sent", labels=labels)


def _duration(labels: Sequence[str]) -> HistogramMetricFamily:
    return HistogramMetricFamily(
        DURATION, "A histogram of latencies for ping responses.", labels=labels
    )


def _ttl(labels: Sequence[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(TTL, "The last response Time To Live (TTL).", labels=labels)


def _duplicates(labels: Sequence[str]) -> CounterMetricFamily:
    return CounterMetricFamily(
        DUPLICATES, "The number of duplicated response packets.", labels=labels
    )


def _send_errors(labels: Sequence[str]) -> CounterMetricFamily:
    return CounterMetricFamily(
        SEND_ERRORS, "The number of errors when Pinger attempts to send packets.", labels=labels
    )


def _receive_errors_family() -> CounterMetricFamily:
    return CounterMetricFamily(
        RECEIVE_ERRORS, "The number of errors when Pinger attempts to receive packets.", labels=[]
    )


def _icmp(labels: Sequence[str]) -> CounterMetricFamily:
    return CounterMetricFamily(
        ICMP_ERRORS,
        "ICMP errors (unreachable, time exceeded, ...) that answered requests, by reason.",
        labels=[*labels, "reason"],
    )


RECEIVE_ERRORS_AT: Final = 5
