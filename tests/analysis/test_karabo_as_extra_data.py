"""Karabo bridge streams in the shape of extra_data, checked against the simulated bridge and
against extra_data's own return shapes."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from recorder.analysis import open_run
from recorder.analysis.karabo import KaraboStream, split_name
from recorder.errors import UsageError
from recorder.simulators.karabo import FIRST_TRAIN
from tests.analysis.runs import KARABO_COUNT

pytestmark = pytest.mark.timeout(90)
XGM = "SA1_XTD2_XGM/DOOCS/MAIN"
DET = "SIM_DET_SMALL/CAL/APPEND_CORRECTED"
TIDS = [FIRST_TRAIN + i for i in range(KARABO_COUNT)]


def _same(got, want) -> None:
    if isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray) and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    else:
        assert got == want


def test_trains_give_every_value_the_bridge_sent(sent):
    run = open_run(sent.path)
    trains = list(run.trains())
    assert [tid for tid, _ in trains] == TIDS == run.train_ids
    for i, (_, data) in enumerate(trains):
        values, metadata = sent.bridge.train(i)
        assert set(data) == set(values)
        for src, keys in values.items():
            assert data[src]["metadata"] == metadata[src]  # each source's own timestamps
            assert set(data[src]) == {"metadata", *keys}
            for key, value in keys.items():
                _same(data[src][key], value)


def test_train_from_id_and_select(sent):
    run = open_run(sent.path)
    tid, data = run.train_from_id(FIRST_TRAIN + 2)
    assert tid == FIRST_TRAIN + 2
    np.testing.assert_array_equal(
        data[DET]["image.data"], sent.bridge.train(2)[0][DET]["image.data"]
    )
    with pytest.raises(KeyError):
        run.train_from_id(FIRST_TRAIN - 1)
    sel = run.select(f"{XGM}*", "*TD")
    assert sel.all_sources == {f"{XGM}:output"}
    for i, (tid, data) in enumerate(sel.trains()):
        assert list(data) == [f"{XGM}:output"] and tid == TIDS[i]
        assert set(data[f"{XGM}:output"]) == {"metadata", "data.intensityTD", "data.xTD"}
    sel = run.select([(XGM, "beamPosition.ixPos.value"), (DET, "*")])
    assert sel.all_sources == {XGM, DET}
    assert sel.keys_for_source(XGM) == {"beamPosition.ixPos.value"}
    _, data = sel.train_from_id(FIRST_TRAIN)
    assert set(data[XGM]) == {"metadata", "beamPosition.ixPos.value"}


def test_key_data_like_extra_data(sent):
    run = open_run(sent.path)
    assert run.all_sources == {XGM, f"{XGM}:output", DET}
    assert "image.data" in run.keys_for_source(DET)
    pos = run[XGM, "beamPosition.ixPos"]  # extra_data: a control key means its .value
    want = [sent.bridge.train(i)[0][XGM]["beamPosition.ixPos.value"] for i in range(KARABO_COUNT)]
    np.testing.assert_array_equal(pos.ndarray(), want)
    assert pos.train_ids == TIDS and pos.shape == (KARABO_COUNT,)
    series = pos.series()
    assert list(series.index) == TIDS and series.index.name == "trainId"
    image = run[DET, "image.data"]
    sent_images = [sent.bridge.train(i)[0][DET]["image.data"] for i in range(KARABO_COUNT)]
    segments = run.streams["bridge"].reader.array_segments(image.name)
    ragged = any(getattr(s, "ragged", False) for s in segments)  # format 2 only
    # stacked: one row per train; ragged (format 2 may store it so): the trains' rows in a row
    want = np.concatenate(sent_images) if ragged else np.stack(sent_images)
    assert image.shape == want.shape and image.dtype == np.float32
    np.testing.assert_array_equal(image.ndarray(), want)
    assert image.train_ids == TIDS
    arr = run.get_array(DET, "image.data")
    assert isinstance(arr, xr.DataArray) and arr.dims[0] == "trainId"
    assert list(dict.fromkeys(arr["trainId"].values)) == TIDS and arr.name == f"{DET}.image.data"
    for tid, sent_image in zip(TIDS, sent_images, strict=True):
        np.testing.assert_array_equal(arr.sel(trainId=tid).values, sent_image)
    with pytest.raises(KeyError):
        run[DET, "no.such.key"]


def test_extra_data_names_the_same_shapes(sent, tmp_path):
    """Our KeyData.xarray() has the dims and coordinate extra_data's has for the same key."""
    from extra_data import H5File

    from tests.karabotools import write_mock_run

    ed = H5File(str(write_mock_run(tmp_path, ntrains=3)))
    theirs = ed["SA1_XTD2_XGM/DOOCS/MAIN", "beamPosition.ixPos"].xarray()
    ours = open_run(sent.path)[XGM, "beamPosition.ixPos"].xarray()
    assert ours.dims == theirs.dims == ("trainId",)
    assert ours["trainId"].dtype == theirs["trainId"].dtype
    _, data = next(iter(ed.trains()))
    assert set(data[XGM]) >= {"metadata"} and data[XGM]["metadata"]["source"] == XGM
    assert open_run(sent.path).train_from_id(TIDS[0])[1][XGM]["metadata"]["source"] == XGM


def test_run_level_karabo_calls_need_exactly_one_karabo_stream(sent):
    run = open_run(sent.path)
    assert isinstance(run.streams["bridge"], KaraboStream)
    del run.streams["bridge"]
    with pytest.raises(UsageError, match="0 Karabo streams"):
        run.trains()


def test_split_name_prefers_the_longest_known_source():
    sources = {XGM, f"{XGM}:output"}
    assert split_name(f"{XGM}:output:data.xTD", sources) == (f"{XGM}:output", "data.xTD")
    assert split_name(f"{XGM}:state.value", sources) == (XGM, "state.value")
    assert split_name("A/B:c:key", set()) == ("A/B:c", "key")


def test_entries_per_train_that_vary_follow_each_other(ctx, tmp_path):
    """Pulse-resolved data whose count changes between trains (karabo-bridge-serve-files on a
    run with varying frame counts): the entries of all trains follow each other with a trainId
    each, as extra_data gives them, whatever way the run format stores them."""
    from recorder.protocols.karabo import encode_train
    from recorder.recording.recording import SourceSpec
    from tests.recordhelp import record

    src = "SPB_DET_AGIPD1M-1/DET/0CH0:xtdf"
    pulses = [3, 3, 5, 1]
    trains = []
    for i, n in enumerate(pulses):
        tid = 1000 + i
        data = {src: {"image.data": np.full((n, 4, 2), i, np.uint16), "image.length": n}}
        meta = {src: {"source": src, "timestamp.tid": tid, "timestamp": 1.7e9 + i / 10}}
        trains.append(encode_train(data, meta, "2.2"))
    spec = SourceSpec("tcp://127.0.0.1:*", socket_type="PULL", bind=True, protocol="karabo")
    socks = []

    def send(rec):
        import zmq

        sock = ctx.socket(zmq.PUSH)
        socks.append(sock)
        sock.connect(rec.streams[0].bound_endpoint)
        for frames in trains:
            sock.send_multipart(frames)

    try:
        path = record(tmp_path, spec, count=len(trains), on_started=send)
    finally:
        for sock in socks:
            sock.close(linger=5000)
    run = open_run(path)
    key = run[src, "image.data"]
    assert key.shape == (sum(pulses), 4, 2)
    want = np.concatenate([np.full((n, 4, 2), i, np.uint16) for i, n in enumerate(pulses)])
    np.testing.assert_array_equal(key.ndarray(), want)
    assert key.train_ids == [1000, 1001, 1002, 1003]
    assert list(key.train_id_coordinates()) == [
        1000 + i for i, n in enumerate(pulses) for _ in range(n)
    ]
    arr = key.xarray()
    np.testing.assert_array_equal(arr.sel(trainId=1002).values, np.full((5, 4, 2), 2, np.uint16))
    assert list(run[src, "image.length"].ndarray()) == pulses


def test_keys_for_source_leave_out_the_metadata_columns(sent):
    """Format 2 keeps each source's metadata as `<source>:metadata.*` columns: extra_data does
    not list metadata among a source's keys, and neither do we."""
    run = open_run(sent.path)
    keys = run.keys_for_source(XGM)
    assert keys == {
        "pulseEnergy.photonFlux.value", "beamPosition.ixPos.value",
        "beamPosition.iyPos.value", "state.value",
    }  # fmt: skip
