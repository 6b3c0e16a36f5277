"""The trio API: open a pinger, ping addresses concurrently, get typed results.

::

    async with trio_ping.open_pinger() as pinger:
        async for result in pinger.ping("192.0.2.1", count=3, interval=0.2):
            print(result.seq, result.rtt_us)

One pinger shares one socket per address family among all its callers, however many
targets they ping at once.
"""

from __future__ import annotations

import math
import socket
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager

import attrs
import trio

from trio_ping._addresses import (
    address_for,
    is_host_name,
    is_link_local,
    normalised,
    parse_ip,
    split_zone,
)
from trio_ping._engine.alarm import SleepUntil
from trio_ping._engine.engine import SocketEngine
from trio_ping._engine.sessions import IDENTIFIED_SIZE, PAYLOAD_SIZE, Session
from trio_ping._io import socket_options
from trio_ping._io.icmp_socket import IcmpSocket
from trio_ping._io.socket_options import (
    MAX_PAYLOAD_IPV4,
    MAX_PAYLOAD_IPV6,
    MtuDiscovery,
    check_interface,
    check_source,
)
from trio_ping._proto.rate import TokenBucket
from trio_ping._quoting import quoted
from trio_ping.results import PingResult, ResultSink

SocketFactory = Callable[[socket.AddressFamily], IcmpSocket]

DEFAULT_TIMEOUT = 5.0
"""Seconds to wait for each reply, counted from its request's send time."""

DEFAULT_SIZE = PAYLOAD_SIZE
"""Echo payload bytes after the ICMP header, as iputils ping sends by default."""

SHORT_SIZE_LIMIT = IDENTIFIED_SIZE
"""Payloads under this many bytes cannot say which session they are: on an ICMP datagram
socket only one such session per address may run at a time (:meth:`Pinger.start`)."""

MTU_DISCOVERY_MODES = {"do": MtuDiscovery.DO, "want": MtuDiscovery.WANT, "dont": MtuDiscovery.DONT}
"""The ``-M`` names (iputils ping's) of the path MTU discovery modes."""


@attrs.frozen(slots=False)
class _SocketOptions:
    """What open_pinger sets on each socket it opens."""

    interface: str | None = None
    source: str | None = None
    source_family: socket.AddressFamily | None = None
    mtu_discovery: MtuDiscovery | None = None

    @property
    def any(self) -> bool:
        return (self.interface, self.source, self.mtu_discovery) != (None, None, None)


@attrs.frozen(slots=False)
class PingHandle:
    """A target being pinged, as :meth:`Pinger.start` started it: stop it, or ask how it
    is going. Its results go to the channel given to ``start``."""

    _engine: SocketEngine = attrs.field(repr=False)
    _session: Session = attrs.field(repr=False)

    @property
    def duplicates(self) -> int:
        """Valid replies so far that came again for requests already answered (iputils'
        DUP!); they make no result. They can still come after the last result."""
        return self._session.duplicates

    @property
    def remaining(self) -> int | None:
        """Requests whose result is not known yet: 0 once every result was sent; None for
        a session started with ``count=None``, which has no last request."""
        outstanding = self._session.outstanding
        return None if outstanding == math.inf else int(outstanding)

    def cancel(self) -> None:
        """Stop pinging: nothing more is sent, and the results channel is closed.

        Results not yet known are never sent; calling it again does nothing.
        """
        self._engine.cancel(self._session)


class Pinger:
    """Pings any number of targets at once. Made by :func:`open_pinger`; not thread-safe."""

    def __init__(
        self,
        nursery: trio.Nursery,
        socket_factory: SocketFactory,
        precise_pacing: bool,
        options: _SocketOptions | None = None,
        bucket: TokenBucket | None = None,
    ) -> None:
        """Use :func:`open_pinger` instead: it owns the nursery and cleans up."""
        self._options = options or _SocketOptions()
        self._bucket = bucket
        self._nursery = nursery
        self._socket_factory = socket_factory
        self._precise_pacing = precise_pacing
        self._engines: dict[socket.AddressFamily, SocketEngine] = {}
        self._closers: list[Callable[[], None]] = []

    async def ping(
        self,
        address: str,
        *,
        count: int | None = 1,
        interval: float = 1.0,
        timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 -- per reply, not for this call
        timestamp: bool = False,
        family: socket.AddressFamily = socket.AF_UNSPEC,
        size: int | None = None,
        ttl: int | None = None,
        tos: int | None = None,
    ) -> AsyncGenerator[PingResult, None]:
        """Send ``count`` requests to ``address``, ``interval`` seconds apart; yield results.

        With ``count=None`` it pings until the caller stops (leaves the loop, or is
        cancelled). Any count is allowed: sequence numbers wrap at 65,536, and each
        result's ``seq`` counts the requests from 0 all the same.

        ``address`` may be a host name: it is resolved first (see :func:`resolve`, and
        ``family`` to choose IPv4 or IPv6), and the results carry it as their ``target``.

        Results come as they are known, so not always in sequence order: a late reply can
        follow the next request's. There is one result per request. Leaving the loop early
        stops the requests still planned once the generator is closed: wrap it in
        ``contextlib.aclosing`` to have that happen at once rather than when it is
        garbage-collected.

        With ``timestamp``, ICMP Timestamp requests (IPv4 only) replace Echo requests, and
        each answered result carries the peer's times and the clock offset. ``size``,
        ``ttl`` and ``tos`` are as for :meth:`start`.

        Raises:
            ValueError: an argument is out of range, or ``address`` is not an IP address.
            SocketPermissionError: no ICMP socket could be opened for the address's family.
            socket.gaierror: a host name did not resolve.
            trio.ClosedResourceError: the pinger was closed before every result was known.
        """
        resolved = await resolve(address, family)
        send_channel, receive_channel = trio.open_memory_channel[PingResult](math.inf)
        handle = self.start(
            resolved,
            count=count,
            interval=interval,
            timeout=timeout,
            results=send_channel,
            timestamp=timestamp,
            target=None if resolved == address else address,
            size=size,
            ttl=ttl,
            tos=tos,
        )
        try:
            async with receive_channel:
                async for result in receive_channel:
                    yield result
            if handle.remaining is None:
                raise trio.ClosedResourceError("the pinger closed during a run without a count")
            if handle.remaining:
                # The pinger closed under us: say so, rather than end as if complete.
                raise trio.ClosedResourceError(
                    f"the pinger closed with {handle.remaining} of {count} results unknown"
                )
        finally:
            handle.cancel()

    def start(
        self,
        address: str,
        *,
        count: int | None,
        interval: float,
        timeout: float,
        results: ResultSink,
        timestamp: bool = False,
        target: str | None = None,
        size: int | None = None,
        ttl: int | None = None,
        tos: int | None = None,
    ) -> PingHandle:
        """Start pinging ``address`` now; every result goes to ``results``, then it closes.

        The low-level form of :meth:`ping`, for callers that gather many targets' results
        on one channel (the CLI does). ``results`` is the sending end of a trio memory
        channel, or any :class:`~trio_ping.results.ResultSink`: an object whose
        ``send_nowait`` takes each result as the pinger settles it, inside the pinger's
        own task (the exporter counts them so, without a channel and a task to read it).
        It is the pinger's from this call on: it is closed after the last result, or at
        once if this raises, so a reader waiting for its end is never left waiting. A
        channel should be unbounded (or drained promptly): a full one loses the
        session's remaining results. ``count`` None pings until the handle is cancelled
        (or the pinger closes). ``address`` must be an IP address; ``target``, if given,
        is what the caller asked for (a host name) and is carried by every result. The
        handle returned stops the session (:meth:`PingHandle.cancel`) and counts its
        duplicate replies.

        An IPv6 link-local address carries its zone, ``fe80::1%eth0`` (the interface's
        name or index): requests leave by that interface, and only replies that came in
        by it answer them.

        What may differ from one request to the next is set per session, on the same
        socket (as ancillary data of each send):

        Args:
            size: Echo payload bytes after the ICMP header, 0 to 65,507 for IPv4 and
                65,527 for IPv6 (default :data:`DEFAULT_SIZE`, 56). A payload begins with
                a 14-byte head (the run's cookie, the session's identifier and number)
                that every reply must echo; a shorter payload carries what fits of it,
                and a reply must echo those bytes, with the identifier and sequence in
                its header. On an ICMP datagram socket, whose kernel owns the header's
                identifier, a payload under 10 bytes cannot say which session it is:
                one such session per address may run at a time. Not for Timestamp.
            ttl: the IPv4 TTL or IPv6 hop limit of each request, 1 to 255 (default: the
                kernel's, 64).
            tos: the IPv4 TOS byte or IPv6 traffic class, 0 to 255 (default 0).

        Raises:
            ValueError: an argument is out of range (the message names it), ``address``
                is not an IP address, its zone names no interface, or it is not of the
                family of the pinger's ``source``.
            SocketPermissionError: no ICMP socket could be opened for the address's family.
        """
        try:
            if count is not None and count < 1:
                raise ValueError(f"count must be at least 1, got {count}")
            if not interval > 0 or not timeout > 0:
                raise ValueError("interval and timeout must be positive")
            base, zone = split_zone(address)
            ip = parse_ip(base)
            if ip is None:
                raise ValueError(f"not an IP address: {address!r}")
            family, packed = ip
            destination = normalised(base, family, packed)
            if zone is not None:
                destination = address_for(address) or destination  # checks the zone's place
                packed += _scope_id(zone).to_bytes(4, sys.byteorder)  # as Datagram.source
            elif family == socket.AF_INET6 and is_link_local(packed):
                # RFC 4007 6: a link-local address means nothing without its link, and its
                # replies come back with their scope, which a key without one never matches.
                raise ValueError(f"{address} is link-local: name its interface, {address}%eth0")
            payload_size = _check_request(family, timestamp, size, ttl, tos)
            source_family = self._options.source_family
            if source_family is not None and family != source_family:
                raise ValueError(
                    f"source {self._options.source} and target {address} are of different "
                    "address families"
                )
            engine = self._engine(family)
            session = engine.start(
                destination,
                packed,
                count=count,
                interval=interval,
                timeout=timeout,
                results=results,
                timestamp=timestamp,
                target=target,
                size=payload_size,
                ancillary=socket_options.ancillary(family, ttl, tos),
            )
            return PingHandle(engine, session)
        except BaseException:
            results.close()
            raise

    def discarded(self) -> tuple[int, int]:
        """(malformed packets, replies that named a request but not its payload) received
        so far, over every socket: what a hostile or broken network sent that was thrown
        away."""
        engines = self._engines.values()
        return sum(e.malformed for e in engines), sum(e.invalid for e in engines)

    @property
    def rate_delay(self) -> float:
        """The longest, in seconds, that a request due to be sent has waited so far for
        the rate cap (``open_pinger(rate=...)``): 0.0 while the targets ask for no more
        than the cap allows, and always without one."""
        return max((engine.rate_delay for engine in self._engines.values()), default=0.0)

    def _engine(self, family: socket.AddressFamily) -> SocketEngine:
        """The engine for ``family``, made and running from its first use.

        Synchronous, because :meth:`start` is (the CLI calls it for each target line as
        it reads it): the engine takes sessions from its construction on, and its tasks
        pick them up once they run, so ``start_soon(engine.run)`` is enough and nothing
        here has to wait for ``nursery.start``.
        """
        engine = self._engines.get(family)
        if engine is not None:
            return engine
        sock = self._socket_factory(family)
        options = self._options
        if options.any:
            try:
                sock.configure(
                    interface=options.interface,
                    source=options.source if options.source_family == family else None,
                    mtu_discovery=options.mtu_discovery,
                )
            except BaseException:
                sock.close()  # else one more socket for every line that tries again
                raise
        self._closers.append(sock.close)
        sleep_until: SleepUntil = trio.sleep_until
        if self._precise_pacing:
            from trio_ping._io.pacing import TimerfdSleeper  # only when it is used

            sleeper = TimerfdSleeper()
            self._closers.append(sleeper.close)
            sleep_until = sleeper.sleep_until
        engine = SocketEngine(sock, sleep_until, self._bucket)
        self._closers.append(engine.close)
        self._engines[family] = engine
        self._nursery.start_soon(engine.run)
        return engine

    def _close(self) -> None:
        for close in reversed(self._closers):
            close()
        self._closers.clear()


async def resolve(host: str, family: socket.AddressFamily = socket.AF_UNSPEC) -> str:
    """The IP address to ping for ``host``: itself if it is one, else the first address
    trio's resolver (getaddrinfo) gives, of ``family`` if that is not AF_UNSPEC.

    Raises:
        socket.gaierror: the name does not resolve (for that family).
        ValueError: ``host`` is an IP address of the other family than ``family``, or
            neither an address nor a valid host name (checked before any query is sent).
    """
    address = address_for(host, family)
    if address is not None:
        return address
    if not is_host_name(host):
        raise ValueError(f"not an IP address or a host name: {host!r}")
    infos = await trio.socket.getaddrinfo(host, None, family=family, type=socket.SOCK_RAW)
    info_family, _, _, _, sockaddr = infos[0]
    text = str(sockaddr[0]).split("%", 1)[0]  # a link-local answer carries its zone
    return socket.inet_ntop(info_family, socket.inet_pton(info_family, text))


def _check_request(
    family: socket.AddressFamily,
    timestamp: bool,
    size: int | None,
    ttl: int | None,
    tos: int | None,
) -> int:
    """The payload size a request will have; ValueError naming the argument out of range."""
    if ttl is not None and not 1 <= ttl <= 255:
        raise ValueError(f"ttl must be from 1 to 255, got {ttl}")
    if tos is not None and not 0 <= tos <= 255:
        raise ValueError(f"tos must be from 0 to 255, got {tos}")
    if size is None:
        return DEFAULT_SIZE
    if timestamp:
        raise ValueError("size does not apply to Timestamp requests (their size is fixed)")
    ipv6 = family == socket.AF_INET6
    largest = MAX_PAYLOAD_IPV6 if ipv6 else MAX_PAYLOAD_IPV4
    if not 0 <= size <= largest:
        raise ValueError(
            f"size must be from 0 to {largest} for {'IPv6' if ipv6 else 'IPv4'}, got {size}"
        )
    return size


def _scope_id(zone: str) -> int:
    """The interface index a zone names (a name, or the index itself).

    Raises:
        ValueError: no interface has that name, or the index does not fit the 32 bits of
            ``sin6_scope_id``.
    """
    if zone.isascii() and zone.isdigit():
        index = int(zone)
        if index >= 1 << 32:
            raise ValueError(f"unknown zone {quoted('%' + zone)}: an interface index fits 32 bits")
        return index
    try:
        return socket.if_nametoindex(zone)
    except (OSError, ValueError):  # ValueError: a NUL in the name
        raise ValueError(f"unknown zone {quoted('%' + zone)}: no such interface") from None


def _socket_options(
    interface: str | None, source: str | None, mtu_discovery: MtuDiscovery | str | None
) -> _SocketOptions:
    """open_pinger's socket options, checked: ValueError naming the one that is wrong."""
    if interface is not None:
        try:
            check_interface(interface)
        except ValueError as exc:
            raise ValueError(f"interface: {exc}") from None
    source_family = None
    if source is not None:
        try:
            source_family = check_source(source)
        except ValueError as exc:
            raise ValueError(f"source: {exc}") from None
    if isinstance(mtu_discovery, str):
        mode = MTU_DISCOVERY_MODES.get(mtu_discovery)
        if mode is None:
            raise ValueError(f"mtu_discovery must be one of do, want, dont, got {mtu_discovery!r}")
        mtu_discovery = mode
    return _SocketOptions(interface, source, source_family, mtu_discovery)


@asynccontextmanager
async def open_pinger(
    *,
    socket_factory: SocketFactory = IcmpSocket.open,
    precise_pacing: bool = True,
    interface: str | None = None,
    source: str | None = None,
    mtu_discovery: MtuDiscovery | str | None = None,
    rate: float | None = None,
) -> AsyncIterator[Pinger]:
    """A :class:`Pinger` whose sockets and tasks live as long as the ``async with`` block.

    What belongs to a socket is given here, and holds for every target; what may vary per
    request (``size``, ``ttl``, ``tos``) is given to :meth:`Pinger.ping` and
    :meth:`Pinger.start`.

    Args:
        socket_factory: opens the ICMP socket for a family, on first use of that family.
            Pass your own to use a socket made elsewhere (in another network namespace,
            bound to a device, ...).
        precise_pacing: pace requests with a timerfd (sub-millisecond); False uses trio's
            clock, which a test's fake clock can drive.
        interface: send from this interface only, and hear only what comes in by it
            (``SO_BINDTODEVICE``; root or CAP_NET_RAW).
        source: send from this address of this host (``bind``); targets must then be of
            its family.
        mtu_discovery: path MTU discovery, as iputils ping's ``-M``: ``"do"`` sets DF and
            never fragments (a request larger than the path MTU fails with it),
            ``"want"`` fragments locally when it must, ``"dont"`` never sets DF; a
            :class:`MtuDiscovery` or its name. None: the kernel's default (``want``).
        rate: at most this many requests a second over every socket together, sent
            smoothly (a token bucket whose burst is a hundredth of a second's worth, at
            least 1). A request the cap holds back is sent late, never dropped, and its
            timeout counts from when it is sent; :attr:`Pinger.rate_delay` says how late.
            None (the default): no cap.

    Raises:
        ValueError: ``interface`` is not one of this host's, ``source`` is not an address
            of this host, ``mtu_discovery`` is not a mode, or ``rate`` is not a positive
            number; the message names which.
    """
    options = _socket_options(interface, source, mtu_discovery)
    bucket = None if rate is None else TokenBucket.per_second(rate)
    pinger: Pinger | None = None
    body_error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            pinger = Pinger(nursery, socket_factory, precise_pacing, options, bucket)
            try:
                yield pinger
            except BaseException as exc:
                body_error = exc
                raise
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The nursery wraps what the caller's own block raised; the caller should get back
        # what it raised. Anything from our tasks stays grouped: it is a bug to see whole.
        if body_error is not None and list(group.exceptions) == [body_error]:
            raise body_error from None
        raise
    finally:
        # Only now: closing a socket a task still waits on would wake it with an error.
        if pinger is not None:
            pinger._close()
