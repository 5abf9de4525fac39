"""Armed recordings: nothing is written until a trigger; then a run holds exactly the messages
received from (trigger - pre) to (trigger + post), with their original receive times; a trigger
during the run extends it; afterwards the recording re-arms; memory stays under the byte limit."""

from __future__ import annotations

import bisect
import time

import pytest

from recorder.recording.plans import TriggerPlan
from recorder.recording.recording import NoRunYet, Recording, SourceSpec
from recorder.store.reader import RunReader
from tests.helpers import wait_for
from tests.recording.enginehelp import Numbered, numbers

RATE = 50  # messages 20 ms apart: "within one message" is within 20 ms
PRE, POST = 1.0, 0.5
NS = 1_000_000_000


def _armed(ctx, tmp_path, **plan) -> tuple[Numbered, Recording]:
    src = Numbered(ctx, rate=RATE)
    spec = SourceSpec(src.endpoint, protocol="raw")
    trigger = TriggerPlan(**{"pre_s": PRE, "post_s": POST, "max_bytes": 1 << 20, **plan})
    rec = Recording(tmp_path / "runs", [spec], trigger=trigger, flush_interval=0.1)
    rec.start()
    src.start()
    return src, rec


def _received(rec: Recording) -> int:
    return rec.streams[0].counters.received


def _closed(rec: Recording, n: int) -> bool:
    return len(rec.runs) >= n and all(r.status == "complete" for r in rec.runs[:n])


def _expected(src: Numbered, start_ns: int, end_ns: int) -> tuple[int, int]:
    """First and last message sent in [start, end): what the run should hold, by send time."""
    return bisect.bisect_left(src.sent_ns, start_ns), bisect.bisect_left(src.sent_ns, end_ns) - 1


def _check_window(src: Numbered, path, start_ns: int, end_ns: int) -> list[int]:
    held = numbers(path)
    got = [i for i, _ in held]
    assert got == list(range(got[0], got[-1] + 1)), "a hole in the run"
    assert all(start_ns <= t < end_ns for _, t in held)  # original receive times, in the window
    first, last = _expected(src, start_ns, end_ns)
    # exact by receive time (above); by send time within the messages' own latency (a message
    # or two on a quiet machine; a busy one delays the receive thread, and the sender, longer)
    late = max(t - src.sent_ns[i] for i, t in held)
    slack = 2 + late * RATE // NS
    assert abs(got[0] - first) <= slack and abs(got[-1] - last) <= slack, (
        got[0], got[-1], first, last, slack,
    )  # fmt: skip
    return got


@pytest.mark.timeout(60)
def test_a_trigger_writes_pre_and_post_and_rearms(ctx, tmp_path):
    src, rec = _armed(ctx, tmp_path)
    try:
        assert rec.state == "armed" and not rec.created and rec.runs == []
        with pytest.raises(NoRunYet):
            rec.run  # noqa: B018
        wait_for(lambda: _received(rec) >= RATE * 2, 20, "2 s of messages")
        assert rec.stats()["armed_bytes"] > 0 and not (tmp_path / "runs").exists()
        t1 = time.time_ns()
        rec.trigger()
        assert rec.state == "recording" and len(rec.runs) == 1
        wait_for(lambda: _closed(rec, 1), 20, "the first run to end")
        assert rec.state == "armed"
        wait_for(lambda: time.time_ns() > t1 + 3 * NS, 20, "time past the first window")
        t2 = time.time_ns()
        rec.trigger(reason="again")
        wait_for(lambda: _closed(rec, 2), 20, "the second run to end")
    finally:
        src.stop()
        assert rec.finish() == "complete"
    first, second = rec.runs
    _check_window(src, first.path, t1 - int(PRE * NS), t1 + int(POST * NS))
    _check_window(src, second.path, t2 - int(PRE * NS), t2 + int(POST * NS))
    with RunReader(first.path) as run:
        trig = run.attrs["trigger"]
        assert trig["at_ns"] == pytest.approx(t1, abs=0.05 * NS)
        assert (trig["rule"], trig["pre_s"], trig["post_s"]) == ("manual", PRE, POST)
        assert trig["triggers"] == [{"at_ns": trig["at_ns"], "rule": "manual"}]
        session = run.annotations()["session"]
    with RunReader(second.path) as run:
        assert run.attrs["trigger"]["rule"] == "again"
        assert run.annotations()["session"]["id"] == session["id"] == rec.session["id"]
    stats = rec.stats()
    assert (stats["runs"], stats["triggers"]) == (2, 2)


@pytest.mark.timeout(60)
def test_a_trigger_during_the_run_extends_it(ctx, tmp_path):
    src, rec = _armed(ctx, tmp_path)
    try:
        wait_for(lambda: _received(rec) >= RATE * 2, 20, "2 s of messages")
        t1 = time.time_ns()
        rec.trigger()
        wait_for(lambda: time.time_ns() > t1 + int(0.3 * NS), 5, "0.3 s")
        t2 = time.time_ns()
        rec.trigger()
        wait_for(lambda: _closed(rec, 1), 20, "the run to end")
    finally:
        src.stop()
        assert rec.finish() == "complete"
    [run] = rec.runs
    _check_window(src, run.path, t1 - int(PRE * NS), t2 + int(POST * NS))
    with RunReader(run.path) as reader:
        assert [t["at_ns"] for t in reader.attrs["trigger"]["triggers"]] == [
            pytest.approx(t1, abs=0.05 * NS),
            pytest.approx(t2, abs=0.05 * NS),
        ]


@pytest.mark.timeout(60)
def test_a_trigger_right_after_a_run_starts_where_it_ended(ctx, tmp_path):
    """The pre-trigger part of a new run never repeats what the last run holds: a trigger 0.3 s
    after the first run's end (given as its time: `at_ns` may be a moment ago) makes a run
    from that end, not from 1 s before it."""
    src, rec = _armed(ctx, tmp_path, post_s=0.2)
    try:
        wait_for(lambda: _received(rec) >= RATE * 2, 20, "2 s of messages")
        t1 = time.time_ns()
        rec.trigger(at_ns=t1)
        wait_for(lambda: _closed(rec, 1), 20, "the first run to end")
        t2 = t1 + int(0.5 * NS)
        wait_for(lambda: time.time_ns() > t2, 5, "the second trigger's time")
        rec.trigger(at_ns=t2)
        wait_for(lambda: _closed(rec, 2), 20, "the second run to end")
    finally:
        src.stop()
        assert rec.finish() == "complete"
    a = _check_window(src, rec.runs[0].path, t1 - NS, t1 + int(0.2 * NS))
    b = _check_window(src, rec.runs[1].path, t1 + int(0.2 * NS), t2 + int(0.2 * NS))
    assert b[0] == a[-1] + 1  # nothing repeated, nothing left out between them


@pytest.mark.timeout(60)
def test_without_post_trigger_it_records_until_stopped(ctx, tmp_path):
    src, rec = _armed(ctx, tmp_path, post_s=None)
    try:
        wait_for(lambda: _received(rec) >= RATE, 20, "1 s of messages")
        rec.trigger()
        at = _received(rec)
        wait_for(lambda: _received(rec) >= at + 2 * RATE, 20, "2 s more")
        assert rec.state == "recording"
    finally:
        src.stop()
        assert rec.finish() == "complete"
    [run] = rec.runs
    got = [i for i, _ in numbers(run.path)]
    assert got == list(range(got[0], got[-1] + 1)) and got[-1] >= at + 2 * RATE - 2


@pytest.mark.timeout(60)
def test_markers_while_armed_are_kept_with_the_window(ctx, tmp_path):
    src, rec = _armed(ctx, tmp_path, pre_s=0.5, post_s=2.0)  # making a run takes a moment
    try:
        wait_for(lambda: _received(rec) >= RATE, 20, "1 s of messages")
        early = rec.mark("too early")
        wait_for(lambda: time.time_ns() > early["recv_ns"] + 2 * NS, 5, "2 s")
        inside = rec.mark("inside the pre-trigger time", author="cli")
        rec.trigger()
        during = rec.mark("during the run")
        wait_for(lambda: _closed(rec, 1), 20, "the run to end")
    finally:
        src.stop()
        assert rec.finish() == "complete"
    with RunReader(rec.runs[0].path) as run:
        assert run.markers() == [inside, during]


@pytest.mark.timeout(60)
def test_armed_memory_stays_under_the_byte_limit(ctx, tmp_path):
    """4 KiB messages at 1000/s want 40 MB for 10 s of pre-trigger time; the limit is 64 KiB."""
    limit = 64 << 10
    src = Numbered(ctx, rate=1000, size=4096)
    trigger = TriggerPlan(pre_s=10.0, post_s=0.1, max_bytes=limit)
    rec = Recording(tmp_path / "runs", [SourceSpec(src.endpoint, protocol="raw")], trigger=trigger)
    rec.start()
    src.start()
    peak = [0]

    def watched() -> bool:
        with rec.timeline.lock:
            held = rec.timeline.armed_bytes
            assert held == sum(n for lane in rec.timeline.lanes for _, _, n in lane.buffer)
        peak[0] = max(peak[0], held)
        assert held <= limit
        return _received(rec) >= 2000

    try:
        wait_for(watched, 30, "2 s of messages", interval=0.001)
        stats = rec.stats()
        rec.trigger()
        wait_for(lambda: _closed(rec, 1), 20, "the run to end")
    finally:
        src.stop()
        assert rec.finish() == "complete"
    assert peak[0] > limit - 2 * 4096  # it was full
    assert stats["armed_dropped"] >= 2000 - limit // 4096 - stats["armed_bytes"] // 4096 - 50
    assert stats["armed_bytes"] <= limit
    held = numbers(rec.runs[0].path)
    assert held and [i for i, _ in held] == list(range(held[0][0], held[-1][0] + 1))


@pytest.mark.timeout(60)
def test_a_rule_triggers_at_the_receive_time_of_its_message(ctx, tmp_path):
    """`count >= 100` fires on the 100th message: the run is the window around its receive
    time, which the run holds exactly."""
    src = Numbered(ctx, rate=RATE)
    plan = TriggerPlan(pre_s=PRE, post_s=POST, max_bytes=1 << 20, rules=("count >= 100",))
    rec = Recording(tmp_path / "runs", [SourceSpec(src.endpoint, protocol="raw")], trigger=plan)
    rec.start()
    src.start()
    try:
        wait_for(lambda: _closed(rec, 1), 30, "the rule's run to end")
    finally:
        src.stop()
        assert rec.finish() == "complete"
    held = numbers(rec.runs[0].path)
    at = {i: t for i, t in held}[99]  # the message the rule fired on
    with RunReader(rec.runs[0].path) as run:
        trig = run.attrs["trigger"]
    assert (trig["at_ns"], trig["rule"]) == (at, "count >= 100")
    _check_window(src, rec.runs[0].path, at - int(PRE * NS), at + int(POST * NS))
    assert len(rec.runs) == 1  # a count fires once
