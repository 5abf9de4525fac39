"""The shared slots between the receive process and its parent (recording/slot_ring.py): batches
are packed into a slot one after the other and read back as put; a slot is free again only once
the child has moved on from it and no view of it is left; what does not fit is refused (the
caller sends it over the pipe)."""

from __future__ import annotations

import gc
import os
import threading

import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.recording import slot_ring
from recorder.recording.slot_ring import SlotRing


def _put(ring: SlotRing, payload: bytes) -> tuple[int, int] | None:
    return ring.put([payload], len(payload))


def _view(ring: SlotRing, placed: tuple[int, int] | None, nbytes: int) -> memoryview:
    assert placed is not None
    return ring.view(*placed, nbytes)


def _round_trip(ring: SlotRing) -> bytes:
    """What the receive loop does with the parent's frees: they reach the child's side."""
    told = ring.give_back()
    ring.returned(told)
    return told


def test_batches_are_packed_into_the_open_slot_and_read_back_as_put():
    ring = SlotRing(3, 1024)
    first, second = _put(ring, b"a" * 100), _put(ring, b"b" * 200)
    assert (first, second) == ((0, 0), (0, 128))  # the second on the next cache line
    third = _put(ring, b"c" * 900)  # 328 of 1024 taken: the lowest free slot is opened
    assert third == (1, 0)
    assert _put(ring, b"d" * 64) == (1, 960)  # fits exactly after the third (aligned)
    assert [bytes(_view(ring, p, n)) for p, n in [(first, 100), (second, 200), (third, 900)]] == [
        b"a" * 100,
        b"b" * 200,
        b"c" * 900,
    ]
    assert ring.viewed == 3


def test_a_slot_is_free_once_the_child_moved_on_and_its_last_view_is_gone():
    ring = SlotRing(2, 1024)
    view = _view(ring, _put(ring, b"a" * 100), 100)
    tail = view[90:]
    del view
    gc.collect()
    assert ring.give_back() == b""  # a slice still reads from it
    del tail
    gc.collect()
    assert ring.give_back() == b""  # no view left, but the child still fills it
    more = _view(ring, _put(ring, b"b" * 10), 10)
    assert bytes(more) == b"b" * 10
    del more
    assert ring.give_back() == b""  # counted: no view of slot 0 is left, but it is still filled
    moved = _view(ring, _put(ring, b"c" * 1000), 1000)  # did not fit: slot 1
    assert ring.give_back() == bytes(4)  # slot 0 (a uint32)
    ring.returned(bytes(4))
    assert _put(ring, b"e" * 100) == (0, 0)  # slot 1 is full: the lowest free one again
    assert bytes(moved) == b"c" * 1000


def test_a_slot_the_child_left_is_free_when_its_last_view_dies_later():
    ring = SlotRing(2, 64)
    kept = _view(ring, _put(ring, b"k" * 64), 64)
    later = _view(ring, _put(ring, b"n" * 10), 10)  # slot 1: the child moved on
    assert ring.give_back() == b""  # slot 0 is still viewed
    del kept
    gc.collect()
    assert _round_trip(ring) == bytes(4)  # slot 0
    assert _put(ring, b"x" * 60) == (0, 0)  # slot 1 has 10 + 54 free: too few after alignment
    assert bytes(later) == b"n" * 10


def test_a_view_that_dies_on_another_thread_is_counted_on_the_receive_thread():
    ring = SlotRing(2, 64)
    views = [_view(ring, _put(ring, b"t" * 64), 64)]
    _view(ring, _put(ring, b"u" * 8), 8)  # the child moved on from slot 0 (this view dies now)

    def drop():
        views.clear()
        gc.collect()

    other = threading.Thread(target=drop)
    other.start()
    other.join()
    assert ring.give_back() == bytes(4)  # slot 0; slot 1 is still the one filled


def test_a_batch_over_the_pipe_ends_the_open_slot_on_both_sides():
    """A ring of one slot: once it is full, batches go over the pipe; the first of them ends
    the slot (the child `seal`s it, the parent is told by that batch), so the slot comes back
    when its views are gone instead of never."""
    ring = SlotRing(1, 64)
    view = _view(ring, _put(ring, b"f" * 60), 60)
    assert _put(ring, b"g" * 10) is None  # no room, no free slot: the pipe
    ring.seal()
    ring.sealed()
    assert ring.give_back() == b""  # still viewed
    del view
    gc.collect()
    assert _round_trip(ring) == bytes(4)
    assert _put(ring, b"h" * 10) == (0, 0)


def test_unput_undoes_the_last_put():
    ring = SlotRing(3, 256)
    _view(ring, _put(ring, b"a" * 10), 10)
    assert _put(ring, b"b" * 10) == (0, 64)
    ring.unput()  # never sent: the bytes after the first are free again
    assert _put(ring, b"c" * 10) == (0, 64)
    assert _put(ring, b"d" * 200) == (1, 0)  # 128 + 200 do not fit: slot 1 opened
    ring.unput()  # slot 1 goes back, slot 0 stays open where it was
    assert _put(ring, b"e" * 100) == (0, 128)
    assert _put(ring, b"f" * 200) == (1, 0)
    assert bytes(ring.view(0, 64, 10)) == b"c" * 10


def test_the_lowest_free_slot_is_opened_first():
    ring = SlotRing(4, 64)
    placed = [_put(ring, b"x" * 64) for _ in range(4)]
    assert placed == [(0, 0), (1, 0), (2, 0), (3, 0)]
    views = [ring.view(slot, 0, 64) for slot in range(4)]  # the child has moved on to slot 3
    del views[3], views[1]
    gc.collect()
    assert sorted(memoryview(_round_trip(ring)).cast("I").tolist()) == [1]
    assert _put(ring, b"y" * 64) == (1, 0)
    assert _put(ring, b"z") is None  # slot 1 is full and none is free


def test_a_payload_larger_than_a_slot_is_refused():
    ring = SlotRing(2, 64)
    assert _put(ring, bytes(65)) is None
    assert _put(ring, bytes(64)) == (0, 0)


def test_slots_past_the_warm_ones_give_their_memory_back():
    ring = SlotRing(3, 1 << 16, warm=1)
    for payload in (b"w" * (1 << 16), b"c" * (1 << 16), b"n" * 10):  # one slot each
        _put(ring, payload)
    views = [ring.view(slot, 0, 10) for slot in range(3)]
    del views
    gc.collect()
    assert sorted(memoryview(ring.give_back()).cast("I").tolist()) == [0, 1]
    assert bytes(ring.view(0, 0, 10)) == b"w" * 10  # warm: its pages stay
    assert bytes(ring.view(1, 0, 10)) == bytes(10)  # removed: reads as fresh memory


@pytest.mark.parametrize(
    ("slot", "offset", "nbytes"), [(-1, 0, 1), (2, 0, 1), (0, 0, 65), (0, 60, 5), (0, -1, 1)]
)
def test_a_view_outside_the_ring_is_refused(slot, offset, nbytes):
    with pytest.raises(ValueError, match="outside the ring"):
        SlotRing(2, 64).view(slot, offset, nbytes)


@pytest.mark.timeout(30)
def test_a_forked_child_writes_where_the_parent_reads():
    ring = SlotRing(2, 1024)
    pid = os.fork()
    if pid == 0:  # the child: its own copy of the free list, the same mapping
        ok = _put(ring, b"from the child") == (0, 0) and _put(ring, b"again") == (0, 64)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert bytes(ring.view(0, 0, 14)) == b"from the child"
    assert bytes(ring.view(0, 64, 5)) == b"again"


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
    _put(ring, b"first")
    assert ring.put(frames, len(payload)) == (0, 64)
    assert bytes(ring.view(0, 64, len(payload))) == payload


def test_a_batch_the_memory_file_refuses_loses_no_room():
    ring = SlotRing(2, 1024)
    if ring._fd is None:
        pytest.skip("no memory files on this system")
    assert _put(ring, b"kept") == (0, 0)
    writable, ring._fd = ring._fd, os.open(os.devnull, os.O_RDONLY)  # writes fail (EBADF)
    try:
        assert _put(ring, b"lost") is None  # the batch goes over the pipe instead
        assert _put(ring, bytes(1000)) is None  # (a new slot would be taken: not lost either)
    finally:
        os.close(ring._fd)
        ring._fd = writable
    assert _put(ring, b"next") == (0, 64)  # the open slot goes on where it was
    assert _put(ring, bytes(1000)) == (1, 0)  # and slot 1 was not lost
    assert bytes(ring.view(0, 64, 4)) == b"next"


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("ppppuvbr"), st.integers(1, 300)), max_size=120))
def test_no_slot_is_reused_while_a_view_of_it_lives_and_all_come_back(steps):
    """The child and the parent in one process, the pipe a list kept in order: puts (some
    refused over the pipe, some undone as if the pipe was full), views taken in the pipe's
    order and dropped in any order, slots given back as the receive loop does. Every live view
    must still read what was put (no slot reused under it), and once every view is gone and the
    child has moved on, every slot is free again."""
    ring = SlotRing(4, 512)
    pipe: list = []  # ("S", (slot, offset), payload) or ("B",)
    held: list = []  # (view, payload)
    for count, (action, size) in enumerate(steps):
        if action in "pu":  # the child puts a batch
            payload = bytes([count % 251]) * size
            placed = _put(ring, payload)
            if placed is None:
                pipe.append(("B",))  # over the pipe: the open slot is done with
                ring.seal()
            elif action == "u":
                ring.unput()  # the pipe was full: never sent
            else:
                pipe.append(("S", placed, payload))
        elif action == "v" and pipe:  # the parent takes the next message off the pipe
            said = pipe.pop(0)
            if said[0] == "B":
                ring.sealed()
            else:
                held.append((ring.view(*said[1], len(said[2])), said[2]))
        elif action == "b":  # the child puts a batch no slot takes
            pipe.append(("B",))
            ring.seal()
        elif action == "r" and held:  # a view dies (any one)
            del held[size % len(held)]
        ring.returned(ring.give_back())
        assert [bytes(view) for view, _ in held] == [payload for _, payload in held]
    while pipe:
        said = pipe.pop(0)
        if said[0] == "B":
            ring.sealed()
        else:
            held.append((ring.view(*said[1], len(said[2])), said[2]))
    held.clear()
    ring.seal()  # the child moves on from its open slot, and says so with a batch
    ring.sealed()
    ring.returned(ring.give_back())
    assert sorted(ring._free) == list(range(4))
