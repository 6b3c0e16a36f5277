"""``--rate`` against a policed peer, live: the kernel peer answers at most 1,000 Echo
Requests a second after a burst of 50 (:meth:`tests.lab.netns.Lab.policed`), as a router's
control plane does. Without a cap the requests come all at once and most go unanswered;
with one under the policer's rate, none do."""

from __future__ import annotations

import time

from tests.lab.addresses import answering
from tests.lab.netns import Lab
from tests.lab.run import Outcome, run_trio_ping


def timed_run(lab: Lab, *args: str, lines: list[str]) -> tuple[Outcome, float]:
    started = time.monotonic()
    outcome = run_trio_ping(lab, "--timeout", "1", *args, stdin="".join(lines), timeout=60)
    return outcome, time.monotonic() - started


def answered(outcome: Outcome) -> int:
    return sum(row.rtt_us >= 0 for row in outcome.rows)


def test_two_thousand_single_requests_under_a_rate_lose_nothing(lab: Lab) -> None:
    lines = [f"{answering(index)},1,1\n" for index in range(1, 2001)]
    with lab.policed():
        bare, bare_time = timed_run(lab, lines=lines)
        capped, capped_time = timed_run(lab, "--rate", "800", lines=lines)
    print(
        f"2,000 x 1: {answered(bare)} answered without --rate ({bare_time:.2f} s), "
        f"{answered(capped)} with --rate 800 ({capped_time:.2f} s)"
    )
    assert len(bare.rows) == len(capped.rows) == 2000
    assert answered(bare) < 1000  # the policer drops most of a burst
    assert bare.status == 1
    assert (capped.status, answered(capped)) == (0, 2000), capped.stderr
    # 2,000 at 800 a second: 2.5 s of sending, and the last reply.
    assert 2.5 <= capped_time <= 4.0
    [note] = capped.stderr_lines  # said once, at the end
    assert note.startswith("trio-ping: --rate 800: the targets asked for more requests")
    assert note.endswith("s late (none dropped)")


def test_three_hundred_targets_at_one_a_second_under_a_rate_are_all_answered(lab: Lab) -> None:
    lines = [f"{answering(index)},3,1000\n" for index in range(1, 301)]
    with lab.policed():
        bare, bare_time = timed_run(lab, lines=lines)
        capped, capped_time = timed_run(lab, "--rate", "900", lines=lines)
    print(
        f"300 x 3: {answered(bare)} of 900 answered without --rate ({bare_time:.2f} s), "
        f"{answered(capped)} with --rate 900 ({capped_time:.2f} s)"
    )
    assert len(bare.rows) == len(capped.rows) == 900
    assert answered(bare) < 900
    assert (capped.status, answered(capped)) == (0, 900), capped.stderr
    assert capped_time <= 4.5
    # The first round, 300 requests due at once, waits up to a third of a second: said.
    assert [line.split(":")[1] for line in capped.stderr_lines] == [" --rate 900"]
