"""A source that sends nothing (silent, unresolvable, or a peer that connects to a recorder that
connects too) is said so a few seconds in, not recorded quietly into an empty `complete` run."""

from __future__ import annotations

import time

import pytest
import zmq

from recorder.manager.worker import Rates, record_stats
from recorder.recording.recording import Recording, SourceSpec
from recorder.simulators import RawSimulator
from tests.helpers import free_port, wait_for
from tests.recordhelp import running

WARN_S = 0.3


def _record_until_done(rec: Recording, timeout: float = 20.0) -> str:
    rec.start()
    try:
        wait_for(lambda: rec.done, timeout, "the recording to end")
    finally:
        status = rec.finish()
    return status


@pytest.mark.timeout(60)
def test_silent_endpoint_is_warned_about_once(tmp_path):
    endpoint = f"tcp://127.0.0.1:{free_port()}"  # nobody there
    rec = Recording(tmp_path, [SourceSpec(endpoint)], duration=1.0, silent_warning_s=WARN_S)
    assert _record_until_done(rec) == "complete"
    assert rec.warnings == [
        f"no message from {endpoint} after {WARN_S:g} s: is the source running, and does it "
        "bind (this recorder's SUB connects)?"
    ]
    assert record_stats(rec, Rates())["warnings"] == rec.warnings  # a manager job shows it


@pytest.mark.timeout(60)
def test_push_that_connects_to_a_connecting_recorder_is_warned_about(ctx, tmp_path):
    """Both peers connect: no connection, no message, no error from zmq."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    push = ctx.socket(zmq.PUSH)
    push.linger = 0
    push.connect(endpoint)
    try:
        spec = SourceSpec(endpoint, socket_type="PULL")
        rec = Recording(tmp_path, [spec], duration=1.0, silent_warning_s=WARN_S)
        assert _record_until_done(rec) == "complete"
    finally:
        push.close()
    assert len(rec.warnings) == 1 and "this recorder's PULL connects" in rec.warnings[0]


@pytest.mark.timeout(60)
def test_a_source_that_sends_is_not_warned_about(tmp_path):
    # a longer warning time than the silent tests: the first message must beat it even when a
    # busy machine delays the subscription (the silent tests cannot flake that way)
    warn_s = 2.0
    sim = RawSimulator(rate=200)
    with running(sim):
        spec = SourceSpec(sim.bound_endpoint or "")
        rec = Recording(tmp_path, [spec], silent_warning_s=warn_s)
        rec.start()
        try:
            wait_for(lambda: rec.streams[0].counters.received > 0, 20, "a message")
            deadline = time.monotonic() + 2 * warn_s
            wait_for(lambda: rec.done or time.monotonic() > deadline, 20, "the warning time")
        finally:
            rec.finish()
    assert rec.warnings == []
    assert record_stats(rec, Rates())["warnings"] == []
