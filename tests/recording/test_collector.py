"""Recordings collect the youngest generation less often while they run (collector.py), and
give back the thresholds they found: a Recording used inside another program must not change
that program's collector for good."""

from __future__ import annotations

import gc

import pytest
import zmq

from recorder.recording.collector import YOUNG_THRESHOLD, space_collections
from recorder.recording.recording import Recording, SourceSpec
from tests.helpers import wait_for


@pytest.fixture
def thresholds():
    """Thresholds no recording would pick, put back whatever the test does."""
    before = gc.get_threshold()
    gc.set_threshold(700, 11, 12)
    yield (700, 11, 12)
    gc.set_threshold(*before)


def test_overlapping_users_raise_it_and_the_last_one_gives_it_back(thresholds):
    first = space_collections()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, 11, 12)
    second = space_collections()
    first()
    first()  # twice is harmless
    assert gc.get_threshold() == (YOUNG_THRESHOLD, 11, 12), "the second still records"
    second()
    assert gc.get_threshold() == thresholds


def test_a_threshold_the_program_set_meanwhile_stands(thresholds):
    release = space_collections()
    gc.set_threshold(1000, 5, 5)
    release()
    assert gc.get_threshold() == (1000, 5, 5)


def test_a_collector_switched_off_or_already_slower_is_left_alone(thresholds):
    for young in (0, 2 * YOUNG_THRESHOLD):
        gc.set_threshold(young, 11, 12)
        release = space_collections()
        assert gc.get_threshold() == (young, 11, 12)
        release()
        assert gc.get_threshold() == (young, 11, 12)


@pytest.mark.timeout(60)
def test_a_recording_raises_it_while_it_runs(tmp_path, thresholds):
    push = zmq.Context.instance().socket(zmq.PUSH)
    push.linger = 0
    port = push.bind_to_random_port("tcp://127.0.0.1")
    rec = Recording(tmp_path, [SourceSpec(f"tcp://127.0.0.1:{port}", socket_type="PULL")])
    rec.start()
    try:
        assert gc.get_threshold() == (YOUNG_THRESHOLD, 11, 12)
        push.send_multipart([b"one"])
        wait_for(lambda: rec.streams[0].counters.received == 1, 20, "the message")
    finally:
        rec.finish()
        push.close()
    assert gc.get_threshold() == thresholds
