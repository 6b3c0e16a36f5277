"""``python -m benchmarks.micro [--repeat N] [CASE ...]``: the timings the package's comments claim.

Each case reproduces one claim that a comment in ``trio_ping/`` makes, and prints the best of
``--repeat`` runs (the least disturbed), per call, in microseconds, then a one-line
conclusion computed from those figures. The Python version and platform come first: several
of these tricks pay on one interpreter and not on another. No root, no network: the socket
case talks to itself on 127.0.0.1. Run it with ``nox -s micro``.

The cases, and the comment each backs (the comment quotes this machine's figure and names
its case):

- ``enum_member_read``: trio_ping/results.py (REPLY), trio_ping/_proto/tracker.py (ANSWERED).
- ``frozen_slots``: trio_ping/results.py (PingResult not slotted), trio_ping/cli/targets.py.
- ``frozen_echo_reply``: trio_ping/_proto/icmp.py (EchoReply not frozen).
- ``result_positional_vs_keywords``: trio_ping/results.py (the reply factories).
- ``target_positional_vs_keywords``: trio_ping/cli/targets.py (Target.parse).
- ``echo_template_encode``: trio_ping/_proto/icmp.py (EchoRequestTemplate).
- ``namedtuple_new``: trio_ping/_io/datagrams.py (_new_tuple).
- ``recvmmsg_vs_recvmsg_into``: trio_ping/_io/datagrams.py (module docstring).
- ``schedule_fifo_vs_heap``, ``tracker_fifo_vs_heap``: trio_ping/_proto/due_queue.py.
- ``clock_method``: trio_ping/_engine/engine.py (SocketEngine._now).
- ``inet_pton_vs_ipaddress``, ``normalised_ipv4``: trio_ping/_addresses.py.
- ``run_loop_pass``: trio_ping/_proto/batching.py, trio_ping/_engine/engine.py (_SEND_WINDOW).
- ``timeout_design``: trio_ping/_engine/engine.py (module docstring: a task per request
  against one cancel scope per socket).
- ``gc_freeze``: trio_ping/_garbage.py (both programs' collector tuning).
- ``write_thread_hop``: trio_ping/cli/output.py (a write that cannot wait skips the thread).
- ``exposition_10000_hosts``: trio_ping/exporter/exposition.py, trio_ping/exporter/server.py.
- ``results_hand_off``: trio_ping/exporter/probes.py (a results sink, no channel).
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import math
import platform
import socket
import struct
import sys
import time
import timeit
from collections.abc import Callable, Iterator
from typing import Any, Final

import attrs
import trio

from trio_ping._addresses import normalised, parse_ip
from trio_ping._io.datagrams import SO_TIMESTAMPNS, Datagram, DatagramReader
from trio_ping._proto import icmp
from trio_ping._proto.schedule import Schedule
from trio_ping._proto.tracker import ANSWERED, Probe, ProbeKey, Tracker, Verdict
from trio_ping.cli.targets import Target
from trio_ping.results import REPLY, PingResult, Status

US: Final = 1e6


@attrs.frozen
class Figure:
    """One measured variant: what was timed, and its best per-call time."""

    label: str
    us: float


@attrs.frozen
class Outcome:
    figures: list[Figure]
    conclusion: str


@attrs.frozen
class Case:
    name: str
    backs: str
    run: Callable[[int], Outcome]


CASES: dict[str, Case] = {}


def case(backs: str) -> Callable[[Callable[[int], Outcome]], Callable[[int], Outcome]]:
    """Register a case under its function's name; ``backs`` names the comment it checks."""

    def register(function: Callable[[int], Outcome]) -> Callable[[int], Outcome]:
        CASES[function.__name__] = Case(function.__name__, backs, function)
        return function

    return register


def per_call(stmt: str | Callable[[], object], repeat: int, **names: Any) -> float:
    """Best of ``repeat`` timeit runs of ``stmt``, in us a call (autoranged to >= 0.2 s)."""
    timer = timeit.Timer(stmt, globals=names) if isinstance(stmt, str) else timeit.Timer(stmt)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat, number)) / number * US


def ratio(slow: float, fast: float) -> str:
    return f"{slow / fast:.1f}x" if fast > 0 else "inf"


# Attribute reads and value classes ---------------------------------------------------------


@case("trio_ping/results.py REPLY; trio_ping/_proto/tracker.py ANSWERED")
def enum_member_read(repeat: int) -> Outcome:
    member = per_call("Status.REPLY", repeat, Status=Status)
    verdict = per_call("Verdict.ANSWERED", repeat, Verdict=Verdict)
    alias = per_call("REPLY", repeat, REPLY=REPLY)
    alias_verdict = per_call("ANSWERED", repeat, ANSWERED=ANSWERED)
    empty = per_call("pass", repeat)
    return Outcome(
        [
            Figure("Status.REPLY (enum member)", member),
            Figure("Verdict.ANSWERED (enum member)", verdict),
            Figure("REPLY (module global)", alias),
            Figure("ANSWERED (module global)", alias_verdict),
            Figure("pass (the loop alone)", empty),
        ],
        f"a module global saves {member - alias:.3f} us a read on Python "
        f"{platform.python_version()} ({ratio(member, alias)}, the loop included)",
    )


def slotted_twin(cls: type, *, frozen: bool, slots: bool) -> type:
    """A class with ``cls``'s attrs fields (defaults included), frozen and slotted as asked."""
    fields = {
        field.name: attrs.field(default=field.default)
        if field.default is not attrs.NOTHING
        # attrs.NOTHING means no default: the field is required.
        else attrs.field()
        for field in attrs.fields(cls)
    }
    return attrs.make_class(f"{cls.__name__}Twin", fields, frozen=frozen, slots=slots)


_RESULT_ARGS: Final = ("192.0.2.1", 3, REPLY, 1234, 64, None, None, None, True)


@case("trio_ping/results.py PingResult (frozen, not slotted); trio_ping/cli/targets.py Target")
def frozen_slots(repeat: int) -> Outcome:
    slotted = slotted_twin(PingResult, frozen=True, slots=True)
    dict_backed = per_call("cls(*args)", repeat, cls=PingResult, args=_RESULT_ARGS)
    with_slots = per_call("cls(*args)", repeat, cls=slotted, args=_RESULT_ARGS)
    target_slotted = slotted_twin(Target, frozen=True, slots=True)
    target_args = ("192.0.2.1", "192.0.2.1", 3, 100)
    target = per_call("cls(*args)", repeat, cls=Target, args=target_args)
    target_with_slots = per_call("cls(*args)", repeat, cls=target_slotted, args=target_args)
    return Outcome(
        [
            Figure("PingResult, frozen, no slots (as used)", dict_backed),
            Figure("PingResult's fields, frozen, slots", with_slots),
            Figure("Target, frozen, no slots (as used)", target),
            Figure("Target's fields, frozen, slots", target_with_slots),
        ],
        f"without slots a frozen PingResult costs {with_slots - dict_backed:.2f} us less to "
        f"build, a Target {target_with_slots - target:.2f} us less",
    )


@case("trio_ping/_proto/icmp.py EchoReply (attrs.define, not frozen)")
def frozen_echo_reply(repeat: int) -> Outcome:
    frozen = slotted_twin(icmp.EchoReply, frozen=True, slots=True)
    args = (b"\xc0\0\2\1", 64, 0x1234, 7, bytes(56))
    mutable = per_call("cls(*args)", repeat, cls=icmp.EchoReply, args=args)
    frozen_us = per_call("cls(*args)", repeat, cls=frozen, args=args)
    return Outcome(
        [
            Figure("EchoReply, define, slots (as used)", mutable),
            Figure("EchoReply's fields, frozen, slots", frozen_us),
        ],
        f"not frozen saves {frozen_us - mutable:.2f} us a reply ({ratio(frozen_us, mutable)})",
    )


@case("trio_ping/results.py reply factories (PingResult positional)")
def result_positional_vs_keywords(repeat: int) -> Outcome:
    positional = per_call(
        "cls('192.0.2.1', 3, REPLY, 1234, 64, None, None, None, True)",
        repeat,
        cls=PingResult,
        REPLY=REPLY,
    )
    keywords = per_call(
        "cls(address='192.0.2.1', seq=3, status=REPLY, rtt_us=1234, ttl=64, kernel_timestamp=True)",
        repeat,
        cls=PingResult,
        REPLY=REPLY,
    )
    return Outcome(
        [
            Figure("PingResult positional, 9 arguments", positional),
            Figure("PingResult keywords, the 6 that differ from defaults", keywords),
        ],
        f"positional saves {keywords - positional:.2f} us a reply",
    )


@case("trio_ping/cli/targets.py Target.parse (positional construction)")
def target_positional_vs_keywords(repeat: int) -> Outcome:
    parse = per_call("parse('192.0.2.1,3,100')", repeat, parse=Target.parse)
    positional = per_call("cls('192.0.2.1', '192.0.2.1', 3, 100)", repeat, cls=Target)
    keywords = per_call(
        "cls(host='192.0.2.1', address='192.0.2.1', count=3, interval_ms=100)",
        repeat,
        cls=Target,
    )
    return Outcome(
        [
            Figure("Target.parse of one line", parse),
            Figure("Target, 4 positional arguments", positional),
            Figure("Target, 4 keywords", keywords),
        ],
        f"keywords would add {keywords - positional:.2f} us a line, "
        f"{(keywords - positional) / parse:.0%} of a parse",
    )


# The codec and the socket ------------------------------------------------------------------


@case("trio_ping/_proto/icmp.py EchoRequestTemplate")
def echo_template_encode(repeat: int) -> Outcome:
    payload = bytes(56)
    template = icmp.EchoRequestTemplate(0x1234, payload)
    encode = per_call("encode(7)", repeat, encode=template.encode)
    plain = per_call(
        "encode(0x1234, 7, payload)", repeat, encode=icmp.encode_echo_request, payload=payload
    )
    return Outcome(
        [
            Figure("EchoRequestTemplate.encode (56-byte payload)", encode),
            Figure("encode_echo_request (checksum over the packet)", plain),
        ],
        f"the template saves {plain - encode:.2f} us a packet ({ratio(plain, encode)})",
    )


@case("trio_ping/_io/datagrams.py _new_tuple")
def namedtuple_new(repeat: int) -> Outcome:
    names = {"Datagram": Datagram, "new": tuple.__new__, "data": bytes(84), "src": bytes(4)}
    generated = per_call("Datagram(data, src, 1, True, None)", repeat, **names)
    direct = per_call("new(Datagram, (data, src, 1, True, None))", repeat, **names)
    return Outcome(
        [
            Figure("Datagram(...) (the NamedTuple's __new__)", generated),
            Figure("tuple.__new__(Datagram, (...))", direct),
        ],
        f"tuple.__new__ saves {generated - direct:.2f} us a reply ({ratio(generated, direct)})",
    )


def _udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.setblocking(False)
    return sock


_TIMESPEC: Final = socket.CMSG_SPACE(16) + socket.CMSG_SPACE(4)
_STAMP: Final = struct.Struct("@qq")


def _read_with_recvmsg_into(sock: socket.socket, buffer: bytearray) -> list[Datagram]:
    """The reader before recvmmsg: one recvmsg_into per datagram, as d38e19b replaced it."""
    batch: list[Datagram] = []
    view = memoryview(buffer)
    while True:
        try:
            size, ancillary, _, address = sock.recvmsg_into([buffer], _TIMESPEC)
        except BlockingIOError:
            return batch
        level, kind, value = ancillary[0]
        assert (level, kind) == (socket.SOL_SOCKET, SO_TIMESTAMPNS)
        seconds, nanoseconds = _STAMP.unpack_from(value)
        source = socket.inet_pton(socket.AF_INET, address[0])
        batch.append(
            Datagram(
                view[:size].tobytes(), source, seconds * 1_000_000_000 + nanoseconds, True, None
            )
        )


@case("trio_ping/_io/datagrams.py module docstring (recvmmsg against recvmsg_into)")
def recvmmsg_vs_recvmsg_into(repeat: int) -> Outcome:
    batch = 128
    packet = bytes(84)
    with _udp_socket() as sock:
        reader = DatagramReader(sock)
        buffer = bytearray(2048)
        address = sock.getsockname()

        def best(read: Callable[[], list[Datagram]]) -> float:
            times = []
            for _ in range(max(repeat, 5) * 20):
                for _ in range(batch):
                    sock.sendto(packet, address)
                start = time.perf_counter()
                got = read()
                times.append(time.perf_counter() - start)
                assert len(got) == batch, len(got)
            return min(times) / batch * US

        many = best(reader.read)
        one = best(lambda: _read_with_recvmsg_into(sock, buffer))
    return Outcome(
        [
            Figure(f"DatagramReader.read (recvmmsg), {batch} queued", many),
            Figure("recvmsg_into per datagram + Datagram", one),
        ],
        f"recvmmsg saves {one - many:.2f} us a datagram ({ratio(one, many)}), system call included",
    )


# The due-time queues -----------------------------------------------------------------------


def _schedule(targets: int, *, heap: bool) -> Schedule[int]:
    """``targets`` plans one interval apart in the steady state of a long run. With
    ``heap``, one far-future plan sits at the FIFO's end first, so every plan queues in the
    heap: the schedule as it would be with a heap alone."""
    schedule: Schedule[int] = Schedule()
    if heap:
        schedule.add(-1, start=1e15, interval=1.0, count=1)
    for owner in range(targets):
        schedule.add(owner, start=owner / targets, interval=1.0, count=2**62)
    return schedule


@case("trio_ping/_proto/due_queue.py, for the schedule (FIFO against heap at 20,000)")
def schedule_fifo_vs_heap(repeat: int) -> Outcome:
    targets = 20_000
    # pop_due(0, huge): every request is due, and a start never moves (now is not after it).
    fifo = per_call("pop(0.0, 1e12)", repeat, pop=_schedule(targets, heap=False).pop_due)
    heap = per_call("pop(0.0, 1e12)", repeat, pop=_schedule(targets, heap=True).pop_due)
    return Outcome(
        [
            Figure(f"pop_due + re-queue, {targets:,} targets, FIFO", fifo),
            Figure(f"pop_due + re-queue, {targets:,} targets, heap", heap),
        ],
        f"the FIFO saves {heap - fifo:.2f} us a request ({ratio(heap, fifo)})",
    )


def _tracker_step(outstanding: int, batch: int, *, heap: bool) -> Callable[[], None]:
    """One step of a steady run with ``outstanding`` probes: expire the ``batch`` oldest
    (the timeout task ends every deadline within EXPIRY_SLACK in one wake: about 100 at
    20,000 requests a second), then add as many, due after all the others. With ``heap``,
    a never-due probe at the FIFO's end sends every other probe to the heap."""
    tracker: Tracker[None] = Tracker()
    if heap:
        tracker.add((b"\0" * 4, 8, 0xFFFF, 0xFFFF), Probe(None, 0, b"", 0, 0.0, math.inf))
    keys: list[ProbeKey] = [(b"\x0a\0\0\x01", 8, n >> 16, n & 0xFFFF) for n in range(outstanding)]
    probes = [Probe(None, n, b"fingerprint", 0, 0.0, float(n)) for n in range(outstanding)]
    for key, probe in zip(keys, probes, strict=True):
        tracker.add(key, probe)
    add, expire = tracker.add, tracker.expire
    firsts = iter(range(0, 2**62, batch))

    def step() -> None:
        first = next(firsts) % outstanding
        expire(probes[first + batch - 1].deadline)  # exactly these ``batch`` probes
        for slot in range(first, first + batch):
            probe = probes[slot]
            probe.deadline += outstanding
            add(keys[slot], probe)

    return step


@case("trio_ping/_proto/due_queue.py, for the tracker (FIFO against heap at 40,000)")
def tracker_fifo_vs_heap(repeat: int) -> Outcome:
    outstanding, batch = 40_000, 100
    fifo = per_call(_tracker_step(outstanding, batch, heap=False), repeat) / batch
    heap = per_call(_tracker_step(outstanding, batch, heap=True), repeat) / batch
    single = per_call(_tracker_step(outstanding, 1, heap=False), repeat)
    return Outcome(
        [
            Figure(f"add + expire, {outstanding:,} outstanding, FIFO, {batch} a wake", fifo),
            Figure(f"add + expire, {outstanding:,} outstanding, heap, {batch} a wake", heap),
            Figure(f"add + expire, {outstanding:,} outstanding, FIFO, 1 a wake", single),
        ],
        f"the FIFO saves {heap - fifo:.2f} us a probe ({ratio(heap, fifo)})",
    )


# Addresses ---------------------------------------------------------------------------------


@case("trio_ping/_addresses.py parse_ip (inet_pton, not ipaddress)")
def inet_pton_vs_ipaddress(repeat: int) -> Outcome:
    figures = []
    for text in ("192.0.2.1", "2001:db8::1"):
        figures.append(Figure(f"parse_ip({text!r})", per_call("f(t)", repeat, f=parse_ip, t=text)))
        figures.append(
            Figure(
                f"ipaddress.ip_address({text!r})",
                per_call("f(t)", repeat, f=ipaddress.ip_address, t=text),
            )
        )
    return Outcome(
        figures,
        f"inet_pton is {ratio(figures[1].us, figures[0].us)} faster for IPv4, "
        f"{ratio(figures[3].us, figures[2].us)} for IPv6",
    )


@case("trio_ping/_addresses.py normalised (IPv4 skips inet_ntop)")
def normalised_ipv4(repeat: int) -> Outcome:
    text = "192.0.2.1"
    packed = socket.inet_pton(socket.AF_INET, text)
    names = {
        "f": normalised,
        "t": text,
        "p": packed,
        "v4": socket.AF_INET,
        "ntop": socket.inet_ntop,
    }
    skip = per_call("f(t, v4, p)", repeat, **names)
    ntop = per_call("ntop(v4, p)", repeat, **names)
    return Outcome(
        [
            Figure("normalised(IPv4 text) (returns the text)", skip),
            Figure("socket.inet_ntop(AF_INET, packed)", ntop),
        ],
        f"the skip saves {ntop - skip:.2f} us a line",
    )


# trio -----------------------------------------------------------------------------------------


def _in_trio(function: Callable[[], Any]) -> Any:
    async def main() -> Any:
        return function()

    return trio.run(main)


@case("trio_ping/_engine/engine.py SocketEngine._now (the clock's own method)")
def clock_method(repeat: int) -> Outcome:
    def measure() -> tuple[float, float]:
        method = trio.lowlevel.current_clock().current_time
        return (
            per_call("now()", repeat, now=method),
            per_call("now()", repeat, now=trio.current_time),
        )

    method, function = _in_trio(measure)
    return Outcome(
        [
            Figure("current_clock().current_time, bound once", method),
            Figure("trio.current_time()", function),
        ],
        f"the bound method saves {function - method:.2f} us a read",
    )


async def _cpu_per(count: int, step: Callable[[], Any]) -> float:
    """CPU time (process time, all threads) of ``count`` awaits of ``step()``, in us each."""
    start = time.process_time()
    for _ in range(count):
        await step()
    return (time.process_time() - start) / count * US


async def _short_sleep() -> None:
    await trio.sleep(0.0001)


@case("trio_ping/_proto/batching.py, trio_ping/_engine/engine.py _SEND_WINDOW (a run-loop pass)")
def run_loop_pass(repeat: int) -> Outcome:
    async def measure() -> tuple[float, float]:
        checkpoint = min([await _cpu_per(20_000, trio.lowlevel.checkpoint) for _ in range(repeat)])
        # A wake from the timer: the loop goes to epoll_wait with a timeout, as the sender
        # and the receiver do between batches.
        timed = min([await _cpu_per(500, _short_sleep) for _ in range(repeat)])
        return checkpoint, timed

    checkpoint, timed = trio.run(measure)
    return Outcome(
        [
            Figure("checkpoint (yield, rescheduled at once), CPU", checkpoint),
            Figure("sleep(100 us): epoll_wait, timer wake, CPU", timed),
        ],
        f"a wake costs {checkpoint:.1f} us of CPU without waiting, {timed:.1f} us through "
        "a timed wait: batching saves that per packet",
    )


@case("trio_ping/_engine/engine.py module docstring (timeouts: task per request vs one scope)")
def timeout_design(repeat: int) -> Outcome:
    requests = 2_000

    async def task_per_request() -> float:
        async def wait(deadline: float) -> None:
            with trio.move_on_at(deadline):
                await trio.sleep_forever()

        start = time.process_time()
        now = trio.current_time()
        async with trio.open_nursery() as nursery:
            for n in range(requests):
                # 10 us apart: they end in small groups, as requests sent at 100,000 a second
                nursery.start_soon(wait, now + 0.001 + n * 1e-5)
        return (time.process_time() - start) / requests * US

    async def shared_scope() -> float:
        # What the engine does per request: the timeout task's scope takes the request's
        # deadline when it becomes the earliest, once per request.
        deadline = trio.current_time() + 3600.0
        with trio.CancelScope() as scope:

            def move() -> None:
                nonlocal deadline
                deadline += 1e-5
                scope.deadline = deadline

            cost = per_call(move, repeat)
            await trio.lowlevel.checkpoint()
        return cost

    async def measure() -> tuple[float, float]:
        spawned = min([await task_per_request() for _ in range(repeat)])
        return spawned, await shared_scope()

    spawned, shared = trio.run(measure)
    return Outcome(
        [
            Figure("a task per request in move_on_at, CPU", spawned),
            Figure("one scope, its deadline moved per request", shared),
        ],
        f"the shared scope saves {spawned - shared:.1f} us of CPU a request "
        f"({ratio(spawned, shared)})",
    )


@case("trio_ping/cli/output.py write_results (the writer's thread, and the write that skips it)")
def write_thread_hop(repeat: int) -> Outcome:
    import os
    import queue
    import threading

    from trio_ping.cli.output import _never_blocks, _write_bytes

    writes = 2_000
    # 40 lines: what one write carries at 20,000 results a second, one every FLUSH_PAUSE.
    data = b"10.202.0.1,0,123\n" * 40
    read_fd, write_fd = os.pipe()
    never_blocks = _never_blocks(write_fd)

    def empty() -> None:  # the reader, in every variant alike: the pipe stays empty
        os.read(read_fd, 65536)

    async def direct() -> None:
        assert never_blocks(len(data))
        _write_bytes(write_fd, data)
        empty()

    async def to_thread() -> None:
        await trio.to_thread.run_sync(_write_bytes, write_fd, data)
        empty()

    async def measure() -> tuple[float, float, float]:
        token = trio.lowlevel.current_trio_token()
        jobs: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        done: list[trio.Event] = [trio.Event()]

        def writer() -> None:  # one long-lived thread, fed by a queue
            while (job := jobs.get()) is not None:
                _write_bytes(write_fd, job)
                token.run_sync_soon(done[0].set)

        async def queued() -> None:
            done[0] = trio.Event()
            jobs.put(data)
            await done[0].wait()
            empty()

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            await to_thread()  # the thread cache's first thread, outside the timing
            figures = [
                min([await _cpu_per(writes, step) for _ in range(repeat)])
                for step in (direct, to_thread, queued)
            ]
        finally:
            jobs.put(None)
            thread.join()
        return figures[0], figures[1], figures[2]

    try:
        direct_us, hop_us, queued_us = trio.run(measure)
    finally:
        os.close(read_fd)
        os.close(write_fd)
    per_second = 20_000 / 40  # writes a second at 20,000 results a second
    return Outcome(
        [
            Figure("direct write of 40 lines (empty pipe, checked), CPU", direct_us),
            Figure("trio.to_thread.run_sync (cached thread), CPU", hop_us),
            Figure("long-lived thread fed by a queue, CPU", queued_us),
        ],
        f"a thread hop costs {hop_us - direct_us:.1f} us a write "
        f"({(hop_us - direct_us) / 40:.2f} us a line, "
        f"{(hop_us - direct_us) * per_second / 1e4:.2f} % of a core at 20,000 lines a second); "
        f"the queue-fed thread {queued_us - direct_us:.1f} us",
    )


# The garbage collector ---------------------------------------------------------------------


def _allocation_churn(objects: int) -> float:
    """us per short-lived object, built the way a run builds results: each kept a while
    (a window of 20,000), then dropped."""
    window: list[PingResult] = []
    start = time.process_time()
    for n in range(objects):
        window.append(PingResult("192.0.2.1", n, REPLY, 1234, 64))
        if len(window) >= 20_000:
            window = []
    return (time.process_time() - start) / objects * US


@case("trio_ping/_garbage.py collect_less_often (gc.freeze and a higher threshold)")
def gc_freeze(repeat: int) -> Outcome:
    # What start-up leaves behind in a real run (trio, attrs, the modules): a large
    # long-lived heap, which every full collection walks.
    long_lived = [{"n": [n]} for n in range(300_000)]
    thresholds = gc.get_threshold()
    objects = 200_000
    try:
        gc.collect()
        default = min(_allocation_churn(objects) for _ in range(repeat))
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)
        tuned = min(_allocation_churn(objects) for _ in range(repeat))
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        del long_lived
    return Outcome(
        [
            Figure(f"a PingResult kept a while, default gc {thresholds}", default),
            Figure("the same after gc.freeze(), threshold (50000, 20, 20)", tuned),
        ],
        f"freeze and threshold save {default - tuned:.2f} us an object "
        f"({(default - tuned) / default:.0%} of its cost)",
    )


# The exporter ------------------------------------------------------------------------------


def _exporter_metrics(hosts: int) -> Any:
    """An ExporterMetrics of ``hosts`` hosts, 50 replies each (spread over the buckets)."""
    from trio_ping.exporter.config import Probe as HostProbe
    from trio_ping.exporter.config import TargetGroup
    from trio_ping.exporter.metrics import ExporterMetrics
    from trio_ping.results import reply_result

    group = TargetGroup(hosts=("10.0.0.1",), labels=(("site", "ams1"),))
    metrics = ExporterMetrics(("ip", "host", "source", "tos", "site"))
    for n in range(hosts):
        address = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
        series = metrics.add(HostProbe(address, address, group))
        for seq in range(50):
            series.observe(reply_result(address, seq, 50 + seq * 61, 64, True, None))
    return metrics


@case("trio_ping/exporter/exposition.py (module docstring), exporter/server.py GZIP_LEVEL")
def exposition_10000_hosts(repeat: int) -> Outcome:
    import gzip
    from functools import partial

    from prometheus_client import CollectorRegistry, generate_latest

    from trio_ping.exporter.exposition import FastExposition

    metrics = _exporter_metrics(10_000)
    registry = CollectorRegistry()
    registry.register(metrics)
    fast = FastExposition(metrics, CollectorRegistry())

    def timed(function: Callable[[], object]) -> float:
        start = time.perf_counter()
        function()
        return (time.perf_counter() - start) * US

    slow = min(timed(lambda: generate_latest(registry)) for _ in range(min(repeat, 2)))
    first = timed(lambda: fast.render(generate_latest, "text"))
    kept = min(timed(lambda: fast.render(generate_latest, "text")) for _ in range(repeat))
    # One host's histogram lines, its 23 values put in both ways.
    line = 'smokeping_response_duration_seconds_bucket{host="10.0.0.1",le="%d"} '
    printf = "".join(line % n + "%s\n" for n in range(23))
    braces = "".join((line % n).replace("{", "{{").replace("}", "}}") + "{}\n" for n in range(23))
    values = tuple(f"{n}.0" for n in range(23))
    percent = per_call(lambda: printf % values, repeat)
    formatted = per_call(lambda: braces.format(*values), repeat)
    text = generate_latest(registry)
    levels = {
        level: min(timed(partial(gzip.compress, text, compresslevel=level)) for _ in range(repeat))
        for level in (9, 1)
    }
    return Outcome(
        [
            Figure("generate_latest, 10,000 hosts", slow),
            Figure("fast path, first scrape (writes every host's lines)", first),
            Figure("fast path, later scrapes", kept),
            Figure("a histogram's 23 values put in, printf-style", percent),
            Figure("a histogram's 23 values put in, str.format", formatted),
            Figure(f"gzip level 9 of the {len(text) / 1e6:.1f} MB", levels[9]),
            Figure("gzip level 1", levels[1]),
        ],
        f"a kept scrape is {ratio(slow, kept)} faster than generate_latest "
        f"({slow / US:.2f} s against {kept / US:.2f} s); gzip at 1 saves "
        f"{(levels[9] - levels[1]) / US:.2f} s",
    )


@case("trio_ping/exporter/probes.py (module docstring: a results sink, no channel)")
def results_hand_off(repeat: int) -> Outcome:
    import trio.testing

    from trio_ping.results import reply_result

    hosts, bursts = 1_000, 20
    result = reply_result("10.0.0.1", 0, 100, 64, True, "10.0.0.1")

    async def per_host() -> float:
        counted = [0]
        sends = []
        async with trio.open_nursery() as nursery:

            async def read(receive: trio.MemoryReceiveChannel[PingResult]) -> None:
                async for _ in receive:
                    counted[0] += 1

            for _ in range(hosts):
                send, receive = trio.open_memory_channel[PingResult](math.inf)
                sends.append(send)
                nursery.start_soon(read, receive)
            await trio.testing.wait_all_tasks_blocked()
            start = time.process_time()
            for _ in range(bursts):
                for send in sends:  # the engine settles a burst of replies at once
                    send.send_nowait(result)
                await trio.testing.wait_all_tasks_blocked()
            spent = time.process_time() - start
            for send in sends:
                send.close()
        assert counted[0] == hosts * bursts
        return spent / (hosts * bursts) * US

    async def shared() -> float:
        counted = [0]
        send, receive = trio.open_memory_channel[PingResult](math.inf)
        async with trio.open_nursery() as nursery:

            async def read() -> None:
                async for _ in receive:
                    counted[0] += 1
                    while True:
                        try:
                            receive.receive_nowait()
                        except trio.WouldBlock:
                            break
                        counted[0] += 1

            nursery.start_soon(read)
            await trio.testing.wait_all_tasks_blocked()
            start = time.process_time()
            for _ in range(bursts):
                for _ in range(hosts):
                    send.send_nowait(result)
                await trio.testing.wait_all_tasks_blocked()
            spent = time.process_time() - start
            send.close()
        assert counted[0] == hosts * bursts
        return spent / (hosts * bursts) * US

    async def sink() -> float:
        counted = [0]

        class Counting:  # as the exporter's _Counting: counted where it is settled
            def send_nowait(self, value: PingResult, /) -> None:
                counted[0] += 1

        sinks = [Counting() for _ in range(hosts)]
        start = time.process_time()
        for _ in range(bursts):
            for each in sinks:
                each.send_nowait(result)
            await trio.testing.wait_all_tasks_blocked()
        spent = time.process_time() - start
        assert counted[0] == hosts * bursts
        return spent / (hosts * bursts) * US

    apart = min(trio.run(per_host) for _ in range(repeat))
    together = min(trio.run(shared) for _ in range(repeat))
    direct = min(trio.run(sink) for _ in range(repeat))
    return Outcome(
        [
            Figure("a channel and a reader task per host, CPU a result", apart),
            Figure("one channel, one reader that drains, CPU a result", together),
            Figure("a sink per host, called where the result is settled", direct),
        ],
        f"the shared channel saves {apart - together:.1f} us a result "
        f"({ratio(apart, together)}); the sink {together - direct:.2f} us more",
    )


# The command -------------------------------------------------------------------------------


def header() -> Iterator[str]:
    yield (
        f"Python {platform.python_version()} ({platform.python_implementation()}) on "
        f"{platform.platform()}, {platform.machine()}"
    )
    yield f"trio {trio.__version__}, attrs {attrs.__version__}; best of N runs, us per call"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.micro", description=__doc__)
    parser.add_argument("cases", nargs="*", metavar="CASE", help=f"of: {', '.join(CASES)}")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each figure (default 5)")
    options = parser.parse_args(argv)
    unknown = [name for name in options.cases if name not in CASES]
    if unknown:
        parser.error(f"unknown case {', '.join(unknown)}; the cases are {', '.join(CASES)}")
    for line in header():
        print(line)
    for name in options.cases or CASES:
        chosen = CASES[name]
        outcome = chosen.run(options.repeat)
        print(f"\n{name}  ({chosen.backs})")
        width = max(len(figure.label) for figure in outcome.figures)
        for figure in outcome.figures:
            print(f"  {figure.label:<{width}}  {figure.us:8.3f} us")
        print(f"  -> {outcome.conclusion}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
