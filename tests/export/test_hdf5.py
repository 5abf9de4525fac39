"""The hdf5 target: image streams as areaDetector NDFileHDF5 files, read back with h5py and
silx and compared with the run and with what the simulators sent."""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest
import zmq

from recorder.errors import ExportError
from recorder.export import hdf5_frames
from recorder.export.base import ExportRequest, export_run
from recorder.recording.recording import Recording, SourceSpec
from recorder.simulators import AdzmqSimulator
from recorder.store.reader import RunReader, StreamReader
from tests.analysis.runs import ADZMQ_COUNT, VIDEO_COUNT, Sent, record_demo_run
from tests.recordhelp import record, running

NDATTR = "instrument/NDAttributes"


@pytest.fixture(scope="module")
def sent(tmp_path_factory) -> Sent:
    ctx = zmq.Context()
    try:
        return record_demo_run(tmp_path_factory.mktemp("data") / "runs", ctx)
    finally:
        ctx.destroy(linger=0)


def export(run: Path, out: Path, **kw) -> tuple:
    said: list[float] = []
    result = export_run(ExportRequest(run, "hdf5", out, **kw), said.append)
    return result, said


def column(stream: StreamReader, name: str, messages: np.ndarray) -> np.ndarray:
    return stream.column(name)[messages]


def strings(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


@pytest.mark.timeout(120)
def test_every_image_stream_as_an_entry_pixel_for_pixel(sent, tmp_path):
    result, said = export(sent.path, tmp_path / "run.h5")
    assert result.streams == ["camera", "video"] and not result.partial
    assert set(result.skipped) == {"bridge", "ephys"}
    assert "protocol karabo" in result.skipped["bridge"]
    assert said == sorted(said) and said[-1] == 1.0
    with RunReader(sent.path) as run, h5py.File(result.out) as f:
        assert set(f) == {"entry_camera", "entry_video"}
        camera = run.stream("camera")
        e = f["entry_camera"]
        assert e.attrs["NX_class"] == "NXentry" and e.attrs["stream"] == "camera"
        data = e["instrument/detector/data"]
        assert data.shape == (ADZMQ_COUNT, 12, 20) and data.dtype == np.dtype("<u2")
        assert e["data/data"].id == data.id  # the NXdata's data is a hard link
        messages = e["instrument/zmq_recorder/message"][:]
        assert list(messages) == list(range(ADZMQ_COUNT))  # the STOP message has no image
        stored = dict(camera.message_arrays("image"))
        uid = e[f"{NDATTR}/NDArrayUniqueId"][:]
        for n, m in enumerate(messages):
            np.testing.assert_array_equal(data[n], stored[int(m)])
            np.testing.assert_array_equal(data[n], sent.camera.image(int(uid[n]) - 1))
        np.testing.assert_array_equal(uid, column(camera, "seq", messages))
        np.testing.assert_array_equal(uid, [sent.camera.seq(i) for i in range(ADZMQ_COUNT)])
        recv = e["instrument/zmq_recorder/recv_ns"][:]
        np.testing.assert_array_equal(recv, column(camera, "recv_ns", messages))
        stamp = e[f"{NDATTR}/NDArrayTimeStamp"][:]
        assert list(stamp) == [sent.camera.timestamp(i) for i in range(ADZMQ_COUNT)]
        src = column(camera, "source_ns", messages)
        sec, nsec = e[f"{NDATTR}/NDArrayEpicsTSSec"][:], e[f"{NDATTR}/NDArrayEpicsTSnSec"][:]
        assert sec.dtype == np.uint32 and nsec.dtype == np.uint32
        np.testing.assert_array_equal(sec.astype(np.int64) * 1_000_000_000 + nsec, src)
        # NDAttributes of every type the header carries, against the store and the simulator
        want = [sent.camera.ndattr(i) for i in range(ADZMQ_COUNT)]
        color = e["instrument/detector/NDAttributes/ColorMode"]
        assert color.attrs["ndattribute"] == "ColorMode" and list(color[:]) == [0] * ADZMQ_COUNT
        assert "ColorMode" not in e[NDATTR]  # beside the detector, as the default layout puts it
        for name in ("Exposure", "Temperature", "Counter", "Camera"):
            ds = e[f"{NDATTR}/{name}"]
            assert ds.attrs["ndattribute"] == name
            got = ds[:]
            stored_col = column(camera, f"ndattr.{name}", messages)
            if name == "Camera":
                assert strings(got) == [str(v) for v in stored_col] == ["sim"] * ADZMQ_COUNT
                continue
            np.testing.assert_array_equal(got, stored_col)
            np.testing.assert_allclose(got, [float(w[name]) for w in want], rtol=1e-6)
        assert e[f"{NDATTR}/Counter"].dtype == np.int64
        assert e[f"{NDATTR}/Exposure"].dtype == np.float64

        video = run.stream("video")
        v = f["entry_video"]
        vdata = v["data/data"]
        assert vdata.shape == (VIDEO_COUNT, 16, 24) and vdata.dtype == np.uint8
        for i in range(VIDEO_COUNT):
            np.testing.assert_array_equal(vdata[i], sent.video.image(i))
        assert strings(v[f"{NDATTR}/unique_id"][:]) == ["cam7"] * VIDEO_COUNT
        ts = v[f"{NDATTR}/timestamp"][:]
        assert list(ts) == [sent.video.timestamp(i) for i in range(VIDEO_COUNT)]
        np.testing.assert_allclose(v[f"{NDATTR}/NDArrayTimeStamp"][:], ts / 1e9)
        vmsg = v["instrument/zmq_recorder/message"][:]
        np.testing.assert_array_equal(
            v["instrument/zmq_recorder/recv_ns"][:], column(video, "recv_ns", vmsg)
        )
        assert "NDArrayUniqueId" not in v[NDATTR]  # pyMultiVideo sends no frame counter


@pytest.mark.timeout(120)
def test_provenance_and_the_nexus_reader(sent, tmp_path):
    from silx.io import nxdata
    from silx.io import open as silx_open

    result, _ = export(sent.path, tmp_path / "one.h5", streams=("camera",))
    with RunReader(sent.path) as run, h5py.File(result.out) as f:
        assert list(f) == ["entry"]  # one stream, one shape: the path NDFileHDF5 writes
        a = f.attrs
        assert a["NX_class"] == "NXroot" and a["default"] == "entry"
        assert a["run_id"] == run.run_id and a["run_name"] == "demo"
        assert a["run_started_ns"] == run.started_ns
        assert a["recorder_version"] and a["exported_by"].startswith("zmq-recorder")
        assert not a["partial"]
        assert strings(a["streams"]) == ["camera"]
        prov = json.loads(a["provenance"])
        assert prov["messages"] == {"camera": [0, ADZMQ_COUNT + 1]}
        assert prov["start_s"] is None and prov["end_s"] is None
        assert json.loads(a["entries"])["entry"] == {
            "stream": "camera",
            "shape": [12, 20],
            "dtype": "<u2",
        }
        assert json.loads(a["skipped_streams"]) == {}  # streams named: nothing skipped
        e = f["entry"]
        assert e["experiment_identifier"][()].decode() == run.run_id
        assert e["start_time"][()] and e["end_time"][()]
        assert e["instrument/detector/data"].attrs["signal"] == 1
    with silx_open(str(result.out)) as f:
        default = nxdata.get_default(f)
        assert default is not None and default.is_valid
        assert default.signal.shape == (ADZMQ_COUNT, 12, 20)
        np.testing.assert_array_equal(default.signal[2], sent.camera.image(2))
        assert nxdata.is_valid_nxdata(f["entry/data"])


@pytest.mark.timeout(120)
def test_window_cuts_every_entry_to_the_same_messages(sent, tmp_path):
    with RunReader(sent.path) as run:
        camera = run.stream("camera")
        recv = camera.column("recv_ns")
        start = (int(recv[2]) - run.started_ns) / 1e9
        end = (int(recv[5]) - run.started_ns) / 1e9
        lo = camera.index_at(run.started_ns + int(start * 1e9))
        hi = camera.index_at(run.started_ns + int(end * 1e9))
    assert hi < ADZMQ_COUNT
    result, _ = export(sent.path, tmp_path / "w.h5", streams=("camera",), start=start, end=end)
    with h5py.File(result.out) as f:
        prov = json.loads(f.attrs["provenance"])
        assert prov["start_s"] == start and prov["end_s"] == end
        assert prov["messages"] == {"camera": [lo, hi]}
        e = f["entry"]
        assert list(e["instrument/zmq_recorder/message"][:]) == list(range(lo, hi))
        assert list(e["instrument/NDAttributes/NDArrayUniqueId"][:]) == [
            sent.camera.seq(i) for i in range(lo, hi)
        ]
        for n, i in enumerate(range(lo, hi)):
            np.testing.assert_array_equal(e["data/data"][n], sent.camera.image(i))


@pytest.mark.timeout(120)
def test_small_batches_write_the_same_file(sent, tmp_path, monkeypatch):
    """Blocks of 2 messages and one image per read give the same datasets: the writer never
    needs a stream whole."""
    whole, _ = export(sent.path, tmp_path / "a.h5")
    monkeypatch.setattr(hdf5_frames, "BLOCK_MESSAGES", 2)
    monkeypatch.setattr(hdf5_frames, "BATCH_BYTES", 1)
    small, said = export(sent.path, tmp_path / "b.h5")
    assert len(said) >= ADZMQ_COUNT  # progress at every batch
    with h5py.File(whole.out) as a, h5py.File(small.out) as b:
        names: list[str] = []
        a.visit(lambda n: names.append(n) if isinstance(a[n], h5py.Dataset) else None)
        for n in names:
            if n.endswith(("start_time", "end_time")) or a[n].dtype.kind == "O":
                assert a[n][()] == b[n][()] if a[n].shape == () else True
                continue
            np.testing.assert_array_equal(a[n][()], b[n][()], err_msg=n)


@pytest.mark.timeout(60)
def test_a_window_without_frames_gives_a_file_of_provenance_only(sent, tmp_path):
    result, _ = export(sent.path, tmp_path / "late.h5", start=3600.0)
    assert result.messages == 0
    with h5py.File(result.out) as f:
        assert list(f) == [] and "default" not in f.attrs
        prov = json.loads(f.attrs["provenance"])
        assert prov["start_s"] == 3600.0 and prov["messages"]["camera"] == [7, 7]


@pytest.mark.timeout(60)
def test_a_stream_it_cannot_hold_is_refused_by_name(sent, tmp_path):
    out = tmp_path / "bridge.h5"
    with pytest.raises(ExportError, match=r"cannot hold stream 'bridge': protocol karabo"):
        export_run(ExportRequest(sent.path, "hdf5", out, streams=("camera", "bridge")))
    assert list(tmp_path.iterdir()) == []


class ResizingCamera(AdzmqSimulator):
    """Frames whose height (back and forth: a ragged segment), then width, then dtype change;
    an NDAttribute that is integral at
    first and fractional later (the store keeps it in two columns)."""

    SHAPES = [((12, 20), "uint16")] * 2 + [((8, 20), "uint16"), ((6, 20), "uint16")]
    SHAPES += [((8, 20), "uint16"), ((8, 10), "uint16"), ((8, 10), "uint8")]

    def image(self, i: int) -> np.ndarray:
        shape, dtype = self.SHAPES[i]
        return ((np.arange(np.prod(shape)) + 7 * i) % 200).reshape(shape).astype(dtype)

    def ndattr(self, i: int) -> dict:
        return {"Gain": 2 if i < 2 else 2.5, "Label": f"frame {i}", "ROI/1": np.int16(-i)}


@pytest.mark.timeout(120)
def test_each_image_shape_and_dtype_gets_its_own_entry(tmp_path, ctx):
    n = len(ResizingCamera.SHAPES)
    sim = ResizingCamera("tcp://127.0.0.1:* PUB", rate=0, count=n, ctx=ctx,
                         wait_for_subscriber=True)  # fmt: skip
    spec = SourceSpec(sim.bind(), protocol="adzmq", subscribe=[b"{"], stream="cam")
    with running(sim):
        path = record(tmp_path / "runs", spec, count=n)
    result, _ = export(path, tmp_path / "r.h5")
    with h5py.File(result.out) as f:
        names = ["entry_cam", "entry_cam@1", "entry_cam@2", "entry_cam@3", "entry_cam@4"]
        assert sorted(f) == names
        entries = json.loads(f.attrs["entries"])
        got = [(tuple(entries[x]["shape"]), np.dtype(entries[x]["dtype"]).name) for x in names]
        assert got == [((12, 20), "uint16"), ((8, 20), "uint16"), ((6, 20), "uint16"),
                       ((8, 10), "uint16"), ((8, 10), "uint8")]  # fmt: skip
        frames = {0: [0, 1], 1: [2, 4], 2: [3], 3: [5], 4: [6]}
        for k, name in enumerate(names):
            e = f[name]
            want = frames[k]
            assert list(e["instrument/zmq_recorder/message"][:]) == want
            assert list(e["instrument/NDAttributes/NDArrayUniqueId"][:]) == [i + 1 for i in want]
            for row, i in enumerate(want):
                np.testing.assert_array_equal(e["data/data"][row], sim.image(i))
                assert e["data/data"].dtype == sim.image(i).dtype
            gain = e["instrument/NDAttributes/Gain"]
            assert gain.dtype == np.float64  # int then float: one float dataset
            assert list(gain[:]) == [2.0 if i < 2 else 2.5 for i in want]
            assert strings(e["instrument/NDAttributes/Label"][:]) == [f"frame {i}" for i in want]
            roi = e["instrument/NDAttributes/ROI_1"]  # a `/` cannot be in an HDF5 name
            assert roi.attrs["ndattribute"] == "ROI/1" and list(roi[:]) == [-i for i in want]


@pytest.mark.timeout(120)
def test_a_run_still_recording_exports_what_is_committed(tmp_path, ctx):
    sim = AdzmqSimulator("tcp://127.0.0.1:* PUB", rate=200, ctx=ctx, wait_for_subscriber=True,
                         height=6, width=8)  # fmt: skip
    spec = SourceSpec(sim.bind(), protocol="adzmq", subscribe=[b"{"], stream="cam")
    rec = Recording(tmp_path / "runs", [spec], flush_interval=0.05)
    with running(sim):
        rec.start()
        try:
            deadline = time.monotonic() + 30
            while RunReader(rec.run.path).stream("cam").n_messages < 5:
                assert rec.error is None, rec.error
                assert time.monotonic() < deadline, "no committed messages"
                time.sleep(0.01)
            result, _ = export(rec.run.path, tmp_path / "live.h5")
        finally:
            rec.finish()
    assert result.partial
    with h5py.File(result.out) as f:
        assert f.attrs["partial"]
        lo, hi = json.loads(f.attrs["provenance"])["messages"]["cam"]
        assert lo == 0 and hi >= 5
        e = f["entry"]
        uid = e["instrument/NDAttributes/NDArrayUniqueId"][:]
        assert len(uid) == hi and e["data/data"].shape == (hi, 6, 8)
        for n, u in enumerate(uid):
            np.testing.assert_array_equal(e["data/data"][n], sim.image(int(u) - 1))
    with RunReader(rec.run.path) as run:  # the run went on after the export
        assert run.stream("cam").n_messages >= hi


@pytest.mark.timeout(120)
def test_memory_follows_the_batch_not_the_run(tmp_path, ctx, monkeypatch):
    """13 MB of images exported with 64 KiB batches: Python's peak stays far below the run."""
    n, height, width = 400, 64, 256
    sim = AdzmqSimulator("tcp://127.0.0.1:* PUB", rate=0, count=n, ctx=ctx,
                         wait_for_subscriber=True, height=height, width=width)  # fmt: skip
    spec = SourceSpec(sim.bind(), protocol="adzmq", subscribe=[b"{"], stream="cam")
    with running(sim):
        path = record(tmp_path / "runs", spec, count=n, timeout=60)
    monkeypatch.setattr(hdf5_frames, "BLOCK_MESSAGES", 16)
    monkeypatch.setattr(hdf5_frames, "BATCH_BYTES", 64 << 10)
    tracemalloc.start()
    try:
        result, _ = export(path, tmp_path / "big.h5")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    images = n * height * width * 2
    assert peak < images / 4, (peak, images)
    with h5py.File(result.out) as f:
        data = f["entry/data/data"]
        assert data.shape == (n, height, width)
        uid = f["entry/instrument/NDAttributes/NDArrayUniqueId"][:]
        for k in (0, n // 2, n - 1):
            np.testing.assert_array_equal(data[k], sim.image(int(uid[k]) - 1))


@pytest.mark.timeout(120)
def test_diamond_chunk_headers_without_time(tmp_path, ctx):
    """chunk-1.0 headers carry typed NDAttributes but no timeStamp: the time datasets say
    none (NaN, 0) rather than inventing one."""
    n = 3
    sim = AdzmqSimulator("tcp://127.0.0.1:* PUB", rate=0, count=n, ctx=ctx,
                         wait_for_subscriber=True, variant="chunk", height=4, width=5)  # fmt: skip
    spec = SourceSpec(sim.bind(), protocol="adzmq", subscribe=[b"{"], stream="cam")
    with running(sim):
        path = record(tmp_path / "runs", spec, count=n)
    result, _ = export(path, tmp_path / "chunk.h5")
    with h5py.File(result.out) as f:
        e = f["entry"]
        a = e["instrument/NDAttributes"]
        assert np.isnan(a["NDArrayTimeStamp"][:]).all()
        assert list(a["NDArrayEpicsTSSec"][:]) == [0] * n == list(a["NDArrayEpicsTSnSec"][:])
        assert list(a["NDArrayUniqueId"][:]) == [1, 2, 3]
        np.testing.assert_allclose(
            a["Exposure"][:], [float(sim.ndattr(i)["Exposure"]) for i in range(n)], rtol=1e-6
        )
        assert list(a["Counter"][:]) == [1, 2, 3]
        for i in range(n):
            np.testing.assert_array_equal(e["data/data"][i], sim.image(i))
