"""Run one command and measure it: wall time, CPU time and peak RSS of the child.

CPU time comes from ``os.wait4`` on the child: it covers the child and whatever it
waited for, not this process. ``ip netns exec`` execs the command in place (no fork).

Peak RSS needs care. Linux keeps a process's ``maxrss`` across ``exec``, and a child
started with vfork (as ``subprocess`` does) inherits the *parent's* high-water mark: a
program launched from this harness would report at least the harness's own RSS (tens of
MB, more than fping needs). So the measured program is started by GNU time, which forks
it from its own small address space and reports the program's ``%M`` alone. The small CPU
cost of ``ip netns exec`` and GNU time is measured once (:func:`wrapper_cpu`) and taken
off every run's CPU time.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.lab.netns import Lab

Wrap = Callable[[Sequence[str]], list[str]]
"""Turns a program's argv into the argv that runs it in the lab (``Lab.command``)."""


@dataclass(frozen=True)
class Measured:
    """One finished run of one command."""

    argv: tuple[str, ...]
    returncode: int
    """The exit status, or minus the signal number that ended it."""
    wall_s: float
    user_s: float
    sys_s: float
    maxrss_kib: int
    rss_exact: bool
    """False when GNU time was missing: then RSS is at least this harness's own peak."""
    stdout: bytes
    stderr: bytes
    wrapper_cpu_s: float = 0.0
    """CPU time of ``ip netns exec`` and GNU time, taken off :attr:`cpu_s`."""
    killed_after_s: float | None = None
    """Set when the run overran its time limit and was killed."""

    @property
    def cpu_s(self) -> float:
        """User plus system CPU time of the program (the wrappers' share taken off)."""
        return max(0.0, self.user_s + self.sys_s - self.wrapper_cpu_s)

    @property
    def rss_mb(self) -> float:
        """Peak resident set size in MB (10**6 bytes, as the issue's 200 MB)."""
        return self.maxrss_kib * 1024 / 1e6

    def summary(self) -> str:
        """Wall, CPU and RSS on one line."""
        rss = f"{self.rss_mb:.1f} MB" + ("" if self.rss_exact else " (at least the harness's)")
        text = (
            f"wall {self.wall_s:.3f} s, CPU {self.cpu_s:.3f} s (user {self.user_s:.3f} + "
            f"sys {self.sys_s:.3f} - wrappers {self.wrapper_cpu_s:.3f}), peak RSS {rss}, "
            f"exit {self.returncode}"
        )
        if self.killed_after_s is not None:
            text += f", KILLED after {self.killed_after_s:.0f} s"
        return text

    def stderr_tail(self, lines: int = 3) -> str:
        """The last lines of stderr, joined, for a report line."""
        tail = self.stderr.decode(errors="replace").strip().splitlines()[-lines:]
        return " / ".join(tail)


def run_measured(
    argv: Sequence[str],
    *,
    wrap: Wrap,
    gnu_time: str | None,
    stdin_path: Path | None = None,
    time_limit_s: float,
    env: Mapping[str, str] | None = None,
    wrapper_cpu_s: float = 0.0,
) -> Measured:
    """Run the program ``argv`` (as ``wrap`` places it) to completion, and measure it.

    stdout and stderr go to files; stdin is ``stdin_path`` (a regular file) or
    /dev/null. A run that overruns ``time_limit_s`` is killed, with its process group,
    and says so in :attr:`Measured.killed_after_s`.
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile(mode="r", suffix=".rss") as rss_file,
        open(stdin_path or os.devnull, "rb") as stdin,
    ):
        inner = list(argv)
        if gnu_time is not None:
            inner = [gnu_time, "-o", rss_file.name, "-f", "%M", *inner]
        start = time.perf_counter()
        process = subprocess.Popen(
            wrap(inner),
            stdin=stdin,
            stdout=out,
            stderr=err,
            env=dict(env) if env else None,
            start_new_session=True,  # one process group: a kill reaches GNU time's child too
        )
        lock = threading.Lock()
        finished = False
        killed: list[float] = []

        def kill() -> None:
            with lock:
                if not finished:  # the pid is not reaped yet, so the group is still ours
                    killed.append(time.perf_counter() - start)
                    os.killpg(process.pid, signal.SIGKILL)

        timer = threading.Timer(time_limit_s, kill)
        timer.daemon = True
        timer.start()
        try:
            # Wait without reaping, so the watchdog can never signal a reused pid.
            os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
            wall = time.perf_counter() - start
            with lock:
                finished = True
        except BaseException:
            # Ctrl-C (the child has its own session, so it did not get it): stop it
            # before the lab goes away under it.
            kill()
            os.waitpid(process.pid, 0)
            process.returncode = -signal.SIGKILL
            raise
        finally:
            timer.cancel()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        maxrss, exact = usage.ru_maxrss, False
        # GNU time writes "Command exited with non-zero status N" first when it did.
        reported = rss_file.read().split()
        if gnu_time is not None and reported and reported[-1].isdigit():
            maxrss, exact = int(reported[-1]), True
        out.seek(0)
        err.seek(0)
        return Measured(
            argv=tuple(argv),
            returncode=process.returncode,
            wall_s=wall,
            user_s=usage.ru_utime,
            sys_s=usage.ru_stime,
            maxrss_kib=maxrss,
            rss_exact=exact,
            stdout=out.read(),
            stderr=err.read(),
            wrapper_cpu_s=wrapper_cpu_s,
            killed_after_s=killed[0] if killed else None,
        )


def wrapper_cpu(wrap: Wrap, gnu_time: str | None, runs: int = 7) -> float:
    """Median CPU time of the wrappers alone (``ip netns exec`` [GNU time] ``true``)."""
    samples = [
        run_measured(["true"], wrap=wrap, gnu_time=gnu_time, time_limit_s=30).cpu_s
        for _ in range(runs)
    ]
    return statistics.median(samples)


def icmp_counters(lab: Lab, namespace: str) -> dict[str, int]:
    """The ``Icmp:`` counters of /proc/net/snmp in one lab namespace (they are per namespace)."""
    completed = lab.run(["cat", "/proc/net/snmp"], namespace=namespace, capture_output=True)
    rows = [
        line.split() for line in completed.stdout.decode().splitlines() if line.startswith("Icmp:")
    ]
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0][1:], (int(value) for value in rows[1][1:]), strict=True))


def softnet_dropped() -> int:
    """Packets the kernel dropped because a CPU's backlog queue was full (all CPUs).

    veth delivers through that backlog (net.core.netdev_max_backlog packets per CPU): a
    burst larger than it is dropped before any socket sees it. Not per namespace.
    """
    try:
        lines = Path("/proc/net/softnet_stat").read_text().splitlines()
    except OSError:
        return 0
    return sum(int(line.split()[1], 16) for line in lines if line.split())


@dataclass(frozen=True)
class KernelView:
    """What the kernels counted during one run: requests out, replies back, drops."""

    client_out_echos: int
    peer_in_echos: int
    peer_out_replies: int
    client_in_replies: int
    backlog_drops: int

    def summary(self) -> str:
        """One line, in the order the packets travel."""
        return (
            f"kernel: client sent {self.client_out_echos} echo requests, peer got "
            f"{self.peer_in_echos} and replied {self.peer_out_replies}, client got "
            f"{self.client_in_replies} replies; backlog drops {self.backlog_drops}"
        )


class KernelWatch:
    """Snapshot the lab's ICMP counters before a run, and the difference after it."""

    def __init__(self, lab: Lab) -> None:
        """Take the 'before' snapshot."""
        self._lab = lab
        self._client = icmp_counters(lab, lab.client)
        self._peer = icmp_counters(lab, lab.peer)
        self._drops = softnet_dropped()

    def delta(self) -> KernelView:
        """The counters' growth since the snapshot."""
        client = icmp_counters(self._lab, self._lab.client)
        peer = icmp_counters(self._lab, self._lab.peer)

        def grew(after: dict[str, int], before: dict[str, int], key: str) -> int:
            return after.get(key, 0) - before.get(key, 0)

        return KernelView(
            client_out_echos=grew(client, self._client, "OutEchos"),
            peer_in_echos=grew(peer, self._peer, "InEchos"),
            peer_out_replies=grew(peer, self._peer, "OutEchoReps"),
            client_in_replies=grew(client, self._client, "InEchoReps"),
            backlog_drops=softnet_dropped() - self._drops,
        )


def median(values: Sequence[float]) -> float:
    """The median, NaN for no values."""
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], fraction: float) -> float:
    """Linear-interpolated percentile (``fraction`` in 0..1), NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
