"""The probes that run: one pinger session per configured host, kept in step with the
configuration as reloads change it."""

from __future__ import annotations

import math
from collections.abc import Iterable

import attrs
import trio

from trio_ping.exporter.config import Probe
from trio_ping.exporter.metrics import ExporterMetrics, HostSeries
from trio_ping.pinger import Pinger
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
class Probes:
    """Runs a probe for each configured host in ``nursery``, counting into ``metrics``."""

    _nursery: trio.Nursery
    _pinger: Pinger
    _metrics: ExporterMetrics
    _running: dict[Probe, trio.CancelScope] = attrs.field(factory=dict)

    @property
    def running(self) -> tuple[Probe, ...]:
        return tuple(self._running)

    def apply(self, probes: Iterable[Probe], label_names: tuple[str, ...]) -> Change:
        """Make the running probes exactly ``probes``: start the new ones, stop (and drop
        the series of) those no longer wanted, leave the others alone, without a gap.

        Raises:
            ValueError, SocketPermissionError: the pinger refused a new probe (the probes
                started before it in this call keep running).
        """
        wanted = dict.fromkeys(probes)
        stopped = tuple(p for p in self._running if p not in wanted)
        for probe in stopped:
            self._running.pop(probe).cancel()
            self._metrics.remove(probe)
        if label_names != self._metrics.label_names:
            self._metrics.relabel(label_names)
        started = tuple(p for p in wanted if p not in self._running)
        for probe in started:
            self._start(probe)
        kept = tuple(p for p in wanted if p not in started)
        return Change(started, stopped, kept)

    def stop(self) -> None:
        """Stop every probe (their series stay, for a last scrape)."""
        for scope in self._running.values():
            scope.cancel()
        self._running.clear()

    def _start(self, probe: Probe) -> None:
        series = self._metrics.add(probe)
        try:
            receive = self._open_session(probe, series)  # raises here, not in a task
        except BaseException:
            self._metrics.remove(probe)  # no series for a host that is not pinged
            raise
        scope = trio.CancelScope()
        self._running[probe] = scope
        self._nursery.start_soon(self._count, probe, series, receive, scope)

    def _open_session(
        self, probe: Probe, series: HostSeries
    ) -> trio.MemoryReceiveChannel[PingResult]:
        send, receive = trio.open_memory_channel[PingResult](math.inf)
        group = probe.group
        handle = self._pinger.start(
            probe.ip,
            count=None,  # until cancelled
            interval=group.interval,
            timeout=group.timeout,
            results=send,
            target=None if probe.host == probe.ip else probe.host,
            size=group.size,
            ttl=group.ttl,
            tos=group.tos,
        )
        series.handle = handle
        return receive

    async def _count(
        self,
        probe: Probe,
        series: HostSeries,
        receive: trio.MemoryReceiveChannel[PingResult],
        scope: trio.CancelScope,
    ) -> None:
        observe = series.observe
        with scope:
            try:
                async with receive:
                    async for result in receive:
                        observe(result)
            finally:
                if series.handle is not None:
                    series.handle.cancel()
