"""Probes over the fake socket on the autojump clock: pinged until stopped, duplicates
counted, a reload's diff applied."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable

import attrs
import pytest
import trio
import trio.testing
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.engine.helpers import pinger_over
from tests.fakes import Delivery, FakeIcmpSocket, Sent, reply_bytes
from trio_ping import SocketPermissionError, open_pinger
from trio_ping.exporter.config import Probe, TargetGroup
from trio_ping.exporter.metrics import ExporterMetrics
from trio_ping.exporter.probes import Probes

GROUP = TargetGroup(hosts=("192.0.2.1", "192.0.2.2"), interval=1.0, timeout=0.5)
NAMES = ("ip", "host", "source", "tos")
FIRST = Probe("192.0.2.1", "192.0.2.1", GROUP)
SECOND = Probe("192.0.2.2", "192.0.2.2", GROUP)


def twice(sent: Sent) -> list[Delivery]:
    """Every reply comes twice: the second is a duplicate."""
    reply = reply_bytes(sent)
    return [Delivery(0.01, reply, sent.address), Delivery(0.02, reply, sent.address)]


def ipv4_only(sock: FakeIcmpSocket) -> Callable[[socket.AddressFamily], FakeIcmpSocket]:
    """A socket factory with ``sock`` for IPv4 and no IPv6 socket to open."""

    def factory(family: socket.AddressFamily) -> FakeIcmpSocket:
        if family == socket.AF_INET6:
            raise SocketPermissionError("cannot open an ICMP socket (as IcmpSocket.open says)")
        return sock

    return factory


def counters(metrics: ExporterMetrics, name: str) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(metrics)
    text = generate_latest(registry).decode()
    samples = [
        (s.labels["host"], s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]
    values = dict(samples)
    assert len(values) == len(samples), f"a host with two {name} series: {samples}"
    return values


async def test_probes_ping_until_stopped_and_follow_a_reload(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sock = FakeIcmpSocket(twice)
    metrics = ExporterMetrics(NAMES)
    async with pinger_over(sock) as pinger:
        probes = Probes(pinger, metrics)
        change = probes.apply([FIRST, SECOND], NAMES)
        assert (change.started, change.stopped, change.kept) == ((FIRST, SECOND), (), ())
        await trio.sleep(10.5)
        assert counters(metrics, "smokeping_requests_total") == {"192.0.2.1": 11, "192.0.2.2": 11}
        assert counters(metrics, "smokeping_response_duplicates_total") == {
            "192.0.2.1": 11,
            "192.0.2.2": 11,
        }
        await trio.sleep(100)
        sent_before = len(sock.sent)
        change = probes.apply([FIRST], NAMES)
        assert (change.started, change.stopped, change.kept) == ((), (SECOND,), (FIRST,))
        assert set(counters(metrics, "smokeping_requests_total")) == {"192.0.2.1"}
        await trio.sleep(10)
        # Only the kept host is still pinged: 10 more requests, not 20.
        assert len(sock.sent) - sent_before == 10
        assert {s.address for s in sock.sent[sent_before:]} == {"192.0.2.1"}
        assert counters(metrics, "smokeping_requests_total")["192.0.2.1"] == 121
        probes.stop()
        assert probes.running == ()


async def test_a_groups_size_ttl_and_tos_go_with_each_request(
    autojump_clock: trio.testing.MockClock,
) -> None:
    group = TargetGroup(hosts=("192.0.2.3",), interval=1.0, timeout=0.5, size=100, ttl=7, tos=0xB8)
    sock = FakeIcmpSocket(twice)
    metrics = ExporterMetrics(NAMES)
    async with pinger_over(sock) as pinger:
        probes = Probes(pinger, metrics)
        probes.apply([Probe("192.0.2.3", "192.0.2.3", group)], NAMES)
        await trio.sleep(2.5)
        probes.stop()
    assert len(sock.sent) == 3
    assert {len(sent.payload) for sent in sock.sent} == {100}
    for sent in sock.sent:
        options = {
            (level, kind, int.from_bytes(data, sys.byteorder))
            for level, kind, data in sent.ancillary
        }
        assert options == {
            (socket.IPPROTO_IP, socket.IP_TTL, 7),
            (socket.IPPROTO_IP, socket.IP_TOS, 0xB8),
        }


async def test_one_host_in_two_groups_counts_each_groups_own_results(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The same host with two ToS values: two sessions whose results carry the same
    # address and host, each counted into its own group's series.
    quiet = TargetGroup(hosts=("192.0.2.1",), interval=1.0, timeout=0.5, tos=16)
    quiet_probe = Probe("192.0.2.1", "192.0.2.1", quiet)

    def answer_tos_0_only(sent: Sent) -> list[Delivery]:
        return [] if sent.ancillary else [Delivery(0.01, reply_bytes(sent), sent.address)]

    sock = FakeIcmpSocket(answer_tos_0_only)
    metrics = ExporterMetrics(NAMES)
    async with pinger_over(sock) as pinger:
        probes = Probes(pinger, metrics)
        probes.apply([FIRST, quiet_probe], NAMES)
        await trio.sleep(10.7)
        probes.stop()
    registry = CollectorRegistry()
    registry.register(metrics)
    samples = [
        s
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    ]
    by_tos = {
        (s.name, s.labels["tos"]): s.value
        for s in samples
        if s.name in ("smokeping_requests_total", "smokeping_response_duration_seconds_count")
    }
    assert by_tos == {
        ("smokeping_requests_total", "0"): 11,
        ("smokeping_requests_total", "16"): 11,
        ("smokeping_response_duration_seconds_count", "0"): 11,
        ("smokeping_response_duration_seconds_count", "16"): 0,
    }


SHORT = TargetGroup(hosts=("192.0.2.1",), interval=1.0, timeout=0.5, size=8)
SHORT_FIRST = Probe("192.0.2.1", "192.0.2.1", SHORT)
SHORT_FIRST_CHANGED = Probe("192.0.2.1", "192.0.2.1", attrs.evolve(SHORT, interval=0.5))


@pytest.mark.parametrize(
    ("raw", "running", "wanted", "requests"),
    [
        # The new configuration drops FIRST and adds SECOND: FIRST counts on.
        (True, FIRST, SECOND, 6 + 5),
        # It changes FIRST's group. FIRST's payload is short, on a datagram socket: its
        # old session stops for the new one, and starts again, its counters from zero.
        (False, SHORT_FIRST, SHORT_FIRST_CHANGED, 5),
    ],
    ids=["a-new-host", "a-replaced-short-payload-host"],
)
async def test_a_reload_the_pinger_refuses_leaves_what_ran_running(
    autojump_clock: trio.testing.MockClock,
    raw: bool,
    running: Probe,
    wanted: Probe,
    requests: int,
) -> None:
    # The new configuration also adds an IPv6 host, which this pinger cannot ping (no IPv6
    # socket): the reload fails as a whole, and the IPv4 host goes on being pinged as before,
    # with its series and the old label names.
    sock = FakeIcmpSocket(twice, raw=raw)
    ipv6 = Probe("2001:db8::1", "2001:db8::1", GROUP)
    metrics = ExporterMetrics(NAMES)
    async with open_pinger(socket_factory=ipv4_only(sock), precise_pacing=False) as pinger:
        probes = Probes(pinger, metrics)
        probes.apply([running], NAMES)
        await trio.sleep(5.25)
        with pytest.raises(SocketPermissionError):
            probes.apply([wanted, ipv6], (*NAMES, "zone"))
        assert probes.running == (running,)
        assert metrics.label_names == NAMES
        assert set(counters(metrics, "smokeping_requests_total")) == {"192.0.2.1"}
        sent_before = len(sock.sent)
        await trio.sleep(4.9)
        assert {s.address for s in sock.sent[sent_before:]} == {"192.0.2.1"}
        assert len(sock.sent) - sent_before == 5  # every second, as before
        assert counters(metrics, "smokeping_requests_total") == {"192.0.2.1": requests}
        probes.stop()


async def test_a_reload_that_changes_a_short_payload_host_replaces_its_session(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # On an ICMP datagram socket only one session per address may send payloads under 10
    # bytes (too short to carry the session's identifier): the host's old session must stop
    # for its new one, with the new interval, to start.
    sock = FakeIcmpSocket(twice, raw=False)
    before, after = SHORT_FIRST, SHORT_FIRST_CHANGED
    metrics = ExporterMetrics(NAMES)
    async with pinger_over(sock) as pinger:
        probes = Probes(pinger, metrics)
        probes.apply([before], NAMES)
        await trio.sleep(5.25)
        change = probes.apply([after], NAMES)
        assert (change.started, change.stopped, change.kept) == ((after,), (before,), ())
        assert probes.running == (after,)
        sent_before = len(sock.sent)
        await trio.sleep(4.9)
        assert len(sock.sent) - sent_before == 10  # the new session's, every 0.5 s
        assert counters(metrics, "smokeping_requests_total") == {"192.0.2.1": 10}
        assert counters(metrics, "smokeping_response_duplicates_total") == {"192.0.2.1": 10}
        probes.stop()
