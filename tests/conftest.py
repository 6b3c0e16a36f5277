"""Shared fixtures. The rules of this suite:

- Live tests send only to loopback and to the lab's own addresses (tests/lab/addresses.py),
  inside network namespaces the suite builds and removes; the host's own interfaces and
  routes are never touched.
- Live tests need root. Without it they skip with the reason, except under CI=true, where
  any skipped test fails the run: a green CI must mean the live tests ran.
- Unit tests drive the engine with an in-memory socket and trio's autojump clock.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from tests.fakes import NOON_NS, to_ns
from tests.lab.netns import Lab, lab_context

REPO = Path(__file__).resolve().parent.parent

IN_CI = os.environ.get("CI", "").lower() == "true"


def live_unavailable() -> str | None:
    """Why live tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "live tests need root (raw sockets, network namespaces): run 'sudo nox'"
    if shutil.which("ip") is None:
        return "live tests need iproute2's 'ip' command"
    return None


def require_live() -> None:
    """Skip (fail under CI) when live tests cannot run."""
    reason = live_unavailable()
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"CI=true and a live test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """The namespace lab, built once for the whole run and removed at its end."""
    require_live()
    with lab_context() as built:
        yield built


@pytest.fixture(scope="session")
def responder(lab: Lab) -> Iterator[Lab]:
    """The lab with its misbehaving peer answering (see tests/lab/responder.py)."""
    process = lab.spawn(
        [sys.executable, "-m", "tests.lab.responder"],
        namespace=lab.misbehaving,
        cwd=REPO,
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    ready = process.stdout.readline()
    assert ready == b"ready\n", f"responder did not start: {ready!r}"
    yield lab
    assert process.poll() is None, "the responder died during the tests"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the lab as live (``-m 'not live'`` runs the rest)."""
    for item in items:
        if "lab" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.live)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI=true a skipped test is a failure, whatever skipped it."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter is not None else 0
    if IN_CI and skipped and exitstatus == 0:
        print(f"\nCI=true: {skipped} test(s) skipped; failing the run")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make CLOCK_REALTIME follow trio's virtual clock from noon, as the fake's stamps do."""
    real_time_ns = time.time_ns

    def time_ns() -> int:
        try:
            return NOON_NS + to_ns(trio.current_time())
        except RuntimeError:  # outside the trio run
            return real_time_ns()

    monkeypatch.setattr(time, "time_ns", time_ns)
