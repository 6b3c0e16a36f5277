"""The alarm: a sleep until a moment that another task may bring forward, on trio's
autojump clock (virtual time, exact but for float rounding)."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from trio_ping._engine.alarm import Alarm

EXACT = 1e-9


def both_kinds() -> list[Alarm]:
    """An alarm on a cancel scope's deadline, and one on an injected sleep (as the
    sender's timerfd), here trio's own."""
    return [Alarm(), Alarm(trio.sleep_until)]


@pytest.mark.parametrize("alarm", both_kinds(), ids=["deadline", "sleep_until"])
async def test_a_wait_ends_at_its_moment(
    autojump_clock: trio.testing.MockClock, alarm: Alarm
) -> None:
    assert alarm.moment == math.inf
    await alarm.wait(2.5)
    assert trio.current_time() == pytest.approx(2.5, abs=EXACT)
    assert alarm.moment == math.inf  # nobody waits any more


async def waiter(alarm: Alarm, moment: float, ended: list[float]) -> None:
    await alarm.wait(moment)
    ended.append(trio.current_time())


@pytest.mark.parametrize("alarm", both_kinds(), ids=["deadline", "sleep_until"])
async def test_the_moment_is_readable_while_a_task_waits(
    autojump_clock: trio.testing.MockClock, alarm: Alarm
) -> None:
    ended: list[float] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter, alarm, 3.0, ended)
        await trio.testing.wait_all_tasks_blocked()
        assert alarm.moment == 3.0
    assert ended == [pytest.approx(3.0, abs=EXACT)]


async def test_a_deadline_alarm_brought_forward_ends_at_the_new_moment(
    autojump_clock: trio.testing.MockClock,
) -> None:
    alarm = Alarm()
    ended: list[float] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter, alarm, 10.0, ended)
        await trio.sleep(1.0)
        alarm.bring_forward(4.0)
        assert alarm.moment == 4.0
    # The deadline moved: no wake-up at 1.0, none at 10.0.
    assert ended == [pytest.approx(4.0, abs=EXACT)]


async def test_a_sleeping_alarm_brought_forward_ends_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # An injected sleep cannot be moved: it ends now, and the caller's loop re-arms.
    slept_until: list[float] = []

    async def sleep_until(moment: float) -> None:
        slept_until.append(moment)
        await trio.sleep_until(moment)

    alarm = Alarm(sleep_until)
    ended: list[float] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter, alarm, 10.0, ended)
        await trio.sleep(1.0)
        alarm.bring_forward(4.0)
    assert slept_until == [10.0]
    assert ended == [pytest.approx(1.0, abs=EXACT)]


@pytest.mark.parametrize("alarm", both_kinds(), ids=["deadline", "sleep_until"])
async def test_a_later_or_equal_moment_changes_nothing(
    autojump_clock: trio.testing.MockClock, alarm: Alarm
) -> None:
    ended: list[float] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter, alarm, 5.0, ended)
        await trio.sleep(1.0)
        alarm.bring_forward(5.0)
        alarm.bring_forward(7.0)
        assert alarm.moment == 5.0
    assert ended == [pytest.approx(5.0, abs=EXACT)]


@pytest.mark.parametrize("alarm", both_kinds(), ids=["deadline", "sleep_until"])
async def test_bringing_forward_with_nobody_waiting_does_nothing(
    autojump_clock: trio.testing.MockClock, alarm: Alarm
) -> None:
    alarm.bring_forward(1.0)  # before any wait: nothing to wake, nothing remembered
    assert alarm.moment == math.inf
    await alarm.wait(3.0)
    assert trio.current_time() == pytest.approx(3.0, abs=EXACT)


async def test_a_wait_without_a_moment_ends_only_when_brought_forward(
    autojump_clock: trio.testing.MockClock,
) -> None:
    alarm = Alarm()
    ended: list[float] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter, alarm, math.inf, ended)
        await trio.sleep(100.0)
        assert ended == []
        alarm.bring_forward(150.0)
    assert ended == [pytest.approx(150.0, abs=EXACT)]


@pytest.mark.parametrize("alarm", both_kinds(), ids=["deadline", "sleep_until"])
async def test_a_cancelled_wait_leaves_the_alarm_idle(
    autojump_clock: trio.testing.MockClock, alarm: Alarm
) -> None:
    with trio.move_on_after(1.0):
        await alarm.wait(5.0)
    assert trio.current_time() == pytest.approx(1.0, abs=EXACT)
    assert alarm.moment == math.inf
    alarm.bring_forward(0.0)  # no scope left to touch
    await alarm.wait(2.0)
    assert trio.current_time() == pytest.approx(2.0, abs=EXACT)
