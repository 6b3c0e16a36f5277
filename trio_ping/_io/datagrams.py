"""Reading many datagrams per system call: recvmmsg(2) through ctypes.

The stdlib's ``recvmsg_into`` reads one datagram a call and builds a tuple, a list of
ancillary tuples and an address string for each: measured with valgrind at 14,400
user-space instructions a reply, a tenth of all the CPU an echo costs at 20,000 requests
a second. recvmmsg(2) (Linux 2.6.33) fills up to :data:`CAPACITY` preallocated slots in
one call, and each slot is read with two ``unpack_from`` calls: 5,600 instructions. In
time, system calls included, 2.0 us a datagram against 2.8 with 128 queued
(benchmarks/micro.py: recvmmsg_vs_recvmsg_into, Python 3.11.7, on loopback UDP).

Each slot has :data:`SLOT_SIZE` bytes for the datagram: room for a default reply (84
bytes), any IPv4 error (an error quotes at most 576 bytes, RFC 1812 4.3.2.3) and any
IPv6 one (at most 1,280, RFC 4443 2.4 (c)). A session that sends larger requests has
the slots grown to fit its replies (:meth:`DatagramReader.fit`); anything longer than a
slot comes back with ``MSG_TRUNC`` and is skipped, as nothing we sent can be answered
by it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
import sys
import time
from typing import Final, NamedTuple

# Linux asm-generic/socket.h; Python 3.11 does not export it.
SO_TIMESTAMPNS: Final = 35

CAPACITY: Final = 256
"""Datagrams one call can return."""
SLOT_SIZE: Final = 2048
"""A slot's room for one datagram, until a session needs more."""
BUFFER_LIMIT: Final = 2 * 1024 * 1024
"""Bytes of slots grown for large replies may take: fewer slots as each grows (a slot
for a 65,507-byte IPv4 payload leaves 31), never fewer than one."""
CONTROL_SIZE: Final = 64
"""Room for a timestamp and a TTL or hop limit: CMSG_SPACE(16) + CMSG_SPACE(4) is 56."""
NAME_SIZE: Final = 28
"""sizeof(struct sockaddr_in6), the larger of the two families' addresses."""

_MSG_DONTWAIT: Final = 0x40
_MSG_TRUNC: Final = 0x20


class Datagram(NamedTuple):
    """One received packet, as the kernel handed it over."""

    data: bytes
    source: bytes
    """The sender's address, packed (4 bytes for IPv4, 16 for IPv6; an IPv6 link-local
    one is followed by its scope, the interface index as 4 native-order bytes, so that a
    reply from fe80::1 on one link never answers a request to fe80::1 on another)."""
    timestamp_ns: int
    """Receive time, ns since the epoch (CLOCK_REALTIME)."""
    kernel_timestamp: bool
    """False when the kernel gave no stamp and ``timestamp_ns`` was read in user space."""
    hop_limit: int | None
    """The TTL or hop limit, when what we received has no IP header to read it from."""


# A NamedTuple's own __new__ is generated Python code (0.22 us a call); tuple.__new__
# builds the same object in 0.13 us, once per reply on the hot path (benchmarks/micro.py:
# namedtuple_new, Python 3.11.7).
_new_tuple = tuple.__new__


class Iovec(ctypes.Structure):
    """struct iovec (the layouts here serve every recvmmsg reader of the package)."""

    _fields_ = [("base", ctypes.c_void_p), ("length", ctypes.c_size_t)]


class Msghdr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_uint32),
        ("iov", ctypes.c_void_p),
        ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    ]


class Mmsghdr(ctypes.Structure):
    _fields_ = [("header", Msghdr), ("length", ctypes.c_uint)]


HEADER_SIZE: Final = ctypes.sizeof(Mmsghdr)
# What the kernel writes back into each mmsghdr: controllen, flags, and the datagram's length.
_RESULT = struct.Struct(
    f"@{Msghdr.controllen.offset}xNi{Mmsghdr.length.offset - Msghdr.flags.offset - 4}xI"
)
_CMSG_HEADER = struct.Struct("@Nii")  # struct cmsghdr: length, level, type
_CMSG_DATA: Final = socket.CMSG_LEN(0)  # where the data starts, after alignment
_TIMESPEC = struct.Struct("@qq")
# The common case, a raw socket's only control message: the SO_TIMESTAMPNS stamp.
_STAMP_ONLY = struct.Struct(f"@Nii{_CMSG_DATA - _CMSG_HEADER.size}xqq")
_STAMP_ONLY_SIZE: Final = socket.CMSG_SPACE(_TIMESPEC.size)


class RecvmmsgSlots:
    """The buffers of one recvmmsg(2) reader, and the call that fills them.

    ``capacity`` slots, each with room for ``data_size`` bytes of datagram,
    ``control_size`` of control messages and :data:`NAME_SIZE` of address, read through
    the byte views (slot ``i`` starts at ``i`` times the room, and at ``i *``
    :data:`HEADER_SIZE` in :attr:`header_view`). The datagram reader here and the
    error-queue reader (send_stamps.py) differ only in these sizes and the flags they
    read with.
    """

    def __init__(
        self,
        sock: socket.socket,
        capacity: int,
        data_size: int,
        control_size: int,
        *,
        names: bool,
    ) -> None:
        """Slots for ``sock``; ``names``: whether the kernel writes each sender's address
        (into :data:`NAME_SIZE` bytes a slot)."""
        self._fd = sock.fileno()
        self._capacity = capacity
        self._recvmmsg = ctypes.CDLL(None, use_errno=True).recvmmsg
        self._recvmmsg.argtypes = [
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_void_p,
        ]
        self._recvmmsg.restype = ctypes.c_int
        stride = max(data_size, 1)
        self._data = ctypes.create_string_buffer(stride * capacity)
        self._control = ctypes.create_string_buffer(control_size * capacity)
        self._names = ctypes.create_string_buffer(NAME_SIZE * capacity)
        self._iovecs = (Iovec * capacity)()
        self._headers = (Mmsghdr * capacity)()
        for slot in range(capacity):
            self._iovecs[slot].base = ctypes.addressof(self._data) + slot * stride
            self._iovecs[slot].length = data_size
            header = self._headers[slot].header
            if names:
                header.name = ctypes.addressof(self._names) + slot * NAME_SIZE
                header.namelen = NAME_SIZE
            header.iov = ctypes.addressof(self._iovecs[slot])
            header.iovlen = 1
            header.control = ctypes.addressof(self._control) + slot * control_size
            header.controllen = control_size
        # The kernel overwrites namelen and controllen in each slot it fills: a copy of
        # the headers as set up here restores them before the next call.
        self._pristine = bytes(self._headers)
        self.header_view: Final = memoryview(self._headers).cast("B")
        """Each slot's struct mmsghdr, :data:`HEADER_SIZE` bytes apart."""
        self.data_view: Final = memoryview(self._data).cast("B")
        self.control_view: Final = memoryview(self._control).cast("B")
        self.names_view: Final = memoryview(self._names).cast("B")
        self._filled = capacity
        self._headers_address = ctypes.addressof(self._headers)

    @property
    def capacity(self) -> int:
        """The slots: the most datagrams one :meth:`receive` fills."""
        return self._capacity

    def receive(self, limit: int, flags: int) -> int:
        """Fill up to ``limit`` slots (at most the capacity) with one recvmmsg call;
        how many it filled. A call interrupted by a signal is made again.

        Raises:
            BlockingIOError: nothing is queued (with ``MSG_DONTWAIT`` in ``flags``).
            OSError: the kernel reports another error.
        """
        used = self._filled * HEADER_SIZE
        self.header_view[:used] = self._pristine[:used]
        self._filled = 0
        while True:
            count: int = self._recvmmsg(
                self._fd, self._headers_address, min(limit, self._capacity), flags, None
            )
            if count >= 0:
                self._filled = count
                return count
            code = ctypes.get_errno()
            if code != errno.EINTR:
                raise OSError(code, os.strerror(code))  # BlockingIOError for EAGAIN


class DatagramReader:
    """Reads the datagrams queued on one socket, up to :data:`CAPACITY` per system call.

    Owns its buffers: one reader per socket, used by one task at a time.
    """

    def __init__(self, sock: socket.socket) -> None:
        """Read from ``sock`` (AF_INET or AF_INET6); its blocking mode does not matter."""
        self._ipv6 = sock.family == socket.AF_INET6
        # A raw IPv4 socket delivers the IP header, and the address the kernel would write
        # into msg_name is the header's own source (raw_recvmsg copies it from there):
        # read it from the header and have the kernel write no address at all.
        self._source_in_header = sock.family == socket.AF_INET and sock.type == socket.SOCK_RAW
        self._sock = sock
        self._slot_size = SLOT_SIZE
        self._slots = self._make_slots()

    @property
    def slot_size(self) -> int:
        """The longest datagram a read returns; longer ones are skipped."""
        return self._slot_size

    @property
    def capacity(self) -> int:
        """The most datagrams one read returns (:data:`CAPACITY`, fewer once the slots
        grew): a read that returns fewer has drained the socket."""
        return self._slots.capacity

    def fit(self, size: int) -> None:
        """Make room for datagrams of ``size`` bytes from now on (the largest reply a
        session can get): the slots grow, never shrink, and are fewer as they grow
        (:data:`BUFFER_LIMIT`). Not during a :meth:`read`."""
        if size > self._slot_size:
            self._slot_size = size
            self._slots = self._make_slots()

    def _make_slots(self) -> RecvmmsgSlots:
        size = self._slot_size
        capacity = CAPACITY if size == SLOT_SIZE else max(1, min(CAPACITY, BUFFER_LIMIT // size))
        return RecvmmsgSlots(
            self._sock, capacity, size, CONTROL_SIZE, names=not self._source_in_header
        )

    def read(self, limit: int = CAPACITY) -> list[Datagram]:
        """The datagrams queued now, oldest first, at most ``limit`` (and CAPACITY).

        Raises:
            BlockingIOError: nothing is queued.
            OSError: the kernel reports an error on the socket.
        """
        slots = self._slots
        count = slots.receive(limit, _MSG_DONTWAIT)
        unpack_result = _RESULT.unpack_from
        unpack_stamp = _STAMP_ONLY.unpack_from
        headers, data, control = slots.header_view, slots.data_view, slots.control_view
        names = slots.names_view
        name_offset, address_size = (8, 16) if self._ipv6 else (4, 4)
        source_in_header = self._source_in_header
        ipv6 = self._ipv6
        slot_size = self._slot_size
        batch: list[Datagram] = []
        append = batch.append
        for slot in range(count):
            control_size, flags, size = unpack_result(headers, slot * HEADER_SIZE)
            if flags & _MSG_TRUNC:
                continue  # longer than anything meant for us
            start = slot * slot_size
            packet = data[start : start + size].tobytes()
            if source_in_header:
                source = packet[12:16]
            else:
                name = slot * NAME_SIZE + name_offset
                source = names[name : name + address_size].tobytes()
                if ipv6 and names[name] == 0xFE and names[name + 1] & 0xC0 == 0x80:
                    # Link-local (fe80::/10): the address means something only on its link,
                    # so sin6_scope_id, which follows it, is part of it (see scoped_source).
                    source += names[name + 16 : name + 20].tobytes()
            stamp = slot * CONTROL_SIZE
            if control_size == _STAMP_ONLY_SIZE:
                _, level, kind, seconds, nanoseconds = unpack_stamp(control, stamp)
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    stamp_ns = seconds * 1_000_000_000 + nanoseconds
                    append(_new_tuple(Datagram, (packet, source, stamp_ns, True, None)))
                    continue
            append(datagram_from(packet, source, control[stamp : stamp + control_size].tobytes()))
        return batch


def datagram_from(data: bytes, source: bytes, control: bytes) -> Datagram:
    """A Datagram from the control messages (struct cmsghdr, one after another) that came
    with it: the kernel's receive stamp (a struct timespec of CLOCK_REALTIME) and the TTL
    or hop limit; without a stamp, the time now, marked as a user-space reading."""
    timestamp_ns: int | None = None
    hop_limit: int | None = None
    offset = 0
    while offset + _CMSG_HEADER.size <= len(control):
        length, level, kind = _CMSG_HEADER.unpack_from(control, offset)
        if length < _CMSG_DATA or offset + length > len(control):
            break  # cut short (MSG_CTRUNC) or malformed: keep what came whole
        value = control[offset + _CMSG_DATA : offset + length]
        # A message the kernel cut short (MSG_CTRUNC) says less than its type needs.
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            if len(value) >= _TIMESPEC.size:
                seconds, nanoseconds = _TIMESPEC.unpack_from(value)
                timestamp_ns = seconds * 1_000_000_000 + nanoseconds
        elif (
            (level == socket.IPPROTO_IPV6 and kind == socket.IPV6_HOPLIMIT)
            or (level == socket.IPPROTO_IP and kind == socket.IP_TTL)
        ) and len(value) >= 4:
            hop_limit = int.from_bytes(value[:4], sys.byteorder)
        offset += socket.CMSG_SPACE(length - _CMSG_DATA)
    if timestamp_ns is None:
        return Datagram(data, source, time.time_ns(), False, hop_limit)
    return Datagram(data, source, timestamp_ns, True, hop_limit)
