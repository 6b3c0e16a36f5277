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

from collections.abc import Iterable

import attrs

from trio_ping.exporter.config import Probe
from trio_ping.exporter.metrics import ExporterMetrics, HostSeries
from trio_ping.pinger import Pinger, PingHandle
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
        runs on (a host whose old session had to stop first starts again, its counters
        from zero: see :meth:`_start_or_replace`).

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
                self._start_or_replace(probe, stopped, replaced)
        except BaseException:
            for probe in started:
                if probe in self._running:
                    self._drop(probe)
            for probe in replaced:
                self._start(probe)  # its series begin again, at zero
            if label_names != previous_names:
                self._metrics.relabel(previous_names)
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

    def _start_or_replace(
        self, probe: Probe, stopped: tuple[Probe, ...], replaced: list[Probe]
    ) -> None:
        """Start ``probe``; if the pinger refuses it while a probe of the same address that
        is to stop still runs, stop that one first (adding it to ``replaced``) and try again.

        On an ICMP datagram socket only one session an address may send payloads under 10
        bytes, too short to carry the session's identifier (``Sessions.open``), so such a
        host whose group changed cannot run its old session and its new one side by side.
        """
        try:
            self._start(probe)
        except ValueError:
            same_address = [p for p in stopped if p.ip == probe.ip and p in self._running]
            if not same_address:
                raise
            for old in same_address:
                self._drop(old)
                replaced.append(old)
            self._start(probe)

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
