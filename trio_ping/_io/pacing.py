"""Sleeping until an exact moment: a timerfd, awaited like a socket.

trio's sleeps end when ``epoll_wait`` times out, and epoll takes its timeout in whole
milliseconds (Python rounds up), so a request due in 0.3 ms leaves 1 ms later and a 1 ms
schedule wobbles by most of a millisecond. A timerfd runs on the kernel's high-resolution
timers and becomes readable at the moment it was armed for; waiting for that with
``trio.lowlevel.wait_readable`` is the same mechanism the receiver uses for the socket,
and no CPU is spent busy-waiting.
"""

from __future__ import annotations

import ctypes
import os
import time
from typing import Final

import trio

from trio_ping._proto.wake_latency import ADVANCE_CEILING_NS, WakeLatency

_CLOCK_MONOTONIC: Final = 1
_TFD_NONBLOCK: Final = os.O_NONBLOCK
_TFD_CLOEXEC: Final = os.O_CLOEXEC
_TFD_TIMER_ABSTIME: Final = 1
_CALIBRATION_NS: Final = 50_000
"""The first timer's measuring wake comes this soon after it is armed..."""
_CALIBRATION_ROOM_NS: Final = 2 * ADVANCE_CEILING_NS
"""...when its moment is at least this far off (else there is no time to measure)."""


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class TimerfdSleeper:
    """``sleep_until(deadline)`` with sub-millisecond precision on Linux.

    One timer serves one task at a time: the pinger's sender owns it.
    """

    def __init__(self) -> None:
        """Create the timer.

        Raises:
            OSError: the platform has no timerfd.
        """
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._libc.timerfd_settime.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(_Itimerspec),
            ctypes.c_void_p,
        ]
        fd = self._libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd < 0:
            number = ctypes.get_errno()
            raise OSError(number, os.strerror(number))
        self._fd: int = fd
        self._latency = WakeLatency()

    async def sleep_until(self, deadline: float) -> None:
        """Return at ``deadline`` on trio's clock (or at once if it has passed); cancellable."""
        if deadline == float("inf"):
            await trio.sleep_forever()
        # trio's clock is CLOCK_MONOTONIC plus an offset; re-read both to convert.
        moment_ns = int((deadline - trio.current_time() + time.monotonic()) * 1e9)
        latency = self._latency
        if not latency.measured and moment_ns - time.monotonic_ns() > _CALIBRATION_ROOM_NS:
            # The first timer: a short one first, to learn how late wakes come here.
            await self._wake_at(time.monotonic_ns() + _CALIBRATION_NS)
        now_ns = time.monotonic_ns()
        if moment_ns <= now_ns:
            await trio.lowlevel.checkpoint()
            return
        # Armed early by the wake-ups' usual lateness, so the task runs near the moment;
        # but not for a moment nearer than that, or the caller (the rate cap's wait for
        # its next token) would find it not yet come and ask again, spinning.
        advance = latency.advance_ns
        await self._wake_at(moment_ns - advance if moment_ns - now_ns > advance else moment_ns)

    async def _wake_at(self, target_ns: int) -> None:
        """Arm the timer for ``target_ns`` (CLOCK_MONOTONIC), wait for it, and count how
        late the wake came."""
        value = _Itimerspec(
            _Timespec(0, 0), _Timespec(target_ns // 1_000_000_000, target_ns % 1_000_000_000)
        )
        if self._libc.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(value), None):
            number = ctypes.get_errno()
            raise OSError(number, os.strerror(number))
        while True:
            await trio.lowlevel.wait_readable(self._fd)
            try:
                os.read(self._fd, 8)  # the expiry count; reading it re-arms readiness
            except BlockingIOError:
                continue  # a spurious wake-up
            self._latency.woke(time.monotonic_ns() - target_ns)
            return

    def close(self) -> None:
        """Release the timer; a task still waiting on it gets ClosedResourceError."""
        if self._fd >= 0:
            trio.lowlevel.notify_closing(self._fd)
            os.close(self._fd)
            self._fd = -1
