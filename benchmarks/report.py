"""Targets, verdicts and the closing table (one row per case, Markdown-compatible)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Check:
    """One target of an issue and how the measurement did against it."""

    target: str
    """The target as the issue states it, e.g. ``CPU <= 4x fping``."""
    measured: str
    """The measured figure, e.g. ``3.1x``."""
    ok: bool | None
    """``None`` when it could not be judged (a tool missing, a run that failed)."""

    @property
    def verdict(self) -> str:
        """PASS, FAIL or n/a."""
        return "n/a" if self.ok is None else "PASS" if self.ok else "FAIL"

    def __str__(self) -> str:
        return f"{self.target}: {self.measured} {self.verdict}"


@dataclass
class Row:
    """One case's line in the table."""

    case: str
    trio_ping: str = ""
    reference: str = ""
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """FAIL if any check failed, PASS if all passed, else INCOMPLETE."""
        if any(check.ok is False for check in self.checks):
            return "FAIL"
        if self.checks and all(check.ok for check in self.checks):
            return "PASS"
        return "INCOMPLETE"

    def check(self, target: str, measured: str, ok: bool | None) -> None:
        """Record a check and print it as it is made."""
        result = Check(target, measured, ok)
        self.checks.append(result)
        print(f"  check: {result}", flush=True)


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``, or None when the denominator is not positive."""
    return numerator / denominator if denominator > 0 else None


def table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table, columns padded so it also reads as plain text."""
    header = ("case", "trio-ping", "reference", "targets (measured, verdict)", "verdict")
    body = [
        (
            row.case,
            row.trio_ping,
            row.reference,
            "; ".join(str(check) for check in row.checks) or "-",
            row.verdict,
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in (header, *body)) for i in range(len(header))]

    def render(cells: Sequence[str]) -> str:
        padded = (cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        return "| " + " | ".join(padded) + " |"

    lines = [render(header), "|" + "|".join("-" * (width + 2) for width in widths) + "|"]
    lines.extend(render(line) for line in body)
    notes = [f"- {row.case.split()[0]}: {note}" for row in rows for note in row.notes]
    if notes:
        lines.extend(["", "Notes:", *notes])
    return "\n".join(lines)
