"""The send schedule, with no clock: exact due times, ordering among targets, cancel."""

from __future__ import annotations

import math

from trio_ping._proto.schedule import Schedule


def drain(schedule: Schedule[str]) -> list[tuple[float, str, int]]:
    """Every remaining request as (due, owner, seq), popping each when it comes due."""
    out: list[tuple[float, str, int]] = []
    while (due := schedule.next_due()) < math.inf:
        popped = schedule.pop_due(due)
        assert popped is not None
        out.append((due, *popped))
    return out


def test_request_k_is_due_at_start_plus_k_intervals() -> None:
    schedule: Schedule[str] = Schedule()
    schedule.add("a", start=100.0, interval=0.25, count=4)
    assert drain(schedule) == [
        (100.0, "a", 0),
        (100.25, "a", 1),
        (100.5, "a", 2),
        (100.75, "a", 3),
    ]
    assert len(schedule) == 0


def test_no_drift_over_many_requests() -> None:
    start, interval, count = 12345.678, 0.001, 20_000
    schedule: Schedule[str] = Schedule()
    schedule.add("a", start=start, interval=interval, count=count)
    dues = [due for due, _, _ in drain(schedule)]
    assert len(dues) == count
    assert dues == [start + k * interval for k in range(count)]
    # Adding intervals would have drifted: the test can tell the two apart.
    accumulated = start
    for _ in range(count - 1):
        accumulated += interval
    assert accumulated != start + (count - 1) * interval
    assert dues[-1] == start + (count - 1) * interval


def test_nothing_pops_before_it_is_due() -> None:
    schedule: Schedule[str] = Schedule()
    schedule.add("a", start=10.0, interval=1.0, count=2)
    assert schedule.pop_due(9.999) is None
    assert schedule.pop_due(10.0) == ("a", 0)
    assert schedule.pop_due(10.5) is None
    assert schedule.next_due() == 11.0
    # A late caller gets requests one at a time, in order, each as soon as asked.
    assert schedule.pop_due(50.0) == ("a", 1)
    assert schedule.pop_due(50.0) is None
    assert schedule.next_due() == math.inf


def test_many_plans_interleave_in_due_order() -> None:
    schedule: Schedule[str] = Schedule()
    plans = {"a": (0.0, 0.3, 10), "b": (0.05, 0.2, 10), "c": (0.1, 1.0, 3), "d": (2.0, 0.01, 5)}
    for owner, (start, interval, count) in plans.items():
        schedule.add(owner, start=start, interval=interval, count=count)
    assert len(schedule) == 4
    popped = drain(schedule)
    assert [due for due, _, _ in popped] == sorted(due for due, _, _ in popped)
    assert sorted(popped) == sorted(
        (start + k * interval, owner, k)
        for owner, (start, interval, count) in plans.items()
        for k in range(count)
    )
    for owner, (_, _, count) in plans.items():
        assert [seq for _, o, seq in popped if o == owner] == list(range(count))


def test_equal_due_times_go_first_come_first_served() -> None:
    schedule: Schedule[str] = Schedule()
    for owner in "abcde":
        schedule.add(owner, start=1.0, interval=1.0, count=2)
    assert [(owner, seq) for _, owner, seq in drain(schedule)] == [
        *((owner, 0) for owner in "abcde"),
        *((owner, 1) for owner in "abcde"),
    ]


def test_cancel_stops_the_remaining_requests_of_one_plan_only() -> None:
    schedule: Schedule[str] = Schedule()
    doomed = schedule.add("doomed", start=0.0, interval=1.0, count=5)
    schedule.add("kept", start=0.5, interval=1.0, count=3)
    assert schedule.pop_due(0.0) == ("doomed", 0)
    schedule.cancel(doomed)
    assert doomed.cancelled
    assert drain(schedule) == [(0.5, "kept", 0), (1.5, "kept", 1), (2.5, "kept", 2)]
    assert len(schedule) == 0


def test_cancel_of_the_only_plan_empties_the_schedule() -> None:
    schedule: Schedule[str] = Schedule()
    plan = schedule.add("a", start=0.0, interval=1.0, count=3)
    schedule.cancel(plan)
    assert schedule.next_due() == math.inf
    assert schedule.pop_due(1e9) is None
    assert len(schedule) == 0


def test_pop_due_at_infinity_on_an_empty_schedule_is_none() -> None:
    schedule: Schedule[str] = Schedule()
    assert schedule.pop_due(math.inf) is None


def test_plans_added_later_join_the_order() -> None:
    schedule: Schedule[str] = Schedule()
    schedule.add("a", start=0.0, interval=1.0, count=3)
    assert schedule.pop_due(0.0) == ("a", 0)
    schedule.add("b", start=0.5, interval=1.0, count=1)
    assert schedule.next_due() == 0.5
    assert drain(schedule) == [(0.5, "b", 0), (1.0, "a", 1), (2.0, "a", 2)]


def test_a_tie_between_the_two_queues_goes_to_the_one_queued_first() -> None:
    # "a" and "e" go into the FIFO in due order; "d", due before the FIFO's last, goes
    # into the heap, due at the same time as the FIFO's head "a", which came first.
    schedule: Schedule[str] = Schedule()
    schedule.add("a", start=1.0, interval=1.0, count=1)
    schedule.add("e", start=2.0, interval=1.0, count=1)
    schedule.add("d", start=1.0, interval=1.0, count=1)
    assert drain(schedule) == [(1.0, "a", 0), (1.0, "d", 0), (2.0, "e", 0)]
