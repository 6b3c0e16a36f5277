"""Build and remove the lab: a client namespace, a kernel peer and a misbehaving peer.

::

    client ns                     kernel peer ns
      c0 10.201.0.1/30  ───veth───  p0 10.201.0.2/30
         fd00:201::1/64                fd00:201::2/64
      routes 10.200.0.0/13,           local 10.202.0.0/16, 10.200.0.0/16,
             fd00:200::/24 → peer       fd00:202::/48 (all answer)
                                      blackhole 10.203.0.0/16, fd00:203::/48 (silence)
                                      unreachable 10.204.0.0/16, fd00:204::/48
                                        (forwarding on: ICMP errors)
                                  misbehaving peer ns
      c1 10.201.1.1/30  ───veth───  m0 10.201.1.2/30
      route 10.205.0.0/16 → it        blackhole 10.205.0.0/16; a userspace responder
                                      sniffs m0 and answers (tests/lab/responder.py)
      c2 10.201.3.1/30  ───veth───  p2 10.201.3.2/30 (the kernel peer again; the lab
         fd00:201:3::1/64              ranges routed this way at metric 2000: for -I)
      c0 also fe80::201:1           p0 also fe80::201:2 (link-local, no DAD)
                                  far ns, beyond the kernel peer (a router):
                                    p1 10.201.2.1 ─veth, MTU 1280─ f0 10.201.2.2
                                    (fd00:201:2::1, ::2); local 10.207.0.0/16,
                                    fd00:207::/48, so TTL 1 expires at the peer

The kernel peer's IPv4 unreachables are scarce: ``ip_error`` (net/ipv4/route.c) sends a
host five in a burst, then one a second (``net.ipv4.route.error_cost`` and ``error_burst``,
global sysctls a namespace cannot change), and none for about a second after another ICMP
error to that host (seen here: after a Time Exceeded, an unreachable asked for after a
pause of 0 to 0.7 s, plus a trio-ping start-up, was never sent; after 1.2 s it was;
``icmp_send``'s own limiter likely resets the per-host entry's tokens, with
``icmp_ratelimit`` 0). CI once saw the second of two unreachables 10
ms apart go missing, with no error before them that we know of. A test that needs IPv4
errors from the kernel peer without fail asks for Time Exceeded (a TTL of 1 to the far
range); single unreachables, or the responder's, serve the rest. Its IPv6 errors have no
such limit.

``Lab.policed()`` makes the kernel peer a policed router for the length of a ``with``
block: at most 1,000 Echo Replies a second after a burst of 50 (the kernel's global ICMP
limiter, with Echo Reply added to ``icmp_ratemask``); tests/live/test_rate_live.py runs
``--rate`` against it.

Every name carries the test run's process id, so two runs never meet, and the lab of a
run that died is removed by the next one.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from tests.lab import addresses

_CLONE_NEWNET: Final = 0x40000000
_PREFIX: Final = "tplab"
POLICED_PER_SECOND: Final = 1000
"""Echo Replies a second the policed peer sends (:meth:`Lab.policed`)."""
_NAME = re.compile(rf"{_PREFIX}(\d+)-\w+")


def ip(*args: str) -> None:
    """Run one ``ip`` command; a failure raises with the command's own message."""
    _check(["ip", *args])


def _check(command: Sequence[str]) -> None:
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode:
        raise RuntimeError(f"{' '.join(command)}: {completed.stderr.strip()}")


def remove_stale_labs() -> None:
    """Delete lab namespaces left by test runs whose process is gone."""
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    for line in listing.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        match = _NAME.fullmatch(name)
        if match and not Path(f"/proc/{match.group(1)}").exists():
            subprocess.run(["ip", "netns", "del", name], check=False)


def trio_ping_command() -> list[str]:
    """The installed ``trio-ping`` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("trio-ping")
    return [str(script)] if script.exists() else [sys.executable, "-m", "trio_ping"]


@attrs.define
class Lab:
    """The namespaces of one test run. Build with :meth:`build`, remove with :meth:`destroy`."""

    client: str
    peer: str
    misbehaving: str
    far: str
    _processes: list[subprocess.Popen[bytes]] = attrs.field(factory=list)

    @classmethod
    def build(cls, tag: str | None = None) -> Lab:
        """Create the lab; on any failure remove what was made and raise."""
        remove_stale_labs()
        tag = tag or f"{_PREFIX}{os.getpid()}"
        lab = cls(f"{tag}-client", f"{tag}-peer", f"{tag}-misbehaving", f"{tag}-far")
        try:
            lab._build()
        except BaseException:
            lab.destroy()
            raise
        return lab

    def _build(self) -> None:
        client, peer, mis, far_ns = self.client, self.peer, self.misbehaving, self.far
        for namespace in (client, peer, mis, far_ns):
            ip("netns", "add", namespace)
            ip("-n", namespace, "link", "set", "lo", "up")
        # Both ends are created inside their namespaces: the host's own never sees them.
        ip(
            "link",
            "add",
            "c0",
            "netns",
            client,
            "type",
            "veth",
            "peer",
            "name",
            "p0",
            "netns",
            peer,
        )
        ip("link", "add", "c1", "netns", client, "type", "veth", "peer", "name", "m0", "netns", mis)
        ip(
            "link",
            "add",
            "c2",
            "netns",
            client,
            "type",
            "veth",
            "peer",
            "name",
            "p2",
            "netns",
            peer,
        )
        ip(
            "link",
            "add",
            "p1",
            "netns",
            peer,
            "type",
            "veth",
            "peer",
            "name",
            "f0",
            "netns",
            far_ns,
        )
        a = addresses
        for namespace, device, address, address6 in (
            (client, "c0", a.CLIENT_LINK, a.CLIENT_LINK6),
            (peer, "p0", a.PEER_LINK, a.PEER_LINK6),
            (client, "c1", a.CLIENT_LINK_M, None),
            (mis, "m0", a.MISBEHAVING_LINK, None),
            (client, "c2", a.SECOND_CLIENT_LINK, a.SECOND_CLIENT_LINK6),
            (peer, "p2", a.SECOND_PEER_LINK, a.SECOND_PEER_LINK6),
            (peer, "p1", a.FAR_ROUTER_LINK, a.FAR_ROUTER_LINK6),
            (far_ns, "f0", a.FAR_LINK, a.FAR_LINK6),
        ):
            prefix = 30
            ip("-n", namespace, "addr", "add", f"{address}/{prefix}", "dev", device)
            if address6:
                ip("-n", namespace, "addr", "add", f"{address6}/64", "dev", device, "nodad")
            if device in ("p1", "f0"):
                ip("-n", namespace, "link", "set", device, "mtu", str(a.FAR_MTU))
            ip("-n", namespace, "link", "set", device, "up")
        ip("-n", client, "addr", "add", f"{a.CLIENT_LINK_LOCAL}/64", "dev", "c0", "nodad")
        ip("-n", peer, "addr", "add", f"{a.PEER_LINK_LOCAL}/64", "dev", "p0", "nodad")
        # Neighbours pinned both ways: no ARP or neighbour discovery for a test to wait on.
        # (Right after the build, the peer ignored the first IPv6 solicitation, holding
        # the first replies for the 1 s retransmit timer.)
        for near, near_dev, far, far_dev, far_addresses, near_addresses in (
            (
                client,
                "c0",
                peer,
                "p0",
                (a.PEER_LINK, a.PEER_LINK6),
                (a.CLIENT_LINK, a.CLIENT_LINK6),
            ),
            (client, "c1", mis, "m0", (a.MISBEHAVING_LINK,), (a.CLIENT_LINK_M,)),
            (
                client,
                "c2",
                peer,
                "p2",
                (a.SECOND_PEER_LINK, a.SECOND_PEER_LINK6),
                (a.SECOND_CLIENT_LINK, a.SECOND_CLIENT_LINK6),
            ),
            (
                peer,
                "p1",
                far_ns,
                "f0",
                (a.FAR_LINK, a.FAR_LINK6),
                (a.FAR_ROUTER_LINK, a.FAR_ROUTER_LINK6),
            ),
            (client, "c0", peer, "p0", (a.PEER_LINK_LOCAL,), (a.CLIENT_LINK_LOCAL,)),
        ):
            near_mac, far_mac = _mac(near, near_dev), _mac(far, far_dev)
            for address in far_addresses:
                ip(
                    "-n",
                    near,
                    "neigh",
                    "replace",
                    address,
                    "lladdr",
                    far_mac,
                    "dev",
                    near_dev,
                    "nud",
                    "permanent",
                )
            for address in near_addresses:
                ip(
                    "-n",
                    far,
                    "neigh",
                    "replace",
                    address,
                    "lladdr",
                    near_mac,
                    "dev",
                    far_dev,
                    "nud",
                    "permanent",
                )
        # The client reaches the lab ranges and nothing else.
        ip("-n", client, "route", "add", a.LAB_RANGE, "via", a.PEER_LINK)
        ip("-n", client, "route", "add", a.MISBEHAVING, "via", a.MISBEHAVING_LINK)
        ip("-n", client, "route", "add", "unreachable", a.REFUSED)
        ip("-n", client, "-6", "route", "add", a.LAB_RANGE6, "via", a.PEER_LINK6)
        # The same ranges over the second link, at a worse metric (IPv6 routes default to
        # 1024, IPv4 ones to 0): for a socket bound to c2 (-I c2) only.
        ip("-n", client, "route", "add", a.LAB_RANGE, "via", a.SECOND_PEER_LINK, "metric", "2000")
        ip(
            "-n",
            client,
            "-6",
            "route",
            "add",
            a.LAB_RANGE6,
            "via",
            a.SECOND_PEER_LINK6,
            "metric",
            "2000",
        )
        # The kernel peer routes BEYOND to the far namespace, which answers it all.
        ip("-n", peer, "route", "add", a.BEYOND, "via", a.FAR_LINK)
        ip("-n", peer, "-6", "route", "add", a.BEYOND6, "via", a.FAR_LINK6)
        ip("-n", far_ns, "route", "add", "default", "via", a.FAR_ROUTER_LINK)
        ip("-n", far_ns, "-6", "route", "add", "default", "via", a.FAR_ROUTER_LINK6)
        ip("-n", far_ns, "route", "add", "local", a.BEYOND, "dev", "lo")
        ip("-n", far_ns, "-6", "route", "add", "local", a.BEYOND6, "dev", "lo")
        # The kernel peer: one range answers, one is silent, one is unreachable.
        ip("-n", peer, "route", "add", "local", a.ANSWERING, "dev", "lo")
        ip("-n", peer, "route", "add", "local", a.ANSWERING_MORE, "dev", "lo")
        ip("-n", peer, "-6", "route", "add", "local", a.ANSWERING6, "dev", "lo")
        ip("-n", peer, "route", "add", "blackhole", a.SILENT)
        ip("-n", peer, "-6", "route", "add", "blackhole", a.SILENT6)
        ip("-n", peer, "route", "add", "unreachable", a.UNREACHABLE)
        ip("-n", peer, "-6", "route", "add", "unreachable", a.UNREACHABLE6)
        self.sysctl(peer, "net.ipv4.ip_forward", "1")
        self.sysctl(peer, "net.ipv6.conf.all.forwarding", "1")
        self.sysctl(peer, "net.ipv4.icmp_ratelimit", "0")
        self.sysctl(peer, "net.ipv6.icmp.ratelimit", "0")
        # The misbehaving peer: its kernel drops the range (a blackhole, with forwarding off,
        # answers nothing: not even Timestamp requests, which no sysctl turns off), and the
        # responder, sniffing m0, answers as the test needs.
        ip("-n", mis, "route", "add", "blackhole", a.MISBEHAVING)
        self.sysctl(mis, "net.ipv4.icmp_echo_ignore_all", "1")

    def sysctl(self, namespace: str, key: str, value: str) -> None:
        """Set a sysctl inside one lab namespace (they are per namespace)."""
        _check(["ip", "netns", "exec", namespace, "sysctl", "-q", "-w", f"{key}={value}"])

    def read_sysctl(self, namespace: str, key: str) -> str:
        """A sysctl's value inside one lab namespace."""
        completed = subprocess.run(
            ["ip", "netns", "exec", namespace, "sysctl", "-n", key],
            capture_output=True,
            text=True,
            check=True,
        )
        return completed.stdout.strip()

    @contextlib.contextmanager
    def policed(self, per_second: int = POLICED_PER_SECOND, burst: int = 50) -> Iterator[None]:
        """Have the kernel peer answer at most ``per_second`` Echo Requests a second, after a
        burst of ``burst``, as a router's control plane polices ICMP; restored afterwards.

        The kernel's own ICMP limiter does it: ``icmp_ratemask`` says which ICMP types it
        limits (6169 is Linux's default mask, 6168, plus bit 0, Echo Reply), and
        ``icmp_msgs_per_sec`` / ``icmp_msgs_burst`` are its global token bucket
        (``icmp_global_allow`` in net/ipv4/icmp.c). The peer's per-destination limit
        (``icmp_ratelimit``) stays off, as the lab sets it.
        """
        settings = {
            "net.ipv4.icmp_ratemask": "6169",
            "net.ipv4.icmp_msgs_per_sec": str(per_second),
            "net.ipv4.icmp_msgs_burst": str(burst),
        }
        saved = {key: self.read_sysctl(self.peer, key) for key in settings}
        try:
            for key, value in settings.items():
                self.sysctl(self.peer, key, value)
            yield
        finally:
            for key, value in saved.items():
                self.sysctl(self.peer, key, value)

    def destroy(self) -> None:
        """Stop the lab's processes and delete its namespaces (and so its veth pairs)."""
        for process in self._processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            for stream in (process.stdin, process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
        self._processes.clear()
        for namespace in (self.client, self.peer, self.misbehaving, self.far):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)

    def run(
        self, args: Sequence[str], *, namespace: str | None = None, **kwargs: Any
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a command inside a lab namespace (the client's unless told)."""
        return subprocess.run(self.command(args, namespace), check=False, **kwargs)

    def spawn(
        self, args: Sequence[str], *, namespace: str | None = None, **kwargs: Any
    ) -> subprocess.Popen[bytes]:
        """Start a command inside a lab namespace; it is stopped when the lab is destroyed."""
        process = subprocess.Popen(self.command(args, namespace), **kwargs)
        self._processes.append(process)
        return process

    def command(self, args: Sequence[str], namespace: str | None = None) -> list[str]:
        """``args`` prefixed to run inside a lab namespace."""
        return ["ip", "netns", "exec", namespace or self.client, *args]

    def open_socket(
        self, family: int, kind: int, protocol: int, *, namespace: str | None = None
    ) -> socket.socket:
        """A socket that lives in a lab namespace, while this process stays where it is.

        A socket belongs to the namespace its creating thread was in: a short-lived thread
        enters the namespace, makes the socket and ends.
        """
        made: list[socket.socket | BaseException] = []

        def make() -> None:
            try:
                with open(f"/run/netns/{namespace or self.client}", "rb") as handle:
                    _setns(handle.fileno())
                made.append(socket.socket(family, kind, protocol))
            except BaseException as exc:
                made.append(exc)

        thread = threading.Thread(target=make)
        thread.start()
        thread.join()
        result = made[0]
        if isinstance(result, BaseException):
            raise result
        return result


def _mac(namespace: str, device: str) -> str:
    listing = subprocess.run(
        ["ip", "-n", namespace, "-j", "link", "show", "dev", device],
        capture_output=True,
        text=True,
        check=True,
    )
    return str(json.loads(listing.stdout)[0]["address"])


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number))


@contextlib.contextmanager
def lab_context() -> Iterator[Lab]:
    """A lab for the duration of a ``with`` block."""
    lab = Lab.build()
    try:
        yield lab
    finally:
        lab.destroy()
