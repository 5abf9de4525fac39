"""Simulators wait for their next message without spinning, and the Open Ephys one makes a
block's samples once for all its channels (`recorder serve --demo` runs them all at rest;
benchmarks/demo_idle.py has the CPU figures)."""

from __future__ import annotations

import numpy as np
import pytest

from recorder.simulators.base import poll_ms
from recorder.simulators.openephys import OpenEphysSimulator
from recorder.simulators.pymultivideo import PyMultiVideoSimulator


def test_poll_timeouts_round_up_so_the_last_millisecond_is_slept():
    assert poll_ms(0.0004) == 1
    assert poll_ms(0.0015) == 2
    assert poll_ms(0.0) == 0
    assert poll_ms(-1.0) == 0
    assert poll_ms(10.0) == 50  # a slice: `stop` is looked at meanwhile


class _Polls:
    """Counts the simulator's waits (the poller's poll calls), passing them on."""

    def __init__(self, poll):
        self.poll, self.calls = poll, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.poll(*args, **kwargs)


@pytest.mark.timeout(60)
def test_openephys_simulator_waits_between_blocks_without_spinning():
    blocks = 100
    sim = OpenEphysSimulator(
        "tcp://127.0.0.1:*", rate=400.0, count=blocks, n_channels=1, ttl_every=0, spike_every=0
    )
    sim.bind()
    polls = _Polls(sim._poller.poll)
    sim._poller.poll = polls  # type: ignore[method-assign]
    assert sim.run() == blocks
    # a wait is a poll or two (and a slice when it is long); spinning through the last
    # millisecond before each block took hundreds
    assert polls.calls <= 4 * blocks


@pytest.mark.timeout(60)
def test_pymultivideo_simulator_waits_between_frames_without_spinning():
    frames = 100
    sim = PyMultiVideoSimulator("tcp://127.0.0.1:*", rate=400.0, count=frames, height=4, width=4)
    sim.bind()
    assert sim._pull is not None
    polls = _Polls(sim._pull.poll)
    sim._pull.poll = polls  # type: ignore[method-assign]
    assert sim.run() == frames
    assert polls.calls <= 4 * frames


def test_openephys_block_samples_are_the_same_in_any_order():
    """One block's channels are made together and kept: asking out of order (a test reading
    `samples` while the simulator sends) gives the same values as in order."""
    a = OpenEphysSimulator("tcp://127.0.0.1:*", n_channels=4, n_samples=32, seed=3)
    b = OpenEphysSimulator("tcp://127.0.0.1:*", n_channels=4, n_samples=32, seed=3)
    in_order = [a.samples(block, ch) for block in range(3) for ch in range(4)]
    order = [(2, 1), (0, 3), (2, 0), (1, 1), (0, 0), (1, 3), (2, 3), (0, 1), (1, 0), (2, 2)]
    order += [(0, 2), (1, 2)]
    shuffled = {(block, ch): b.samples(block, ch) for block, ch in order}
    for k, arr in enumerate(in_order):
        np.testing.assert_array_equal(arr, shuffled[divmod(k, 4)])
    assert in_order[0].dtype == np.float32 and in_order[0].shape == (32,)
    assert not np.array_equal(in_order[0], in_order[1])  # channels differ
    assert not np.array_equal(in_order[0], in_order[4])  # blocks differ
    with pytest.raises(ValueError):
        in_order[0][0] = 1.0  # shared with later messages of the block: read-only


def test_openephys_data_messages_carry_the_block_samples():
    sim = OpenEphysSimulator("tcp://127.0.0.1:*", n_channels=3, n_samples=16)
    for i in range(12):
        kind, block, channel = sim.plan(i)
        if kind != "data":
            continue
        frames = sim.message(i)
        assert f'"channel_num": {channel}'.encode() in frames[1]
        np.testing.assert_array_equal(
            np.frombuffer(frames[-1], dtype="<f4"), sim.block_samples(block)[channel]
        )
