"""Recording the REAL Karabo bridge peers: server-sim, serve-files and ServerInThread.

Our own simulator is built on our own encoder, so it cannot catch a misreading of the protocol
that both share. These tests record the PyPI tools as subprocesses and judge the run with the
peers' own code: every recorded message is decoded with karabo_bridge's deserializer (what
`karabo_bridge.Client.next()` runs on the frames it receives) and must equal our typed arrays,
re-serializing it with karabo_bridge must give the recorded bytes back, and for serve-files the
values must equal what extra_data reads from the HDF5 file that was served.
"""

from __future__ import annotations

import contextlib
import subprocess

import h5py
import numpy as np
import pytest
from karabo_bridge import ServerInThread
from karabo_bridge.serializer import deserialize, serialize

from recorder.recording.recording import SourceSpec
from recorder.simulators.karabo import FIRST_TRAIN
from tests.karabotools import start_tool, write_mock_run
from tests.recordhelp import (
    assert_rows_equal,
    frames_of,
    gaps_in,
    record,
    rows,
    stream_of,
    summary_of,
)

RECORDER_SOCKET = {"REP": "REQ", "PUSH": "PULL", "PUB": "SUB"}
PROTOCOLS = ["2.2", "1.0"]


@pytest.fixture
def tool():
    """Starts peer tools; every one is killed when the test ends, passed or not."""
    procs: list[subprocess.Popen] = []

    def start(*args: str) -> str:
        proc, port = start_tool(list(args))
        procs.append(proc)
        return f"tcp://127.0.0.1:{port}"

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(10)
        proc.stdout.close()


def _arrays(data: dict) -> dict[str, np.ndarray]:
    return {
        f"{src}:{key}": value
        for src, values in data.items()
        for key, value in values.items()
        if isinstance(value, np.ndarray)
    }


def _decoded(stream) -> list[tuple[dict, dict]]:
    """Each recorded message as karabo_bridge.Client would hand it out: (data, metadata)."""
    return [deserialize(frames) for frames in frames_of(stream)]


def _check_bytes_and_train_ids(stream, decoded, protocol: str) -> list[int]:
    """karabo_bridge re-serializes what it decoded into exactly the recorded bytes."""
    for frames, (data, meta) in zip(frames_of(stream), decoded, strict=True):
        assert [bytes(f) for f in serialize(data, meta, protocol_version=protocol)] == frames
    tids = [min(m["timestamp.tid"] for m in meta.values()) for _, meta in decoded]
    assert [int(t) for t in stream.column("seq")] == tids
    assert list(stream.column("train_id")) == tids
    assert set(stream.column("protocol_version")) == {protocol}
    return tids


def _check_typed_arrays(stream, decoded) -> None:
    """Every array karabo_bridge decodes is our typed array, row for row: the array frame
    itself in 2.2, a typed copy beside the verbatim train in 1.0 (numeric arrays only there,
    and every array these peers send is numeric)."""
    expected = [_arrays(data) for data, _ in decoded]
    assert stream.array_names() == sorted(expected[0])
    for name in expected[0]:
        assert_rows_equal(rows(stream, name), [arrays[name] for arrays in expected])


# ----------------------------------------------------------------------------- server-sim


@pytest.mark.timeout(60)
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("mode", ["REP", "PUSH", "PUB"])
def test_record_real_server_sim(tool, tmp_path, mode, protocol):
    # one raw AGIPD module (uint16, 8 MiB a train): the smallest detector the tool has
    endpoint = tool(
        "karabo-bridge-server-sim", "*", "-z", mode, "-p", protocol, "-d", "AGIPDModule", "-r"
    )
    spec = SourceSpec(endpoint, socket_type=RECORDER_SOCKET[mode], protocol="karabo")
    path = record(tmp_path, spec, count=3, timeout=30)
    stream = stream_of(path)
    decoded = _decoded(stream)
    tids = _check_bytes_and_train_ids(stream, decoded, protocol)
    if mode == "PUB":  # trains published before the subscription are gone: counted as gaps
        assert tids == sorted(set(tids)) and tids[0] >= FIRST_TRAIN
    else:
        assert tids == [FIRST_TRAIN, FIRST_TRAIN + 1, FIRST_TRAIN + 2]
    for (data, meta), ns in zip(decoded, stream.column("source_ns"), strict=True):
        assert list(data) == ["SPB_DET_AGIPD1M-1/DET/0CH0:xtdf"]
        m = next(iter(meta.values()))
        assert ns == int(m["timestamp.sec"]) * 10**9 + int(m["timestamp.frac"][:9])
    _check_typed_arrays(stream, decoded)
    image = rows(stream, "SPB_DET_AGIPD1M-1/DET/0CH0:xtdf:image.data")[0]
    assert image.dtype == np.uint16 and image.shape == (128, 512, 64)
    summary = summary_of(path)
    assert summary["status"] == "complete" and summary["gaps"] == gaps_in(tids)
    assert (summary["rejects"], summary["drops"]) == (0, 0)


# ----------------------------------------------------------------------------- serve-files

N_TRAINS = 4


@pytest.fixture(scope="module")
def mock_run(tmp_path_factory):
    """A small extra_data mock run; the per-train arrays (zeros as written) get seeded random
    values so that a train served in the wrong place or order could not go unnoticed."""
    path = write_mock_run(tmp_path_factory.mktemp("karabo"), N_TRAINS)
    rng = np.random.default_rng(11)

    def fill(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.ndim >= 2 and obj.dtype.kind in "fiu":
            values = rng.uniform(0, 1000, (N_TRAINS, *obj.shape[1:]))
            obj[:N_TRAINS] = values.astype(obj.dtype)

    with h5py.File(path, "r+") as f:
        f["INSTRUMENT"].visititems(fill)
    return path


def _from_files(path, tid: int) -> dict:
    """What serve-files sends for one train: extra_data's train dict, object arrays dropped."""
    from extra_data import H5File

    _, data = H5File(str(path)).train_from_id(tid)
    return {
        src: {
            k: v for k, v in values.items() if not (isinstance(v, np.ndarray) and v.dtype == object)
        }
        for src, values in data.items()
    }


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["REP", "PUSH"])
def test_record_real_serve_files(tool, tmp_path, mock_run, mode):
    """serve-files sends each train once (PUB would lose trains before the subscription)."""
    endpoint = tool("karabo-bridge-serve-files", str(mock_run), "tcp://127.0.0.1:*", "-z", mode)
    spec = SourceSpec(endpoint, socket_type=RECORDER_SOCKET[mode], protocol="karabo")
    path = record(tmp_path, spec, count=N_TRAINS, timeout=30)
    stream = stream_of(path)
    decoded = _decoded(stream)
    tids = _check_bytes_and_train_ids(stream, decoded, "2.2")
    assert tids == [10000 + k for k in range(N_TRAINS)]
    assert set(stream.column("source_ns")) == {-1}  # files carry train ids, not times
    _check_typed_arrays(stream, decoded)
    files = [_from_files(mock_run, tid) for tid in tids]
    for name in _arrays(files[0]):
        assert_rows_equal(rows(stream, name), [_arrays(f)[name] for f in files])
    assert stream.array_names() == sorted(_arrays(files[0]))
    pixels = rows(stream, "FXE_XAD_GEC/CAM/CAMERA:daqOutput:data.image.pixels")
    assert pixels[0].shape == (255, 1024) and pixels[0].dtype == np.uint16 and pixels[0].any()
    for (data, meta), want, tid in zip(decoded, files, tids, strict=True):
        assert data.keys() == want.keys()
        for src, values in want.items():
            assert meta[src] == {"source": src, "timestamp.tid": tid}
            plain = {k: _plain(v) for k, v in values.items() if not isinstance(v, np.ndarray)}
            got = {k: v for k, v in data[src].items() if not isinstance(v, np.ndarray)}
            assert got == plain, src
    summary = summary_of(path)
    assert summary["status"] == "complete"
    assert (summary["gaps"], summary["rejects"], summary["drops"]) == (0, 0, 0)


# ----------------------------------------------------------------------------- ServerInThread


@contextlib.contextmanager
def _bridge_server(mode: str):
    """karabo_bridge.ServerInThread: the server class online analysis tools feed their results
    to. It binds a random loopback port; stop() tears its context down."""
    server = ServerInThread("tcp://127.0.0.1:*", sock=mode)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _record_fed_trains(tmp_path, trains: list[tuple[dict, dict]]):
    """Feed trains to a PUSH ServerInThread, record them; return (run path, wire frames)."""
    wire = [[bytes(f) for f in serialize(data, meta)] for data, meta in trains]
    with _bridge_server("PUSH") as server:
        for data, meta in trains:
            server.feed(data, meta)
        spec = SourceSpec(server.endpoint, socket_type="PULL", protocol="karabo")
        path = record(tmp_path, spec, count=len(trains))
    return path, wire


def _meta(src: str, tid: int) -> dict:
    return {src: {"source": src, "timestamp.tid": tid}}


@pytest.mark.timeout(60)
def test_record_server_in_thread_arrays_of_many_dtypes(tmp_path):
    """Whatever numeric array a tool feeds, the run gives it back typed and byte for byte."""
    src = "SPB_ONLINE/ANALYSIS/RESULT"
    trains = []
    for k in range(3):
        rng = np.random.default_rng(k)
        data = {
            src: {
                "image.data": rng.integers(0, 4000, (4, 8, 16)).astype(np.uint16),
                "image.half": rng.normal(size=(3, 5)).astype(np.float16),
                "fit.complex": rng.normal(size=4) + 1j * rng.normal(size=4),
                "mask": rng.integers(0, 2, 7).astype(bool),
                "labels": np.array([b"ok", b"hit", b"miss"][: k + 1]),  # shape changes
                "peaks": np.zeros((k, 3), np.float32),  # zero rows in train 0
                "energy": np.array(9.3 + k),  # 0-d
                "fortran": np.asfortranarray(rng.integers(-5, 5, (3, 4))),
                "count": np.int32(k),
                "passport": ["a", "b"],
            }
        }
        trains.append((data, _meta(src, 1000 + k)))
    path, wire = _record_fed_trains(tmp_path, trains)
    stream = stream_of(path)
    assert frames_of(stream) == wire
    decoded = _decoded(stream)
    for (data, _), (want, _) in zip(decoded, trains, strict=True):
        for key, value in want[src].items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(data[src][key], value)
    expected = [_arrays(data) for data, _ in decoded]
    for name in expected[0]:
        assert_rows_equal(rows(stream, name), [arrays[name] for arrays in expected])
    assert [int(t) for t in stream.column("seq")] == [1000, 1001, 1002]
    summary = summary_of(path)
    assert (summary["status"], summary["rejects"], summary["gaps"]) == ("complete", 0, 0)


@pytest.mark.timeout(60)
def test_record_server_in_thread_big_endian_array_is_replayed_byte_for_byte(tmp_path):
    src = "FXE_ONLINE/FILES/BIGENDIAN"
    trains = [
        ({src: {"data.values": (np.arange(6) + 0.5 + k).astype(">f8")}}, _meta(src, 7 + k))
        for k in range(2)
    ]
    path, wire = _record_fed_trains(tmp_path, trains)
    stream = stream_of(path)
    got = rows(stream, f"{src}:data.values")
    for row, (data, _) in zip(got, trains, strict=True):  # values right (native byte order)
        np.testing.assert_array_equal(row, data[src]["data.values"])
    assert frames_of(stream) == wire


@pytest.mark.timeout(60)
def test_record_server_in_thread_unicode_array(tmp_path):
    src = "SPB_ONLINE/ANALYSIS/NAMES"
    trains = [({src: {"names": np.array(["ab", "xyz"])}}, _meta(src, 40 + k)) for k in range(2)]
    path, wire = _record_fed_trains(tmp_path, trains)
    stream = stream_of(path)
    assert frames_of(stream) == wire
    assert_rows_equal(rows(stream, f"{src}:names"), [d[src]["names"] for d, _ in trains])
