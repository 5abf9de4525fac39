"""A paced replay lowers the GIL switch interval while it runs (its clock thread must get the
GIL within 0.05 ms of asking), and gives back the one it found when it ends: a library
Replayer used inside another program (tests, benchmarks, a web app) must not leave the whole
process switching threads 100 times as often."""

from __future__ import annotations

import sys

import pytest
import zmq

from recorder.replay.read_ahead import pace_threads
from tests.helpers import free_port, local
from tests.replayhelp import client, make_run, receive, replaying, wait_clients


@pytest.fixture
def interval():
    """A switch interval no replay would pick, put back whatever the test does."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.003)
    yield 0.003
    sys.setswitchinterval(before)


def _paced_replay(ctx, tmp_path, name: str):
    path = make_run(tmp_path / name, [i * 1.0 for i in range(20)])
    port = free_port()
    pull = client(ctx, zmq.PULL, local(port))
    return path, port, pull


@pytest.mark.timeout(60)
def test_a_paced_replay_gives_back_the_switch_interval_it_found(ctx, tmp_path, interval):
    path, port, pull = _paced_replay(ctx, tmp_path, "a")
    with replaying(path, endpoints={"": local(port)}, paused=True) as rp:
        assert sys.getswitchinterval() < 0.0001, "a paced replay lowers it while it runs"
        wait_clients(rp)
        rp.resume()
        assert len(receive(pull, 20)) == 20
        assert rp.wait(10)
    assert sys.getswitchinterval() == pytest.approx(interval)


@pytest.mark.timeout(60)
def test_overlapping_replays_give_it_back_when_the_last_one_ends(ctx, tmp_path, interval):
    path_a, port_a, _ = _paced_replay(ctx, tmp_path, "a")
    path_b, port_b, _ = _paced_replay(ctx, tmp_path, "b")
    with replaying(path_b, endpoints={"": local(port_b)}, paused=True):
        with replaying(path_a, endpoints={"": local(port_a)}, paused=True):
            assert sys.getswitchinterval() < 0.0001
        assert sys.getswitchinterval() < 0.0001, "b still replays: still lowered"
    assert sys.getswitchinterval() == pytest.approx(interval)


@pytest.mark.timeout(30)
def test_release_leaves_an_interval_someone_else_set_since(interval):
    release = pace_threads()
    assert sys.getswitchinterval() < 0.0001
    sys.setswitchinterval(0.002)  # the program changed it meanwhile: its choice stands
    release()
    release()  # twice is harmless
    assert sys.getswitchinterval() == pytest.approx(0.002)


@pytest.mark.timeout(60)
def test_a_max_speed_replay_leaves_it_alone(ctx, tmp_path, interval):
    path, port, pull = _paced_replay(ctx, tmp_path, "a")
    with replaying(path, endpoints={"": local(port)}, max_speed=True) as rp:
        assert sys.getswitchinterval() == pytest.approx(interval)
        assert len(receive(pull, 20)) == 20
        assert rp.wait(10)
    assert sys.getswitchinterval() == pytest.approx(interval)
