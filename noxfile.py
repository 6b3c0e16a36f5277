"""Sessions: ``nox`` runs tests, lint and typecheck; ``nox -s bench`` runs the benchmarks.

The live tests build network namespaces and open raw sockets: run nox as root
(``sudo nox``). Without root they skip, and under ``CI=true`` a skip is a failure.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_venv = "yes"

PYPROJECT = nox.project.load_toml("pyproject.toml")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite: unit tests and the live namespace lab."""
    session.install(".", *nox.project.dependency_groups(PYPROJECT, "test"))
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package, the tests and the benchmarks."""
    session.install(".", *nox.project.dependency_groups(PYPROJECT, "typecheck"), "nox")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """trio-ping beside fping and iputils ping, in a lab namespace; prints ratios."""
    session.install(".")
    session.run("python", "-m", "benchmarks", *session.posargs)
