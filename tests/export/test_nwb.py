"""NWB export of Open Ephys runs, read back with pynwb and checked with the NWB inspector.

One run is recorded from the Open Ephys simulator over real sockets (continuous data, TTL
events, spikes, one dropped message); smaller runs are written through the real codec and
writer where a test needs something the simulator does not send (channel names, units, a jump
in sample numbers, a second protocol, a run still recording)."""

from __future__ import annotations

import datetime as dt
import json
import re
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import zmq
from pynwb import NWBHDF5IO

from recorder import __version__
from recorder.errors import ExportError
from recorder.export.base import ExportRequest, ExportResult, export_run
from recorder.export.nwb import TARGET, UNKNOWN_SPECIES
from recorder.protocols import codec_for
from recorder.protocols import openephys as oe
from recorder.recording.recording import SourceSpec
from recorder.simulators import OpenEphysSimulator
from recorder.store.reader import RunReader, StreamReader
from recorder.store.run_writer import RunWriter
from tests.export.nwbcheck import serious
from tests.recordhelp import record, running

SIZE = {
    "n_channels": 4,
    "n_samples": 64,
    "ttl_every": 2,
    "spike_every": 3,
    "spike_channels": 2,
    "spike_samples": 20,
}
COUNT = 58  # two periods of 6 blocks: 12 blocks, 6 TTL events, 4 spikes
DROPPED = 5  # message index 5: block 1, channel 1 (its cells stay NaN)
CONTINUOUS = "continuous/example_data"
ES = "ElectricalSeries_ephys_example_data"
TTL = "TTL_ephys_example_data"
SPIKES = "Spikes_ephys_example_data_Tetrode 1"


@dataclass
class Recorded:
    path: Path
    sim: OpenEphysSimulator


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Recorded:
    runs = tmp_path_factory.mktemp("runs")
    ctx = zmq.Context()
    try:
        sim = OpenEphysSimulator(
            "tcp://127.0.0.1:*", rate=0, count=COUNT, skip=frozenset({DROPPED + 1}),
            ctx=ctx, wait_for_subscriber=True, **SIZE,
        )  # fmt: skip
        spec = SourceSpec(sim.bind(), protocol="openephys", stream="ephys")
        with running(sim):
            path = record(runs, spec, count=COUNT - 1)
    finally:
        ctx.destroy(linger=0)
    return Recorded(path, sim)


def export(run: Path, out: Path, **kw) -> tuple[ExportResult, list[float]]:
    said: list[float] = []
    result = export_run(ExportRequest(run, "nwb", out, **kw), said.append)
    return result, said


def placed(stream: StreamReader, name: str = CONTINUOUS) -> list[tuple[int, np.ndarray]]:
    """(first sample, samples x channels) of every placed segment, as the store holds them."""
    return [
        (int(seg.first_sample or 0), stream.read_segment(seg.index, 0, seg.rows))
        for seg in stream.array_segments(name)
    ]


def times_of(series) -> np.ndarray:
    """A series' times whether it has timestamps or (evenly spaced events) a rate."""
    if series.timestamps is not None:
        return np.asarray(series.timestamps[:])
    return series.starting_time + np.arange(len(series.data)) / series.rate


def seconds(run: RunReader, recv_ns) -> np.ndarray:
    return (np.asarray(recv_ns, dtype=np.int64) - run.started_ns) / 1e9


# ----------------------------------------------------------------------------- the whole run


@pytest.mark.timeout(120)
def test_whole_run_reads_back_value_for_value(recorded, tmp_path):
    out = tmp_path / "run.nwb"
    result, said = export(recorded.path, out)
    sim = recorded.sim
    run = RunReader(recorded.path)
    stream = run.stream("ephys")
    assert (result.out, result.target, result.streams) == (out, "nwb", ["ephys"])
    assert result.messages == COUNT - 1 and not result.partial
    assert said == sorted(said) and said[-1] == 1.0
    plans = [(i, sim.plan(i)) for i in range(COUNT) if i != DROPPED]

    with NWBHDF5IO(str(out), "r") as io:
        f = io.read()
        # session metadata and provenance
        assert f.identifier == run.run_id and f.session_id == run.run_id
        assert f.session_description == f"zmq-recorder run {run.run_id}"  # it has no name
        assert f.session_start_time == dt.datetime.fromtimestamp(run.started_ns / 1e9, dt.UTC)
        assert f.session_start_time.utcoffset() == dt.timedelta(0)
        notes = json.loads(f.notes)
        assert notes["run_id"] == run.run_id and notes["streams"] == ["ephys"]
        assert notes["messages"] == {"ephys": [0, COUNT - 1]}
        assert notes["recorder_version"] == __version__ and notes["partial"] is False
        assert (notes["start_s"], notes["end_s"]) == (None, None)
        assert __version__ in f.source_script and run.run_id in f.source_script
        assert f.subject.species == UNKNOWN_SPECIES and f.subject.sex == "U"

        # continuous: the store's cells, and what the simulator sent
        es = f.acquisition[ES]
        [(first, values)] = placed(stream)
        assert first == 0 and values.shape == (12 * 64, 4)
        np.testing.assert_array_equal(es.data[:], values)  # NaN where the dropped block was
        assert np.isnan(es.data[64:128, 1]).all() and not np.isnan(es.data[:64]).any()
        for _, (kind, block, ch) in plans:
            if kind == "data":
                np.testing.assert_array_equal(
                    es.data[block * 64 : (block + 1) * 64, ch], sim.samples(block, ch)
                )
        assert es.data.dtype == np.float32
        assert (es.rate, es.conversion, es.unit) == (30000.0, 1e-6, "volts")
        assert es.starting_time == pytest.approx(seconds(run, stream.column("recv_ns", 0, 1))[0])
        assert es.starting_time_unit == "seconds"
        assert list(es.electrodes.data[:]) == [0, 1, 2, 3]
        numbers = f.acquisition[f"{ES}_sample_numbers"]
        np.testing.assert_array_equal(numbers.data[:], np.arange(12 * 64))
        assert (numbers.rate, numbers.starting_time) == (es.rate, es.starting_time)

        # electrodes: one row per channel, then the spike electrode's channels
        table = f.electrodes.to_dataframe()
        names = ["CH1", "CH2", "CH3", "CH4", "Tetrode 1 0", "Tetrode 1 1"]
        assert list(table["channel_name"]) == names
        assert (
            list(table["group_name"])
            == ["ephys_example_data"] * 4 + ["ephys_example_data_Tetrode 1"] * 2
        )
        assert set(f.devices) == {"OpenEphys_ephys_example_data"}

        # TTL events: +-(line + 1), sample numbers, words, receive times
        ttl_at = [(i, block) for i, (kind, block, _) in plans if kind == "ttl"]
        assert len(ttl_at) == 6
        want_states, want_samples, want_words = [], [], []
        for _, block in ttl_at:
            n = block // 2
            line, high = n % 8, n % 2 == 0
            want_states.append((line + 1) * (1 if high else -1))
            want_samples.append(block * 64 + 7)
            want_words.append((1 << line) if high else 0)
        ttl = f.acquisition[TTL]
        assert list(ttl.data[:]) == want_states
        assert list(f.acquisition[f"{TTL}_sample_numbers"].data[:]) == want_samples
        assert list(f.acquisition[f"{TTL}_full_words"].data[:]) == want_words
        recv = stream.column("recv_ns")
        index = [int(np.searchsorted(stream.column("seq"), i + 1)) for i, _ in ttl_at]
        np.testing.assert_allclose(times_of(ttl), seconds(run, recv[index]))
        np.testing.assert_array_equal(
            times_of(f.acquisition[f"{TTL}_sample_numbers"]), times_of(ttl)
        )

        # spikes: waveforms as sent, in uV, on the spike electrode's rows
        spike_at = [(i, block) for i, (kind, block, _) in plans if kind == "spike"]
        spikes = f.acquisition[SPIKES]
        assert spikes.data.shape == (4, 2, 20) and spikes.conversion == 1e-6
        for k, (_, block) in enumerate(spike_at):
            np.testing.assert_array_equal(spikes.data[k], sim.waveform(block))
        index = [int(np.searchsorted(stream.column("seq"), i + 1)) for i, _ in spike_at]
        np.testing.assert_allclose(times_of(spikes), seconds(run, recv[index]))
        assert list(spikes.electrodes.data[:]) == [4, 5]
        sample_numbers = f.acquisition[f"{SPIKES}_sample_numbers"].data[:]
        assert list(sample_numbers) == [block * 64 + 20 for _, block in spike_at]
        assert list(f.acquisition[f"{SPIKES}_sorted_ids"].data[:]) == [0] * 4

    assert serious(out) == []


@pytest.mark.timeout(120)
def test_window_exports_the_samples_of_its_messages(recorded, tmp_path):
    run = RunReader(recorded.path)
    stream = run.stream("ephys")
    recv = stream.column("recv_ns")
    # seconds halfway between received messages, so the cut does not hang on rounding
    start = float((recv[10] + recv[11]) / 2 - run.started_ns) / 1e9
    end = float((recv[40] + recv[41]) / 2 - run.started_ns) / 1e9
    out = tmp_path / "window.nwb"
    result, _ = export(recorded.path, out, start=start, end=end)
    lo, hi = 11, 41
    assert result.messages == hi - lo

    samples = stream.column("sample_num", lo, hi)
    num = stream.column("num_samples", lo, hi)
    data = num >= 0  # data messages carry num_samples; events and spikes do not
    first, last = int(samples[data].min()), int((samples[data] + num[data]).max())
    [(_, values)] = placed(stream)
    with NWBHDF5IO(str(out), "r") as io:
        f = io.read()
        notes = json.loads(f.notes)
        assert notes["messages"] == {"ephys": [lo, hi]}
        assert (notes["start_s"], notes["end_s"]) == (start, end)
        es = f.acquisition[ES]
        np.testing.assert_array_equal(es.data[:], values[first:last])
        np.testing.assert_array_equal(
            f.acquisition[f"{ES}_sample_numbers"].data[:], np.arange(first, last)
        )
        assert es.starting_time == pytest.approx(
            seconds(run, recv[lo + int(np.argmax(data))]), abs=1e-9
        )
        event_type = stream.column("event_type", lo, hi)
        assert len(f.acquisition[TTL].data) == int((event_type == oe.TTL).sum())
        sorted_id = stream.column("sorted_id", lo, hi)
        assert len(f.acquisition[SPIKES].data) == int((sorted_id >= 0).sum())
        np.testing.assert_allclose(
            times_of(f.acquisition[TTL]),
            seconds(run, recv[lo:hi][event_type == oe.TTL]),
        )
    assert serious(out) == []


# ----------------------------------------------------------------------------- built runs


def _data(n: int, ch: int, sample: int, *, name: str | None = None, units: str = "") -> list:
    values = (np.arange(16, dtype=np.float32) + 100 * ch + sample).astype(np.float32)
    if not units:
        return oe.encode_data(
            values, message_num=n, stream="probe A", channel_num=ch, sample_num=sample,
            sample_rate=1000.0, timestamp_ms=1_700_000_000_000, channel_name=name,
        )  # fmt: skip
    header = {
        "message_num": n,
        "type": "data",
        "content": {
            "stream": "probe A",
            "channel_num": ch,
            "num_samples": 16,
            "sample_num": sample,
            "sample_rate": 1000.0,
            "units": units,
        },
        "data_size": 64,
    }
    return [oe.DATA_ENVELOPE, oe.juce_json(header).encode(), values.tobytes()]


def _write(runs: Path, messages: list[list[bytes]], *, close: bool = True, raw: bool = False):
    """A run of `messages` in one Open Ephys stream "ephys" (1 ms apart), decoded by the real
    codec and written by the real writer; `raw` adds a second stream of another protocol."""
    w = RunWriter(runs, name="built")
    stream = w.add_stream(
        "ephys", protocol="openephys", endpoint="tcp://127.0.0.1:5556", socket_type="SUB",
        role="connect",
    )  # fmt: skip
    codec = codec_for("openephys")
    for i, frames in enumerate(messages):
        stream.append(w.started_ns + (i + 1) * 1_000_000, frames, codec.decode(frames))
    if raw:
        other = w.add_stream(
            "other", protocol="raw", endpoint="tcp://127.0.0.1:6000", socket_type="PULL",
            role="connect",
        )  # fmt: skip
        other.append(w.started_ns + 1000, [b"x"])
    if close:
        w.close()
    else:
        w.flush()
    return w


def test_channel_names_gaps_and_a_jump_in_sample_numbers(tmp_path):
    """Names are kept; a dropped block is NaN in its series; a jump of more than 10 s of
    samples starts a second ElectricalSeries with its own starting time."""
    names = ["CH1", "CH2"]
    messages, n = [], 0
    for sample in (0, 16, 32, 60_000):  # 60000 samples at 1 kHz: a jump of a minute
        for ch in (0, 1):
            n += 1
            if (sample, ch) != (16, 1):  # dropped
                messages.append(_data(n, ch, sample, name=names[ch]))
    w = _write(tmp_path / "runs", messages)
    out = tmp_path / "gaps.nwb"
    export(w.path, out)
    run = RunReader(w.path)
    stores = placed(run.stream("ephys"), "continuous/probe A")
    assert [s for s, _ in stores] == [0, 60_000]
    with NWBHDF5IO(str(out), "r") as io:
        f = io.read()
        first = f.acquisition["ElectricalSeries_ephys_probe A"]
        second = f.acquisition["ElectricalSeries_ephys_probe A_2"]
        np.testing.assert_array_equal(first.data[:], stores[0][1])
        assert first.data.shape == (48, 2) and np.isnan(first.data[16:32, 1]).all()
        np.testing.assert_array_equal(second.data[:], stores[1][1])
        np.testing.assert_array_equal(
            f.acquisition["ElectricalSeries_ephys_probe A_2_sample_numbers"].data[:],
            np.arange(60_000, 60_016),
        )
        assert first.starting_time == pytest.approx(0.001)
        assert second.starting_time == pytest.approx(0.006)  # message 5 (1 ms apart from 1 ms)
        assert first.rate == second.rate == 1000.0
        assert list(f.electrodes.to_dataframe()["channel_name"]) == names
        assert f.session_description == "built"
        assert list(second.electrodes.data[:]) == [0, 1]
    assert serious(out) == []


def test_units_the_stream_announces_set_the_conversion(tmp_path):
    messages = [_data(1 + ch, ch, 0, units="mV") for ch in (0, 1)]
    w = _write(tmp_path / "runs", messages)
    out = tmp_path / "mv.nwb"
    export(w.path, out)
    with NWBHDF5IO(str(out), "r") as io:
        es = io.read().acquisition["ElectricalSeries_ephys_probe A"]
        assert es.conversion == 1e-3 and es.data.shape == (16, 2)
        assert json.loads(es.comments)["units"] == "mV"


def test_stream_selection_and_what_nwb_cannot_hold(tmp_path):
    w = _write(tmp_path / "runs", [_data(1, 0, 0)], raw=True)
    assert TARGET.cannot_hold(RunReader(w.path).stream("other")) == (
        "protocol raw: NWB holds Open Ephys streams only"
    )
    result, _ = export(w.path, tmp_path / "all.nwb")  # every stream it can hold
    assert result.streams == ["ephys"] and "protocol raw" in result.skipped["other"]
    with pytest.raises(ExportError, match=r"cannot hold stream 'other': protocol raw"):
        export(w.path, tmp_path / "other.nwb", streams=("other",))
    assert not (tmp_path / "other.nwb").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.nwb", "runs"]


def test_a_run_still_recording_exports_what_was_committed(tmp_path):
    messages = [_data(1 + k, k % 2, 16 * (k // 2)) for k in range(8)]
    w = _write(tmp_path / "runs", messages, close=False)
    try:
        out = tmp_path / "live.nwb"
        result, _ = export(w.path, out)
        assert result.partial and result.messages == 8
        run = RunReader(w.path)
        assert run.status == "recording"
        [(_, values)] = placed(run.stream("ephys"), "continuous/probe A")
        with NWBHDF5IO(str(out), "r") as io:
            f = io.read()
            assert json.loads(f.notes)["partial"] is True
            es = f.acquisition["ElectricalSeries_ephys_probe A"]
            np.testing.assert_array_equal(es.data[:], values)
            assert es.data.shape == (64, 2)
        assert serious(out) == []
    finally:
        w.close()


def test_spike_waveforms_that_change_shape_get_a_series_each(tmp_path):
    waves = [np.full((2, 8), k, np.float32) for k in range(2)] + [np.full((3, 8), 7, np.float32)]
    messages = [
        oe.encode_spike(
            wave,
            message_num=k + 1,
            stream="probe A",
            source_node=1,
            electrode="E1",
            sample_num=100 * k,
            sorted_id=k,
        )
        for k, wave in enumerate(waves)
    ]
    w = _write(tmp_path / "runs", messages)
    out = tmp_path / "spikes.nwb"
    export(w.path, out)
    with NWBHDF5IO(str(out), "r") as io:
        f = io.read()
        first, second = (
            f.acquisition["Spikes_ephys_probe A_E1"],
            f.acquisition["Spikes_ephys_probe A_E1_2"],
        )
        np.testing.assert_array_equal(first.data[:], np.stack(waves[:2]))
        np.testing.assert_array_equal(second.data[:], waves[2][None])
        assert list(first.electrodes.data[:]) == [0, 1]
        assert list(second.electrodes.data[:]) == [0, 1, 2]
        assert list(f.electrodes.to_dataframe()["channel_name"]) == ["E1 0", "E1 1", "E1 2"]
        assert list(f.acquisition["Spikes_ephys_probe A_E1_sorted_ids"].data[:]) == [0, 1]
        assert list(f.acquisition["Spikes_ephys_probe A_E1_2_sample_numbers"].data[:]) == [200]
        assert "ElectricalSeries_ephys_probe A" not in f.acquisition
    assert serious(out) == []


def test_a_window_without_messages_gives_a_file_of_metadata_only(tmp_path):
    w = _write(tmp_path / "runs", [_data(1, 0, 0)])
    out = tmp_path / "empty.nwb"
    result, _ = export(w.path, out, start=100.0)
    assert result.messages == 0
    with NWBHDF5IO(str(out), "r") as io:
        f = io.read()
        assert len(f.acquisition) == 0 and f.identifier == w.run_id
        assert json.loads(f.notes)["messages"] == {"ephys": [1, 1]}


@pytest.mark.timeout(180)
def test_memory_stays_flat_in_run_length(tmp_path, monkeypatch):
    """16 MiB of samples go out through buffers of 1 MiB: the export never holds the stream.
    (The buffer is made small here so a short run is many buffers long.)"""
    from recorder.export import nwb_data

    monkeypatch.setattr(nwb_data, "_BUFFER_BYTES", 1 << 20)
    channels, block, blocks = 8, 2048, 256  # 524288 samples x 8 channels x 4 bytes = 16 MiB
    w = RunWriter(tmp_path / "runs", name="long")
    stream = w.add_stream(
        "ephys", protocol="openephys", endpoint="tcp://127.0.0.1:5556", socket_type="SUB",
        role="connect",
    )  # fmt: skip
    codec = codec_for("openephys")
    ramp = np.arange(block, dtype=np.float32)
    n = 0
    for b in range(blocks):
        for ch in range(channels):
            n += 1
            frames = oe.encode_data(
                ramp + b * block + ch, message_num=n, stream="s", channel_num=ch,
                sample_num=b * block, sample_rate=30000.0,
            )  # fmt: skip
            stream.append(w.started_ns + n * 1000, frames, codec.decode(frames))
    w.close()
    out = tmp_path / "long.nwb"
    tracemalloc.start()
    try:
        export(w.path, out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    total = blocks * block * channels * 4
    assert peak < total / 2, f"peak {peak / 2**20:.1f} MiB for {total / 2**20:.0f} MiB of data"
    with NWBHDF5IO(str(out), "r") as io:
        es = io.read().acquisition["ElectricalSeries_ephys_s"]
        assert es.data.shape == (blocks * block, channels)
        assert es.data.chunks is not None and es.data.compression == "gzip"
        for b in (0, 100, blocks - 1):
            np.testing.assert_array_equal(
                es.data[b * block : (b + 1) * block, 3], ramp + b * block + 3
            )


@pytest.mark.timeout(120)
def test_the_examples_of_the_nwb_page_run(recorded, tmp_path, monkeypatch, capsys):
    """docs/export/nwb.md: the subject edit (h5py) and the reading example (pynwb), in the
    order the page gives them, on an export of the recorded run."""
    page = (Path(__file__).parents[2] / "docs" / "export" / "nwb.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    assert len(blocks) == 2
    export(recorded.path, tmp_path / "run.nwb")
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, "docs/export/nwb.md", "exec"), {})
    printed = "Mus musculus (768, 4) ['CH1', 'CH2', 'CH3', 'CH4'] [ 71 199 327]\n"
    assert capsys.readouterr().out == printed
    with NWBHDF5IO(str(tmp_path / "run.nwb"), "r") as io:
        subject = io.read().subject
        assert (subject.subject_id, subject.sex) == ("m12", "F")


def test_event_broadcaster_ttl_events(tmp_path):
    """The Event Broadcaster's JSON TTL events (event_type "ttl", sample_number) are TTL too."""
    bodies = [
        {
            "event_type": "ttl",
            "stream": "probe A",
            "source_node": 1,
            "sample_rate": 30000.0,
            "channel_name": "TTL",
            "sample_number": 5 + 10 * k,
            "line": 2,
            "state": k % 2 == 0,
        }
        for k in range(3)
    ]
    spike = oe.encode_broadcast(oe.BROADCAST_SPIKE, b"\x04raw spike bytes")
    messages = [oe.encode_broadcast(oe.BROADCAST_TTL, b) for b in bodies] + [spike]
    w = _write(tmp_path / "runs", messages)
    out = tmp_path / "broadcast.nwb"
    export(w.path, out)
    with NWBHDF5IO(str(out), "r") as io:
        f = io.read()
        ttl = f.acquisition["TTL_ephys_probe A"]
        assert list(ttl.data[:]) == [3, -3, 3]
        assert list(f.acquisition["TTL_ephys_probe A_sample_numbers"].data[:]) == [5, 15, 25]
        # evenly spaced: starting_time and rate, as the NWB Inspector asks
        assert ttl.timestamps is None
        assert (ttl.starting_time, ttl.rate) == pytest.approx((0.001, 1000.0))
        np.testing.assert_allclose(times_of(ttl), [0.001, 0.002, 0.003])
        words = f.acquisition["TTL_ephys_probe A_full_words"]
        assert (words.starting_time, words.rate) == (ttl.starting_time, ttl.rate)
        assert list(words.data[:]) == [0, 0, 0]  # the broadcaster sends no word
    assert serious(out) == []
