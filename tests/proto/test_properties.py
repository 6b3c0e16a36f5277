"""Property and fuzz tests (hypothesis): the codec, the tracker, the schedule, target parsing.

- The codec, fed arbitrary bytes or valid datagrams mutated at random, raises nothing but
  ``icmp.MalformedPacket``, and returns only the message types it documents.
- Encoding then parsing gives back what was encoded.
- The tracker, driven by any interleaving of sends, replies, duplicates, ICMP errors,
  cancellations and timeouts, agrees with a simple model and never settles a probe twice.
"""

from __future__ import annotations

import ipaddress
import math
import socket
import struct

import attrs
import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from tests.lab import packets
from trio_ping._addresses import normalised, parse_ip
from trio_ping._proto import icmp
from trio_ping._proto.schedule import Plan, Schedule
from trio_ping._proto.tracker import Probe, ProbeKey, Tracker, Verdict
from trio_ping.cli.targets import Target, TargetError

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

MESSAGE_TYPES = (
    icmp.EchoReply,
    icmp.TimestampReply,
    icmp.ErrorReport,
    icmp.Request,
    icmp.OtherMessage,
)

SOURCE = "192.0.2.1"
LOCAL = "192.0.2.100"
SOURCE6 = packets.packed("2001:db8::1")

idents = st.integers(0, 0xFFFF)
payloads = st.binary(max_size=120)


def parse_ipv4_or_malformed(data: bytes) -> icmp.Message | None:
    try:
        message = icmp.parse_ipv4(data)
    except icmp.MalformedPacket:
        return None
    assert isinstance(message, MESSAGE_TYPES)
    return message


def fix_icmp_checksum(datagram: bytes) -> bytes:
    """Recompute the ICMP checksum where the (possibly mutated) IHL says ICMP starts."""
    header_length = (datagram[0] & 0x0F) * 4 if datagram else 0
    if header_length < 20 or len(datagram) < header_length + 4:
        return datagram
    head, packet = datagram[:header_length], datagram[header_length:]
    packet = packet[:2] + b"\0\0" + packet[4:]
    return head + packet[:2] + icmp.checksum(packet).to_bytes(2, "big") + packet[4:]


# Valid datagrams of every kind the parser knows, to mutate ---------------------------------


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return icmp.encode_echo_request(draw(idents), draw(idents), draw(payloads))
    return icmp.encode_timestamp_request(
        draw(idents), draw(idents), draw(st.integers(0, 2**32 - 1))
    )


ip_options = st.sampled_from([b"", b"\x01\x01\x01\x01", b"\x07\x07\x04" + bytes(5), bytes(40)])


@st.composite
def valid_datagrams(draw: st.DrawFn, *, short_quotes: bool = False) -> bytes:
    """A datagram the parser must accept; with ``short_quotes``, errors may quote too little."""
    kind = draw(st.sampled_from(["reply", "timestamp", "request", "error", "udp-error", "other"]))
    options = draw(ip_options)
    if kind == "reply":
        body = packets.echo_reply(draw(idents), draw(idents), draw(payloads))
    elif kind == "timestamp":
        times = draw(st.lists(st.integers(0, 2**32 - 1), min_size=3, max_size=3))
        body = packets.timestamp_reply(draw(idents), draw(idents), *times)
    elif kind == "request":
        body = draw(requests())
    elif kind in ("error", "udp-error"):
        inner = draw(requests()) if kind == "error" else struct.pack("!HHHH", 1, 2, 8, 0)
        protocol = icmp.IPPROTO_ICMP if kind == "error" else 17
        original = packets.ipv4_datagram(
            LOCAL, SOURCE, inner, options=draw(ip_options), protocol=protocol
        )
        message_type = draw(
            st.sampled_from(
                [icmp.DESTINATION_UNREACHABLE, icmp.TIME_EXCEEDED, icmp.PARAMETER_PROBLEM]
            )
        )
        least = 0 if short_quotes else (original[0] & 0x0F) * 4 + 8
        quote = draw(st.integers(least, len(original)))
        body = packets.error_quoting(message_type, draw(st.integers(0, 255)), original, quote)
    else:
        # Any type whose body has no required structure (errors and Timestamp Replies do).
        message_type = draw(st.integers(0, 255).filter(lambda t: t not in (3, 11, 12, 14)))
        body = packets.icmp_message(
            message_type, draw(st.integers(0, 255)), bytes(4), draw(payloads)
        )
    return packets.ipv4_datagram(SOURCE, LOCAL, body, options=options)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete"]))
        if operation == "truncate":
            del data[draw(st.integers(0, len(data))) :]
        elif operation == "insert":
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif data:
            at = draw(st.integers(0, len(data) - 1))
            if operation == "flip":
                data[at] ^= 1 << draw(st.integers(0, 7))
            elif operation == "set":
                data[at] = draw(st.integers(0, 255))
            else:
                del data[at]
    # Most mutations break the checksum; fixing it lets them reach the deeper parsing.
    return fix_icmp_checksum(bytes(data)) if draw(st.booleans()) else bytes(data)


# The codec never raises anything but MalformedPacket --------------------------------------


@FUZZ
@given(st.binary(max_size=200))
def test_parse_ipv4_on_arbitrary_bytes(data: bytes) -> None:
    parse_ipv4_or_malformed(data)


@FUZZ
@given(st.integers(0x40, 0x4F), st.binary(max_size=120))
def test_parse_ipv4_on_arbitrary_bytes_behind_a_plausible_header(first: int, rest: bytes) -> None:
    data = bytes([first]) + rest[:8] + bytes([icmp.IPPROTO_ICMP]) + rest[8:]
    parse_ipv4_or_malformed(fix_icmp_checksum(data))


@FUZZ
@given(valid_datagrams())
def test_parse_ipv4_on_valid_datagrams(data: bytes) -> None:
    message = parse_ipv4_or_malformed(data)
    assert message is not None
    assert message.source == packets.packed(SOURCE)


@FUZZ
@given(mutated(valid_datagrams(short_quotes=True)))
def test_parse_ipv4_on_mutated_datagrams(data: bytes) -> None:
    parse_ipv4_or_malformed(data)


# The receiver's shortcut for the common Echo Reply agrees with the full parser --------------


@FUZZ
@given(mutated(valid_datagrams()))
def test_echo_reply_shortcut_takes_only_what_the_parser_calls_an_echo_reply(data: bytes) -> None:
    echo = icmp.echo_reply_ipv4(data)
    if echo is not None:
        # Judged apart from the shortcut (which parse_ipv4 itself tries first): the ICMP
        # part alone, checksum included, behind a plain 20-byte IPv4 header.
        assert (data[0], data[9]) == (0x45, icmp.IPPROTO_ICMP)
        general = icmp.parse_icmpv4(data[20:], source=data[12:16], ttl=data[8])
        assert general == icmp.EchoReply(*echo)


@FUZZ
@given(idents, idents, payloads, st.integers(0, 15))
def test_echo_reply_shortcut_refuses_a_wrong_checksum(
    ident: int, seq: int, payload: bytes, bit: int
) -> None:
    data = bytearray(packets.ipv4_datagram(SOURCE, LOCAL, packets.echo_reply(ident, seq, payload)))
    data[22 + bit // 8] ^= 1 << bit % 8  # the ICMP checksum field, and nothing else
    assert icmp.echo_reply_ipv4(bytes(data)) is None
    assert parse_ipv4_or_malformed(bytes(data)) is None


@FUZZ
@given(idents, idents, payloads, st.integers(1, 255))
def test_echo_reply_shortcut_takes_every_plain_echo_reply(
    ident: int, seq: int, payload: bytes, ttl: int
) -> None:
    data = packets.ipv4_datagram(SOURCE, LOCAL, packets.echo_reply(ident, seq, payload), ttl=ttl)
    echo = icmp.echo_reply_ipv4(data)
    assert echo == (packets.packed(SOURCE), ttl, ident, seq, payload)


@FUZZ
@given(st.binary(max_size=200), st.booleans())
def test_parse_icmpv4_on_arbitrary_bytes(data: bytes, fix: bool) -> None:
    if fix and len(data) >= 4:
        data = data[:2] + b"\0\0" + data[4:]
        data = data[:2] + icmp.checksum(data).to_bytes(2, "big") + data[4:]
    try:
        message = icmp.parse_icmpv4(data, source=b"\xc0\0\2\1", ttl=None)
    except icmp.MalformedPacket:
        return
    assert isinstance(message, MESSAGE_TYPES)


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=200),
        # An interesting type first, then anything: errors, echo, and the rest.
        st.tuples(st.sampled_from([1, 2, 3, 4, 128, 129, 135]), st.binary(max_size=120)).map(
            lambda pair: bytes([pair[0]]) + pair[1]
        ),
        # An error quoting an IPv6 header (version 6) and anything after it.
        st.tuples(st.sampled_from([1, 2, 3, 4]), st.binary(min_size=48, max_size=120)).map(
            lambda pair: bytes([pair[0], 0, 0, 0, 0, 0, 0, 0, 0x60]) + pair[1]
        ),
    )
)
def test_parse_icmpv6_on_arbitrary_bytes(data: bytes) -> None:
    try:
        message = icmp.parse_icmpv6(data, source=SOURCE6, hop_limit=64)
    except icmp.MalformedPacket:
        return
    assert isinstance(message, MESSAGE_TYPES)


# Round trips -------------------------------------------------------------------------------


@FUZZ
@given(idents, idents, payloads, ip_options, st.integers(1, 255))
def test_echo_round_trip(ident: int, seq: int, payload: bytes, options: bytes, ttl: int) -> None:
    request = icmp.encode_echo_request(ident, seq, payload)
    assert icmp.checksum(request) == 0
    sent = packets.ipv4_datagram(LOCAL, SOURCE, request, options=options)
    assert icmp.parse_ipv4(sent) == icmp.Request(
        packets.packed(LOCAL), icmp.ECHO_REQUEST, ident, seq
    )
    reply = packets.ipv4_datagram(
        SOURCE, LOCAL, packets.echo_reply_for(request), options=options, ttl=ttl
    )
    assert icmp.parse_ipv4(reply) == icmp.EchoReply(
        packets.packed(SOURCE), ttl, ident, seq, payload
    )


@FUZZ
@given(idents, st.lists(idents, min_size=1, max_size=5), payloads, st.booleans())
def test_echo_template_encodes_what_encode_echo_request_does(
    ident: int, seqs: list[int], payload: bytes, ipv6: bool
) -> None:
    template = icmp.EchoRequestTemplate(ident, payload, ipv6=ipv6)
    for seq in seqs:
        assert template.encode(seq) == icmp.encode_echo_request(ident, seq, payload, ipv6=ipv6)


def test_echo_template_agrees_for_every_sequence_where_the_sum_wraps_to_zero() -> None:
    # 0x0800 (type 8) + 0xF7FF = 0xFFFF: sequence 0 sums to 0 (mod 0xFFFF), the case
    # where the checksum is 0, not 0xFFFF.
    for ident in (0x0000, 0xF7FF, 0xFFFF):
        template = icmp.EchoRequestTemplate(ident, b"")
        for seq in range(0x10000):
            assert template.encode(seq) == icmp.encode_echo_request(ident, seq, b"")


@FUZZ
@given(idents, idents, payloads, st.data())
def test_error_round_trip_quotes_a_prefix_of_the_payload(
    ident: int, seq: int, payload: bytes, data: st.DataObject
) -> None:
    original = packets.ipv4_datagram(
        LOCAL, SOURCE, icmp.encode_echo_request(ident, seq, payload), options=data.draw(ip_options)
    )
    header_length = (original[0] & 0x0F) * 4
    quote = data.draw(st.integers(header_length + 8, len(original)))
    error = packets.error_quoting(icmp.DESTINATION_UNREACHABLE, 1, original, quote)
    message = icmp.parse_ipv4(packets.ipv4_datagram("198.51.100.1", LOCAL, error))
    assert isinstance(message, icmp.ErrorReport)
    assert (message.destination, message.ident, message.seq) == (
        packets.packed(SOURCE),
        ident,
        seq,
    )
    assert message.quoted_data == payload[: quote - header_length - 8]
    # And the tracker accepts it as being about the probe that carried ``payload``.
    tracker: Tracker[None] = Tracker()
    assert message.request_type == icmp.ECHO_REQUEST
    key = (packets.packed(SOURCE), message.request_type, ident, seq)
    tracker.add(key, Probe(None, seq, payload, 0, 0.0, 1.0))
    assert tracker.on_error(key, message.quoted_data) is not None


@FUZZ
@given(idents, idents, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_timestamp_round_trip(ident: int, seq: int, originate: int, other: int) -> None:
    request = icmp.encode_timestamp_request(ident, seq, originate)
    assert icmp.checksum(request) == 0
    assert icmp.parse_icmpv4(request, source=b"\0" * 4, ttl=None) == icmp.Request(
        b"\0" * 4, icmp.TIMESTAMP_REQUEST, ident, seq
    )
    reply = packets.timestamp_reply(ident, seq, originate, other, other ^ 0xFFFF)
    message = icmp.parse_icmpv4(reply, source=b"\0" * 4, ttl=9)
    assert message == icmp.TimestampReply(
        b"\0" * 4, 9, ident, seq, originate, other, other ^ 0xFFFF
    )
    assert isinstance(message, icmp.TimestampReply)
    assert message.fingerprint == request[8:12]


@FUZZ
@given(idents, idents, payloads)
def test_icmpv6_round_trip(ident: int, seq: int, payload: bytes) -> None:
    request = icmp.encode_echo_request(ident, seq, payload, ipv6=True)
    assert icmp.parse_icmpv6(request, source=SOURCE6, hop_limit=None) == icmp.Request(
        SOURCE6, icmp.ICMPV6_ECHO_REQUEST, ident, seq
    )
    reply = bytes([icmp.ICMPV6_ECHO_REPLY]) + request[1:]
    assert icmp.parse_icmpv6(reply, source=SOURCE6, hop_limit=3) == icmp.EchoReply(
        SOURCE6, 3, ident, seq, payload, icmp.ICMPV6_ECHO_REQUEST
    )


@FUZZ
@given(st.binary(max_size=200).filter(lambda data: len(data) % 2 == 0))
def test_checksum_over_data_and_its_checksum_is_zero(data: bytes) -> None:
    assert icmp.checksum(data + icmp.checksum(data).to_bytes(2, "big")) == 0


@FUZZ
@given(st.binary(min_size=1, max_size=200))
def test_checksum_odd_length_is_zero_padded(data: bytes) -> None:
    if len(data) % 2:
        assert icmp.checksum(data) == icmp.checksum(data + b"\0")


# The tracker against a model ---------------------------------------------------------------

DESTINATIONS = [b"\x0a\0\0\x01", b"\x0a\0\0\x02"]
FINGERPRINTS = [b"cookie-A:0123456789", b"cookie-B:0123456789", b"cookie-A:01234"]

# Few keys, so that reuse, duplicates and stale deadlines come up often.
keys = st.tuples(
    st.sampled_from(DESTINATIONS), st.sampled_from([8, 13]), st.just(7), st.integers(0, 1)
)


@attrs.frozen
class Add:
    key: ProbeKey
    fingerprint: bytes
    lifetime: int


@attrs.frozen
class Reply:
    key: ProbeKey
    fingerprint: bytes


@attrs.frozen
class Error:
    key: ProbeKey
    quote: bytes


@attrs.frozen
class Cancel:
    key: ProbeKey


@attrs.frozen
class Advance:
    by: int


Operation = Add | Reply | Error | Cancel | Advance

quotes = st.one_of(
    st.tuples(st.sampled_from(FINGERPRINTS), st.integers(0, 25)).map(lambda p: p[0][: p[1]]),
    st.sampled_from(FINGERPRINTS).map(lambda fp: fp + b"-and-what-follows"),
    st.binary(max_size=6),
)
fingerprints = st.sampled_from(FINGERPRINTS)
operations = st.lists(
    st.one_of(
        st.builds(Add, keys, fingerprints, st.integers(0, 4)),
        st.builds(Reply, keys, fingerprints),
        st.builds(Error, keys, quotes),
        st.builds(Cancel, keys),
        st.builds(Advance, st.integers(0, 3)),
    ),
    max_size=80,
)


@attrs.define
class Model:
    """What the tracker should hold: outstanding and settled probes, by key."""

    outstanding: dict[ProbeKey, Probe[int]] = attrs.field(factory=dict)
    settled: dict[ProbeKey, Probe[int]] = attrs.field(factory=dict)

    def forget_until(self, now: float) -> list[Probe[int]]:
        due = [probe for probe in self.outstanding.values() if probe.deadline <= now]
        self.outstanding = {k: p for k, p in self.outstanding.items() if p.deadline > now}
        self.settled = {k: p for k, p in self.settled.items() if p.deadline > now}
        return due


@settings(FUZZ, max_examples=300)
@given(operations)
def test_tracker_settles_every_probe_at_most_once_and_agrees_with_a_model(
    ops: list[Operation],
) -> None:
    tracker: Tracker[int] = Tracker()
    model = Model()
    now = 0.0
    added = 0
    settled: list[int] = []  # owners, in the order the tracker settled them
    answered: set[int] = set()  # settled by a reply or an error: duplicates may follow
    cancelled: set[int] = set()

    def settle(probe: Probe[int]) -> None:
        assert probe.owner not in settled, f"probe {probe.owner} settled twice"
        assert probe.owner not in cancelled, f"cancelled probe {probe.owner} settled"
        settled.append(probe.owner)

    for op in ops:
        if isinstance(op, Add):
            probe = Probe(added, op.key[3], op.fingerprint, 0, now, now + op.lifetime)
            if op.key in model.outstanding:
                try:
                    tracker.add(op.key, probe)
                except ValueError:
                    continue
                raise AssertionError("an outstanding key was added again")
            tracker.add(op.key, probe)
            added += 1
            model.settled.pop(op.key, None)
            model.outstanding[op.key] = probe
        elif isinstance(op, Reply):
            verdict, got = tracker.on_reply(op.key, op.fingerprint)
            expected = model.outstanding.get(op.key)
            if expected is not None:
                if op.fingerprint == expected.fingerprint:
                    assert (verdict, got) == (Verdict.ANSWERED, expected)
                    assert got is expected
                    settle(expected)
                    answered.add(expected.owner)
                    model.settled[op.key] = model.outstanding.pop(op.key)
                else:
                    assert (verdict, got) == (Verdict.INVALID, None)
            elif op.key in model.settled and model.settled[op.key].fingerprint == op.fingerprint:
                assert verdict is Verdict.DUPLICATE
                assert got is model.settled[op.key]
                assert got.owner in answered
            else:
                assert (verdict, got) == (Verdict.STRAY, None)
        elif isinstance(op, Error):
            got_probe = tracker.on_error(op.key, op.quote)
            expected = model.outstanding.get(op.key)
            agrees = expected is not None and (
                expected.fingerprint.startswith(op.quote)
                or op.quote.startswith(expected.fingerprint)
            )
            if agrees:
                assert expected is not None
                assert got_probe is expected
                settle(expected)
                answered.add(expected.owner)
                model.settled[op.key] = model.outstanding.pop(op.key)
            else:
                assert got_probe is None
        elif isinstance(op, Cancel):
            got_probe = tracker.cancel(op.key)
            assert got_probe is model.outstanding.pop(op.key, None)
            if got_probe is not None:
                cancelled.add(got_probe.owner)
        else:
            now += op.by
            expired = tracker.expire(now)
            expected_expired = model.forget_until(now)
            assert sorted(p.owner for p in expired) == sorted(p.owner for p in expected_expired)
            for probe in expired:
                settle(probe)
        assert len(tracker) == len(model.outstanding)
        assert tracker.next_deadline() <= min(
            (p.deadline for p in [*model.outstanding.values(), *model.settled.values()]),
            default=math.inf,
        )

    # In the end every probe is settled exactly once or was cancelled.
    for probe in tracker.expire(math.inf):
        settle(probe)
    assert len(tracker) == 0
    assert sorted([*settled, *cancelled]) == list(range(added))


# The schedule ------------------------------------------------------------------------------


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.floats(0, 1000, allow_nan=False),
            st.floats(1e-4, 10, allow_nan=False),
            st.integers(1, 20),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_schedule_pops_every_request_once_in_due_order_at_exact_times(
    plans: list[tuple[float, float, int]],
) -> None:
    schedule: Schedule[int] = Schedule()
    for owner, (start, interval, count) in enumerate(plans):
        schedule.add(owner, start=start, interval=interval, count=count)
    popped: list[tuple[float, int, int]] = []
    while (due := schedule.next_due()) < math.inf:
        item = schedule.pop_due(due)
        assert item is not None
        popped.append((due, *item))
    assert [due for due, _, _ in popped] == sorted(due for due, _, _ in popped)
    assert sorted(popped) == sorted(
        (start + k * interval, owner, k)
        for owner, (start, interval, count) in enumerate(plans)
        for k in range(count)
    )


@attrs.define
class _ModelPlan:
    owner: int
    start: float
    interval: float
    count: int
    seq: int = 0
    due: float = 0.0
    order: int = 0
    cancelled: bool = False


class _ScheduleModel:
    """The schedule's contract, by brute force: the earliest (due, queued) request first."""

    def __init__(self) -> None:
        self.plans: list[_ModelPlan] = []
        self.queued = 0

    def add(self, owner: int, start: float, interval: float, count: int) -> None:
        self.plans.append(_ModelPlan(owner, start, interval, count, due=start, order=self.queued))
        self.queued += 1

    def _first(self) -> _ModelPlan | None:
        waiting = [p for p in self.plans if not p.cancelled and p.seq < p.count]
        return min(waiting, key=lambda p: (p.due, p.order), default=None)

    def next_due(self) -> float:
        plan = self._first()
        return math.inf if plan is None else plan.due

    def pop_due(self, now: float, early: float) -> tuple[int, int] | None:
        plan = self._first()
        if plan is None or plan.due > now + early:
            return None
        seq = plan.seq
        if seq == 0 and now > plan.start:
            plan.start = now
        plan.seq += 1
        plan.due = plan.start + plan.seq * plan.interval
        plan.order = self.queued
        self.queued += 1
        return plan.owner, seq


# Each step is (action, time, time, number): ("add", start, interval, count), ("pop",
# advance the clock, early, _), ("cancel", _, _, which plan).
_SCHEDULE_STEPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.integers(0, 8).map(lambda n: n * 0.25),  # starts that tie
            st.sampled_from([0.25, 0.5, 1.0, 0.3]),  # mostly shared intervals: the FIFO
            st.integers(1, 5),
        ),
        st.tuples(
            st.just("pop"),
            st.integers(0, 12).map(lambda n: n * 0.25),
            st.sampled_from([0.0, 0.1]),  # 0.1: pops early, and late starts move
            st.just(0),
        ),
        st.tuples(st.just("cancel"), st.just(0.0), st.just(0.0), st.integers(0, 10)),
    ),
    max_size=60,
)


@FUZZ
@given(_SCHEDULE_STEPS)
def test_schedule_serves_the_earliest_request_first_come_first_served(
    steps: list[tuple[str, float, float, int]],
) -> None:
    """Against a brute-force model: whichever queue a plan waits in (FIFO or heap), pops,
    late pops that move a start, ties and cancels give what the model gives."""
    schedule: Schedule[int] = Schedule()
    model = _ScheduleModel()
    plans: list[Plan[int]] = []
    clock = 0.0
    for action, first, second, number in steps:
        if action == "add":
            plans.append(
                schedule.add(len(plans), start=clock + first, interval=second, count=number)
            )
            model.add(len(model.plans), clock + first, second, number)
        elif action == "cancel":
            if number < len(plans):
                schedule.cancel(plans[number])
                model.plans[number].cancelled = True
        else:
            clock += first
            while (expected := model.pop_due(clock, second)) is not None:
                assert schedule.pop_due(clock, second) == expected
            assert schedule.pop_due(clock, second) is None
        assert schedule.next_due() == model.next_due()


# Target parsing ----------------------------------------------------------------------------


@FUZZ
@given(st.text(max_size=40))
def test_target_parse_raises_only_target_error(text: str) -> None:
    try:
        target = Target.parse(text)
    except TargetError as exc:
        message = str(exc)
    else:
        assert 1 <= target.count <= 10
        assert 1 <= target.interval_ms <= 1000
        return
    assert "\n" not in message


@FUZZ
@given(
    st.ip_addresses(v=4),
    st.integers(1, 10),
    st.integers(1, 1000),
    st.sampled_from(["", " ", "\t", "  "]),
    st.sampled_from(["", "\r", "\n", "\r\n"]),
)
def test_target_parse_round_trip(
    address: ipaddress.IPv4Address, count: int, interval: int, space: str, end: str
) -> None:
    text = f"{space}{address}{space},{space}{count},{interval}{space}{end}"
    assert Target.parse(text) == Target(str(address), str(address), count, interval)


# Octets spelled as people mistype them: leading zeros, hex, and out of range.
octet_spellings = st.one_of(
    st.integers(0, 255).map(str),
    st.integers(0, 255).map(lambda n: f"0{n}"),
    st.integers(0, 255).map(hex),
    st.integers(256, 999).map(str),
)


@FUZZ
@given(st.lists(octet_spellings, min_size=3, max_size=5).map(".".join))
def test_an_accepted_ipv4_spelling_is_already_the_normal_one(text: str) -> None:
    # normalised() skips inet_ntop for IPv4, trusting inet_pton to take only the
    # canonical spelling: any other one must be refused.
    ip = parse_ip(text)
    if ip is not None:
        assert normalised(text, *ip) == socket.inet_ntop(*ip) == text


@FUZZ
@given(st.ip_addresses(v=6), st.booleans(), st.booleans())
def test_an_ipv6_address_normalises_however_it_is_spelled(
    address: ipaddress.IPv6Address, upper: bool, exploded: bool
) -> None:
    text = address.exploded if exploded else str(address)
    text = text.upper() if upper else text
    ip = parse_ip(text)
    assert ip is not None
    # Upper case and exploded forms are accepted: passing them through would be wrong.
    assert normalised(text, *ip) == socket.inet_ntop(*ip)
