"""Pause, resume and markers: messages received while paused are not stored, the pause is in the
run's attributes (so replay and gap accounting know it was deliberate), and markers land in the
run with receive-clock times."""

from __future__ import annotations

import time

import pytest

from recorder.recording.recording import Recording, SourceSpec
from recorder.simulators import AdzmqSimulator
from recorder.store.reader import RunReader
from tests.helpers import wait_for
from tests.recordhelp import running


def _received(rec: Recording) -> int:
    return rec.streams[0].counters.received


@pytest.mark.timeout(60)
def test_a_pause_stores_nothing_records_itself_and_counts_no_gap(tmp_path):
    sim = AdzmqSimulator("tcp://127.0.0.1:* PUB", rate=200, height=4, width=4)
    spec = SourceSpec(sim.bind(), protocol="adzmq", subscribe=[b"{"])
    with running(sim):
        rec = Recording(tmp_path, [spec], flush_interval=0.05)
        rec.start()
        try:
            wait_for(lambda: _received(rec) >= 20, 20, "messages before the pause")
            assert rec.state == "recording"
            rec.pause()
            assert rec.state == "paused"
            paused_at = _received(rec)
            # committed at once, still open
            wait_for(lambda: RunReader(rec.run.path).pauses(), 5, "the open pause in the run")
            assert RunReader(rec.run.path).pauses()[0]["end_ns"] is None
            # +5: messages stamped before the pause may be counted as received after it (a
            # batch is handed over up to 5 ms after its first message: one or two at 200 Hz)
            wait_for(lambda: _received(rec) >= paused_at + 35, 20, "messages while paused")
            rec.resume()
            assert rec.state == "recording"
            resumed_at = _received(rec)
            wait_for(lambda: _received(rec) >= resumed_at + 20, 20, "messages after")
        finally:
            assert rec.finish() == "complete"
    stats = rec.stats()
    with RunReader(rec.run.path) as run:
        [pause] = run.pauses()
        stream = run.stream("main")
        recv = stream.column("recv_ns")
        seq = stream.column("seq")
        assert stream.stats["gaps"] == 0  # the sequence jumps over the pause, deliberately
        inside = (recv >= pause["start_ns"]) & (recv < pause["end_ns"])
        assert not inside.any()
        assert (recv < pause["start_ns"]).sum() >= 20 and (recv >= pause["end_ns"]).sum() >= 20
        assert pause["messages"] >= 30
        assert pause["messages"] == stats["paused_messages"]
        # stored + not stored = received, and the jump in seq is the messages left out
        assert stream.n_messages + pause["messages"] == stats["messages"]
        jump = int(
            seq[(recv >= pause["end_ns"]).argmax()] - seq[(recv < pause["start_ns"]).sum() - 1]
        )
        assert jump == pause["messages"] + 1
    assert stats["gaps"] == 0


@pytest.mark.timeout(60)
def test_markers_land_in_the_run_on_the_receive_clock(tmp_path):
    sim = AdzmqSimulator("tcp://127.0.0.1:* PUB", rate=100, height=4, width=4)
    spec = SourceSpec(sim.bind(), protocol="adzmq", subscribe=[b"{"])
    with running(sim):
        rec = Recording(tmp_path, [spec], flush_interval=0.05)
        rec.start()
        try:
            wait_for(lambda: _received(rec) >= 5, 20, "messages")
            before = time.time_ns()
            first = rec.mark("stimulus on", author="cli")
            second = rec.mark("stimulus off")
            after = time.time_ns()
            wait_for(lambda: len(RunReader(rec.run.path).markers()) == 2, 5, "markers committed")
        finally:
            assert rec.finish() == "complete"
    with RunReader(rec.run.path) as run:
        assert run.markers() == [first, second]
        assert first == {"recv_ns": first["recv_ns"], "text": "stimulus on", "author": "cli"}
        assert "author" not in second
        assert before <= first["recv_ns"] <= second["recv_ns"] <= after
        recv = run.stream("main").column("recv_ns")
        assert recv[0] < first["recv_ns"]  # the receive clock the messages are stamped with
