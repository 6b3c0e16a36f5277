"""Sessions: ``nox`` runs tests, lint and typecheck; ``nox -s bench`` runs the benchmarks,
``nox -s micro`` the micro benchmarks.

The live tests build network namespaces and open raw sockets: run nox as root
(``sudo nox``). Without root they skip, and under ``CI=true`` a skip is a failure.
"""

from __future__ import annotations

import os
import shutil

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_venv = "yes"

PYPROJECT = nox.project.load_toml("pyproject.toml")

# What the live tests and the bench run beside trio-ping, by command and Debian package.
LAB_TOOLS = {
    "fping": "fping",
    "tcpdump": "tcpdump",
    "ping": "iputils-ping",
    "prometheus": "prometheus",
    "setpriv": "util-linux",
    "ip": "iproute2",
}


def install_lab_tools(session: nox.Session) -> None:
    """apt-get install the lab's tools that are missing (as root, on Debian or Ubuntu)."""
    missing = sorted({package for tool, package in LAB_TOOLS.items() if not shutil.which(tool)})
    if not missing or os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run("apt-get", "update", "-qq", external=True, env=env)
    session.run(
        "apt-get",
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        *missing,
        external=True,
        env=env,
    )


UNIT_COVERAGE = 85
"""Percent of the package's lines the unit tests alone (no root, no lab) must cover."""
UNIT_CLI_COVERAGE = 80
"""Percent of the command line's lines (trio_ping/cli/) they must cover."""


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite: unit tests (their coverage printed), then the live namespace lab.

    The unit tests run first and alone, so that their own coverage is measured and held
    to its floors; the live tests follow, untraced.
    With arguments (``nox -s tests -- tests/cli -x``), pytest runs just those.
    """
    install_lab_tools(session)
    session.install(".", *nox.project.dependency_groups(PYPROJECT, "test"))
    if session.posargs:
        session.run("pytest", *session.posargs)
        return
    cover = ["--cov=trio_ping", "--cov-report=term"]
    session.run("pytest", "-m", "not live", *cover, f"--cov-fail-under={UNIT_COVERAGE}")
    session.run(
        "coverage",
        "report",
        "--include=*/trio_ping/cli/*",
        f"--fail-under={UNIT_CLI_COVERAGE}",
    )
    # Without coverage's tracer: the live tests measure pacing in real time.
    session.run("pytest", "-m", "live")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and formatting) and import-linter (the layers' contracts)."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package, the tests and the benchmarks."""
    session.install(".", *nox.project.dependency_groups(PYPROJECT, "typecheck"), "nox")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """trio-ping beside fping and iputils ping, in a lab namespace; prints ratios."""
    install_lab_tools(session)
    session.install(".")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def micro(session: nox.Session) -> None:
    """The micro benchmarks behind every timing a comment claims (benchmarks/micro.py)."""
    session.install(".")
    session.run("python", "-m", "benchmarks.micro", *session.posargs)
