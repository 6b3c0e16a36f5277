"""The tracker's rules, with no I/O: answered, duplicate, invalid, stray, errors, expiry."""

from __future__ import annotations

import math

import attrs
import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from tests.proto.strategies import FUZZ
from trio_ping._proto.tracker import Probe, ProbeKey, Tracker, Verdict

DEST = b"\xc0\x00\x02\x01"
OTHER_DEST = b"\xc0\x00\x02\x02"
PAYLOAD = b"cookie01" + bytes(range(48))


ECHO, TIMESTAMP = 8, 13


def key(seq: int, ident: int = 7, dest: bytes = DEST, kind: int = ECHO) -> ProbeKey:
    return (dest, kind, ident, seq)


def probe(
    seq: int = 0, *, deadline: float = 5.0, fingerprint: bytes = PAYLOAD, owner: str = "a"
) -> Probe[str]:
    return Probe(owner, seq, fingerprint, sent_ns=1_000 * seq, sent_at=0.0, deadline=deadline)


def test_first_valid_reply_answers_and_returns_the_probe() -> None:
    tracker: Tracker[str] = Tracker()
    sent = probe(0)
    tracker.add(key(0), sent)
    assert len(tracker) == 1
    verdict, answered = tracker.on_reply(key(0), PAYLOAD)
    assert verdict is Verdict.ANSWERED
    assert answered is sent
    assert len(tracker) == 0


def test_second_valid_reply_is_a_duplicate() -> None:
    tracker: Tracker[str] = Tracker()
    sent = probe(0)
    tracker.add(key(0), sent)
    tracker.on_reply(key(0), PAYLOAD)
    assert tracker.on_reply(key(0), PAYLOAD) == (Verdict.DUPLICATE, sent)
    assert tracker.on_reply(key(0), PAYLOAD) == (Verdict.DUPLICATE, sent)


def test_reply_with_wrong_fingerprint_is_invalid_and_leaves_the_probe_outstanding() -> None:
    tracker: Tracker[str] = Tracker()
    sent = probe(0)
    tracker.add(key(0), sent)
    assert tracker.on_reply(key(0), PAYLOAD[:-1] + b"X") == (Verdict.INVALID, None)
    assert tracker.on_reply(key(0), PAYLOAD[:8]) == (Verdict.INVALID, None)
    assert len(tracker) == 1
    assert tracker.on_reply(key(0), PAYLOAD) == (Verdict.ANSWERED, sent)


def test_wrong_fingerprint_after_settling_is_stray_not_duplicate() -> None:
    tracker: Tracker[str] = Tracker()
    tracker.add(key(0), probe(0))
    tracker.on_reply(key(0), PAYLOAD)
    assert tracker.on_reply(key(0), b"someone else's") == (Verdict.STRAY, None)


@pytest.mark.parametrize(
    "stray_key",
    [key(1), key(0, ident=8), key(0, dest=OTHER_DEST), key(0, kind=TIMESTAMP)],
    ids=["other-seq", "other-ident", "other-source", "other-kind"],
)
def test_reply_naming_no_probe_is_stray(stray_key: ProbeKey) -> None:
    tracker: Tracker[str] = Tracker()
    tracker.add(key(0), probe(0))
    assert tracker.on_reply(stray_key, PAYLOAD) == (Verdict.STRAY, None)
    assert len(tracker) == 1


def test_reply_after_timeout_is_stray() -> None:
    tracker: Tracker[str] = Tracker()
    sent = probe(0, deadline=5.0)
    tracker.add(key(0), sent)
    assert tracker.expire(5.0) == [sent]
    assert tracker.on_reply(key(0), PAYLOAD) == (Verdict.STRAY, None)


def test_adding_an_outstanding_key_is_refused() -> None:
    tracker: Tracker[str] = Tracker()
    tracker.add(key(0), probe(0))
    with pytest.raises(ValueError, match="already outstanding"):
        tracker.add(key(0), probe(0))


# ICMP errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "quote",
    [b"", PAYLOAD[:1], PAYLOAD[:8], PAYLOAD, PAYLOAD + b"trailing padding a router added"],
    ids=["nothing", "one-byte", "cookie", "whole", "longer"],
)
def test_error_whose_quote_is_a_prefix_of_the_fingerprint_settles(quote: bytes) -> None:
    tracker: Tracker[str] = Tracker()
    sent = probe(0)
    tracker.add(key(0), sent)
    assert tracker.on_error(key(0), quote) is sent
    assert len(tracker) == 0
    # Settled: a second error, or the reply itself, settles nothing more.
    assert tracker.on_error(key(0), quote) is None
    assert tracker.on_reply(key(0), PAYLOAD) == (Verdict.DUPLICATE, sent)


@pytest.mark.parametrize(
    "quote",
    [b"X", b"cookie02", PAYLOAD[:20] + b"X" + PAYLOAD[21:]],
    ids=["first-byte", "other-cookie", "middle-byte"],
)
def test_error_whose_quote_disagrees_is_ignored(quote: bytes) -> None:
    tracker: Tracker[str] = Tracker()
    sent = probe(0)
    tracker.add(key(0), sent)
    assert tracker.on_error(key(0), quote) is None
    assert len(tracker) == 1
    assert tracker.on_reply(key(0), PAYLOAD) == (Verdict.ANSWERED, sent)


def test_error_for_unknown_or_expired_probe_is_ignored() -> None:
    tracker: Tracker[str] = Tracker()
    tracker.add(key(0), probe(0, deadline=1.0))
    assert tracker.on_error(key(1), b"") is None
    tracker.expire(1.0)
    assert tracker.on_error(key(0), b"") is None


# Expiry ----------------------------------------------------------------------------------


def test_expire_returns_only_unanswered_probes_due_by_now() -> None:
    tracker: Tracker[str] = Tracker()
    probes = [probe(seq, deadline=1.0 + seq) for seq in range(5)]
    for seq, sent in enumerate(probes):
        tracker.add(key(seq), sent)
    tracker.on_reply(key(1), PAYLOAD)
    assert tracker.on_error(key(2), b"") is probes[2]
    assert tracker.expire(0.999) == []
    assert tracker.expire(4.0) == [probes[0], probes[3]]  # 1 answered, 2 errored
    assert len(tracker) == 1
    assert tracker.expire(math.inf) == [probes[4]]
    assert tracker.expire(math.inf) == []


def test_expire_forgets_settled_probes_so_late_duplicates_become_strays() -> None:
    tracker: Tracker[str] = Tracker()
    tracker.add(key(0), probe(0, deadline=2.0))
    tracker.on_reply(key(0), PAYLOAD)
    assert tracker.on_reply(key(0), PAYLOAD)[0] is Verdict.DUPLICATE
    assert tracker.expire(2.0) == []
    assert tracker.on_reply(key(0), PAYLOAD) == (Verdict.STRAY, None)
    assert tracker.next_deadline() == math.inf


def test_expire_orders_by_deadline_not_by_insertion() -> None:
    tracker: Tracker[str] = Tracker()
    late, early = probe(0, deadline=9.0), probe(1, deadline=3.0)
    tracker.add(key(0), late)
    tracker.add(key(1), early)
    assert tracker.expire(3.0) == [early]
    assert tracker.expire(9.0) == [late]


def test_cancelled_probe_never_expires_and_is_not_answered() -> None:
    tracker: Tracker[str] = Tracker()
    sent = probe(0, deadline=1.0)
    tracker.add(key(0), sent)
    assert tracker.cancel(key(0)) is sent
    assert tracker.cancel(key(0)) is None
    assert len(tracker) == 0
    assert tracker.on_reply(key(0), PAYLOAD) == (Verdict.STRAY, None)
    assert tracker.expire(10.0) == []


def test_key_reuse_after_settling_a_stale_deadline_does_not_expire_the_new_probe() -> None:
    tracker: Tracker[str] = Tracker()
    first = probe(0, deadline=1.0, fingerprint=b"first run", owner="first")
    tracker.add(key(0), first)
    tracker.on_reply(key(0), b"first run")
    second = probe(0, deadline=6.0, fingerprint=b"second run", owner="second")
    tracker.add(key(0), second)
    # The first probe's heap entry comes due: it must not touch the second probe.
    assert tracker.expire(1.0) == []
    assert len(tracker) == 1
    # The old probe's duplicate is no longer recognised; the new probe answers.
    assert tracker.on_reply(key(0), b"first run") == (Verdict.INVALID, None)
    assert tracker.on_reply(key(0), b"second run") == (Verdict.ANSWERED, second)


def test_key_reuse_after_cancel_expires_only_the_new_probe_at_its_own_deadline() -> None:
    tracker: Tracker[str] = Tracker()
    tracker.add(key(0), probe(0, deadline=1.0, owner="first"))
    tracker.cancel(key(0))
    second = probe(0, deadline=6.0, owner="second")
    tracker.add(key(0), second)
    assert tracker.expire(5.999) == []
    assert tracker.expire(6.0) == [second]


def test_key_reuse_after_expiry() -> None:
    tracker: Tracker[str] = Tracker()
    first = probe(0, deadline=1.0, owner="first")
    tracker.add(key(0), first)
    assert tracker.expire(1.0) == [first]
    second = probe(0, deadline=2.0, owner="second")
    tracker.add(key(0), second)
    assert tracker.on_reply(key(0), PAYLOAD) == (Verdict.ANSWERED, second)


def test_next_deadline() -> None:
    tracker: Tracker[str] = Tracker()
    assert tracker.next_deadline() == math.inf
    tracker.add(key(0), probe(0, deadline=5.0))
    tracker.add(key(1), probe(1, deadline=3.0))
    tracker.add(key(2), probe(2, deadline=4.0))
    assert tracker.next_deadline() == 3.0
    tracker.expire(3.0)
    assert tracker.next_deadline() == 4.0
    # A settled probe keeps its place until its deadline, for duplicate detection.
    tracker.on_reply(key(2), PAYLOAD)
    assert tracker.next_deadline() == 4.0
    tracker.expire(4.0)
    assert tracker.next_deadline() == 5.0
    tracker.expire(5.0)
    assert tracker.next_deadline() == math.inf


def test_keys_differing_only_in_destination_do_not_collide() -> None:
    tracker: Tracker[str] = Tracker()
    ours, theirs = probe(0, owner="ours"), probe(0, owner="theirs", fingerprint=b"theirs")
    tracker.add(key(0), ours)
    tracker.add(key(0, dest=OTHER_DEST), theirs)
    assert tracker.on_reply(key(0, dest=OTHER_DEST), PAYLOAD) == (Verdict.INVALID, None)
    assert tracker.on_reply(key(0, dest=OTHER_DEST), b"theirs") == (Verdict.ANSWERED, theirs)
    assert tracker.on_reply(key(0), PAYLOAD) == (Verdict.ANSWERED, ours)


def test_an_echo_reply_never_settles_a_timestamp_request_of_the_same_numbers() -> None:
    tracker: Tracker[str] = Tracker()
    echo_probe = probe(0, fingerprint=b"\0\1\2\3", owner="echo")
    timestamp_probe = probe(0, fingerprint=b"\0\1\2\3", owner="timestamp")
    tracker.add(key(0, kind=TIMESTAMP), timestamp_probe)
    assert tracker.on_reply(key(0), b"\0\1\2\3") == (Verdict.STRAY, None)
    tracker.add(key(0), echo_probe)
    assert tracker.on_reply(key(0), b"\0\1\2\3") == (Verdict.ANSWERED, echo_probe)
    assert len(tracker) == 1
    assert tracker.on_error(key(0, kind=TIMESTAMP), b"\0\1") is timestamp_probe


def test_more_than_65536_outstanding_probes() -> None:
    tracker: Tracker[int] = Tracker()
    destinations = [bytes([10, 0, 0, n]) for n in range(3)]
    for dest in destinations:
        for seq in range(0x10000):
            tracker.add(key(seq, 1, dest), Probe(seq, seq, b"", 0, 0.0, 1.0))
    assert len(tracker) == 3 * 0x10000
    assert tracker.on_reply(key(0xFFFF, 1, destinations[1]), b"")[0] is Verdict.ANSWERED
    assert len(tracker.expire(1.0)) == 3 * 0x10000 - 1


def test_deadlines_out_of_sending_order_expire_in_deadline_order() -> None:
    # Sessions with different timeouts: a later send can time out first.
    tracker: Tracker[str] = Tracker()
    deadlines = [5.0, 3.0, 4.0, 1.0, 6.0, 2.0, 6.0]
    probes = [probe(seq, deadline=deadline) for seq, deadline in enumerate(deadlines)]
    for seq, sent in enumerate(probes):
        tracker.add(key(seq), sent)
    assert tracker.next_deadline() == 1.0
    assert tracker.expire(3.0) == [probes[3], probes[5], probes[1]]
    assert tracker.next_deadline() == 4.0
    assert tracker.expire(5.5) == [probes[2], probes[0]]
    assert tracker.expire(math.inf) == [probes[4], probes[6]]
    assert tracker.next_deadline() == math.inf


def test_a_reply_that_arrived_after_the_timeout_is_late_and_leaves_the_probe() -> None:
    tracker: Tracker[str] = Tracker()
    sent = probe(0, deadline=2.0)  # sent at 0.0 on the scheduling clock: a 2 s timeout
    tracker.add(key(0), sent)
    arrived_late = sent.sent_ns + 2_000_000_001
    assert tracker.on_reply(key(0), PAYLOAD, arrived_late) == (Verdict.LATE, None)
    assert len(tracker) == 1  # still outstanding: its expiry reports the timeout
    assert tracker.expire(2.0) == [sent]


def test_a_reply_that_arrived_on_the_deadline_counts() -> None:
    tracker: Tracker[str] = Tracker()
    sent = probe(0, deadline=2.0)
    tracker.add(key(0), sent)
    on_time = sent.sent_ns + 2_000_000_000
    assert tracker.on_reply(key(0), PAYLOAD, on_time) == (Verdict.ANSWERED, sent)


def test_answer_settles_what_on_reply_calls_answered() -> None:
    tracker: Tracker[str] = Tracker()
    sent = probe(0, deadline=2.0)
    tracker.add(key(0), sent)
    assert tracker.answer(key(0), PAYLOAD, sent.sent_ns + 2_000_000_000) is sent
    assert len(tracker) == 0
    assert tracker.on_reply(key(0), PAYLOAD) == (Verdict.DUPLICATE, sent)


@pytest.mark.parametrize(
    ("reply_key", "fingerprint", "after_ns", "verdict"),
    [
        (key(1), PAYLOAD, 0, Verdict.STRAY),
        (key(0), PAYLOAD[:-1] + b"X", 0, Verdict.INVALID),
        (key(0), PAYLOAD, 2_000_000_001, Verdict.LATE),
    ],
    ids=["stray", "invalid", "late"],
)
def test_answer_takes_nothing_but_an_answer_and_changes_nothing(
    reply_key: ProbeKey, fingerprint: bytes, after_ns: int, verdict: Verdict
) -> None:
    tracker: Tracker[str] = Tracker()
    sent = probe(0, deadline=2.0)
    tracker.add(key(0), sent)
    assert tracker.answer(reply_key, fingerprint, sent.sent_ns + after_ns) is None
    assert len(tracker) == 1
    assert tracker.on_reply(reply_key, fingerprint, sent.sent_ns + after_ns) == (verdict, None)
    assert tracker.on_reply(key(0), PAYLOAD) == (Verdict.ANSWERED, sent)


def test_answer_does_not_take_a_duplicate() -> None:
    tracker: Tracker[str] = Tracker()
    sent = probe(0)
    tracker.add(key(0), sent)
    tracker.on_reply(key(0), PAYLOAD)
    assert tracker.answer(key(0), PAYLOAD) is None
    assert tracker.on_reply(key(0), PAYLOAD) == (Verdict.DUPLICATE, sent)


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
