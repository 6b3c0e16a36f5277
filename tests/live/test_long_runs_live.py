"""Runs of any length, live: more lines to one address than there are ICMP identifiers."""

from __future__ import annotations

import time

from tests.lab.addresses import answering
from tests.lab.netns import Lab
from tests.lab.run import run_trio_ping


def test_seventy_thousand_lines_to_one_address_all_run(lab: Lab) -> None:
    # The kernel peer rather than loopback: a raw socket on loopback also reads its own
    # 70,000 requests, which says nothing here and doubles the receiver's work.
    target = answering(1)
    lines = 70_000
    started = time.monotonic()
    outcome = run_trio_ping(lab, "--timeout", "5", stdin=f"{target},1,1\n" * lines, timeout=120)
    elapsed = time.monotonic() - started
    assert outcome.status == 0, outcome.stderr[:500]
    assert outcome.stderr == ""
    rows = outcome.rows
    assert len(rows) == lines
    assert all(row.address == target and row.seq == 0 and row.rtt_us > 0 for row in rows)
    assert elapsed < 20, f"{elapsed:.1f} s"
