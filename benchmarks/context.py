"""What every case needs: the lab, the tools, how to start trio-ping, a scratch folder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.measure import Measured, run_measured
from benchmarks.tools import Tools
from tests.lab.netns import Lab


@dataclass(frozen=True)
class Bench:
    """The run's shared state, handed to each case."""

    lab: Lab
    tools: Tools
    trio_ping: tuple[str, ...]
    """The trio-ping command of this interpreter's environment (console script)."""
    python: str
    """This interpreter: the start-up case compares with ``python -c 'import trio'``."""
    workdir: Path
    quick: bool
    env: dict[str, str]
    """The environment every child gets."""
    wrapper_cpu_s: float = 0.0
    """CPU time of ``ip netns exec`` + GNU time alone, taken off each measured run."""
    fping_per_echo_us: dict[str, float] = field(default_factory=dict)
    """fping's CPU an echo in each batch case it ran, for the cases compared with it."""

    def in_client(self, argv: Sequence[str]) -> list[str]:
        """``argv`` to run inside the lab's client namespace."""
        return self.lab.command(argv)

    def trio_ping_in_client(self, *args: str) -> list[str]:
        """trio-ping with ``args``, to run inside the lab's client namespace."""
        return self.lab.command([*self.trio_ping, *args])

    def measure(
        self, argv: Sequence[str], *, time_limit_s: float, stdin_path: Path | None = None
    ) -> Measured:
        """Run the program ``argv`` in the client namespace and measure it."""
        return run_measured(
            argv,
            wrap=self.lab.command,
            gnu_time=self.tools.gnu_time,
            stdin_path=stdin_path,
            time_limit_s=time_limit_s,
            env=self.env,
            wrapper_cpu_s=self.wrapper_cpu_s,
        )
