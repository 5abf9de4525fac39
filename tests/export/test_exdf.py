"""EXDF export and import, judged by extra_data itself: a mock EuXFEL run is served by the real
`karabo-bridge-serve-files`, recorded, exported, and both folders are opened with
`extra_data.RunDirectory`; sources, train ids, `get_array`, `select` and `trains()` must agree.
The import turns the mock run into a run whose replay a real `karabo_bridge.Client` receives."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from recorder.export.base import ExportRequest, export_run
from recorder.export.exdf import file_name
from recorder.recording.recording import SourceSpec
from tests.karabotools import start_tool, write_mock_run
from tests.recordhelp import record

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
