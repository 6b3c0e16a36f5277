"""Outstanding requests and what becomes of each: answered, duplicate, stray, timed out.

No I/O and no clock: callers pass the time in. One rule set decides, for every message
that comes back, whether it settles a probe, so "what happens when X arrives" has one
answer here.

A probe is keyed by (destination, request type, identifier, sequence). Destination in the
key means replies must come from the address we pinged, and keys never collide across
targets even with more than 65,535 requests outstanding (a 16-bit sequence alone would
wrap). The request type means a reply answers only a request of its own kind: an Echo
Reply never settles a Timestamp request, whatever its payload.
"""

from __future__ import annotations

import enum
from typing import Final, Generic, TypeVar

import attrs

from trio_ping._proto.due_queue import DueQueue

ProbeKey = tuple[bytes, int, int, int]
"""(destination address packed, request's ICMP type, ICMP identifier, ICMP sequence)."""

T = TypeVar("T")


class Verdict(enum.Enum):
    """What a received message does to the probe it names."""

    ANSWERED = "answered"
    """The first valid answer: the probe is settled now."""
    DUPLICATE = "duplicate"
    """A valid answer to a probe already settled (and not yet past its timeout)."""
    INVALID = "invalid"
    """Names an outstanding probe but does not carry its fingerprint: not an answer."""
    STRAY = "stray"
    """Names no probe of ours, or one that already timed out."""
    LATE = "late"
    """Answers an outstanding probe, but arrived after its timeout: the probe stays
    outstanding, to be reported as timed out when its deadline is processed."""


ANSWERED: Final = Verdict.ANSWERED
"""Verdict.ANSWERED, for code run per reply (see REPLY in trio_ping/results.py). A trick
for Python 3.11, whose EnumType.__getattr__ makes a member read cost 0.075 us against
0.007 for a module global (benchmarks/micro.py: enum_member_read, Python 3.11.7); 3.12
narrowed the gap (0.023 us), so there it pays little."""


@attrs.define(slots=True, eq=False)
class Probe(Generic[T]):
    """One request on the wire. ``owner`` is whatever the caller needs back (its session)."""

    owner: T
    seq: int
    fingerprint: bytes
    """Bytes a reply must echo: the echo payload, or the timestamp's originate field."""
    sent_ns: int
    """When it was sent, in nanoseconds on the receive-timestamp clock (CLOCK_REALTIME):
    read just before the send, until the kernel's own stamp of it replaces it."""
    sent_at: float
    """Just before it was sent, on the scheduling clock (monotonic)."""
    deadline: float
    """When it times out, on the scheduling clock."""
    key: ProbeKey = attrs.field(init=False)
    """Where the tracker files it (set by Tracker.add)."""
    send_stamp: str = attrs.field(default="user", init=False)
    """Whose time ``sent_ns`` is: ``"user"`` (read before the send), or the kind of
    kernel transmit stamp that replaced it (the engine's, as PingResult.send_stamp)."""
    settled: bool = attrs.field(default=False, init=False)
    """A reply or an ICMP error has settled it. The tracker keeps it all the same, so that
    a duplicate reply can be told from a stray one, until its deadline or until a new
    request reuses its key."""


@attrs.define
class Tracker(Generic[T]):
    """The probes sent and not yet past their deadline, with the deadlines queued in order
    of expiry."""

    # One dict for outstanding and settled probes alike (the probe says which): a reply
    # then costs one lookup, and settling a probe moves it nowhere.
    _probes: dict[ProbeKey, Probe[T]] = attrs.field(factory=dict)
    _unsettled: int = attrs.field(default=0, init=False)
    # The deadlines queue the probes themselves, never a key alone: after a key is reused,
    # a stale entry must not expire the new probe. With one timeout, deadlines come in the
    # order of sending, and the queue keeps those in its FIFO (trio_ping/_proto/due_queue.py).
    _deadlines: DueQueue[Probe[T]] = attrs.field(factory=DueQueue)

    def __len__(self) -> int:
        """The number of outstanding probes."""
        return self._unsettled

    def add(self, key: ProbeKey, probe: Probe[T]) -> None:
        """Track a probe that was just sent.

        A settled probe under the same key gives way: it was only kept to recognise
        duplicates, and the new request is what replies now answer. A probe is added
        once: this sets its ``key``.

        Raises:
            ValueError: ``key`` is outstanding: the caller's identifier allocation is wrong.
        """
        previous = self._probes.get(key)
        if previous is not None and not previous.settled:
            raise ValueError(f"probe key {key!r} is already outstanding")
        probe.key = key
        self._probes[key] = probe
        self._unsettled += 1
        self._deadlines.push(probe, probe.deadline)

    def on_reply(
        self, key: ProbeKey, fingerprint: bytes, received_ns: int | None = None
    ) -> tuple[Verdict, Probe[T] | None]:
        """Judge a reply. ANSWERED and DUPLICATE come with the probe; the others with None.

        ``received_ns`` is when it arrived, on the clock of ``Probe.sent_ns``. Timeouts are
        processed in batches (a little after their deadline), so a reply can be read
        after its deadline yet before its probe is expired: the arrival time, not the
        reading, decides whether it came within the timeout.
        """
        probe = self.answer(key, fingerprint, received_ns)
        if probe is not None:
            return ANSWERED, probe
        probe = self._probes.get(key)
        if probe is None:
            return Verdict.STRAY, None
        if probe.settled:
            if fingerprint == probe.fingerprint:
                return Verdict.DUPLICATE, probe
            return Verdict.STRAY, None
        if fingerprint != probe.fingerprint:
            return Verdict.INVALID, None
        # Outstanding, and carrying its fingerprint: answer() refused it for arriving
        # after the timeout, its only other condition.
        return Verdict.LATE, None

    def answer(
        self, key: ProbeKey, fingerprint: bytes, received_ns: int | None = None
    ) -> Probe[T] | None:
        """Settle and return the probe this reply answers (ANSWERED); else None, and
        nothing changes (:meth:`on_reply` says what the reply is instead).

        The rule for an answer, in one place: the probe is outstanding, the reply carries
        its fingerprint, and it arrived within the probe's timeout. The receiver tries this
        first for the common Echo Reply, and skips building a message object for it.
        """
        probe = self._probes.get(key)
        if probe is None or probe.settled or fingerprint != probe.fingerprint:
            return None
        if received_ns is not None:
            timeout_ns = (probe.deadline - probe.sent_at) * 1e9
            if received_ns - probe.sent_ns > timeout_ns:
                return None
        probe.settled = True
        self._unsettled -= 1
        return probe

    def on_error(self, key: ProbeKey, quoted_data: bytes) -> Probe[T] | None:
        """Settle the probe an ICMP error quotes, if it is outstanding and the quote fits.

        The quote may stop anywhere after the ICMP header (RFC 792 promises 8 bytes, Linux
        quotes far more), so what it has of our fingerprint must agree with it.
        """
        probe = self._probes.get(key)
        if probe is None or probe.settled:
            return None
        common = min(len(quoted_data), len(probe.fingerprint))
        if quoted_data[:common] != probe.fingerprint[:common]:
            return None
        probe.settled = True
        self._unsettled -= 1
        return probe

    def is_outstanding(self, key: ProbeKey) -> bool:
        """Whether a probe under ``key`` awaits its answer: a new request may not take the
        key until it is settled or expired (a settled one gives way, see :meth:`add`)."""
        probe = self._probes.get(key)
        return probe is not None and not probe.settled

    def cancel(self, key: ProbeKey, owner: T | None = None) -> Probe[T] | None:
        """Stop tracking an outstanding probe without a verdict (its caller went away).

        With ``owner``, only a probe of that owner: keys are shared between owners over
        time (a sequence number wraps, an identifier passes to another session).
        """
        probe = self._probes.get(key)
        if probe is None or probe.settled or (owner is not None and probe.owner is not owner):
            return None
        del self._probes[key]
        self._unsettled -= 1
        return probe

    def next_deadline(self) -> float:
        """The earliest deadline still queued, or infinity when none is.

        Settled probes keep their place until their deadline (for duplicate detection), so
        a wake-up at this time may find nothing to expire: that is cheaper than removing
        entries from the middle of the queues.
        """
        return self._deadlines.first_due()

    def expire(self, now: float) -> list[Probe[T]]:
        """Remove every probe whose deadline is at or before ``now``; return the unanswered.

        The unanswered come in deadline order.
        """
        expired: list[Probe[T]] = []
        probes = self._probes
        for probe in self._deadlines.pop_all_due(now):
            # Queued probes stay there when settled or cancelled: only the one filed under
            # its key now is this deadline's to expire.
            if probes.get(probe.key) is probe:
                del probes[probe.key]
                if not probe.settled:
                    self._unsettled -= 1
                    expired.append(probe)
        return expired
