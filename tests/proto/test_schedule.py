"""The send schedule, with no clock: exact due times, ordering among targets, cancel."""

from __future__ import annotations

import math

import attrs
import hypothesis.strategies as st
from hypothesis import given

from tests.proto.strategies import FUZZ
from trio_ping._proto.schedule import Plan, Schedule


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


# The schedule ------------------------------------------------------------------------------


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.floats(0, 1000, allow_nan=False),
            st.floats(1e-4, 10, allow_nan=False),
            st.integers(1, 20),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_schedule_pops_every_request_once_in_due_order_at_exact_times(
    plans: list[tuple[float, float, int]],
) -> None:
    schedule: Schedule[int] = Schedule()
    for owner, (start, interval, count) in enumerate(plans):
        schedule.add(owner, start=start, interval=interval, count=count)
    popped: list[tuple[float, int, int]] = []
    while (due := schedule.next_due()) < math.inf:
        item = schedule.pop_due(due)
        assert item is not None
        popped.append((due, *item))
    assert [due for due, _, _ in popped] == sorted(due for due, _, _ in popped)
    assert sorted(popped) == sorted(
        (start + k * interval, owner, k)
        for owner, (start, interval, count) in enumerate(plans)
        for k in range(count)
    )


@attrs.define
class _ModelPlan:
    owner: int
    start: float
    interval: float
    count: int
    seq: int = 0
    due: float = 0.0
    order: int = 0
    cancelled: bool = False


class _ScheduleModel:
    """The schedule's contract, by brute force: the earliest (due, queued) request first."""

    def __init__(self) -> None:
        self.plans: list[_ModelPlan] = []
        self.queued = 0

    def add(self, owner: int, start: float, interval: float, count: int) -> None:
        self.plans.append(_ModelPlan(owner, start, interval, count, due=start, order=self.queued))
        self.queued += 1

    def _first(self) -> _ModelPlan | None:
        waiting = [p for p in self.plans if not p.cancelled and p.seq < p.count]
        return min(waiting, key=lambda p: (p.due, p.order), default=None)

    def next_due(self) -> float:
        plan = self._first()
        return math.inf if plan is None else plan.due

    def pop_due(self, now: float, early: float) -> tuple[int, int] | None:
        plan = self._first()
        if plan is None or plan.due > now + early:
            return None
        seq = plan.seq
        if seq == 0 and now > plan.start:
            plan.start = now
        plan.seq += 1
        plan.due = plan.start + plan.seq * plan.interval
        plan.order = self.queued
        self.queued += 1
        return plan.owner, seq


# Each step is (action, time, time, number): ("add", start, interval, count), ("pop",
# advance the clock, early, _), ("cancel", _, _, which plan).
_SCHEDULE_STEPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.integers(0, 8).map(lambda n: n * 0.25),  # starts that tie
            st.sampled_from([0.25, 0.5, 1.0, 0.3]),  # mostly shared intervals: the FIFO
            st.integers(1, 5),
        ),
        st.tuples(
            st.just("pop"),
            st.integers(0, 12).map(lambda n: n * 0.25),
            st.sampled_from([0.0, 0.1]),  # 0.1: pops early, and late starts move
            st.just(0),
        ),
        st.tuples(st.just("cancel"), st.just(0.0), st.just(0.0), st.integers(0, 10)),
    ),
    max_size=60,
)


@FUZZ
@given(_SCHEDULE_STEPS)
def test_schedule_serves_the_earliest_request_first_come_first_served(
    steps: list[tuple[str, float, float, int]],
) -> None:
    """Against a brute-force model: whichever queue a plan waits in (FIFO or heap), pops,
    late pops that move a start, ties and cancels give what the model gives."""
    schedule: Schedule[int] = Schedule()
    model = _ScheduleModel()
    plans: list[Plan[int]] = []
    clock = 0.0
    for action, first, second, number in steps:
        if action == "add":
            plans.append(
                schedule.add(len(plans), start=clock + first, interval=second, count=number)
            )
            model.add(len(model.plans), clock + first, second, number)
        elif action == "cancel":
            if number < len(plans):
                schedule.cancel(plans[number])
                model.plans[number].cancelled = True
        else:
            clock += first
            while (expected := model.pop_due(clock, second)) is not None:
                assert schedule.pop_due(clock, second) == expected
            assert schedule.pop_due(clock, second) is None
        assert schedule.next_due() == model.next_due()


def test_a_plan_without_a_count_goes_on_until_cancelled() -> None:
    schedule: Schedule[str] = Schedule()
    plan = schedule.add("a", start=0.0, interval=1.0, count=None)
    popped = [schedule.pop_due(float(n)) for n in range(100_000, 100_003)]
    # Late: the start moved to when the first left, and the plan has no last request.
    assert popped == [("a", 0), ("a", 1), ("a", 2)]
    assert (plan.start, plan.seq, schedule.next_due()) == (100_000.0, 3, 100_003.0)
    schedule.cancel(plan)
    assert schedule.pop_due(math.inf) is None
    assert schedule.next_due() == math.inf
