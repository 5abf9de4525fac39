"""Shared memory between the receive process and its parent: batches without a pipe copy.

Why: a packed batch sent over the ipc pipe is copied into the kernel by the child's zmq I/O
thread and out of it by the parent's, into a fresh 2 MiB allocation that faults its pages in
each time, on a machine the sender, the child and the writer already share. Here the child
copies the payload once, into a slot of a mapping both processes share (made before the fork),
and sends only where it lies; the parent reads the frames in place and gives the slot back when
it is done with it (the writer stored the frames, or dropped the batch). Receive process
to parent alone: 21-22 -> 15-18 us of CPU per Open Ephys message (docs/recording.md).

Slots are fixed in size and limited in number. Batches are packed into them one after the other:
the child fills the slot it has open and opens the lowest free one when the next batch does not
fit. One batch a slot held a paced stream's backlog to a quarter of the ring (three Neuropixels
probes hand over ~1 MB batches: 256 slots of 4 MiB took 1.7 s of backlog, not 7). A batch that
fits no slot, or finds none free (a writer far behind holds them all in its queue), goes over
the pipe as before: slots make batches cheaper, never refused; so does every batch where the
mapping cannot be made. A recording that keeps up touches only the first few slots; slots past
`warm` hand their pages back when freed, so a backlog that drained leaves at most the warm
slots' memory behind (until the recording ends). The warm ones keep theirs: faulting a slot's
pages in again cost the child 2.4 ms per 2 MiB batch, as much as the pipe it replaces.

A slot is free again once the child has moved on from it and no view of any of its batches is
left. The parent learns the first from the pipe, which keeps order: a batch in another slot. All
of that bookkeeping is on the parent's receive thread (`view`, `give_back`); a view that dies on
another thread only queues its slot.

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
_ALIGN = 64  # batches packed into a slot start on a cache line


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
        # the child's: free slots (a heap, lowest first), the slot it fills and how far, and
        # what they were before the last put (`unput` goes back to it)
        self._free = list(range(slots))
        self._open: int | None = None
        self._fill = 0
        self._before: tuple[int | None, int, bool] = (None, 0, False)
        # the parent's: views of each slot still alive, the slot the child fills as far as
        # the pipe said, and the slots each view that died was of. Views die on any thread
        # (the writer's, mostly, or the garbage collector's anywhere): a deque's append and
        # popleft need no lock, which a release run by the collector inside `give_back` would
        # wait on; `give_back` counts them on the receive thread
        self._views = [0] * slots
        self._filling: int | None = None
        self._done: list[int] = []  # left with no view when the child moved on from them
        self._released: deque[int] = deque()
        self.viewed = 0  # batches the parent read from slots (the rest came over the pipe)

    # -- the child -----------------------------------------------------------------------------

    def put(self, pieces: Sequence[Any], nbytes: int) -> tuple[int, int] | None:
        """Copy the byte buffers `pieces` (`nbytes` together) one after the other into the open
        slot, or the lowest free one where they do not fit; return (slot, offset). None: too
        big for a slot, no slot free, or the memory file refused them."""
        if nbytes > self.slot_bytes:
            return None
        slot, at = self._open, -(-self._fill // _ALIGN) * _ALIGN
        opened = slot is None or at + nbytes > self.slot_bytes
        if opened:
            if not self._free:
                return None
            slot, at = self._free[0], 0
        assert slot is not None, "a slot is open, or one was just taken"
        start = slot * self.slot_bytes + at
        if self._fd is None:
            self._map[start : start + nbytes] = b"".join(pieces)
        else:
            try:
                _pwrite_all(self._fd, pieces, start)
            except OSError:  # no memory for the file's pages (a cgroup's limit): the pipe
                return None
        if opened:
            heapq.heappop(self._free)
        self._before = (self._open, self._fill, opened)
        self._open, self._fill = slot, at + nbytes
        return slot, at

    def unput(self) -> None:
        """The last `put` never reached the parent (the pipe was full): as if not made."""
        before, fill, opened = self._before
        if opened and self._open is not None:
            heapq.heappush(self._free, self._open)
        self._open, self._fill = before, fill
        self._before = (before, fill, False)

    def seal(self) -> None:
        """A batch went over the pipe: the open slot takes no more (the parent, told by that
        batch, gives it back once its views are gone; a ring of one slot would otherwise send
        every batch over the pipe once that slot was full)."""
        self._open, self._fill = None, 0
        self._before = (None, 0, False)

    def returned(self, told: bytes) -> None:
        """Slots the parent gave back (`give_back`'s bytes)."""
        for slot in array("I", told):
            heapq.heappush(self._free, slot)

    # -- the parent ----------------------------------------------------------------------------

    def view(self, slot: int, offset: int, nbytes: int) -> memoryview:
        """The `nbytes` from `offset` of a slot the child filled. The slot goes back to the
        child once the child has moved on from it and this view, every slice of it and the
        other views of the slot are gone. On the receive thread only, in the pipe's order."""
        inside = 0 <= slot < self.slots and 0 <= offset <= self.slot_bytes - nbytes
        if not (inside and nbytes >= 0):
            raise ValueError(f"slot {slot} at {offset} of {nbytes} bytes is outside the ring")
        owner = np.frombuffer(self._map, np.uint8, nbytes, slot * self.slot_bytes + offset)
        # not at exit: the process's end frees it all anyway
        weakref.finalize(owner, self._released.append, slot).atexit = False
        before, self._filling = self._filling, slot
        if before is not None and before != slot and not self._views[before]:
            self._done.append(before)  # the child moved on from it, and its views are gone
        self._views[slot] += 1
        self.viewed += 1
        return owner.data  # a memoryview that holds `owner`

    def sealed(self) -> None:
        """A batch came over the pipe: the slot the child filled takes no more (`seal`)."""
        slot, self._filling = self._filling, None
        if slot is not None and not self._views[slot]:
            self._done.append(slot)

    def give_back(self) -> bytes:
        """Slots done with since last asked, as the child's `returned` takes them (b"": none).
        On the receive thread only."""
        views, released = self._views, self._released
        done = array("I", self._done)
        self._done = []
        while released:
            slot = released.popleft()
            views[slot] -= 1
            if not views[slot] and slot != self._filling:
                done.append(slot)
        for slot in done:
            if slot >= self.warm and _REMOVE is not None:  # a backlog's slot: pages go back
                self._map.madvise(_REMOVE, slot * self.slot_bytes, self.slot_bytes)
        return done.tobytes()


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
