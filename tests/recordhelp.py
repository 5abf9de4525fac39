"""Drive a real Recording against a live source and read the run back.

The end-to-end protocol tests all have the same shape (a source in a thread, a recorder on real
loopback sockets, a run in tmp_path, then checks on what the store gives back), so that shape
lives here once and each test only says what it checks. Waiting is always on a condition with a
deadline, never a bare sleep.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from recorder.recording.recording import Recording, SourceSpec
from recorder.simulators import Simulator
from recorder.store.reader import RunReader, StreamReader


@contextlib.contextmanager
def running(sim: Simulator) -> Iterator[Simulator]:
    """The simulator runs on its own thread for the duration of the block and is always
    stopped afterwards; a simulator that failed fails the test."""
    sim.start()
    try:
        yield sim
    finally:
        sim.stop(10)
    assert not sim.running, "simulator thread did not stop"
    assert sim.error is None, f"simulator failed: {sim.error!r}"


def record(
    runs_dir: Path,
    spec: SourceSpec,
    count: int | None = None,
    *,
    until: Callable[[Recording], bool] | None = None,
    on_started: Callable[[Recording], None] | None = None,
    timeout: float = 20.0,
) -> Path:
    """Record `spec` until `count` messages (or `until(rec)` is true); return the run's path.

    `on_started` runs once the recorder's socket is open (e.g. to connect a PUSH peer to the
    recorder's bound endpoint). The run must end `complete`; a stalled source fails the test
    with the number of messages that did arrive.
    """
    rec = Recording(runs_dir, [spec], count=count, flush_interval=0.05)
    rec.start()
    stalled = None
    try:
        if on_started is not None:
            on_started(rec)
        deadline = time.monotonic() + timeout
        while not rec.done and not (until is not None and until(rec)):
            if time.monotonic() > deadline:
                stalled = rec.streams[0].counters.received
                break
            time.sleep(0.005)
    finally:
        status = rec.finish()
    assert stalled is None, (
        f"recording timed out after {timeout} s with {stalled} messages (count={count})"
    )
    assert rec.error is None and status == "complete", (status, rec.error)
    return rec.run.path


def received(n: int) -> Callable[[Recording], bool]:
    """`until` condition: the recorder has received at least n messages."""
    return lambda rec: rec.streams[0].counters.received >= n


def stream_of(run_path: Path, name: str = "main") -> StreamReader:
    return RunReader(run_path).stream(name)


def summary_of(run_path: Path) -> dict:
    return RunReader(run_path).summary()


def frames_of(stream: StreamReader) -> list[list[bytes]]:
    """Every stored message rebuilt as bytes, in arrival order."""
    return [[bytes(f) for f in m.frames] for m in stream.messages()]


def rows(stream: StreamReader, name: str) -> list[np.ndarray]:
    """Array `name` of every message that carried it (a stacked segment's row, or a message's
    rows of a ragged one), in arrival order."""
    return [a for _, a in stream.message_arrays(name)]


def assert_rows_equal(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want), (len(got), len(want))
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.dtype == w.dtype and g.shape == w.shape, (k, g.dtype, g.shape, w.dtype, w.shape)
        np.testing.assert_array_equal(g, w, err_msg=f"row {k}")


def gaps_in(seqs: list[int]) -> int:
    """Numbers missing between consecutive increasing sequence numbers."""
    return sum(b - a - 1 for a, b in itertools.pairwise(seqs) if b > a + 1)
