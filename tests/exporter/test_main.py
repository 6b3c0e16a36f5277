"""The exporter's program: arguments, and a whole run over the fake socket, scraped over
loopback, reloaded with SIGHUP and ended with SIGTERM."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes import FakeIcmpSocket, echo
from trio_ping import __version__, open_pinger
from trio_ping.exporter.main import (
    FAILED,
    OK,
    USAGE,
    Options,
    Usage,
    main,
    parse_arguments,
    parse_listen,
    serve,
)
from trio_ping.pinger import Pinger

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        (":9374", ("0.0.0.0", 9374)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("[::1]:80", ("::1", 80)),
        ("localhost:65535", ("localhost", 65535)),
    ],
)
def test_listen_addresses(text: str, parsed: tuple[str, int]) -> None:
    assert parse_listen(text) == parsed


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("9374", "must be [HOST]:PORT"),
        (":65536", "the port must be 0 to 65535"),
        (":http", "the port must be 0 to 65535"),
        ("::1:80", "put an IPv6 address in brackets"),
        ("[nope]:80", "not an IPv6 address in brackets"),
    ],
)
def test_bad_listen_addresses(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_listen(text)


def test_arguments() -> None:
    out = io.StringIO()
    assert parse_arguments(["--config", "x.toml"], out) == Options("x.toml", "0.0.0.0", 9374)
    assert parse_arguments(["--config", "x.toml", "--rate", "500"], out) == Options(
        "x.toml", "0.0.0.0", 9374, 500.0
    )
    assert parse_arguments(["--version"], out) == OK
    assert out.getvalue() == f"trio-ping-exporter {__version__}\n"
    help_out = io.StringIO()
    assert parse_arguments(["--help"], help_out) == OK
    assert "--listen [HOST]:PORT" in help_out.getvalue()


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        ([], "the following arguments are required: --config"),
        (["--config", "x", "--listen", "80"], "--listen: must be [HOST]:PORT"),
        (["--config", "x", "--rate", "0"], "--rate: must be a positive number"),
    ],
)
def test_bad_arguments_are_one_line(argv: list[str], said: str) -> None:
    with pytest.raises(Usage) as caught:
        parse_arguments(argv, io.StringIO())
    assert said in str(caught.value)
    assert str(caught.value).startswith("trio-ping-exporter: ")


def test_main_says_a_usage_error_on_stderr_with_status_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--listen", ":1"]) == USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--config" in err


def test_console_script_and_python_m(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("trio-ping-exporter")
    for command in ([str(script)], [sys.executable, "-m", "trio_ping.exporter"]):
        done = subprocess.run([*command, "--version"], capture_output=True, text=True, check=False)
        assert (done.returncode, done.stdout) == (0, f"trio-ping-exporter {__version__}\n")


def fake_pinger() -> Callable[..., Any]:
    peer = echo(0.001)

    def factory(family: socket.AddressFamily) -> FakeIcmpSocket:
        return FakeIcmpSocket(peer, family)

    return partial(open_pinger, socket_factory=factory, precise_pacing=False)


async def fetch(port: int) -> dict[str, Any]:
    def get() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return str(response.read().decode())

    text = await trio.to_thread.run_sync(get)
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def hosts_of(families: dict[str, Any]) -> dict[str, float]:
    return {s.labels["host"]: s.value for s in families["smokeping_requests"]}


async def until(check: Callable[[], Awaitable[bool]], deadline: float = 10) -> None:
    """Poll ``check`` until it holds; fail after ``deadline`` seconds."""
    with trio.fail_after(deadline):
        while not await check():
            await trio.sleep(0.05)


GROUP = '[[targets]]\nhosts = [{hosts}]\ninterval = 0.05\nlabels = {{ site = "ams1" }}\n'


async def test_a_run_serves_reloads_and_ends_on_sigterm(tmp_path: Path) -> None:
    path = tmp_path / "exporter.toml"
    path.write_text(GROUP.format(hosts='"192.0.2.1", "192.0.2.2"'))
    stderr = io.StringIO()
    ports: list[int] = []
    status: list[int] = []
    options = Options(str(path), "127.0.0.1", 0)
    listening = trio.Event()

    def ready(port: int) -> None:
        ports.append(port)
        listening.set()

    async def run() -> None:
        status.append(await serve(options, stderr, pinger_factory=fake_pinger(), ready=ready))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        with trio.fail_after(10):
            await listening.wait()
        port = ports[0]

        async def counted() -> bool:
            hosts = hosts_of(await fetch(port))
            return set(hosts) == {"192.0.2.1", "192.0.2.2"} and min(hosts.values()) >= 3

        await until(counted)
        before = hosts_of(await fetch(port))["192.0.2.1"]

        # A reload: one host stays (its counter goes on), one goes, one comes.
        path.write_text(GROUP.format(hosts='"192.0.2.1", "192.0.2.3"'))
        os.kill(os.getpid(), signal.SIGHUP)

        async def reloaded() -> bool:
            return set(hosts_of(await fetch(port))) == {"192.0.2.1", "192.0.2.3"}

        await until(reloaded)
        assert hosts_of(await fetch(port))["192.0.2.1"] >= before

        # A broken file keeps what runs, and says so on one line.
        path.write_text(GROUP.format(hosts='"192.0.2.1"') + "timeout = -1\n")
        os.kill(os.getpid(), signal.SIGHUP)

        async def refused() -> bool:
            return "reload failed" in stderr.getvalue()

        await until(refused)
        assert set(hosts_of(await fetch(port))) == {"192.0.2.1", "192.0.2.3"}

        os.kill(os.getpid(), signal.SIGTERM)
    assert status == [OK]
    lines = stderr.getvalue().splitlines()
    assert lines[0] == (
        f"trio-ping-exporter: {path}: 2 hosts: 2 started, 0 stopped, 0 unchanged; "
        f"listening on port {port}"
    )
    assert (
        lines[1]
        == f"trio-ping-exporter: reloaded {path}: 2 hosts: 1 started, 1 stopped, 1 unchanged"
    )
    assert lines[2].startswith(
        "trio-ping-exporter: reload failed, keeping the previous configuration: "
        f"{path}: targets[0]: timeout: must be a positive number"
    )
    assert len(lines) == 3


async def test_a_broken_file_at_start_up_is_status_2(tmp_path: Path) -> None:
    path = tmp_path / "exporter.toml"
    path.write_text(GROUP.format(hosts='"192.0.2.1"') + "colour = 1\n")
    stderr = io.StringIO()
    status = await serve(Options(str(path), "127.0.0.1", 0), stderr, pinger_factory=fake_pinger())
    assert status == USAGE
    assert stderr.getvalue() == (
        f"trio-ping-exporter: {path}: targets[0]: colour: unknown key (known: hosts, interface, "
        "interval, labels, size, source, timeout, tos, ttl)\n"
    )


async def test_an_option_the_pinger_lacks_is_refused_at_start_up(tmp_path: Path) -> None:
    path = tmp_path / "exporter.toml"
    path.write_text(GROUP.format(hosts='"192.0.2.1"') + 'source = "192.0.2.100"\n')
    stderr = io.StringIO()
    status = await serve(Options(str(path), "127.0.0.1", 0), stderr, pinger_factory=fake_pinger())
    assert status == USAGE
    assert stderr.getvalue() == (
        f"trio-ping-exporter: {path}: targets[0]: source: not supported yet by this "
        "trio-ping's pinger\n"
    )


async def test_a_port_in_use_is_status_1(tmp_path: Path) -> None:
    path = tmp_path / "exporter.toml"
    path.write_text(GROUP.format(hosts='"192.0.2.1"'))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        stderr = io.StringIO()
        status = await serve(
            Options(str(path), "127.0.0.1", port), stderr, pinger_factory=fake_pinger()
        )
    assert status == FAILED
    assert stderr.getvalue() == (
        f"trio-ping-exporter: --listen: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    )


async def test_a_pinger_that_cannot_ping_is_status_1(tmp_path: Path) -> None:
    path = tmp_path / "exporter.toml"
    path.write_text(GROUP.format(hosts='"192.0.2.1"'))

    def refuse(family: socket.AddressFamily) -> FakeIcmpSocket:
        raise PermissionError(1, "Operation not permitted")

    factory: Callable[..., AbstractAsyncContextManager[Pinger]] = partial(
        open_pinger, socket_factory=refuse, precise_pacing=False
    )
    stderr = io.StringIO()
    status = await serve(Options(str(path), "127.0.0.1", 0), stderr, pinger_factory=factory)
    assert status == FAILED
    assert (
        stderr.getvalue() == "trio-ping-exporter: cannot ping: [Errno 1] Operation not permitted\n"
    )


async def test_rate_goes_to_the_pinger(tmp_path: Path) -> None:
    path = tmp_path / "exporter.toml"
    path.write_text(GROUP.format(hosts='"192.0.2.1"'))
    given: list[dict[str, Any]] = []
    fake = fake_pinger()

    def factory(**kwargs: Any) -> AbstractAsyncContextManager[Pinger]:
        given.append(kwargs)
        return fake(**kwargs)  # type: ignore[no-any-return]

    def ready(port: int) -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    options = Options(str(path), "127.0.0.1", 0, rate=50.0)
    status = await serve(options, io.StringIO(), pinger_factory=factory, ready=ready)
    assert (status, given) == (OK, [{"rate": 50.0}])


async def test_the_programs_run_tunes_the_collector_at_start_and_after_each_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "exporter.toml"
    path.write_text(GROUP.format(hosts='"192.0.2.1"'))
    tuned: list[str] = []
    # The module, which the package's name "main" hides behind its function of that name.
    program = sys.modules[serve.__module__]
    monkeypatch.setattr(program, "collect_less_often", lambda: tuned.append("start"))
    monkeypatch.setattr(program, "freeze_again", lambda: tuned.append("reload"))
    stderr = io.StringIO()
    listening = trio.Event()

    async def run() -> None:
        options = Options(str(path), "127.0.0.1", 0)
        await serve(
            options,
            stderr,
            pinger_factory=fake_pinger(),
            ready=lambda _: listening.set(),
            process_wide=True,
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        with trio.fail_after(10):
            await listening.wait()
        assert tuned == ["start"]
        os.kill(os.getpid(), signal.SIGHUP)

        async def reloaded() -> bool:
            return "reloaded" in stderr.getvalue()

        await until(reloaded)
        assert tuned == ["start", "reload"]
        os.kill(os.getpid(), signal.SIGTERM)
