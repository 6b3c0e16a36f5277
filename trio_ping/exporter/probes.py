"""The probes that run: one pinger session per configured host, kept in step with the
configuration as reloads change it.

Each session counts its results straight into its host's series as the pinger settles
them: its results sink (``trio_ping.ResultSink``) is a :class:`_Counting`, called in the
pinger's own task. No channel and no task to read it: a channel shared by the sessions
started together, read by one counting task, cost 0.37 us a result against the sink's
0.07, and a channel and a reader task per host 5.7 us (benchmarks/micro.py:
results_hand_off).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import attrs

from trio_ping.exporter.config import Probe
from trio_ping.exporter.metrics import ExporterMetrics, HostSeries
from trio_ping.pinger import SHORT_SIZE_LIMIT, Pinger, PingHandle
from trio_ping.results import PingResult


@attrs.frozen(slots=False)
class Change:
    """What one :meth:`Probes.apply` did, host by host."""

    started: tuple[Probe, ...]
    stopped: tuple[Probe, ...]
    kept: tuple[Probe, ...]

    def describe(self) -> str:
        return (
            f"{len(self.started) + len(self.kept)} hosts: {len(self.started)} started, "
            f"{len(self.stopped)} stopped, {len(self.kept)} unchanged"
        )


@attrs.define(eq=False)
class _Counting:
    """A session's results sink: each result counted into its host's series at once."""

    series: HostSeries

    def send_nowait(self, result: PingResult, /) -> None:
        self.series.observe(result)

    def close(self) -> None:
        """The session ended. Its series stays until its probe goes (:meth:`Probes.apply`)."""


@attrs.define
class Probes:
    """Runs a probe for each configured host on ``pinger``, counting into ``metrics``."""

    _pinger: Pinger
    _metrics: ExporterMetrics
    _running: dict[Probe, PingHandle] = attrs.field(factory=dict)

    @property
    def running(self) -> tuple[Probe, ...]:
        return tuple(self._running)

    def apply(self, probes: Iterable[Probe], label_names: tuple[str, ...]) -> Change:
        """Make the running probes exactly ``probes``: start the new ones, stop (and drop
        the series of) those no longer wanted, leave the others alone, without a gap.

        All or nothing: the new ones start first, and if the pinger refuses one, those
        started in this call stop again and the label names go back, so what ran before
        runs on. The one exception to "first": a new probe with a payload under
        :data:`SHORT_SIZE_LIMIT` bytes takes the place of an old one of its address with
        such a payload, which stops just before it starts (:meth:`_make_room`); if the
        pinger then refuses a probe, the old one starts again, its counters from zero.

        Raises:
            ValueError, SocketPermissionError: the pinger refused a new probe.
        """
        wanted = dict.fromkeys(probes)
        stopped = tuple(p for p in self._running if p not in wanted)
        started = tuple(p for p in wanted if p not in self._running)
        kept = tuple(p for p in wanted if p in self._running)
        previous_names = self._metrics.label_names
        if label_names != previous_names:
            # A scrape meanwhile may see the new names, and the new hosts, even if the
            # pinger then refuses one and all is put back: for a moment, not for good.
            self._metrics.relabel(label_names)
        replaced: list[Probe] = []
        try:
            for probe in started:
                self._make_room(probe, stopped, replaced)
                self._start(probe)
        except BaseException:
            for probe in started:
                if probe in self._running:
                    self._drop(probe)
            if label_names != previous_names:
                self._metrics.relabel(previous_names)
            for probe in replaced:
                # It ran with these settings until a moment ago; if it cannot start again
                # (its interface went), the others still do.
                with contextlib.suppress(OSError, ValueError):
                    self._start(probe)
            raise
        for probe in stopped:
            if probe in self._running:  # not replaced already
                self._drop(probe)
        return Change(started, stopped, kept)

    def stop(self) -> None:
        """Stop every probe. Their series stay, for a last scrape, with every result
        settled before."""
        for probe in list(self._running):
            self._stop(probe)

    def _make_room(self, probe: Probe, stopped: tuple[Probe, ...], replaced: list[Probe]) -> None:
        """Before ``probe`` starts, stop (adding to ``replaced``) each probe of its address
        that is to stop, if both send payloads under :data:`SHORT_SIZE_LIMIT` bytes.

        Such a payload cannot carry its session's identifier, so on an ICMP datagram socket
        an address has room for one such session (:meth:`Pinger.start`): a host whose group
        changed could not run its old session and its new one side by side. The exporter
        does not ask which socket the pinger has; on a raw one, the early stop costs nothing
        but the rollback's restart.
        """
        if not _short(probe):
            return
        for old in stopped:
            if old.ip == probe.ip and _short(old) and old in self._running:
                self._drop(old)
                replaced.append(old)

    def _drop(self, probe: Probe) -> None:
        """Stop ``probe`` and take its series away."""
        self._stop(probe)
        self._metrics.remove(probe)

    def _stop(self, probe: Probe) -> None:
        self._running.pop(probe).cancel()

    def _start(self, probe: Probe) -> None:
        series = self._metrics.add(probe)
        try:
            handle = self._open_session(probe, _Counting(series))
        except BaseException:
            self._metrics.remove(probe)  # no series for a host that is not pinged
            raise
        series.handle = handle
        self._running[probe] = handle

    def _open_session(self, probe: Probe, results: _Counting) -> PingHandle:
        group = probe.group
        return self._pinger.start(
            probe.ip,
            count=None,  # until cancelled
            interval=group.interval,
            timeout=group.timeout,
            results=results,
            size=group.size,
            ttl=group.ttl,
            tos=group.tos,
        )


def _short(probe: Probe) -> bool:
    """Whether ``probe`` sends payloads too short to carry their session's identifier."""
    size = probe.group.size
    return size is not None and size < SHORT_SIZE_LIMIT
