"""The live view's publisher: a real recording of a simulator, each stream's latest message
written whole at a bounded rate, only when it changed, cut at a size cap, gone with the job;
and a preview nobody reads asks for its stop."""

from __future__ import annotations

import time

import numpy as np
import pytest

from recorder.errors import Conflict, NotFound
from recorder.protocols import openephys
from recorder.recording import live
from recorder.recording.recording import Recording, SourceSpec
from recorder.simulators import make_simulator
from tests.helpers import wait_for
from tests.recordhelp import running


@pytest.fixture
def adzmq_recording(tmp_path):
    sim = make_simulator("adzmq", "tcp://127.0.0.1:* PUB", rate=100)
    endpoint = sim.bind()
    with running(sim):
        rec = Recording(tmp_path / "runs", [SourceSpec(endpoint, protocol="adzmq", stream="cam")])
        rec.start()
        try:
            yield rec
        finally:
            rec.finish()


@pytest.mark.timeout(60)
def test_latest_frame_published_whole_at_a_bounded_rate(tmp_path, adzmq_recording):
    rec = adzmq_recording
    folder = live.job_folder(tmp_path, "rec-0123456789ab")
    pub = live.LivePublisher(folder, lambda: rec.streams)
    with pub:
        path = folder / "cam"
        wait_for(path.exists, 20, "the first published message")
        first = live.read_message(path)
        decoded, reason = live.decode(first)
        assert reason is None and decoded is not None
        assert first.protocol == "adzmq" and first.stream == "cam" and not first.truncated
        image = decoded.bulk[0].array
        assert image.shape == (48, 64) and image.dtype == np.uint16

        # The frame number advances as new messages arrive ...
        wait_for(lambda: live.decode(live.read_message(path))[0].seq > decoded.seq, 10, "next")
        # ... but never more than 4 files a second, though the source sends 100.
        before, t0 = pub.published["cam"], time.monotonic()
        time.sleep(2.0)
        rate = (pub.published["cam"] - before) / (time.monotonic() - t0)
        assert 1.0 <= rate <= live.RATE_HZ + 0.5, rate
        assert rec.streams[0].counters.received > 150

        # only the published file stays (a publish in flight has its temp file for a moment)
        def names() -> list[str]:
            return [p.name for p in folder.iterdir() if not p.name.startswith(".read")]

        wait_for(lambda: names() == ["cam"], 10, "no file but the published one")
    assert not folder.exists(), "the live view ends with its job"


@pytest.mark.timeout(60)
def test_only_changed_messages_are_written(tmp_path, sender):
    src = sender("PUSH", [[b"head", str(i).encode()] for i in range(5)])
    rec = Recording(
        tmp_path / "runs", [SourceSpec(src.endpoint, socket_type="PULL", protocol="raw")]
    )
    rec.start()
    try:
        wait_for(lambda: rec.streams[0].counters.received == 5, 20, "every message")
        folder = tmp_path / "live" / "rec-00"
        pub = live.LivePublisher(folder, lambda: rec.streams, rate_hz=50)
        with pub:
            wait_for(lambda: pub.published.get("main") == 1, 10, "one publish")
            time.sleep(0.3)  # 15 more turns of the publisher, and nothing new arrived
            assert pub.published["main"] == 1
            msg = live.read_message(folder / "main")
            assert msg.frames == [b"head", b"4"] and msg.sizes == [4, 1]
    finally:
        rec.finish()


def test_big_frames_are_cut_and_not_decoded(tmp_path):
    folder = tmp_path / "live" / "rec-01"
    folder.mkdir(parents=True)
    big = np.arange(100_000, dtype=np.uint8).tobytes()
    n = live.write_message(folder, "cam", "raw", 123, [b"h", memoryview(big)], max_bytes=10_000)
    assert n < 10_000
    msg = live.read_message(folder / "cam")
    assert msg.sizes == [1, 100_000] and msg.kept == [1, live.HEAD_BYTES] and msg.truncated
    assert msg.frames[1] == big[: live.HEAD_BYTES] and msg.recv_ns == 123
    decoded, reason = live.decode(msg)
    assert decoded is None and "cut" in reason
    # the header reads alone, without the frames
    assert live.read_message(folder / "cam", frames=False).frames == []


def test_names_never_become_paths(tmp_path):
    with pytest.raises(NotFound):
        live.job_folder(tmp_path, "../runs")
    with pytest.raises(NotFound):
        live.stream_file(tmp_path, "../x")
    with pytest.raises(Conflict):
        live.read_message(tmp_path / "nothing")


@pytest.mark.timeout(30)
def test_an_unread_preview_asks_to_stop(tmp_path):
    folder = tmp_path / "live" / "rec-02"
    stopped: list[float] = []
    pub = live.LivePublisher(
        folder, list, rate_hz=20, idle_s=0.6, on_idle=lambda: stopped.append(1)
    )
    with pub:
        t0 = time.monotonic()
        for _ in range(8):  # read every 0.2 s for 1.6 s: kept alive
            live.mark_read(folder)
            time.sleep(0.2)
        assert not stopped
        wait_for(lambda: stopped, 5, "the idle stop")
        assert time.monotonic() - t0 >= 1.4 + 0.6 - 0.05  # the last read was at 1.4 s
        time.sleep(0.2)
        assert stopped == [1], "asked once"
    live.mark_read(folder)
    assert not folder.exists(), "a read after the end does not bring the folder back"


def test_channel_blocks_keep_each_channels_latest_block_bounded(tmp_path):
    """One Open Ephys block a channel a message: the newest batch, scanned back to the first
    channel seen twice, gives each channel's latest block; the lowest channels are kept, the
    rest counted; the blocks go into the live file whole, as many as the size cap allows."""
    sim = make_simulator("openephys", n_channels=6, ttl_every=1, spike_every=0)
    period = 6 + 1  # six data messages and a TTL event per block
    batch = [(1000 + i, sim.message(i), None) for i in range(3 * period)]
    kept = live.ChannelBlocks(openephys.channel_of, shown=4)
    kept.add(batch)
    assert sorted(kept.seen) == [("example_data", c) for c in range(6)]
    blocks = kept.blocks()
    assert [ns for ns, _ in blocks] == [1000 + 2 * period + c for c in range(4)], "latest block"
    assert blocks[0][1] == sim.message(2 * period)

    folder = tmp_path / "live" / "rec-01"
    folder.mkdir(parents=True)
    live.write_message(folder, "oe", "openephys", 1, batch[-1][1], blocks=blocks, channels=6)
    msg = live.read_message(folder / "oe")
    assert msg.frames == batch[-1][1] and msg.channels == 6
    assert msg.blocks == blocks
    assert live.read_message(folder / "oe", frames=False).blocks == []
    one = sum(map(len, blocks[0][1]))
    live.write_message(folder, "oe", "openephys", 1, [b"x"], blocks=blocks, max_bytes=2 * one + 1)
    assert live.read_message(folder / "oe").blocks == blocks[:2]
