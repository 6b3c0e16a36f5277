"""Read what each program printed: trio-ping CSV, fping, iputils ping and tcpdump lines."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TrioPingOutput:
    """trio-ping's ``ADDRESS,SEQ,RTT_US`` lines, checked against what was asked."""

    expected: int
    lines: int
    answered: int
    unanswered: int
    duplicates: int
    """Lines for an (address, seq) already printed: the contract says never."""
    malformed: int
    """Lines that are not ``ADDRESS,SEQ,RTT_US`` for a request we made."""
    rtts_us: list[int] = field(repr=False)

    @property
    def missing(self) -> int:
        """Requests for which no line came at all."""
        return self.expected - self.answered - self.unanswered

    @property
    def lost(self) -> int:
        """Requests not reported as answered, whatever the reason."""
        return self.expected - self.answered

    @property
    def clean(self) -> bool:
        """Every request answered, and printed exactly once."""
        return self.lost == 0 and self.duplicates == 0 and self.malformed == 0

    def summary(self) -> str:
        """Answered count and every kind of defect."""
        return (
            f"answered {self.answered}/{self.expected}, -1 lines {self.unanswered}, "
            f"no line {self.missing}, duplicate lines {self.duplicates}, "
            f"malformed lines {self.malformed}"
        )


def parse_trio_ping(stdout: bytes, expected: Mapping[str, int]) -> TrioPingOutput:
    """Check trio-ping's output against ``expected`` (address -> count)."""
    seen: set[tuple[str, int]] = set()
    answered = unanswered = duplicates = malformed = lines = 0
    rtts: list[int] = []
    for raw in stdout.decode(errors="replace").splitlines():
        lines += 1
        fields = raw.split(",")
        try:
            address, seq, rtt = fields[0], int(fields[1]), int(fields[2])
        except (IndexError, ValueError):
            malformed += 1
            continue
        if len(fields) != 3 or not 0 <= seq < expected.get(address, 0) or rtt < -1:
            malformed += 1
            continue
        if (address, seq) in seen:
            duplicates += 1
            continue
        seen.add((address, seq))
        if rtt == -1:
            unanswered += 1
        else:
            answered += 1
            rtts.append(rtt)
    return TrioPingOutput(
        expected=sum(expected.values()),
        lines=lines,
        answered=answered,
        unanswered=unanswered,
        duplicates=duplicates,
        malformed=malformed,
        rtts_us=rtts,
    )


_FPING_SUMMARY = re.compile(r"^\S+\s+: xmt/rcv/%loss = (\d+)/(\d+)/", re.MULTILINE)
_FPING_REPLY = re.compile(r"^\S+\s+: \[\d+\], \d+ bytes", re.MULTILINE)


@dataclass(frozen=True)
class FpingOutput:
    """fping's per-reply lines (stdout) and per-target summaries (stderr)."""

    sent: int | None
    """From fping's summaries; None when it printed none (it died first)."""
    answered: int
    reply_lines: int
    error: str | None
    """fping's own error line, e.g. its refusal for lack of sequence numbers."""

    def summary(self, expected: int) -> str:
        """Answered count, and the error if any."""
        sent = "no summary" if self.sent is None else f"sent {self.sent}"
        text = f"answered {self.answered}/{expected} ({sent})"
        return f"{text}; error: {self.error}" if self.error else text


def parse_fping(stdout: bytes, stderr: bytes) -> FpingOutput:
    """Count fping's replies: the summaries if it printed them, else the reply lines."""
    out = stdout.decode(errors="replace")
    err = stderr.decode(errors="replace")
    summaries = [(int(m[1]), int(m[2])) for m in _FPING_SUMMARY.finditer(err)]
    replies = len(_FPING_REPLY.findall(out))
    error = next(
        (
            line.strip()
            for line in err.splitlines()
            if line.startswith("fping") or "error" in line.lower()
        ),
        None,
    )
    return FpingOutput(
        sent=sum(sent for sent, _ in summaries) if summaries else None,
        answered=sum(received for _, received in summaries) if summaries else replies,
        reply_lines=replies,
        error=error,
    )


_PING_TIME = re.compile(r"icmp_seq=(\d+) .*?time=([\d.]+) ms")


def parse_iputils_ping(stdout: bytes) -> list[float]:
    """iputils ping's RTTs in microseconds, from ``... icmp_seq=1 ttl=64 time=0.045 ms``."""
    return [
        float(match[2]) * 1000 for match in _PING_TIME.finditer(stdout.decode(errors="replace"))
    ]


def parse_iputils_ping_by_seq(stdout: bytes) -> dict[int, float]:
    """iputils ping's RTTs in microseconds by icmp_seq (from 1); the first line of each."""
    rtts: dict[int, float] = {}
    for match in _PING_TIME.finditer(stdout.decode(errors="replace")):
        rtts.setdefault(int(match[1]), float(match[2]) * 1000)
    return rtts


def parse_tcpdump_times_ns(stdout: bytes) -> list[int]:
    """Packet times in integer nanoseconds from ``tcpdump -tt`` lines (micro or nano digits)."""
    times: list[int] = []
    for line in stdout.decode(errors="replace").splitlines():
        stamp = line.split(" ", 1)[0]
        seconds, _, fraction = stamp.partition(".")
        if seconds.isdigit() and fraction.isdigit():
            times.append(int(seconds) * 1_000_000_000 + int(fraction.ljust(9, "0")[:9]))
    return times
