"""The HTTP side: ``prometheus_client``'s WSGI server and app, with the fast exposition.

What ``prometheus_client.start_http_server`` does (a threading WSGI server, one thread a
request, in a daemon thread of its own), but a GET of the metrics is answered by
:class:`~trio_ping.exporter.exposition.FastExposition` in the format
``prometheus_client.exposition.choose_encoder`` picks for the request's Accept header
(Prometheus' text format, or OpenMetrics, which a Prometheus server asks for first),
gzipped when the client accepts it (as ``prometheus_client`` does, but faster). All else
(OPTIONS, other methods, ``?name[]=`` filters, /favicon.ico) goes to ``prometheus_client``'s
own app, over the same registry, and so does a scrape whose format the fast path does not
expect.
"""

from __future__ import annotations

import gzip
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any, Final
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, choose_encoder, gzip_accepted

from trio_ping.exporter.exposition import FastExposition, Unexpected

GZIP_LEVEL: Final = 1
"""Not prometheus_client's 9: 10,000 hosts' OpenMetrics (34 MB) take 0.59 s at 9 and
0.07 s at 1, for 1.23 MB against 1.46 (Python 3.11.7, zlib 1.2.13): at 9, a Prometheus
server's scrape (it asks for gzip) took more than twice what writing the text takes."""

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def metrics_app(fast: FastExposition, registry: CollectorRegistry) -> WsgiApp:
    """The WSGI app: ``fast`` for a plain GET, ``prometheus_client``'s app over
    ``registry`` (which must hold what ``fast`` writes) for everything else."""
    fallback = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if (
            environ["REQUEST_METHOD"] != "GET"
            or environ.get("PATH_INFO") == "/favicon.ico"
            or "name[]" in parse_qs(environ.get("QUERY_STRING", ""))
        ):
            return fallback(environ, start_response)  # type: ignore[no-any-return]
        encoder, content_type = choose_encoder(environ.get("HTTP_ACCEPT", ""))
        try:
            output = fast.render(encoder, format_key(content_type))
        except Unexpected:
            return fallback(environ, start_response)  # type: ignore[no-any-return]
        headers = [("Content-Type", content_type)]
        if gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING", "")):
            output = gzip.compress(output, compresslevel=GZIP_LEVEL)
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", headers)
        return [output]

    return app


AHEAD: Final = ("application/openmetrics-text; version=1.0.0", "")
"""The Accept headers of the formats whose lines are written ahead of the first scrape:
OpenMetrics first (what a Prometheus server asks for), then Prometheus' text format
(curl and most tools ask for nothing else)."""


def format_key(content_type: str) -> str:
    """What a scrape's kept lines are filed under: its content type without the name
    escaping scheme (``escaping=underscores``, ``allow-utf-8``: Prometheus 2 and 3 ask for
    different ones), which changes nothing here, since every metric and label name of
    ours is a valid legacy name."""
    return "; ".join(part for part in content_type.split("; ") if not part.startswith("escaping="))


WARM_DELAY: Final = 0.5
"""Seconds the lines wait before they are written ahead, after a start or a reload ..."""
WARM_DELAY_PER_HOST: Final = 100e-6
"""... and this much more for each host running, so that the new hosts' first requests
have all gone out first. The writing takes half the GIL while it runs; during a first
round it holds the sender back, and (most likely the cause) the schedule keeps each
target's first request's late start (Schedule.pop_due), so the round's requests stay
spread over a longer stretch of each interval for good: more wakes, smaller batches.
What was measured, at 10,000
hosts at 1 s, steady state 40 to 60 s after start (two interleaved pairs, 2026-12-03):
24 to 32 us of CPU an echo written at once, 21 to 26 written 2 s later."""


def warm_delay(hosts: int) -> float:
    """How long to wait before writing lines ahead with ``hosts`` running."""
    return WARM_DELAY + hosts * WARM_DELAY_PER_HOST


def write_ahead(fast: FastExposition, delay: float = 0.0) -> threading.Thread:
    """Have every host's lines written in the :data:`AHEAD` formats, in the background,
    ``delay`` seconds from now, so the next scrape finds them (after a start, and after a
    reload); the thread."""
    formats = []
    for accept in AHEAD:
        encoder, content_type = choose_encoder(accept)
        formats.append((encoder, format_key(content_type)))
    return fast.warm_in_background(formats, delay)


class _Quiet(WSGIRequestHandler):
    """Logs no request (as ``prometheus_client``'s server)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start_server(app: WsgiApp, host: str, port: int) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``app`` on ``host``:``port`` (0: a free one) from a daemon thread.

    Raises:
        OSError: the address cannot be bound.
    """
    # As prometheus_client's start_wsgi_server: the address family of the host's first
    # passive address, so that an IPv6 host listens on IPv6.
    family, _, _, _, sockaddr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]

    class Server(ThreadingWSGIServer):
        address_family = family

    server = make_server(str(sockaddr[0]), port, app, Server, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread
