"""Split: a recording ends a run and starts the next every N seconds of receive time, every N
bytes, or when asked, and loses or duplicates nothing across the boundaries: every message is in
exactly one run, and the runs are one session."""

from __future__ import annotations

import itertools

import pytest

from recorder.recording.plans import SplitPlan
from recorder.recording.recording import Recording, SourceSpec
from recorder.store.reader import RunReader
from tests.helpers import wait_for
from tests.recording.enginehelp import Numbered, numbers

BOUNDARIES = 20


def _record_all(rec: Recording, sources: list[Numbered], n: int, timeout: float = 60) -> None:
    rec.start()
    for s in sources:
        s.start()
    try:
        wait_for(lambda: rec.done, timeout, f"{n} messages from each source")
    finally:
        for s in sources:
            s.stop()
        assert rec.finish() == "complete"


def _check_exactly_once(rec: Recording, streams: list[str], n: int) -> None:
    runs = rec.runs
    assert len(runs) >= BOUNDARIES + 1
    for name in streams:
        seen = [i for r in runs for i, _ in numbers(r.path, name)]
        assert sorted(seen) == list(range(n)), f"{name}: lost or duplicated across boundaries"
        assert seen == sorted(seen)  # runs in order, each in order
    sessions = set()
    for r in runs:
        with RunReader(r.path) as reader:
            assert reader.status == "complete"
            sessions.add(reader.annotations()["session"]["id"])
    assert sessions == {rec.session["id"]}


@pytest.mark.timeout(120)
def test_a_time_split_loses_and_duplicates_nothing(ctx, tmp_path):
    n = 1400  # 7 s at 200/s: 0.25 s runs give more than 20 boundaries
    src = Numbered(ctx, rate=200, count=n)
    spec = SourceSpec(src.endpoint, protocol="raw")
    rec = Recording(tmp_path / "runs", [spec], count=n, split=SplitPlan(seconds=0.25))
    _record_all(rec, [src], n)
    _check_exactly_once(rec, ["main"], n)
    # each run holds one interval of receive time, from the first run's start
    step = int(0.25e9)
    starts = [r.started_ns for r in rec.runs]
    for a, b in itertools.pairwise(starts[1:]):
        assert (b - a) % step == 0


@pytest.mark.timeout(120)
def test_a_size_split_loses_and_duplicates_nothing(ctx, tmp_path):
    n = 1000
    src = Numbered(ctx, rate=500, size=100, count=n)
    spec = SourceSpec(src.endpoint, protocol="raw")
    rec = Recording(tmp_path / "runs", [spec], count=n, split=SplitPlan(bytes=2048))
    _record_all(rec, [src], n)
    _check_exactly_once(rec, ["main"], n)
    for r in rec.runs[:-1]:  # 100-byte messages: the one that reaches 2048 bytes ends the run
        assert len(numbers(r.path)) == 21


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("plan", "rate"), [(SplitPlan(seconds=0.25), 200), (SplitPlan(bytes=4096), 400)], ids=str
)
def test_two_streams_split_together(ctx, tmp_path, plan, rate):
    """Each stream has its own writer thread: a size boundary falls where the run's bytes were
    reached or just after what the other stream had routed by then (so a run may hold a little
    more than the size on a loaded machine: 2400 messages of 120 bytes give ~70 runs idle)."""
    n = 7 * rate
    fast = Numbered(ctx, rate=rate, size=100, count=n)
    slow = Numbered(ctx, rate=rate, size=20, count=n)
    specs = [
        SourceSpec(fast.endpoint, protocol="raw", stream="fast"),
        SourceSpec(slow.endpoint, protocol="raw", stream="slow"),
    ]
    rec = Recording(tmp_path / "runs", specs, count=n, split=plan)
    _record_all(rec, [fast, slow], n)
    _check_exactly_once(rec, ["fast", "slow"], n)
    # a boundary is one receive time for both streams: runs do not overlap
    spans = []
    for r in rec.runs:
        times = [t for name in ("fast", "slow") for _, t in numbers(r.path, name)]
        if times:
            spans.append((min(times), max(times)))
    overlaps = [(a, b) for a, b in itertools.pairwise(spans) if a[1] >= b[0]]
    detail = [
        (r.started_ns, [(ns[0][1], ns[-1][1]) if ns else None for ns in _per_stream(r.path)])
        for r in rec.runs
    ]
    assert not overlaps, (overlaps, [s.lane.late for s in rec.streams], detail)
    assert [s.lane.late for s in rec.streams] == [0, 0]


@pytest.mark.timeout(60)
def test_split_now_ends_the_run_and_starts_the_next(ctx, tmp_path):
    src = Numbered(ctx, rate=200)
    rec = Recording(tmp_path / "runs", [SourceSpec(src.endpoint, protocol="raw")])
    rec.start()
    src.start()
    try:
        wait_for(lambda: rec.streams[0].counters.received >= 20, 20, "messages")
        first = rec.run
        rec.split_now()
        assert rec.run is not first and len(rec.runs) == 2
        wait_for(lambda: first.status == "complete", 10, "the first run closed")
        at = rec.streams[0].counters.received
        wait_for(lambda: rec.streams[0].counters.received >= at + 20, 20, "messages after")
    finally:
        src.stop()
        assert rec.finish() == "complete"
    a, b = (numbers(r.path) for r in rec.runs)
    assert a and b and [i for i, _ in a + b] == list(range(len(a) + len(b)))
    assert a[-1][1] < b[0][1]


def _per_stream(path):
    return [numbers(path, name) for name in ("fast", "slow")]


@pytest.mark.timeout(60)
def test_a_size_boundary_falls_after_what_a_finished_stream_wrote(tmp_path):
    """A stream that has finished (its watermark is past every end) keeps its last routed
    time: a size boundary another, lagging stream sets later still falls after it, so the
    finished stream's messages are not left in a run that ends before them."""
    from recorder.recording.timeline import Lane, Timeline
    from recorder.store.run_writer import RunWriter

    runs: list[RunWriter] = []

    def make_run(slot):
        run = RunWriter(tmp_path / "runs")
        for name in ("fast", "slow"):
            run.add_stream(name, protocol="raw", endpoint="tcp://h:1", socket_type="SUB",
                           role="connect")  # fmt: skip
        runs.append(run)
        return run

    tl = Timeline(["fast", "slow"], trigger=None, split=SplitPlan(bytes=1000),
                  make_run=make_run, close_run=lambda slot: slot.run.close())  # fmt: skip
    fast, slow = Lane(tl, "fast"), Lane(tl, "slow")
    fast.start()
    slow.start()

    def items(times, size):
        return [(t, [b"x" * size], None, None) for t in times]

    fast.feed(items(range(1000, 1100, 10), 10))  # 100 bytes, far below the size
    fast.finish()  # done: up to t=1090
    slow.feed(items(range(1000, 1100, 5), 100))  # reaches 1000 bytes at t=1045
    slow.finish()
    spans = []
    for run in runs:
        run.close()
        with RunReader(run.path) as r:
            times = [m.recv_ns for name in ("fast", "slow") for m in r.stream(name).messages()]
        if times:
            spans.append((min(times), max(times)))
    assert len(spans) == 2
    assert spans[0][1] < spans[1][0], spans  # the second run begins after the first one's end
