"""The command line's arguments: what they ask for, and their one-line usage errors.

Messages and exit statuses of whole runs are in test_main_errors.py.
"""

from __future__ import annotations

import io
import socket

import pytest

from trio_ping.cli.arguments import ArgumentsExit, Config, parse_arguments
from trio_ping.cli.environment import Environment
from trio_ping.pinger import DEFAULT_TIMEOUT


def parse(*argv: str) -> Config:
    env = Environment(stdin=None, stdin_isatty=False, stdout=None, stderr=io.StringIO())
    return parse_arguments(list(argv), env)


def test_defaults() -> None:
    assert parse() == Config(
        targets=(),
        timeout=DEFAULT_TIMEOUT,
        verbose=False,
        timestamp=False,
        json=False,
        summary=False,
        family=socket.AF_UNSPEC,
    )


def test_every_option() -> None:
    config = parse("-6", "--timeout", "0.25", "--timestamp", "--json", "--summary", "-v", "a")
    assert config == Config(
        targets=("a",),
        timeout=0.25,
        verbose=True,
        timestamp=True,
        json=True,
        summary=True,
        family=socket.AF_INET6,
    )


def test_options_may_follow_and_separate_targets() -> None:
    config = parse("127.0.0.1,1,1", "--json", "-", "-4", "::1,1,1", "--verbose")
    assert config.targets == ("127.0.0.1,1,1", "-", "::1,1,1")
    assert (config.json, config.verbose, config.family) == (True, True, socket.AF_INET)


@pytest.mark.parametrize("text", ["1", "0.001", "1e-3", "3600", " 2 "])
def test_a_timeout_is_any_positive_finite_number_of_seconds(text: str) -> None:
    assert parse("--timeout", text).timeout == float(text)


def test_a_usage_error_is_one_line_on_the_environments_stderr() -> None:
    stderr = io.StringIO()
    env = Environment(stdin=None, stdin_isatty=False, stdout=None, stderr=stderr)
    with pytest.raises(ArgumentsExit) as raised:
        parse_arguments(["--json=yes"], env)
    assert raised.value.status == 2
    assert stderr.getvalue() == (
        "trio-ping: argument --json: ignored explicit argument 'yes' (see 'trio-ping --help')\n"
    )
