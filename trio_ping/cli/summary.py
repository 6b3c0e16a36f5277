"""Per-target statistics, in the spirit of iputils ping's closing lines. No I/O."""

from __future__ import annotations

import math

import attrs

from trio_ping.cli.output import JSON_SCHEMA_VERSION
from trio_ping.results import PingResult, Status


@attrs.frozen
class RttSummary:
    """RTT figures over the answered requests, in microseconds."""

    minimum: int
    average: float
    maximum: int
    mdev: float
    """iputils' mean deviation: sqrt(mean(rtt^2) - mean(rtt)^2)."""
    p50: int
    p95: int
    """Nearest-rank percentiles: values that occurred, not interpolations."""


@attrs.define
class TargetStatistics:
    """What one target's requests came to."""

    target: str
    address: str
    order: int = 0
    """Where the target came in the input, for listing summaries in that order."""
    transmitted: int = 0
    """Requests the kernel took (a refused send is an error, not a transmission)."""
    received: int = 0
    errors: int = 0
    """ICMP errors about our requests, and refused sends."""
    duplicates: int = 0
    rtts_us: list[int] = attrs.field(factory=list)

    def add(self, result: PingResult) -> None:
        """Count one request's result."""
        if result.status is not Status.SEND_FAILED:
            self.transmitted += 1
        if result.status is Status.REPLY and result.rtt_us is not None:
            self.received += 1
            self.rtts_us.append(result.rtt_us)
        elif result.status in (Status.ICMP_ERROR, Status.SEND_FAILED):
            self.errors += 1

    @property
    def loss_percent(self) -> float:
        """Share of transmitted requests without a valid reply; 0 if none was sent."""
        if not self.transmitted:
            return 0.0
        return 100.0 * (self.transmitted - self.received) / self.transmitted

    def rtt(self) -> RttSummary | None:
        """The RTT figures, or None when nothing was answered."""
        if not self.rtts_us:
            return None
        ordered = sorted(self.rtts_us)
        count = len(ordered)
        mean = sum(ordered) / count
        mean_square = sum(value * value for value in ordered) / count
        return RttSummary(
            minimum=ordered[0],
            average=mean,
            maximum=ordered[-1],
            mdev=math.sqrt(max(mean_square - mean * mean, 0.0)),
            p50=_nearest_rank(ordered, 50),
            p95=_nearest_rank(ordered, 95),
        )

    def text(self) -> str:
        """The closing block, iputils style (RTTs in ms with microsecond precision)."""
        name = self.target if self.target == self.address else f"{self.target} ({self.address})"
        lines = [
            f"--- {name} ping statistics ---",
            f"{self.transmitted} transmitted, {self.received} received, "
            f"{self.loss_percent:g}% packet loss, {self.duplicates} duplicates, "
            f"{self.errors} errors",
        ]
        rtt = self.rtt()
        if rtt is not None:
            lines.append(
                f"rtt min/avg/max/mdev = {rtt.minimum / 1000:.3f}/{rtt.average / 1000:.3f}/"
                f"{rtt.maximum / 1000:.3f}/{rtt.mdev / 1000:.3f} ms, "
                f"p50/p95 = {rtt.p50 / 1000:.3f}/{rtt.p95 / 1000:.3f} ms"
            )
        return "\n".join(lines) + "\n"

    def record(self) -> dict[str, object]:
        """The JSON ``summary`` event's fields."""
        rtt = self.rtt()
        figures: dict[str, float | None] = dict.fromkeys(_RTT_KEYS)
        if rtt is not None:
            figures.update(
                rtt_min_us=rtt.minimum,
                rtt_avg_us=round(rtt.average, 1),
                rtt_max_us=rtt.maximum,
                rtt_mdev_us=round(rtt.mdev, 1),
                rtt_p50_us=rtt.p50,
                rtt_p95_us=rtt.p95,
            )
        return {
            "v": JSON_SCHEMA_VERSION,
            "event": "summary",
            "target": self.target,
            "address": self.address,
            "transmitted": self.transmitted,
            "received": self.received,
            "duplicates": self.duplicates,
            "errors": self.errors,
            "loss_pct": round(self.loss_percent, 3),
            **figures,
        }


_RTT_KEYS = ("rtt_min_us", "rtt_avg_us", "rtt_max_us", "rtt_mdev_us", "rtt_p50_us", "rtt_p95_us")


def _nearest_rank(ordered: list[int], percent: int) -> int:
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]
