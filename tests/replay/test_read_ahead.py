"""The replay's read-ahead: the same messages in the same order, a bounded backlog, errors
raised where the clock reads, and a thread that stops on close (a seek)."""

from __future__ import annotations

import threading

import pytest

from recorder.replay.read_ahead import ReadAhead
from recorder.store.reader import Message
from tests.helpers import wait_for


def numbered(n: int, size: int, pulled: list[int] | None = None):
    for i in range(n):
        if pulled is not None:
            pulled.append(i)
        yield Message("s", i, i * 1000, i, 0, 0, [memoryview(bytes(size))])


@pytest.mark.timeout(30)
def test_messages_come_through_in_order_and_end():
    got = [m.index for m in ReadAhead(numbered(5000, 10))]
    assert got == list(range(5000))


@pytest.mark.timeout(30)
def test_backlog_is_bounded_in_bytes_while_nobody_reads():
    pulled: list[int] = []
    ahead = ReadAhead(numbered(10_000, 1 << 20, pulled), ahead_bytes=16 << 20)
    try:
        wait_for(lambda: len(pulled) >= 16, 10, "the reader to fill its backlog")
        # 4 batches of at most 4 MiB waiting, one being built, one held by put(): ~24 MiB
        wait_for(lambda: not ahead._thread.is_alive() or ahead._batches.full(), 10, "a full queue")
        assert len(pulled) <= 4 * 4 + 4 + 1 + 4
        first = next(ahead)
        assert first.index == 0
    finally:
        ahead.close()
    assert not ahead._thread.is_alive()


@pytest.mark.timeout(30)
def test_a_read_error_is_raised_where_the_clock_reads():
    def broken():
        yield from numbered(3, 10)
        raise OSError("chunk file went away")

    ahead = ReadAhead(broken())
    assert [next(ahead).index for _ in range(3)] == [0, 1, 2]
    with pytest.raises(OSError, match="went away"):
        next(ahead)


@pytest.mark.timeout(30)
def test_close_stops_a_reader_waiting_on_a_full_backlog():
    ahead = ReadAhead(numbered(100_000, 1 << 20), ahead_bytes=8 << 20)
    wait_for(ahead._batches.full, 10, "a full queue")
    ahead.close()
    assert not ahead._thread.is_alive()
    assert threading.active_count() < 50


@pytest.mark.timeout(30)
def test_the_batch_goes_over_at_once_when_the_clock_waits():
    """A slow source (the run being read is huge, or storage is slow): the clock gets the
    first message without waiting for a whole batch to be read."""
    release = threading.Event()

    def slow():
        yield from numbered(1, 10)
        release.wait(60)  # beyond the test's timeout: a reader keeping message 0 hangs it
        yield from numbered(2, 10)

    ahead = ReadAhead(slow())
    try:
        assert next(ahead).index == 0  # would hang until `release` if the reader kept it
    finally:
        release.set()
        ahead.close()
