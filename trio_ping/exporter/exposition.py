"""The scrape's text, written by ``prometheus_client`` once per host and reused.

``prometheus_client``'s encoders spend about 13 us a sample formatting and escaping its
labels: 4 s for 10,000 hosts of 26 samples each, every scrape (docs/performance.md). A
host's labels change only on a relabel, so its sample lines are written by the encoder
itself, ahead of the scrapes (:meth:`FastExposition.warm`) or by the first that needs
them, over a registry holding that host alone, and kept without their values, as one
format string per family (``HostSeries.templates``). A scrape then puts each value in,
as ``prometheus_client.utils.floatToGoString`` writes it, and the families' HELP and
TYPE lines and the format's last line are the encoder's own too (of an empty family, and
of an empty registry). Nothing here writes a label, a name or a header: a host whose
lines the encoder writes in a way this does not expect (a timestamp, a value elsewhere
than last) makes :class:`Unexpected`, and the caller falls back to the encoder over the
whole registry. tests/exporter/test_exposition.py checks that the output is byte for
byte the encoder's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Final

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from trio_ping.exporter.metrics import (
    RECEIVE_ERRORS_AT,
    ExporterMetrics,
    HostSeries,
    HostSnapshot,
    host_families,
    snapshot,
)

WARM_SLICE: Final = 0.002
"""Writing lines ahead works this long (s) at a time, then rests as long."""

_go_float: Callable[[float], str] = floatToGoString
"""How the exposition writes a value (Go's float format)."""

Encoder = Callable[[Collector], bytes]
"""A ``prometheus_client`` encoder, as ``exposition.choose_encoder`` picks one."""


class Unexpected(Exception):
    """The encoder wrote a host's lines otherwise than as ``name{labels} value``."""


class _Fixed(Collector):
    """A registry of the given families, for an encoder to write."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


class _GoFloats(dict[float, str]):
    """Values as the exposition writes them, each worked out once a scrape: most are
    the same few counts (the empty buckets of every host)."""

    def __missing__(self, value: float) -> str:
        text = self[value] = _go_float(value)
        return text


class _Format:
    """What the encoder writes around the hosts' lines, in one format."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.ending = encoder(CollectorRegistry()).decode()
        """What ends every exposition: nothing in Prometheus' text format, ``# EOF``
        in OpenMetrics."""
        self.headers = [self.text([family]) for family in host_families((), [])]
        """Each per-host family's HELP and TYPE lines."""

    def text(self, families: Iterable[Metric]) -> str:
        """What the encoder writes for ``families``, without the ending."""
        text = self.encoder(_Fixed(families)).decode()
        if not text.endswith(self.ending):
            raise Unexpected(f"the exposition does not end with {self.ending!r}")
        return text[: len(text) - len(self.ending)]

    def host_templates(
        self,
        names: Sequence[str],
        host: HostSnapshot,
        kept: tuple[tuple[tuple[object, ...], ...], tuple[str, ...]] | None = None,
    ) -> tuple[tuple[tuple[object, ...], ...], tuple[str, ...]]:
        """``host``'s sample lines, one format string a family, ``%s`` for each value,
        with the shapes they were written for; a family whose shape is the one ``kept``
        has keeps its lines.

        Raises:
            Unexpected: a line is not ``name{labels} value`` with the value expected.
        """
        shapes = host.shapes(names)
        templates = []
        families = host_families(names, [host])
        for index, (header, family, values) in enumerate(
            zip(self.headers, families, host.values, strict=True)
        ):
            if kept is not None and kept[0][index] == shapes[index]:
                templates.append(kept[1][index])
                continue
            text = self.text([family])
            if not text.startswith(header):
                raise Unexpected(f"{family.name}: the header is not {header!r}")
            lines = text[len(header) :].splitlines(keepends=True)
            if len(lines) != len(values):
                raise Unexpected(f"{family.name}: {len(lines)} lines for {len(values)} values")
            template = []
            for line, value in zip(lines, values, strict=True):
                start, space, written = line.rpartition(" ")
                if not space or written != f"{_go_float(value)}\n":
                    raise Unexpected(f"{family.name}: a sample line ends otherwise: {line!r}")
                template.append(start.replace("%", "%%") + " %s\n")
            templates.append("".join(template))
        return shapes, tuple(templates)


class FastExposition:
    """The exposition of an :class:`ExporterMetrics`, then of the registry ``rest``, as
    the encoder would write a registry of both (in that order)."""

    def __init__(self, metrics: ExporterMetrics, rest: CollectorRegistry) -> None:
        self._metrics = metrics
        self._rest = rest
        self._formats: dict[str, _Format] = {}
        self._ahead_lock = threading.Lock()
        self._ahead: tuple[list[tuple[Encoder, str]], float] | None = None
        """Formats to write ahead once the thread doing so finishes its pass, and the
        monotonic time before which it must not start."""
        self._ahead_thread: threading.Thread | None = None

    def warm_in_background(
        self, formats: Iterable[tuple[Encoder, str]], delay: float = 0.0
    ) -> threading.Thread:
        """:meth:`warm` in a daemon thread, which is returned, starting ``delay`` seconds
        from now: one at a time, however many reloads ask (two threads, each resting half
        the time, would leave the trio thread no GIL), the running one making another pass
        for what was asked meanwhile."""
        with self._ahead_lock:
            self._ahead = (list(formats), time.monotonic() + delay)
            if self._ahead_thread is None:
                self._ahead_thread = threading.Thread(target=self._write_ahead, daemon=True)
                self._ahead_thread.start()
            return self._ahead_thread

    def _write_ahead(self) -> None:
        while True:
            with self._ahead_lock:
                ahead, self._ahead = self._ahead, None
                if ahead is None:
                    self._ahead_thread = None
                    return
            formats, not_before = ahead
            time.sleep(max(0.0, not_before - time.monotonic()))
            self.warm(formats)

    def render(self, encoder: Encoder, key: str) -> bytes:
        """Everything, in the format of ``encoder``; ``key`` names the format (its
        content type), under which each host's lines are kept.

        Raises:
            Unexpected: see :meth:`_Format.host_templates`.
        """
        form = self._formats.get(key)
        if form is None:
            form = self._formats[key] = _Format(encoder)
        names, hosts = self._metrics.hosts()
        columns: list[list[str]] = [[header] for header in form.headers]
        text = _GoFloats()
        for series, label_values in hosts:
            host = snapshot(series, label_values)
            for column, template, values in zip(
                columns, _templates(series, form, key, names, host), host.values, strict=True
            ):
                # printf-style, not str.format: 2.5x faster for the histogram's 23
                # values (Python 3.11.7, benchmarks/micro.py: exposition_10000_hosts).
                column.append(template % tuple(map(text.__getitem__, values)))
        receive_errors = form.text([self._metrics.receive_errors()])
        columns.insert(RECEIVE_ERRORS_AT, [receive_errors])
        body = "".join(line for column in columns for line in column)
        return body.encode() + self._resttext(form)

    def warm(self, formats: Iterable[tuple[Encoder, str]]) -> None:
        """Write every host's lines in each of ``formats`` (encoder, key) ahead of the
        scrapes that will need them, so that no scrape pays for 10,000 hosts' lines at
        once (3.5 to 10 s in the lab: more than a Prometheus server's default scrape
        timeout). For a thread of its own, after a start or a reload; a host whose lines
        the encoder writes unexpectedly is left to the scrape, which falls back."""
        resumed = time.monotonic()
        for encoder, key in formats:
            form = self._formats.get(key)
            if form is None:
                form = self._formats[key] = _Format(encoder)
            names, hosts = self._metrics.hosts()
            for series, label_values in hosts:
                try:
                    _templates(series, form, key, names, snapshot(series, label_values))
                except Unexpected:
                    continue
                if time.monotonic() - resumed > WARM_SLICE:
                    # Let the trio thread have the GIL: else each of its wakes would
                    # wait out the interpreter's switch interval (5 ms) behind this one.
                    time.sleep(WARM_SLICE)
                    resumed = time.monotonic()

    def _resttext(self, form: _Format) -> bytes:
        return form.encoder(self._rest)


def _templates(
    series: HostSeries, form: _Format, key: str, names: Sequence[str], host: HostSnapshot
) -> tuple[str, ...]:
    """``series``' lines in the format ``key``, each family's written again if its shape
    changed (the label names among it)."""
    kept = series.templates.get(key)
    if kept is not None and kept[0] == host.shapes(names):
        return kept[1]
    series.templates[key] = written = form.host_templates(names, host, kept)
    return written[1]
