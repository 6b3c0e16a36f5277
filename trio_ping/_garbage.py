"""Tuning CPython's cyclic garbage collector for a process that pings: a choice for the
whole process, so the two programs make it, never the library.

A run makes many short-lived objects (a probe, a result, a line a request) and next to no
cycles, while the collector walks every long-lived object (trio's, the modules', the
sessions') each time enough new ones pile up. Freezing what start-up made takes those out
of every pass, and a higher first threshold makes passes rarer: beside 600,000 long-lived
objects, a result kept a while costs 1.86 us under the default thresholds and 0.70 us
after both (benchmarks/micro.py: gc_freeze, Python 3.11.7). Measured in whole runs: a
quarter of the CPU of a 10,000 x 3 CLI run; 0.96 s of the exporter's first minute with
10,000 hosts at 1 s (1.6 us an echo), 0.08 s once tuned (gc.callbacks timing).
"""

from __future__ import annotations

import gc
from typing import Final

FIRST_THRESHOLD: Final = 50_000
"""Allocations, less deallocations, between two passes over the youngest objects (the
default is 700)."""


def collect_less_often() -> None:
    """Freeze every object alive now, and raise the first threshold."""
    gc.freeze()
    gc.set_threshold(FIRST_THRESHOLD, 20, 20)


def freeze_again() -> None:
    """Freeze every object alive now, after collecting those that died since the last
    freeze in a cycle (a frozen object is never collected, so a cycle left frozen would
    leak).

    For a long-running process whose long-lived set changes now and then (the exporter's
    reload): the one full pass walks what was frozen too, once a change, not every time.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
