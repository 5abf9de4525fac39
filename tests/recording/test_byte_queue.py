"""The queue between a stream's receive thread and its writer thread."""

from __future__ import annotations

import threading
import time

import pytest

from recorder.recording.byte_queue import ByteBoundedQueue

pytestmark = pytest.mark.timeout(30)


def test_a_full_queue_refuses_instead_of_waiting():
    q = ByteBoundedQueue(100)
    assert q.offer([1], 60)
    assert not q.offer([2], 60)  # would pass the bound: the caller counts a drop
    assert q.depth_bytes == 60


def test_take_joined_catches_up_in_order_and_within_the_limit():
    q = ByteBoundedQueue(1 << 20)
    for i in range(10):
        q.offer([(i, k) for k in range(3)], 30)
    first = q.take_joined(0.1, max_items=7)
    assert first == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]  # a third would pass 7
    rest = q.take_joined(0.1)
    assert rest == [(i, k) for i in range(2, 10) for k in range(3)]
    assert q.depth_bytes == 0
    assert q.take_joined(0.01) is None


def test_take_joined_wakes_when_closed():
    q = ByteBoundedQueue(100)
    got: list = []
    t = threading.Thread(target=lambda: got.append(q.take_joined(10)))
    t.start()
    q.close()
    t.join(5)
    assert got == [None] and q.drained


def test_a_waiting_taker_is_woken_once_wake_bytes_are_queued():
    q = ByteBoundedQueue(1 << 20, wake_bytes=100)
    got: list = []
    t = threading.Thread(target=lambda: got.append(q.take_joined(60)))
    t.start()
    while not q._cond._waiters:  # type: ignore[attr-defined]  # the taker is waiting
        time.sleep(0.001)
    for i in range(4):
        assert q.offer([i], 30)  # the fourth makes 120 bytes: the taker wakes, takes all
    t.join(30)
    assert got == [[0, 1, 2, 3]] and q.depth_bytes == 0


@pytest.mark.timeout(10)
def test_put_waits_for_room_and_gives_up_after_its_timeout():
    q = ByteBoundedQueue(100)
    assert q.offer(["a"], 80)
    assert not q.put(["b"], 80, 0.05)  # no taker: no room within the timeout
    done = threading.Event()
    result = []

    def putter() -> None:
        result.append(q.put(["b"], 80, 5.0))
        done.set()

    t = threading.Thread(target=putter)
    t.start()
    assert not done.wait(0.1)  # still waiting for room
    assert q.take(1.0) == ["a"]  # room: the putter goes on
    assert done.wait(5.0) and result == [True]
    t.join(5)
    assert q.take(1.0) == ["b"]
