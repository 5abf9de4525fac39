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
    assert image.shape == (KARABO_COUNT, 2, 16, 32, 4) and image.dtype == np.float32
    arr = run.get_array(DET, "image.data")
    assert isinstance(arr, xr.DataArray) and arr.dims[0] == "trainId"
    assert list(arr["trainId"].values) == TIDS and arr.name == f"{DET}.image.data"
    for i in range(KARABO_COUNT):
        np.testing.assert_array_equal(arr[i].values, sent.bridge.train(i)[0][DET]["image.data"])
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
