"""An alarm: a sleep until a moment that another task may bring forward.

The engine's loops each sleep until the next thing they must do: the sender until the next
request is due, the timeout task until the earliest deadline. Another task may make that
moment earlier (a session started, a request sent with a shorter timeout), and the sleeper
must then wake in time. Each loop re-arms its alarm on every pass with what is due then.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

import attrs
import trio

SleepUntil = Callable[[float], Awaitable[None]]
"""Sleep until a moment on trio's clock (trio.sleep_until, or a timerfd's)."""


@attrs.define
class Alarm:
    """Sleeps in :meth:`wait` until a moment, or sooner when :meth:`bring_forward` asks.

    Without ``sleep_until``, the sleep is a cancel scope's deadline, which is moved to the
    earlier moment: the wait ends then, with no extra pass through the caller's loop. With
    ``sleep_until`` (the sender's timerfd, for sub-millisecond precision) the sleep cannot
    be moved, so an earlier moment ends it at once, and the caller's loop re-arms. Either
    way the wait ends no later than the earliest moment asked for, and possibly sooner:
    the caller re-checks what is due, as after any spurious wake-up.
    """

    _sleep_until: SleepUntil | None = None
    moment: float = attrs.field(default=math.inf, init=False)
    """When the current wait ends; inf when no task waits. Read it before calling
    :meth:`bring_forward` on a hot path: only an earlier moment needs the call."""
    _scope: trio.CancelScope | None = attrs.field(default=None, init=False)

    async def wait(self, moment: float) -> None:
        """Sleep until ``moment`` (inf: until brought forward), or until woken sooner."""
        self.moment = moment
        try:
            if self._sleep_until is None:
                with trio.CancelScope(deadline=moment) as self._scope:
                    await trio.sleep_forever()
            else:
                with trio.CancelScope() as self._scope:
                    await self._sleep_until(moment)
        finally:
            self._scope = None
            self.moment = math.inf

    def bring_forward(self, moment: float) -> None:
        """Have the current wait end by ``moment`` if that is earlier; else nothing."""
        scope = self._scope
        if moment >= self.moment or scope is None:
            return
        self.moment = moment
        if self._sleep_until is None:
            scope.deadline = moment
        else:
            scope.cancel()
