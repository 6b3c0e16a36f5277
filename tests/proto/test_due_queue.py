"""The due queue against a brute-force model: earliest due first, first come first served on
ties, whichever of its FIFO and heap an item waits in."""

from __future__ import annotations

import math

import hypothesis.strategies as st
import pytest
from hypothesis import given

from tests.proto.strategies import FUZZ
from trio_ping._proto.due_queue import DueQueue


class Model:
    """(due, order pushed, item), searched in full: the queue's contract and nothing else."""

    def __init__(self) -> None:
        self.entries: list[tuple[float, int, int]] = []
        self.pushed = 0

    def push(self, item: int, due: float) -> None:
        self.entries.append((due, self.pushed, item))
        self.pushed += 1

    def first(self) -> tuple[float, int, int] | None:
        return min(self.entries, default=None)

    def pop(self) -> int:
        entry = min(self.entries)
        self.entries.remove(entry)
        return entry[2]


# Each step is (action, number): ("push", due), ("pop", _), ("pop_due", now), ("pop_all_due", now).
# Few due times, so that ties and out-of-order pushes (the heap) come up often.
dues = st.integers(0, 12).map(lambda n: n * 0.5)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("push"), dues),
        st.tuples(st.just("pop"), st.just(0.0)),
        st.tuples(st.sampled_from(["pop_due", "pop_all_due"]), dues),
    ),
    max_size=80,
)


@FUZZ
@given(steps)
def test_due_queue_agrees_with_a_brute_force_model(ops: list[tuple[str, float]]) -> None:
    queue: DueQueue[int] = DueQueue()
    model = Model()
    for action, number in ops:
        if action == "push":
            model.push(model.pushed, number)
            queue.push(model.pushed - 1, number)
        elif action == "pop":
            if model.entries:
                assert queue.pop() == model.pop()
            else:
                with pytest.raises(IndexError):
                    queue.pop()
        elif action == "pop_due":
            first = model.first()
            expected = model.pop() if first is not None and first[0] <= number else None
            assert queue.pop_due(number) == expected
        else:
            expected_all: list[int] = []
            while (first := model.first()) is not None and first[0] <= number:
                expected_all.append(model.pop())
            assert queue.pop_all_due(number) == expected_all
        first = model.first()
        assert len(queue) == len(model.entries)
        assert queue.first() == (None if first is None else first[2])
        assert queue.first_due() == (math.inf if first is None else first[0])


def test_an_item_keeps_the_due_time_it_was_pushed_with_and_may_be_queued_twice() -> None:
    queue: DueQueue[str] = DueQueue()
    queue.push("a", 2.0)
    queue.push("b", 1.0)  # before the FIFO's last: the heap
    queue.push("a", 3.0)
    assert [queue.pop_due(5.0) for _ in range(4)] == ["b", "a", "a", None]
    assert len(queue) == 0
