"""The shared slots between the receive process and its parent (recording/slot_ring.py): a
payload reads back as put, a slot is free again only when no view of it is left, and what does
not fit is refused (the caller sends it over the pipe)."""

from __future__ import annotations

import gc
import os

import pytest
import zmq

from recorder.recording import slot_ring
from recorder.recording.slot_ring import SlotRing


def _put(ring: SlotRing, payload: bytes) -> int | None:
    return ring.put([payload], len(payload))


def _round_trip(ring: SlotRing) -> None:
    """What the receive loop does with the parent's frees: they reach the child's side."""
    ring.returned(ring.give_back())


def test_a_payload_reads_back_from_its_slot_and_the_slot_is_freed_with_its_last_view():
    ring = SlotRing(2, 1024)
    first = _put(ring, b"a" * 100)
    second = _put(ring, b"b" * 1024)
    assert (first, second) == (0, 1)
    assert _put(ring, b"c") is None  # none free
    view = ring.view(0, 100)
    tail = view[90:]
    assert bytes(view) == b"a" * 100
    del view
    gc.collect()
    assert ring.give_back() == b""  # a slice still reads from it
    assert bytes(tail) == b"a" * 10
    del tail
    gc.collect()
    _round_trip(ring)
    assert _put(ring, b"d" * 5) == 0
    assert bytes(ring.view(0, 5)) == b"d" * 5
    assert ring.viewed == 2


def test_the_lowest_free_slot_is_taken_first():
    ring = SlotRing(4, 64)
    taken = [_put(ring, b"x") for _ in range(4)]
    assert taken == [0, 1, 2, 3]
    views = {slot: ring.view(slot, 1) for slot in (3, 1)}
    del views
    gc.collect()
    _round_trip(ring)
    ring.unput(2)  # filled, never sent
    assert [_put(ring, b"y") for _ in range(3)] == [1, 2, 3]


def test_a_payload_larger_than_a_slot_is_refused():
    ring = SlotRing(2, 64)
    assert _put(ring, bytes(65)) is None
    assert _put(ring, bytes(64)) == 0


def test_slots_past_the_warm_ones_give_their_memory_back():
    ring = SlotRing(2, 1 << 16, warm=1)
    for payload in (b"w" * 10, b"c" * 10):
        _put(ring, payload)
    kept, handed_back = ring.view(0, 10), ring.view(1, 10)
    del kept, handed_back
    gc.collect()
    assert bytes(ring.view(0, 10)) == b"w" * 10  # warm: its pages stay
    assert bytes(ring.view(1, 10)) == bytes(10)  # removed: reads as fresh memory


@pytest.mark.parametrize(("slot", "nbytes"), [(-1, 1), (2, 1), (0, 65)])
def test_a_slot_outside_the_ring_is_refused(slot, nbytes):
    with pytest.raises(ValueError, match="outside the ring"):
        SlotRing(2, 64).view(slot, nbytes)


@pytest.mark.timeout(30)
def test_a_forked_child_writes_where_the_parent_reads():
    ring = SlotRing(2, 1024)
    pid = os.fork()
    if pid == 0:  # the child: its own copy of the free list, the same mapping
        code = 0 if _put(ring, b"from the child") == 0 else 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert bytes(ring.view(0, 14)) == b"from the child"


def test_a_ring_that_cannot_be_mapped_has_no_slots_and_refuses_every_payload():
    ring = SlotRing(1 << 20, 1 << 42)  # 4 EiB: more address space than the machine has
    assert ring.slots == 0
    assert _put(ring, b"x") is None  # every batch goes over the pipe
    assert ring.give_back() == b""


def _frames(count: int) -> list:
    """Frames as the receive process holds them: zmq.Frames (copy=False) and bytes."""
    return [zmq.Frame(bytes([k % 251]) * (k % 7)) if k % 2 else bytes([k % 251]) * 3
            for k in range(count)]  # fmt: skip


@pytest.mark.parametrize("memory_file", [True, False])
def test_frames_are_put_one_after_the_other_past_one_system_calls_worth(monkeypatch, memory_file):
    if not memory_file:  # a system without memory files: an anonymous mapping, frames joined
        monkeypatch.delattr(os, "memfd_create", raising=False)
    ring = SlotRing(2, 1 << 16)
    assert (ring._fd is not None) == memory_file  # Linux has them
    frames = _frames(2 * slot_ring._IOV_MAX + 5)  # three pwritev calls
    payload = b"".join(frames)
    assert ring.put(frames, len(payload)) == 0
    assert bytes(ring.view(0, len(payload))) == payload


def test_a_slot_the_memory_file_refuses_is_free_again():
    ring = SlotRing(2, 1024)
    if ring._fd is None:
        pytest.skip("no memory files on this system")
    writable, ring._fd = ring._fd, os.open(os.devnull, os.O_RDONLY)  # writes fail (EBADF)
    try:
        assert ring.put([b"lost"], 4) is None  # the batch goes over the pipe instead
    finally:
        os.close(ring._fd)
        ring._fd = writable
    assert _put(ring, b"kept") == 0  # the slot was not lost
    assert bytes(ring.view(0, 4)) == b"kept"
