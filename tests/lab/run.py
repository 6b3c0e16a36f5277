"""Running the real ``trio-ping`` command inside the lab, and reading what it printed."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence

import attrs

from tests.lab.netns import Lab, trio_ping_command

CSV_LINE = re.compile(r"(?P<address>[0-9a-f.:]+),(?P<seq>\d+),(?P<rtt>-1|\d+)")


@attrs.frozen
class Row:
    """One CSV output line."""

    address: str
    seq: int
    rtt_us: int


@attrs.frozen
class Outcome:
    """What one run of the command did."""

    status: int
    stdout: str
    stderr: str

    @property
    def rows(self) -> list[Row]:
        """Every stdout line as a Row; a line that is not exact CSV fails the test."""
        rows = []
        for line in self.stdout.splitlines():
            match = CSV_LINE.fullmatch(line)
            assert match, f"not an ADDRESS,SEQ,RTT_US line: {line!r}"
            rows.append(Row(match["address"], int(match["seq"]), int(match["rtt"])))
        return rows

    @property
    def stderr_lines(self) -> list[str]:
        """Non-empty stderr lines."""
        return [line for line in self.stderr.splitlines() if line]


def run_trio_ping(
    lab: Lab,
    *args: str,
    stdin: str = "",
    timeout: float = 60,
    namespace: str | None = None,
) -> Outcome:
    """Run ``trio-ping ARGS`` in the client namespace (or ``namespace``) to completion."""
    completed = lab.run(
        [*trio_ping_command(), *args],
        namespace=namespace,
        input=stdin.encode(),
        capture_output=True,
        timeout=timeout,
    )
    return Outcome(completed.returncode, completed.stdout.decode(), completed.stderr.decode())


def spawn_trio_ping(lab: Lab, *args: str, stdin: int = subprocess.PIPE) -> subprocess.Popen[bytes]:
    """Start ``trio-ping ARGS`` in the client namespace, every stream a pipe (stdin unless
    told); use it in a ``with`` block, which closes the pipes and reaps the process."""
    return subprocess.Popen(
        lab.command([*trio_ping_command(), *args]),
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def by_address(rows: Sequence[Row]) -> dict[str, list[Row]]:
    """Rows grouped by address, each group in sequence order."""
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(row.address, []).append(row)
    return {address: sorted(group, key=lambda r: r.seq) for address, group in groups.items()}
