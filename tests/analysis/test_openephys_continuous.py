"""Open Ephys continuous data and TTL events, shaped like open_ephys.analysis, checked against
what the simulated GUI sent."""

from __future__ import annotations

import numpy as np
import pytest

from recorder.analysis import open_run
from tests.analysis.runs import OE_COUNT, OE_SIZE

pytestmark = pytest.mark.timeout(90)


def _sent_blocks(sim) -> dict[tuple[int, int], np.ndarray]:
    """(block, channel) -> samples of every data message the run holds."""
    out = {}
    for i in range(OE_COUNT):
        kind, block, channel = sim.plan(i)
        if kind == "data":
            out[block, channel] = sim.samples(block, channel)
    return out


def test_continuous_samples_numbers_timestamps_and_metadata(sent):
    ephys = open_run(sent.path).streams["ephys"]
    (cont,) = ephys.continuous
    n = OE_SIZE["n_samples"]
    assert cont.metadata == {
        "stream_name": "example_data",
        "sample_rate": 30000.0,
        "num_channels": OE_SIZE["n_channels"],
        "channel_names": ["CH1", "CH2"],  # the plugin sent no names: the GUI's defaults
        "bit_volts": None,
        "units": None,
    }
    samples = cont.samples
    blocks = _sent_blocks(sent.ephys)
    last_block = max(b for b, _ in blocks)
    assert samples.shape == ((last_block + 1) * n, OE_SIZE["n_channels"])
    np.testing.assert_array_equal(cont.sample_numbers, np.arange(len(samples)))
    np.testing.assert_allclose(cont.timestamps, cont.sample_numbers / 30000.0)
    for (block, channel), values in blocks.items():
        rows = np.flatnonzero((cont.sample_numbers // n) == block)
        np.testing.assert_array_equal(samples[rows, channel], values)
    missing = {(last_block, c) for c in range(OE_SIZE["n_channels"])} - set(blocks)
    for block, channel in missing:  # a block the run stopped in the middle of: NaN, not 0
        assert np.isnan(samples[block * n : (block + 1) * n, channel]).all()
    np.testing.assert_array_equal(cont.get_samples(n, 2 * n, [1]), samples[n : 2 * n, [1]])


def test_continuous_in_xarray_has_sample_numbers_time_and_channels(sent):
    ds = open_run(sent.path).streams["ephys"].to_xarray()
    data = ds["continuous.example_data"]
    assert data.dims == ("continuous.example_data.sample", "continuous.example_data.channel")
    assert data.attrs["name"] == "continuous/example_data" and data.attrs["sample_rate"] == 30000
    numbers = data["continuous.example_data.sample_number"].values
    np.testing.assert_array_equal(numbers, np.arange(data.shape[0]))
    np.testing.assert_allclose(data["continuous.example_data.time"].values, numbers / 30000.0)
    np.testing.assert_array_equal(data[32:64, 1].values, sent.ephys.samples(1, 1))


def test_ttl_events_as_open_ephys_lists_them(sent):
    events = open_run(sent.path).streams["ephys"].events
    plans = [sent.ephys.plan(i) for i in range(OE_COUNT)]
    ttl = [(k, block) for k, (kind, block, _) in enumerate(plans) if kind == "ttl"]
    assert list(events.index) == [k for k, _ in ttl]
    every, n = OE_SIZE["ttl_every"], OE_SIZE["n_samples"]
    assert list(events["sample_number"]) == [b * n + 7 for _, b in ttl]
    assert list(events["line"]) == [(b // every) % 8 for _, b in ttl]
    assert list(events["state"]) == [int((b // every) % 2 == 0) for _, b in ttl]
    assert set(events["processor_id"]) == {100} and set(events["stream_name"]) == {"example_data"}
    np.testing.assert_allclose(events["timestamp"], events["sample_number"].astype(float) / 3e4)


def test_spikes_are_rows_with_their_messages(sent):
    ds = open_run(sent.path).streams["ephys"].to_xarray()
    name = "spikes.example_data.Tetrode 1"
    plans = [sent.ephys.plan(i) for i in range(OE_COUNT)]
    spikes = [(k, block) for k, (kind, block, _) in enumerate(plans) if kind == "spike"]
    assert list(ds[f"{name}.message"].values) == [k for k, _ in spikes]
    assert list(ds[f"{name}.seq"].values) == [k + 1 for k, _ in spikes]
    for row, (_, block) in enumerate(spikes):
        np.testing.assert_array_equal(ds[name][row].values, sent.ephys.waveform(block))


def _write_run(tmp_path, batches):
    """A run whose Open Ephys stream got `batches` of messages, each followed by a flush (the
    recorder flushes on a clock, so any split between messages can happen)."""
    from recorder.protocols import openephys as oe
    from recorder.store.run_writer import RunWriter

    codec = oe.OpenEphysCodec()
    run = RunWriter(tmp_path, name="oe")
    stream = run.add_stream(
        "ephys", protocol="openephys", endpoint="tcp://h:5556", socket_type="SUB", role="connect"
    )
    t = 0
    for batch in batches:
        stream.append_batch([(t + i, m, codec.decode(m), None) for i, m in enumerate(batch)])
        t += len(batch)
        run.flush()
    run.close()
    return run.path


def test_channels_that_first_came_alone_are_one_array(tmp_path):
    """The first flush saw only channel 0 of block 0: the store widens the array for channel 1
    (format 1, and format 2 before the widening, started a second segment at the same sample
    numbers, which continuous data merges). Continuous data is one (samples, channels) array
    (regression: channel 1 was missing, or the segments' rows were counted twice)."""
    from recorder.simulators.openephys import OpenEphysSimulator

    sim = OpenEphysSimulator(n_channels=2, n_samples=16, ttl_every=0, spike_every=0)
    messages = [sim.message(i) for i in range(8)]  # blocks 0-3, channels 0 and 1
    ephys = open_run(_write_run(tmp_path, [messages[:1], messages[1:]])).streams["ephys"]
    assert len(ephys.reader.array_segments("continuous/example_data")) == 1  # widened
    (cont,) = ephys.continuous
    want = np.stack(
        [np.concatenate([sim.samples(b, ch) for b in range(4)]) for ch in range(2)], axis=1
    )
    np.testing.assert_array_equal(cont.samples, want)
    np.testing.assert_array_equal(cont.sample_numbers, np.arange(64))
    assert cont.metadata["num_channels"] == 2
    ds = ephys.to_xarray()
    np.testing.assert_array_equal(ds["continuous.example_data"].values, want)


def test_a_jump_in_sample_numbers_keeps_both_parts(tmp_path):
    """Samples far apart (the GUI restarted acquisition ahead) are two segments; continuous data
    lists both with their true sample numbers, without the gap between them."""
    from recorder.protocols import openephys as oe

    block = np.arange(16, dtype=np.float32)
    far = 10_000_000

    def data(num, channel, sample):
        return oe.encode_data(
            block + sample, message_num=num, stream="example_data", channel_num=channel,
            sample_num=sample, sample_rate=30000.0, timestamp_ms=0,
        )  # fmt: skip

    messages = [data(1, 0, 0), data(2, 1, 0), data(3, 0, far), data(4, 1, far)]
    ephys = open_run(_write_run(tmp_path, [messages])).streams["ephys"]
    (cont,) = ephys.continuous
    numbers = np.concatenate([np.arange(16), far + np.arange(16)])
    np.testing.assert_array_equal(cont.sample_numbers, numbers)
    np.testing.assert_array_equal(cont.samples, np.stack([block[:, None].repeat(2, 1),
                                                          (block + far)[:, None].repeat(2, 1)]
                                                         ).reshape(32, 2))  # fmt: skip
    np.testing.assert_allclose(cont.timestamps, numbers / 30000.0)
