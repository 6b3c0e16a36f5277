"""When each request is due: every target on a socket, earliest first.

Request k of a target is due at ``start + k * interval``, computed from the start each time
rather than by adding intervals, so there is no drift however long the run. No I/O and no
clock: callers pass the time in.

Each target with requests left waits in one DueQueue (trio_ping/_proto/due_queue.py),
ordered by when its next request is due: a target re-queued for its next request usually
falls due after every target already queued (a batch of targets shares one interval, and
they are served in due order), so it joins the end of the queue's FIFO rather than its heap.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import attrs

from trio_ping._proto.due_queue import DueQueue

T = TypeVar("T")


@attrs.define(eq=False)
class Plan(Generic[T]):
    """The requests one target still has to send."""

    owner: T
    start: float
    interval: float
    count: int | None
    """Requests planned in all; None: until cancelled."""
    cancelled: bool = False
    seq: int = attrs.field(default=0, init=False)
    """The next request to send. Kept by the schedule, like ``due``: read, don't write."""
    due: float = attrs.field(init=False)
    """When request ``seq`` is due; the schedule's queue is ordered by it."""

    def __attrs_post_init__(self) -> None:
        self.due = self.start


@attrs.define
class Schedule(Generic[T]):
    """Every target's next request, earliest first."""

    _queue: DueQueue[Plan[T]] = attrs.field(factory=DueQueue)

    def __len__(self) -> int:
        """The number of targets with requests still to send (a cancelled one counts
        until it comes up)."""
        return len(self._queue)

    def add(self, owner: T, *, start: float, interval: float, count: int | None) -> Plan[T]:
        """Plan ``count`` requests for ``owner``, the first at ``start``; with ``count``
        None, requests until the plan is cancelled.

        Raises:
            ValueError: ``count`` is below 1.
        """
        if count is not None and count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        plan = Plan(owner, start, interval, count)
        self._queue.push(plan, plan.due)
        return plan

    def cancel(self, plan: Plan[T]) -> None:
        """Send nothing more for ``plan`` (it leaves its queue when it comes up)."""
        plan.cancelled = True

    def next_due(self) -> float:
        """When the earliest request is due; infinity when nothing is planned."""
        plan = self._first()
        return float("inf") if plan is None else plan.due

    def pop_due(self, now: float, early: float = 0.0) -> tuple[T, int] | None:
        """The earliest request if it is due by ``now + early``, as (owner, sequence), else
        None.

        A target's first request popped after its planned start moves the start to
        ``now``: when the loop was busy and the first request leaves late, the rest keep
        whole intervals from when it left, instead of the second following too soon.
        One popped early keeps its planned start.
        """
        queue = self._queue
        while True:
            plan = queue.pop_due(now + early)
            if plan is None:
                self._first()  # a cancelled plan at the head leaves now, as in next_due
                return None
            if not plan.cancelled:
                break
        seq = plan.seq
        if seq == 0 and now > plan.start:
            plan.start = now
        if plan.count is None or seq + 1 < plan.count:
            plan.seq = seq + 1
            plan.due = plan.start + (seq + 1) * plan.interval
            queue.push(plan, plan.due)
        return plan.owner, seq

    def _first(self) -> Plan[T] | None:
        """The plan whose request is due first, dropping cancelled plans on the way.

        Equal due times go first come, first served (the queue's rule).
        """
        queue = self._queue
        while (plan := queue.first()) is not None and plan.cancelled:
            queue.pop()
        return plan
