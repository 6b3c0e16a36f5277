"""``trio-ping-exporter``: one trio program that pings every configured host forever and
serves the figures to Prometheus.

The HTTP side is ``prometheus_client``'s WSGI server, in its own thread (server.py);
everything else (the pinger, the probes, the signals) runs in the trio thread. SIGHUP reloads the
configuration; SIGTERM and SIGINT end the program with status 0.
"""

from __future__ import annotations

import argparse
import inspect
import ipaddress
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import Any, Final, NoReturn, TextIO

import attrs
import trio
from prometheus_client import CollectorRegistry
from prometheus_client.process_collector import ProcessCollector

from trio_ping import __version__
from trio_ping._garbage import collect_less_often, freeze_again
from trio_ping.exporter.config import Config, ConfigError, Resolver, load, resolve_probes
from trio_ping.exporter.exposition import FastExposition
from trio_ping.exporter.metrics import ExporterMetrics
from trio_ping.exporter.probes import Probes
from trio_ping.exporter.server import metrics_app, start_server, warm_delay, write_ahead
from trio_ping.pinger import Pinger, open_pinger

PROGRAM: Final = "trio-ping-exporter"
DEFAULT_LISTEN: Final = ":9374"
"""smokeping_prober's port, on every interface."""

OK: Final = 0
FAILED: Final = 1
"""The exporter could not run: its port is taken, no ICMP socket, ..."""
USAGE: Final = 2
"""Bad input (arguments or configuration): said on one line, nothing sent."""

PingerFactory = Callable[..., AbstractAsyncContextManager[Pinger]]


class Usage(Exception):
    """A command-line error, already worded as one line."""


@attrs.frozen(slots=False)
class Options:
    """The command line, parsed."""

    config: str
    host: str
    port: int
    rate: float | None = None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise Usage(f"{PROGRAM}: {message} (see '{PROGRAM} --help')")


def parse_listen(text: str) -> tuple[str, int]:
    """``[HOST]:PORT`` as (host, port): an empty host is every IPv4 interface; an IPv6
    address goes in brackets (``[::1]:9374``).

    Raises:
        ValueError: with the reason, worded for the user.
    """
    host, colon, port_text = text.rpartition(":")
    if not colon:
        raise ValueError(f"must be [HOST]:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"not an IPv6 address in brackets: {text!r}") from None
    elif ":" in host:
        raise ValueError(f"put an IPv6 address in brackets ([{host}]:{port_text})")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"the port must be 0 to 65535, got {port_text!r}")
    return host or "0.0.0.0", int(port_text)


def parse_arguments(argv: Sequence[str], stdout: TextIO) -> Options | int:
    """The options, or the exit status if there is nothing to run (``--help``,
    ``--version``).

    Raises:
        Usage: a bad argument, worded as one line.
    """
    parser = _Parser(
        prog=PROGRAM,
        description="Ping every host of a TOML configuration forever; serve smokeping_prober's "
        "metrics to Prometheus. SIGHUP reloads the configuration.",
        add_help=False,
    )
    parser.add_argument("--config", required=True, metavar="FILE", help="the TOML configuration")
    parser.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="[HOST]:PORT",
        help=f"where to serve /metrics (default {DEFAULT_LISTEN}; port 0 picks a free one)",
    )
    parser.add_argument(
        "--rate", type=float, metavar="PPS", help="at most this many requests a second, overall"
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("-h", "--help", action="store_true", help="show this help and exit")
    if "-h" in argv or "--help" in argv:
        stdout.write(parser.format_help())
        return OK
    if "--version" in argv:
        stdout.write(f"{PROGRAM} {__version__}\n")
        return OK
    arguments = parser.parse_args(argv)
    try:
        host, port = parse_listen(arguments.listen)
    except ValueError as exc:
        raise Usage(f"{PROGRAM}: --listen: {exc}") from None
    rate = arguments.rate
    if rate is not None and not 0 < rate < float("inf"):
        raise Usage(f"{PROGRAM}: --rate: must be a positive number, got {rate}")
    return Options(arguments.config, host, port, rate)


def check_supported(config: Config, start: Callable[..., Any]) -> None:
    """Reject an option the pinger cannot apply per request, rather than ignore it: size,
    ttl and tos go with each request; source and interface belong to a socket, and one
    exporter has one pinger (a vantage point each), so they are refused for now.

    Raises:
        ConfigError: naming the file, the group and the option.
    """
    accepted = inspect.signature(start).parameters
    for n, group in enumerate(config.groups):
        for name in group.options():
            if name not in accepted:
                raise ConfigError(
                    f"{config.path}: targets[{n}]: {name}: not supported yet by this "
                    "trio-ping's pinger"
                )


async def load_probes(path: str, resolver: Resolver | None) -> tuple[Config, tuple[Any, ...]]:
    """Read, check and resolve the configuration at ``path``.

    Raises:
        ConfigError: one line naming the file, group and key.
    """
    config = load(path)
    check_supported(config, Pinger.start)
    return config, await resolve_probes(config, resolver)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the exporter until SIGTERM or SIGINT; return the exit status."""
    try:
        options = parse_arguments(sys.argv[1:] if argv is None else argv, sys.stdout)
    except Usage as exc:
        print(exc, file=sys.stderr)
        return USAGE
    if isinstance(options, int):
        return options
    try:
        return trio.run(partial(serve, options, sys.stderr, process_wide=True))
    except KeyboardInterrupt:  # Ctrl-C before the signal receiver was in place
        return OK


async def serve(
    options: Options,
    stderr: TextIO,
    *,
    pinger_factory: PingerFactory = open_pinger,
    resolver: Resolver | None = None,
    ready: Callable[[int], None] | None = None,
    process_wide: bool = False,
) -> int:
    """The exporter's run; returns its exit status. ``ready`` is told the port it listens on
    once every probe has started and signals are handled. With ``process_wide`` (the
    program's own run, not a test's) it tunes the garbage collector for the process
    (trio_ping/_garbage.py): after start-up, and again after each reload."""

    def log(line: str) -> None:
        stderr.write(f"{PROGRAM}: {line}\n")
        stderr.flush()

    with trio.open_signal_receiver(signal.SIGHUP, signal.SIGTERM, signal.SIGINT) as signals:
        try:
            config, probes = await load_probes(options.config, resolver)
        except ConfigError as exc:
            log(str(exc))
            return USAGE
        kwargs: dict[str, Any] = {} if options.rate is None else {"rate": options.rate}
        async with pinger_factory(**kwargs) as pinger:
            metrics = ExporterMetrics(config.label_names, lambda: sum(pinger.discarded()))
            running = Probes(pinger, metrics)
            try:
                change = running.apply(probes, config.label_names)
            except (OSError, ValueError) as exc:  # no ICMP socket, or the pinger refused
                log(f"cannot ping: {exc}")
                running.stop()
                return FAILED
            process = ProcessCollector(registry=None)
            rest = CollectorRegistry()
            rest.register(process)
            registry = CollectorRegistry()
            registry.register(metrics)
            registry.register(process)
            fast = FastExposition(metrics, rest)
            app = metrics_app(fast, registry)
            try:
                server, thread = start_server(app, options.host, options.port)
            except OSError as exc:
                log(f"--listen: cannot listen on {options.host}:{options.port}: {exc.strerror}")
                running.stop()
                return FAILED
            if process_wide:
                collect_less_often()  # every probe has started: what lives now, lives long
            try:
                port = server.server_port
                write_ahead(fast, warm_delay(len(running.running)))
                log(f"{config.path}: {change.describe()}; listening on port {port}")
                if ready is not None:
                    ready(port)
                async for _ in _reloads(signals):
                    log(await _reload(options, resolver, running))
                    if process_wide:
                        freeze_again()  # the removed hosts' cycles go, the new hosts freeze
                    # For the hosts it started, or new label names.
                    write_ahead(fast, warm_delay(len(running.running)))
            finally:
                server.shutdown()
                server.server_close()
                thread.join()
            running.stop()
    return OK


async def _reload(options: Options, resolver: Resolver | None, running: Probes) -> str:
    """Load the configuration again and apply it; the line to log about it."""
    try:
        config, probes = await load_probes(options.config, resolver)
        change = running.apply(probes, config.label_names)
    except (ConfigError, OSError, ValueError) as exc:
        return f"reload failed, keeping the previous configuration: {exc}"
    return f"reloaded {config.path}: {change.describe()}"


async def _reloads(signals: AsyncIterator[int]) -> AsyncIterator[None]:
    """One item per SIGHUP; ends at the first SIGTERM or SIGINT."""
    async for signum in signals:
        if signum != signal.SIGHUP:
            return
        yield
