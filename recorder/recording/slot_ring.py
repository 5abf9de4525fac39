"""Shared memory between the receive process and its parent: batches without a pipe copy.

Why: a packed batch sent over the ipc pipe is copied into the kernel by the child's zmq I/O
thread and out of it by the parent's, into a fresh 2 MiB allocation that faults its pages in
each time, on a machine the sender, the child and the writer already share. Here the child
copies the payload once, into a slot of a mapping both processes share (made before the fork),
and sends only the slot's number; the parent reads the frames in place and gives the slot back
when the last view of it is gone (the writer stored them, or dropped the batch). Receive process
to parent alone: 21-22 -> 15-18 us of CPU per Open Ephys message (docs/recording.md).

Slots are fixed in size and limited in number. A batch that does not fit, or finds none free (a
writer far behind holds them all in its queue), goes over the pipe as before: slots make batches
cheaper, never refused; so does every batch where the mapping cannot be made. The child takes
the lowest free slot, so a recording that keeps up touches only the first few; slots past
`warm` hand their pages back when freed, so a backlog that drained leaves at most the warm
slots' memory behind (until the recording ends). The warm ones keep theirs: faulting a slot's
pages in again cost the child 2.4 ms per 2 MiB batch, as much as the pipe it replaces.

The mapping is a memory file (memfd) where the system has them: the child writes a batch's
frames into their slot with one `pwritev`, straight from the buffers they were received in. A
join into one payload and its copy into the mapping cost a copy more, and the mapping's fresh
pages a fault each; the kernel's write gives the file its pages without one. Measured on 470
Open Ephys messages at a time (received, then copied into a slot): 5.6 -> 4.4 us a message, and
8.6 -> 5.1 while the slots are fresh. Elsewhere the mapping is anonymous and the frames joined.
"""

from __future__ import annotations

import heapq
import mmap
import os
import weakref
from array import array
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

# Linux's value on x86 and ARM (the mmap module does not name it): no swap is set aside for
# the slots, which only take memory once a batch is copied in
_MAP_NORESERVE = 0x4000 if os.uname().machine in ("x86_64", "aarch64") else 0
_REMOVE = getattr(mmap, "MADV_REMOVE", None)  # Linux: a shared page's memory is given back
_IOV_MAX = 1024  # buffers one pwritev takes (Linux's IOV_MAX)


class SlotRing:
    """`slots` slots of `slot_bytes` in one shared anonymous mapping. The parent makes it,
    the forked child inherits it: the child `put`s payloads, the parent `view`s and frees."""

    def __init__(self, slots: int, slot_bytes: int, warm: int = 8):
        self.slot_bytes, self.warm = slot_bytes, warm
        self._fd = _memory_file(slots * slot_bytes)
        try:  # shared: a forked child writes where the parent reads
            self._map = mmap.mmap(
                -1 if self._fd is None else self._fd,
                slots * slot_bytes,
                flags=mmap.MAP_SHARED | _MAP_NORESERVE,
            )
        except OSError:  # no memory to map (a strict overcommit policy): no slots, the pipe
            slots = 0
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        if self._fd is not None:  # the child writes through it; closed with the ring
            weakref.finalize(self, os.close, self._fd).atexit = False
        self.slots = slots
        self._free = list(range(slots))  # the child's: a heap, lowest slot first
        # the parent's: slots given back, not yet told the child. Views die on any thread (the
        # writer's, mostly, or the garbage collector's anywhere): a deque's append and popleft
        # need no lock, which a release run by the collector inside `give_back` would wait on
        self._freed: deque[int] = deque()
        self.viewed = 0  # batches the parent read from slots (the rest came over the pipe)

    # -- the child -----------------------------------------------------------------------------

    def put(self, pieces: Sequence[Any], nbytes: int) -> int | None:
        """Copy the byte buffers `pieces` (`nbytes` together) one after the other into a free slot
        and return its number; None: none free, too big, or the memory file refused them."""
        if nbytes > self.slot_bytes or not self._free:
            return None
        slot = heapq.heappop(self._free)
        at = slot * self.slot_bytes
        if self._fd is None:
            self._map[at : at + nbytes] = b"".join(pieces)
            return slot
        try:
            _pwrite_all(self._fd, pieces, at)
        except OSError:  # no memory for the file's pages (a cgroup's limit): the pipe
            heapq.heappush(self._free, slot)
            return None
        return slot

    def unput(self, slot: int) -> None:
        """A slot `put` filled but never sent (the pipe was full): free again."""
        heapq.heappush(self._free, slot)

    def returned(self, told: bytes) -> None:
        """Slots the parent gave back (`give_back`'s bytes)."""
        for slot in array("I", told):
            heapq.heappush(self._free, slot)

    # -- the parent ----------------------------------------------------------------------------

    def view(self, slot: int, nbytes: int) -> memoryview:
        """The first `nbytes` of a slot the child filled; the slot is freed when this view and
        every slice of it are gone."""
        if not 0 <= slot < self.slots or not 0 <= nbytes <= self.slot_bytes:
            raise ValueError(f"slot {slot} of {nbytes} bytes is outside the ring")
        owner = np.frombuffer(self._map, np.uint8, nbytes, slot * self.slot_bytes)
        # not at exit: the process's end frees it all anyway
        weakref.finalize(owner, self._release, slot).atexit = False
        self.viewed += 1
        return owner.data  # a memoryview that holds `owner`

    def _release(self, slot: int) -> None:
        if slot >= self.warm and _REMOVE is not None:  # a backlog's slot: pages go back
            at = slot * self.slot_bytes
            self._map.madvise(_REMOVE, at, self.slot_bytes)
        self._freed.append(slot)

    def give_back(self) -> bytes:
        """Slots freed since last asked, as the child's `returned` takes them (b"": none)."""
        slots = array("I")
        freed = self._freed
        while freed:
            slots.append(freed.popleft())
        return slots.tobytes()


def _memory_file(size: int) -> int | None:
    """A memory file of `size` bytes (its pages made as they are written), or None where the
    system has none or refuses the size."""
    create = getattr(os, "memfd_create", None)
    if create is None or size <= 0:
        return None
    try:
        fd = create("zmq-recorder-slots", os.MFD_CLOEXEC)
    except OSError:
        return None
    try:
        os.ftruncate(fd, size)
    except OSError:
        os.close(fd)
        return None
    return fd


def _pwrite_all(fd: int, pieces: Sequence[Any], at: int) -> None:
    """The pieces one after the other from offset `at`, IOV_MAX buffers a system call."""
    for k in range(0, len(pieces), _IOV_MAX):
        group = pieces[k : k + _IOV_MAX]
        want = sum(map(len, group))
        if os.pwritev(fd, group, at) != want:  # memory ran out mid-way
            raise OSError(f"the memory file took less than {want} bytes")
        at += want
