"""The command line's environment: the real one read from the process, the process-wide
choices only the real entry point makes, and the entry points themselves."""

from __future__ import annotations

import gc
import io
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import pytest
import trio
import trio.testing

from tests.cli.harness import answer, scripted_signals
from tests.conftest import REPO
from tests.fakes import FakeIcmpSocket
from trio_ping import __version__
from trio_ping._io.icmp_socket import IcmpSocket
from trio_ping.cli import main
from trio_ping.cli.environment import Environment, process_signals


def test_the_default_environment_is_the_process() -> None:
    env = Environment.default()
    assert (env.stdin, env.stdout, env.stderr) == (0, 1, sys.stderr)
    assert env.socket_factory == IcmpSocket.open
    assert env.precise_pacing
    assert env.signals is process_signals
    assert env.clock is None
    assert env.process_wide


def test_the_default_environment_sees_closed_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    # Python sets sys.stdin/sys.stdout to None when the shell closed descriptor 0/1.
    monkeypatch.setattr(sys, "stdin", None)
    monkeypatch.setattr(sys, "stdout", None)
    env = Environment.default()
    assert (env.stdin, env.stdin_isatty, env.stdout) == (None, False, None)


def test_the_default_environment_asks_whether_stdin_is_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal())
    assert Environment.default().stdin_isatty


@pytest.mark.parametrize("process_wide", [False, True])
def test_only_the_real_entry_point_makes_process_wide_choices(
    monkeypatch: pytest.MonkeyPatch, process_wide: bool
) -> None:
    # Recorded, not made: ignoring SIGINT for real would outlast this test.
    calls: list[tuple[str, Any]] = []

    def record(name: str, result: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(*args: Any) -> Any:
            calls.append((name, args))
            return result(*args)

        return recorded

    monkeypatch.setattr(gc, "freeze", record("freeze", lambda: None))
    monkeypatch.setattr(gc, "set_threshold", record("set_threshold", lambda *_: None))
    monkeypatch.setattr(
        signal, "signal", record("signal", lambda number, _: signal.getsignal(number))
    )
    stdout = os.open(os.devnull, os.O_WRONLY)
    try:
        env = Environment(
            stdin=None,
            stdin_isatty=False,
            stdout=stdout,
            stderr=io.StringIO(),
            socket_factory=lambda family: FakeIcmpSocket(answer(), family),
            precise_pacing=False,
            signals=scripted_signals(),
            clock=trio.testing.MockClock(autojump_threshold=0),
            process_wide=process_wide,
        )
        assert main(["127.0.0.1,1,1"], env) == 0
    finally:
        os.close(stdout)
    ignored = [args for name, args in calls if name == "signal" and args[1] is signal.SIG_IGN]
    tuned = [(name, args) for name, args in calls if name != "signal"]
    if not process_wide:
        assert (ignored, tuned) == ([], [])
        return
    assert tuned == [("freeze", ()), ("set_threshold", (50_000, 20, 20))]
    # Before the run (so the receiver restores "ignored") and again after it.
    both = [(signal.SIGINT, signal.SIG_IGN), (signal.SIGTERM, signal.SIG_IGN)]
    assert ignored == both + both
    assert [args for name, args in calls if name == "signal"][-2:] == both


async def test_process_signals_receives_sigint_and_sigterm() -> None:
    with process_signals() as signals:
        os.kill(os.getpid(), signal.SIGINT)
        with trio.fail_after(5):
            async for number in signals:
                assert number == signal.SIGINT
                break


def test_the_console_script_is_main() -> None:
    [script] = [ep for ep in entry_points(group="console_scripts") if ep.name == "trio-ping"]
    assert script.value == "trio_ping.cli:main"
    assert script.load() is main


@pytest.mark.parametrize(
    ("arguments", "status", "stdout", "stderr"),
    [
        (["--version"], 0, f"trio-ping {__version__}\n", ""),
        (
            ["--timeout", "0", "127.0.0.1,1,1"],
            2,
            "",
            "trio-ping: argument --timeout: must be a positive number of seconds, got '0' "
            "(see 'trio-ping --help')\n",
        ),
    ],
)
def test_python_dash_m_runs_the_command(
    arguments: list[str], status: int, stdout: str, stderr: str
) -> None:
    # Neither sends anything: a version, and a usage error found before any socket.
    completed = subprocess.run(
        [sys.executable, "-m", "trio_ping", *arguments],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=REPO,
    )
    assert (completed.returncode, completed.stdout, completed.stderr) == (status, stdout, stderr)
