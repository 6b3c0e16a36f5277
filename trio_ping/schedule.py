"""When each request is due: one heap for every target on a socket.

Request k of a target is due at ``start + k * interval``, computed from the start each time
rather than by adding intervals, so there is no drift however long the run. No I/O and no
clock: callers pass the time in.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Generic, TypeVar

import attrs

T = TypeVar("T")


@attrs.define(eq=False)
class Plan(Generic[T]):
    """The requests one target still has to send."""

    owner: T
    start: float
    interval: float
    count: int
    cancelled: bool = False


@attrs.define
class Schedule(Generic[T]):
    """Every target's next request, earliest first."""

    _heap: list[tuple[float, int, int, Plan[T]]] = attrs.field(factory=list)
    _order: itertools.count[int] = attrs.field(factory=itertools.count)

    def __len__(self) -> int:
        """The number of targets with requests still to send."""
        return len(self._heap)

    def add(self, owner: T, *, start: float, interval: float, count: int) -> Plan[T]:
        """Plan ``count`` requests for ``owner``, the first at ``start``.

        Raises:
            ValueError: ``count`` is below 1.
        """
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        plan = Plan(owner, start, interval, count)
        heapq.heappush(self._heap, (start, next(self._order), 0, plan))
        return plan

    def cancel(self, plan: Plan[T]) -> None:
        """Send nothing more for ``plan`` (its entry leaves the heap when it comes up)."""
        plan.cancelled = True

    def next_due(self) -> float:
        """When the earliest request is due; infinity when nothing is planned."""
        return self._heap[0][0] if self._drop_cancelled() else float("inf")

    def pop_due(self, now: float, early: float = 0.0) -> tuple[T, int] | None:
        """The earliest request if it is due by ``now + early``, as (owner, sequence), else
        None.

        A target's first request popped after its planned start moves the start to
        ``now``: when the loop was busy and the first request leaves late, the rest keep
        whole intervals from when it left, instead of the second following too soon.
        One popped early keeps its planned start.
        """
        heap = self._heap
        if heap and heap[0][3].cancelled:
            self._drop_cancelled()
        if not heap or heap[0][0] > now + early:
            return None
        _, _, seq, plan = heap[0]
        if seq == 0 and now > plan.start:
            plan.start = now
        if seq + 1 < plan.count:
            due = plan.start + (seq + 1) * plan.interval
            heapq.heapreplace(heap, (due, next(self._order), seq + 1, plan))
        else:
            heapq.heappop(heap)
        return plan.owner, seq

    def _drop_cancelled(self) -> list[tuple[float, int, int, Plan[T]]]:
        """The heap, its head no longer a cancelled plan's entry."""
        heap = self._heap
        while heap and heap[0][3].cancelled:
            heapq.heappop(heap)
        return heap
