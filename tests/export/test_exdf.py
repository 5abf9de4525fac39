"""EXDF export and import, judged by extra_data itself: a mock EuXFEL run is served by the real
`karabo-bridge-serve-files`, recorded, exported, and both folders are opened with
`extra_data.RunDirectory`; sources, train ids, `get_array`, `select` and `trains()` must agree.
The import turns the mock run into a run whose replay a real `karabo_bridge.Client` receives."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from recorder.analysis import open_run
from recorder.errors import ExportError
from recorder.export.base import ExportRequest, export_run
from recorder.export.exdf import file_name
from recorder.export.exdf_import import import_file
from recorder.export.importing import ImportedStream, RunImport
from recorder.protocols.karabo import encode_train
from recorder.recording.recording import SourceSpec
from tests.karabotools import start_tool, write_mock_run
from tests.recordhelp import record
from tests.replayhelp import recorded_frames

pytestmark = pytest.mark.timeout(120)
N_TRAINS = 6
XGM = "SA1_XTD2_XGM/DOOCS/MAIN"
XGM_OUT = f"{XGM}:output"
CAM = "FXE_XAD_GEC/CAM/CAMERA"
CAM_OUT = f"{CAM}:daqOutput"


@pytest.fixture(scope="module")
def mock(tmp_path_factory):
    """The mock run as a folder, its per-train arrays filled with seeded random values."""
    folder = tmp_path_factory.mktemp("mock")
    path = write_mock_run(folder, N_TRAINS)
    rng = np.random.default_rng(7)

    def fill(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "fiu" and len(obj):
            values = rng.uniform(0, 1000, (N_TRAINS, *obj.shape[1:]))
            obj[:N_TRAINS] = values.astype(obj.dtype)

    with h5py.File(path, "r+") as f:
        f["INSTRUMENT"].visititems(fill)
        f["CONTROL"].visititems(lambda n, o: fill(n, o) if n.endswith("value") else None)
    return folder


@pytest.fixture(scope="module")
def recorded(mock, tmp_path_factory):
    """The mock run as karabo-bridge-serve-files sends it, recorded (PUSH -> PULL)."""
    proc, port = start_tool(
        ["karabo-bridge-serve-files", str(mock), "tcp://127.0.0.1:*", "-z", "PUSH"]
    )
    try:
        spec = SourceSpec(f"tcp://127.0.0.1:{port}", socket_type="PULL", protocol="karabo")
        return record(tmp_path_factory.mktemp("runs"), spec, count=N_TRAINS, timeout=40)
    finally:
        proc.kill()
        proc.wait(10)
        proc.stdout.close()


def export(run, out, **kwargs):
    return export_run(ExportRequest(run_path=run, target="exdf", out=out, **kwargs))


def same(got, want, where: str = "") -> None:
    """Equal values; a control scalar may come back wider (the bridge sends float32 as a
    msgpack double), arrays keep their dtype and shape."""
    if isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray), where
        assert got.shape == want.shape and got.dtype == want.dtype, (where, got, want)
        np.testing.assert_array_equal(got, want, err_msg=where)
    else:
        assert not isinstance(got, np.ndarray) and got == want, (where, got, want)


def ed_train(data: dict) -> dict:
    """extra_data's train dict without arrays of Python objects (serve-files drops them)."""
    return {
        src: {
            k: v for k, v in vals.items() if not (isinstance(v, np.ndarray) and v.dtype == object)
        }
        for src, vals in data.items()
    }


def assert_same_trains(ours, theirs) -> None:
    got, want = list(ours.trains()), list(theirs.trains())
    assert [t for t, _ in got] == [t for t, _ in want]
    for (tid, g), (_, w) in zip(got, want, strict=True):
        g, w = ed_train(g), ed_train(w)
        assert g.keys() == w.keys(), tid
        for src in w:
            assert g[src].keys() == w[src].keys(), (tid, src)
            for key in w[src]:
                same(g[src][key], w[src][key], f"{tid} {src} {key}")


@pytest.fixture(scope="module")
def exported(recorded, tmp_path_factory):
    out = tmp_path_factory.mktemp("exdf") / "run"
    return export(recorded, out), out


def test_export_opens_like_the_served_mock_run(exported, mock):
    """Sources, train ids, keys and every key's get_array equal extra_data's own reading of
    the file that serve-files sent; arrays keep their dtype, scalars come back at least as
    wide (the bridge sends them as msgpack numbers: float64, int64)."""
    from extra_data import H5File, RunDirectory

    result, out = exported
    assert result.streams == ["main"] and result.messages == N_TRAINS and not result.partial
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".h5") == [file_name(1)]
    ours, theirs = RunDirectory(str(out)), RunDirectory(str(mock))
    assert ours.all_sources == theirs.all_sources == {XGM, XGM_OUT, CAM, CAM_OUT}
    assert ours.instrument_sources == theirs.instrument_sources == {XGM_OUT, CAM_OUT}
    assert list(ours.train_ids) == list(theirs.train_ids) == [10000 + i for i in range(N_TRAINS)]
    assert ours.run_metadata()["dataFormatVersion"] == "1.0"
    for src in theirs.all_sources:
        assert ours.keys_for_source(src) == theirs.keys_for_source(src), src
        for key in theirs.keys_for_source(src):
            a, b = ours.get_array(src, key), theirs.get_array(src, key)
            assert a.dims == b.dims and a.shape == b.shape, (src, key)
            np.testing.assert_array_equal(a["trainId"], b["trainId"])
            np.testing.assert_array_equal(a.values, b.values, err_msg=f"{src} {key}")
            if b.ndim > 1:  # arrays per train travel as typed array frames
                assert a.dtype == b.dtype, (src, key)
            else:
                kinds = {a.dtype.kind, b.dtype.kind}
                assert len(kinds) == 1 or kinds == {"i", "u"}, (src, key, kinds)
    pixels = ours[CAM_OUT, "data.image.pixels"]
    assert pixels.shape == (N_TRAINS, 255, 1024) and pixels.dtype == np.uint16
    assert pixels.ndarray().any()
    single = H5File(str(out / file_name(1)))
    assert single.all_sources == ours.all_sources
    # the mock's state was OFF for the first 5 trains; RUN holds the first value
    assert list(ours.get_array(XGM, "state.value").values) == ["OFF"] * 5 + ["ON"]
    assert ours.get_run_value(XGM, "state") == "OFF"
    assert (
        ours.get_run_value(XGM, "beamPosition.ixPos")
        == theirs[XGM, "beamPosition.ixPos"].ndarray()[0]
    )


def test_export_select_and_trains_like_the_mock_run(exported, mock):
    from extra_data import RunDirectory

    _, out = exported
    ours, theirs = RunDirectory(str(out)), RunDirectory(str(mock))
    assert_same_trains(ours, theirs)
    sel_ours, sel_theirs = ours.select("*XGM*", "*TD"), theirs.select("*XGM*", "*TD")
    assert sel_ours.all_sources == sel_theirs.all_sources == {XGM_OUT}
    assert sel_ours.keys_for_source(XGM_OUT) == sel_theirs.keys_for_source(XGM_OUT)
    assert_same_trains(sel_ours, sel_theirs)
    pairs = [(CAM_OUT, "data.image.pixels"), (XGM, "beamPosition.ixPos.value")]
    assert_same_trains(ours.select(pairs), theirs.select(pairs))
    _tid, data = ours.select(pairs).train_from_id(10003)
    np.testing.assert_array_equal(
        data[CAM_OUT]["data.image.pixels"],
        theirs.train_from_id(10003)[1][CAM_OUT]["data.image.pixels"],
    )


def test_export_records_where_it_came_from(exported, recorded):
    result, out = exported
    with h5py.File(out / file_name(1)) as f:
        attrs = dict(f.attrs)
        prov = json.loads(attrs["provenance"])
        ids = [s.decode() for s in f["METADATA/dataSources/dataSourceId"][:]]
    with RunReader_(recorded) as run:
        run_id = run.run_id
    assert attrs["run_id"] == prov["run_id"] == result.run_id == run_id
    assert attrs["stream"] == "main" and list(attrs["messages"]) == [0, N_TRAINS]
    assert attrs["partial"] == False  # noqa: E712 (numpy bool)
    assert attrs["writer"].startswith("zmq-recorder ") and attrs["recorder_version"]
    assert prov["trains"] == N_TRAINS and prov["not_exported"] == {}
    assert prov["start_s"] is None and prov["end_s"] is None
    assert sorted(ids) == sorted(
        [f"CONTROL/{XGM}", f"CONTROL/{CAM}", f"INSTRUMENT/{XGM_OUT}/data",
         f"INSTRUMENT/{CAM_OUT}/data"]
    )  # fmt: skip


def RunReader_(path):
    from recorder.store.reader import RunReader

    return RunReader(path)


# ----------------------------------------------------------------------------- made runs

T0 = 1_700_000_000 * 10**9
MOTOR = "SPB_XTD9/MOTOR/X"
DET = "SPB_DET_AGIPD1M-1/DET/0CH0:xtdf"
PULSES = [3, 3, 5, 1, 0, 4, 2, 2, 6, 3]  # entries per train: stored along the first axis


def made_train(i: int, tid0: int = 2000) -> list[bytes]:
    """Train i as a bridge would send it: a motor (control) and a detector module whose
    pulse count changes from train to train (instrument, entries per pulse)."""
    n = PULSES[i % len(PULSES)]
    motor = {
        "position.value": 1.5 * i,
        "position.timestamp": 10**18 + i,
        "state.value": "ON" if i % 2 else "OFF",
        "mixed.value": i if i % 2 else "text",  # int or text: no EXDF dataset holds both
    }
    if i == 4:
        del motor["state.value"]  # missing once: EXDF has a row per train, filled
    data = {
        MOTOR: motor,
        DET: {
            "image.data": np.full((n, 4, 2), i, np.uint16),
            "image.cellId": np.arange(n, dtype=np.uint16),
            "image.length": n,  # one value per train beside entries per pulse: left out
            "data.vec": [0.5 * i, 1.0, 2.0],
            "data.count": n,
        },
    }
    meta = {
        src: {
            "source": src,
            "timestamp.tid": tid0 + i,
            "timestamp.sec": str(T0 // 10**9 + i),
            "timestamp.frac": "250000000000000000",
        }
        for src in data
    }
    return encode_train(data, meta)


def karabo_stream(name: str) -> ImportedStream:
    return ImportedStream(name, "karabo", "tcp://127.0.0.1:4545", "SUB", "connect")


def made_run(runs, n: int = 10, **streams) -> object:
    """A run written as a recording writes it: message i received 100 ms * i after T0.
    `streams` maps extra stream names to (ImportedStream, list of frames)."""
    with RunImport(runs, started_ns=T0, name="made") as imp:
        bridge = imp.stream(karabo_stream("bridge"))
        for i in range(n):
            bridge.append(T0 + i * 100_000_000, made_train(i))
        for spec, messages in streams.values():
            s = imp.stream(spec)
            for i, frames in enumerate(messages):
                s.append(T0 + i * 100_000_000 + 1, frames)
        return imp.path


@pytest.mark.parametrize("block", [3, 4096])
def test_export_entries_per_pulse_fills_and_left_out_keys(tmp_path, monkeypatch, block):
    """Rows are written in blocks of trains (3: several blocks, as a long run is)."""
    from extra_data import RunDirectory

    from recorder.export import exdf

    monkeypatch.setattr(exdf, "_BLOCK_TRAINS", block)
    result = export(made_run(tmp_path / "runs"), tmp_path / "out")
    ed = RunDirectory(str(result.out))
    assert list(ed.train_ids) == [2000 + i for i in range(10)]
    assert ed.instrument_sources == {DET} and ed.control_sources == {MOTOR}
    assert ed.keys_for_source(DET) == {"image.data", "image.cellId", "data.vec", "data.count"}
    assert ed.keys_for_source(MOTOR) == {"position.value", "position.timestamp", "state.value"}
    image = ed.get_array(DET, "image.data")
    assert image.shape == (sum(PULSES), 4, 2) and image.dtype == np.uint16
    np.testing.assert_array_equal(
        image.values,
        np.concatenate([np.full((n, 4, 2), i, np.uint16) for i, n in enumerate(PULSES)]),
    )
    assert list(image["trainId"].values) == [
        2000 + i for i, n in enumerate(PULSES) for _ in range(n)
    ]
    np.testing.assert_array_equal(ed[DET, "data.vec"].ndarray()[:, 0], [0.5 * i for i in range(10)])
    assert list(ed[DET, "data.count"].ndarray()) == PULSES
    states = list(ed.get_array(MOTOR, "state.value").values)
    assert states == ["ON" if i % 2 else "OFF" for i in range(4)] + [""] + [
        "ON" if i % 2 else "OFF" for i in range(5, 10)
    ]
    assert ed.get_run_value(MOTOR, "position") == 0.0
    stamps = ed.train_timestamps()
    assert [int(t.astype("datetime64[ns]").astype(np.int64)) for t in stamps] == [
        T0 + i * 10**9 + 250_000_000 for i in range(10)
    ]
    for i, (tid, data) in enumerate(ed.trains()):
        n = PULSES[i]
        if n == 0:  # no entries in this train: extra_data gives no value
            assert "image.data" not in data[DET]
        else:  # one entry: extra_data drops the entry axis, as for any EXDF file
            want = np.full((n, 4, 2), i, np.uint16)
            same(data[DET]["image.data"], want[0] if n == 1 else want, str(tid))
        assert data[MOTOR]["position.value"] == 1.5 * i
    with h5py.File(result.out / file_name(1)) as f:
        left_out = json.loads(f.attrs["not_exported"])
    assert sorted(left_out) == [f"{DET} image.length", f"{MOTOR} mixed.value"]
    assert "mixed" in left_out[f"{MOTOR} mixed.value"]
    assert "pulses" in left_out[f"{DET} image.length"]


def test_export_window_gives_the_trains_received_in_it(tmp_path):
    from extra_data import RunDirectory

    run = made_run(tmp_path / "runs")
    said: list[float] = []
    request = ExportRequest(run_path=run, target="exdf", out=tmp_path / "out", start=0.25, end=0.65)
    result = export_run(request, said.append)
    assert said == sorted(said) and said[-1] == 1.0 and len(said) > 2  # survey, write, done
    ed = RunDirectory(str(result.out))
    assert list(ed.train_ids) == [2003, 2004, 2005, 2006] and result.messages == 4
    assert ed.get_run_value(MOTOR, "position") == 1.5 * 3  # RUN: the window's first value
    np.testing.assert_array_equal(
        ed.get_array(DET, "image.cellId").values,
        np.concatenate([np.arange(PULSES[i], dtype=np.uint16) for i in range(3, 7)]),
    )
    with h5py.File(result.out / file_name(1)) as f:
        prov = json.loads(f.attrs["provenance"])
        assert list(f.attrs["messages"]) == [3, 7] and list(f.attrs["window_s"]) == [0.25, 0.65]
    assert (prov["start_s"], prov["end_s"], prov["trains"]) == (0.25, 0.65, 4)


def test_export_stream_selection_and_streams_it_cannot_hold(tmp_path):
    from extra_data import H5File, RunDirectory

    other = (ImportedStream("other", "raw", "tcp://127.0.0.1:5000", "SUB", "connect"), [[b"x"]])
    xgm = "SA3_XTD10_XGM/XGM/DOOCS:output"
    second = (
        karabo_stream("second"),
        [
            encode_train(
                {xgm: {"data.intensityTD": np.arange(4, dtype=np.float32) + i}},
                {xgm: {"source": xgm, "timestamp.tid": 2000 + i}},
            )
            for i in range(3)
        ],
    )
    run = made_run(tmp_path / "runs", other=other, second=second)
    result = export(run, tmp_path / "all")
    assert result.streams == ["bridge", "second"] and list(result.skipped) == ["other"]
    assert "protocol raw" in result.skipped["other"]
    assert sorted(p.name for p in result.out.glob("*.h5")) == [file_name(1), file_name(2)]
    ed = RunDirectory(str(result.out))
    assert ed.all_sources == {MOTOR, DET, xgm}
    assert H5File(str(result.out / file_name(2))).all_sources == {xgm}
    only = export(run, tmp_path / "second", streams=("second",))
    ed = RunDirectory(str(only.out))
    assert ed.all_sources == {xgm} and list(ed.train_ids) == [2000, 2001, 2002]
    np.testing.assert_array_equal(ed[xgm, "data.intensityTD"].ndarray()[2], np.arange(4) + 2)
    with pytest.raises(ExportError, match=r"'other'.*protocol raw: EXDF holds Karabo"):
        export(run, tmp_path / "raw", streams=("bridge", "other"))
    assert not (tmp_path / "raw").exists()


def test_export_of_a_run_still_recording_takes_what_is_committed(tmp_path):
    from extra_data import RunDirectory

    imp = RunImport(tmp_path / "runs", started_ns=T0, name="live")
    try:
        bridge = imp.stream(karabo_stream("bridge"))
        for i in range(5):
            bridge.append(T0 + i * 100_000_000, made_train(i))
        bridge.drain()
        imp.run.flush()
        bridge.append(T0 + 5 * 100_000_000, made_train(5))  # not committed yet
        result = export(imp.path, tmp_path / "out")
    finally:
        imp.close()
    assert result.partial and result.messages == 5
    assert list(RunDirectory(str(result.out)).train_ids) == [2000 + i for i in range(5)]
    with h5py.File(result.out / file_name(1)) as f:
        assert bool(f.attrs["partial"]) and json.loads(f.attrs["provenance"])["partial"]


def test_export_protocol_1_trains(tmp_path):
    """Protocol 1.0 packs a train in one msgpack frame, arrays and nested maps inside it."""
    from extra_data import RunDirectory

    src, ctl = "A/B/C:out", "A/B/MOTOR"
    with RunImport(tmp_path / "runs", started_ns=T0) as imp:
        s = imp.stream(karabo_stream("bridge"))
        for i in range(3):
            data = {
                src: {"data": {"image": np.full((2, 3), i, np.int16), "n": i}},
                ctl: {"position": {"value": 0.5 * i}},
            }
            meta = {k: {"source": k, "timestamp.tid": 50 + i} for k in data}
            s.append(T0 + i, encode_train(data, meta, "1.0"))
    ed = RunDirectory(str(export(imp.path, tmp_path / "out").out))
    assert list(ed.train_ids) == [50, 51, 52]
    assert ed.keys_for_source(src) == {"data.image", "data.n"}
    np.testing.assert_array_equal(
        ed[src, "data.image"].ndarray(), [np.full((2, 3), i, np.int16) for i in range(3)]
    )
    assert list(ed[ctl, "position.value"].ndarray()) == [0.0, 0.5, 1.0]


def test_export_skips_messages_without_a_rising_train_id(tmp_path):
    from extra_data import RunDirectory

    src = "A/B/C:out"
    msgs = [
        encode_train({src: {"data.x": i}}, {src: {"source": src, "timestamp.tid": tid}})
        for i, tid in enumerate([100, 101, 101, 99, 102])
    ] + [[b"not a train"]]
    with RunImport(tmp_path / "runs", started_ns=T0) as imp:
        s = imp.stream(karabo_stream("bridge"))
        for i, frames in enumerate(msgs):
            s.append(T0 + i, frames)
    result = export(imp.path, tmp_path / "out")
    ed = RunDirectory(str(result.out))
    assert list(ed.train_ids) == [100, 101, 102]
    assert list(ed[src, "data.x"].ndarray()) == [0, 1, 4]
    with h5py.File(result.out / file_name(1)) as f:
        assert json.loads(f.attrs["provenance"])["messages_skipped"] == 3
        assert f["INDEX/timestamp"].attrs["source"].startswith("host receive time")


# ----------------------------------------------------------------------------- import


def ed_trains(path) -> list[tuple[int, dict]]:
    from extra_data import RunDirectory

    return [(tid, ed_train(data)) for tid, data in RunDirectory(str(path)).trains()]


def assert_same_train(got: dict, want: dict, where: str) -> None:
    assert got.keys() == want.keys(), where
    for src in want:
        assert got[src].keys() == want[src].keys(), (where, src)
        for key in want[src]:
            same(got[src][key], want[src][key], f"{where} {src} {key}")


def _decoded_equal(a, b) -> bool:
    (da, ma), (db, mb) = a, b
    assert ma == mb and da.keys() == db.keys()
    for src in da:
        assert da[src].keys() == db[src].keys()
        for key, value in db[src].items():
            same(da[src][key], value, f"{src} {key}")
            assert type(da[src][key]) is type(value)
    return True


def test_import_gives_the_trains_serve_files_sends(mock, recorded, tmp_path):
    """The imported run's messages are byte for byte what serve-files sent for the same run
    (and the recorder recorded); the recorder's own reader gives extra_data's values."""
    from karabo_bridge.serializer import deserialize

    run = import_file(mock, tmp_path / "runs")
    ours, sent = recorded_frames(run), recorded_frames(recorded)
    assert len(ours) == len(sent) == N_TRAINS
    for i, (a, b) in enumerate(zip(ours, sent, strict=True)):
        # the same frames, up to the order of keys (serve-files sends them in set order)
        assert sorted(a) == sorted(b) or _decoded_equal(deserialize(a), deserialize(b)), i
    with RunReader_(run) as reader:
        assert reader.status == "complete" and list(reader.streams) == ["main"]
        stream = reader.stream("main")
        assert (stream.protocol, stream.socket_type, stream.role) == ("karabo", "SUB", "connect")
        assert stream.endpoint == "tcp://127.0.0.1:4545"
        recv = stream.column("recv_ns")
        assert list(np.diff(recv)) == [100_000_000] * (N_TRAINS - 1)  # no timestamps: 10 Hz
        assert reader.attrs["meta"]["import_format"] == "exdf"
    want = ed_trains(mock)
    got = list(open_run(run).trains())
    assert [t for t, _ in got] == [t for t, _ in want] == [10000 + i for i in range(N_TRAINS)]
    for (tid, g), (_, w) in zip(got, want, strict=True):
        assert_same_train(g, w, str(tid))
    one = import_file(mock / file_name(1), tmp_path / "runs", name="one file")
    assert recorded_frames(one) == recorded_frames(run)
    # and back out: the export of the import reads as the mock run does
    out = export(run, tmp_path / "exdf").out
    assert ed_trains(out)[2][1].keys() == want[2][1].keys()
    for (tid, g), (_, w) in zip(ed_trains(out), want, strict=True):
        assert_same_train(g, w, f"re-exported {tid}")


def test_import_replays_to_a_karabo_client(ctx, mock, tmp_path):
    from karabo_bridge import Client

    from tests.helpers import free_port, local
    from tests.replayhelp import quiet, replaying, wait_clients

    run = import_file(mock, tmp_path / "runs")
    port = free_port()
    with replaying(run, endpoints={"": local(port)}, paused=True, max_speed=True) as rp:
        client = Client(local(port), sock="SUB", timeout=30, context=ctx)
        try:
            wait_clients(rp)
            rp.resume()
            trains = [client.next() for _ in range(N_TRAINS)]
            assert rp.wait(10) and quiet(client._socket, 200)
        finally:
            client._socket.close(linger=0)
        assert rp.status()["error"] is None
    for (data, meta), (tid, want) in zip(trains, ed_trains(mock), strict=True):
        assert {src: m["timestamp.tid"] for src, m in meta.items()} == dict.fromkeys(want, tid)
        assert_same_train(
            {src: {**values, "metadata": meta[src]} for src, values in data.items()},
            want,
            f"replayed {tid}",
        )


def test_import_refuses_what_is_not_exdf(tmp_path):
    runs = tmp_path / "runs"
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(ExportError, match="is not an EXDF file: not HDF5"):
        import_file(text, runs)
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["data"] = np.arange(3)
    with pytest.raises(ExportError, match="is not an EXDF file: it has no INDEX/trainId"):
        import_file(plain, runs)
    with h5py.File(plain, "a") as f:
        f["INDEX/trainId"] = np.arange(1, 4, dtype=np.uint64)
    with pytest.raises(ExportError, match="METADATA lists no data sources"):
        import_file(plain, runs)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match=r"holds no \.h5 files"):
        import_file(tmp_path / "empty", runs)
    with pytest.raises(ExportError, match="does not exist"):
        import_file(tmp_path / "nowhere", runs)
    assert not runs.exists() or not any(runs.iterdir())


def test_import_merges_files_by_train_and_takes_their_timestamps(tmp_path):
    """An export of two streams (two aggregator files) imported back: trains merged by id,
    receive times from INDEX/timestamp, the values extra_data reads from the folder."""
    xgm = "SA3_XTD10_XGM/XGM/DOOCS:output"
    second = (
        karabo_stream("second"),
        [
            encode_train(
                {xgm: {"data.intensityTD": np.arange(4, dtype=np.float32) + i}},
                {xgm: {"source": xgm, "timestamp.tid": 2000 + i}},
            )
            for i in range(3)
        ],
    )
    folder = export(made_run(tmp_path / "runs", second=second), tmp_path / "out").out
    run = import_file(folder, tmp_path / "imported")
    got = list(open_run(run).trains())
    want = ed_trains(folder)
    assert [t for t, _ in got] == [t for t, _ in want] == [2000 + i for i in range(10)]
    assert set(got[0][1]) == {MOTOR, DET, xgm} and set(got[5][1]) == {MOTOR, DET, xgm}
    for (tid, g), (_, w) in zip(got, want, strict=True):
        assert_same_train(g, w, str(tid))
    with RunReader_(run) as reader:
        recv = list(reader.stream("main").column("recv_ns"))
        assert reader.attrs["meta"]["recv_ns"] == "INDEX/timestamp of each train"
        assert reader.name == "out"
    assert recv == [T0 + i * 10**9 + 250_000_000 for i in range(10)]


def test_export_leaves_out_keys_without_an_hdf5_path(tmp_path, monkeypatch):
    from extra_data import RunDirectory

    from recorder.export import exdf

    monkeypatch.setattr(exdf, "_LISTED", 2)
    src = "A/B/C:out"
    values = {"data.a/b": 1, "data.x": 2, "data.x.y": 3, "data..z": 4, "data.ok": 5}
    with RunImport(tmp_path / "runs", started_ns=T0) as imp:
        s = imp.stream(karabo_stream("bridge"))
        s.append(T0, encode_train({src: values}, {src: {"source": src, "timestamp.tid": 7}}))
    result = export(imp.path, tmp_path / "out")
    assert RunDirectory(str(result.out)).keys_for_source(src) == {"data.x.y", "data.ok"}
    with h5py.File(result.out / file_name(1)) as f:
        left_out = json.loads(f.attrs["not_exported"])
    assert len(left_out) == 3 and left_out["..."] == "1 more keys left out"


def test_import_takes_the_first_row_of_a_repeated_train_id(tmp_path):
    """As extra_data's train lookup (`_find_data`): a train id written twice in a file is its
    first row."""
    folder = export(made_run(tmp_path / "runs", n=3), tmp_path / "out").out
    with h5py.File(folder / file_name(1), "r+") as f:
        f["INDEX/trainId"][2] = 2001
    run = import_file(folder, tmp_path / "imported")
    got = list(open_run(run).trains())
    assert [t for t, _ in got] == [2000, 2001]
    assert got[1][1][MOTOR]["position.value"] == 1.5
