"""The probes that run: one pinger session per configured host, kept in step with the
configuration as reloads change it.

The sessions started together with the same settings share one results channel and one
counting task, which finds each result's series by the host it carries (the session's
``target``): a channel and a reader task per host cost the exporter a task switch per
echo, 10,000 switches a second for 10,000 hosts at 1 s (docs/performance.md, the soak).
A shared channel's reader wakes once per burst of results instead and takes the rest
without waiting.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import attrs
import trio

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


@attrs.define
class _Running:
    """A running probe: its session, and the series map its results are counted by."""

    handle: PingHandle
    series_by_host: dict[str | None, HostSeries]


@attrs.define
class Probes:
    """Runs a probe for each configured host in ``nursery``, counting into ``metrics``."""

    _nursery: trio.Nursery
    _pinger: Pinger
    _metrics: ExporterMetrics
    _running: dict[Probe, _Running] = attrs.field(factory=dict)

    @property
    def running(self) -> tuple[Probe, ...]:
        return tuple(self._running)

    def apply(self, probes: Iterable[Probe], label_names: tuple[str, ...]) -> Change:
        """Make the running probes exactly ``probes``: start the new ones, stop (and drop
        the series of) those no longer wanted, leave the others alone, without a gap.

        All or nothing: the new ones start first, and if the pinger refuses one, those
        started in this call stop again and the label names go back, so what ran before
        runs on unchanged.

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
        # One channel for the probes of each group's settings: within it, a host is in
        # no two probes (config.parse refuses a host twice with the same source and tos).
        by_settings: dict[object, list[Probe]] = {}
        for probe in started:
            by_settings.setdefault(probe.settings, []).append(probe)
        try:
            for batch in by_settings.values():
                self._start(batch)
        except BaseException:
            for probe in started:
                if probe in self._running:
                    self._drop(probe)
            if label_names != previous_names:
                self._metrics.relabel(previous_names)
            raise
        for probe in stopped:
            self._drop(probe)
        return Change(started, stopped, kept)

    def stop(self) -> None:
        """Stop every probe. Their series stay, for a last scrape, without the results
        still on their way to the counting tasks (at most the last burst's)."""
        for probe in list(self._running):
            self._stop(probe)

    def _drop(self, probe: Probe) -> None:
        """Stop ``probe`` and take its series away."""
        self._stop(probe)
        self._metrics.remove(probe)

    def _stop(self, probe: Probe) -> None:
        running = self._running.pop(probe)
        running.handle.cancel()
        # Results of it still in the shared channel find no series, and are dropped.
        running.series_by_host.pop(probe.host, None)

    def _start(self, batch: list[Probe]) -> None:
        send, receive = trio.open_memory_channel[PingResult](math.inf)
        series_by_host: dict[str | None, HostSeries] = {}
        self._nursery.start_soon(_count, receive, series_by_host)
        with send:  # each session holds a clone: the counter ends after the last closes
            for probe in batch:
                series = self._metrics.add(probe)
                try:
                    handle = self._open_session(probe, send.clone())
                except BaseException:
                    self._metrics.remove(probe)  # no series for a host that is not pinged
                    raise
                series.handle = handle
                series_by_host[probe.host] = series
                self._running[probe] = _Running(handle, series_by_host)

    def _open_session(
        self, probe: Probe, results: trio.MemorySendChannel[PingResult]
    ) -> PingHandle:
        group = probe.group
        return self._pinger.start(
            probe.ip,
            count=None,  # until cancelled
            interval=group.interval,
            timeout=group.timeout,
            results=results,
            # The host as written, even an address: every result carries it, and it is
            # what finds the result's series.
            target=probe.host,
            size=group.size,
            ttl=group.ttl,
            tos=group.tos,
        )


async def _count(
    receive: trio.MemoryReceiveChannel[PingResult],
    series_by_host: dict[str | None, HostSeries],
) -> None:
    """Count every result of a batch of sessions into its host's series, until the last
    session's channel closes."""
    find = series_by_host.get
    receive_nowait = receive.receive_nowait
    async with receive:
        async for result in receive:
            # Woken by the first result of a burst (the engine settles a whole recvmmsg
            # batch at once), take the others without waiting.
            while True:
                series = find(result.target)
                if series is not None:
                    series.observe(result)
                try:
                    result = receive_nowait()
                except trio.WouldBlock:
                    break
                except trio.EndOfChannel:
                    return  # the last session closed its channel within the burst
