"""The collector tuning both programs make (trio_ping/_garbage.py)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from trio_ping._garbage import FIRST_THRESHOLD, collect_less_often, freeze_again


class Node:
    """An object that can sit in a cycle and be watched by a weak reference."""

    other: Node | None = None


@pytest.fixture(autouse=True)
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_collecting_less_often_freezes_what_lives_and_raises_the_threshold() -> None:
    collect_less_often()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == FIRST_THRESHOLD


def test_freezing_again_frees_a_cycle_that_died_while_frozen() -> None:
    gc.disable()  # no pass of its own between the steps
    try:
        watched = dead_cycle_frozen()
        gc.collect()
        assert watched() is not None  # frozen: a collection alone leaves it (the leak)
        freeze_again()
        assert watched() is None
        assert gc.get_freeze_count() > 0  # what still lives is frozen again
    finally:
        gc.enable()


def dead_cycle_frozen() -> weakref.ref[Node]:
    """A cycle frozen while alive, then dropped."""
    first, second = Node(), Node()
    first.other, second.other = second, first
    gc.freeze()
    return weakref.ref(first)
