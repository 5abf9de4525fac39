"""open_run, Run and Stream basics on a run recorded from the real simulators: ids resolved in
the data folder, the repr, messages byte for byte, pandas tables with real missing values,
lazy xarray Datasets and the DataTree."""

from __future__ import annotations

import subprocess
import sys

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import recorder
from recorder.analysis import Run, open_run
from recorder.errors import RunNotFound, UsageError
from recorder.store.reader import RunReader
from tests.analysis.runs import ADZMQ_COUNT, KARABO_COUNT, OE_COUNT, RUN_ID, VIDEO_COUNT

pytestmark = pytest.mark.timeout(90)


def test_open_run_by_id_prefix_path_and_environment(sent, monkeypatch):
    data = sent.path.parent.parent
    assert open_run(RUN_ID, data=data).path == sent.path
    assert open_run("20261201-12", data=data).run_id == RUN_ID  # a unique start of the id
    with open_run(sent.path) as run:
        assert run.run_id == RUN_ID and run["video"].table(["seq"]).columns.tolist() == ["seq"]
    assert open_run(str(sent.path)).run_id == RUN_ID
    monkeypatch.setenv("RECORDER_DATA", str(data))
    run = recorder.open_run(RUN_ID)  # the lazy export; the data folder from the environment
    assert isinstance(run, Run) and set(run.streams) == {"bridge", "camera", "ephys", "video"}
    with pytest.raises(RunNotFound):
        open_run("19990101", data=data)
    with pytest.raises(RunNotFound):
        open_run(sent.path.parent / "nothing-here")


def test_ambiguous_prefix_names_the_runs(sent, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    for suffix in ("a", "b"):
        (runs / f"20261201-{suffix}").symlink_to(sent.path)
    with pytest.raises(UsageError, match="ambiguous"):
        open_run("20261201-", data=tmp_path)


def test_repr_shows_streams_sizes_and_time_span(sent):
    run = open_run(sent.path)
    text = repr(run)
    summary = RunReader(sent.path).summary()
    assert text.startswith(f"<Run {RUN_ID} 'demo' complete")
    assert "time span: 2" in text and " UTC (" in text
    for s in summary["streams"]:
        line = next(x for x in text.splitlines() if x.strip().startswith(s["name"] + " "))
        assert s["protocol"] in line and f"{s['messages']} messages" in line
    assert "4 streams" in text


def test_messages_are_the_readers_messages(sent):
    run = open_run(sent.path)
    got = [(m.stream, m.index, [bytes(f) for f in m.frames]) for m in run.messages()]
    want = [
        (m.stream, m.index, [bytes(f) for f in m.frames]) for m in RunReader(sent.path).messages()
    ]
    assert got == want and len(got) == OE_COUNT + ADZMQ_COUNT + 1 + VIDEO_COUNT + KARABO_COUNT
    camera = [[bytes(f) for f in m.frames] for m in run.streams["camera"].messages()]
    assert camera[:-1] == [sent.camera.message(i) for i in range(ADZMQ_COUNT)]


def test_table_has_real_missing_values(sent):
    run = open_run(sent.path)
    video = run.streams["video"].table()
    assert isinstance(video, pd.DataFrame) and len(video) == VIDEO_COUNT
    assert video["seq"].isna().all()  # pyMultiVideo has no frame counter: -1 on disk
    assert list(video["source_ns"]) == [sent.video.timestamp(i) for i in range(VIDEO_COUNT)]
    assert list(video["unique_id"]) == ["cam7"] * VIDEO_COUNT
    assert (video["recv_time"] == pd.to_datetime(video["recv_ns"].astype("int64"), utc=True)).all()

    ephys = run.streams["ephys"].table()
    plans = [sent.ephys.plan(i) for i in range(OE_COUNT)]
    ttl = [k for k, (kind, _, _) in enumerate(plans) if kind == "ttl"]
    other = [k for k in range(OE_COUNT) if k not in ttl]
    assert ephys["line"].dtype == "Int64" and ephys["line"].iloc[other].isna().all()
    assert ephys["line"].iloc[ttl].notna().all()
    assert ephys["electrode"].dtype == "string"
    spikes = [k for k, (kind, _, _) in enumerate(plans) if kind == "spike"]
    assert set(ephys["electrode"].iloc[spikes]) == {"Tetrode 1"}
    assert ephys["electrode"].drop(index=spikes).isna().all()  # "" on disk
    assert list(ephys["seq"]) == list(range(1, OE_COUNT + 1))

    camera = run.streams["camera"].table()
    assert camera["seq"].isna().tolist() == [False] * ADZMQ_COUNT + [True]  # the STOP message
    assert np.isnan(camera["ndattr.Temperature"].iloc[-1])


def test_to_xarray_is_lazy_and_holds_the_values(sent):
    ds = open_run(sent.path).streams["camera"].to_xarray()
    assert isinstance(ds, xr.Dataset)
    assert isinstance(ds["image"].data, da.Array) and isinstance(ds["source_ns"].data, da.Array)
    assert ds["recv_time"].dtype == np.dtype("datetime64[ns]")
    assert ds.sizes["message"] == ADZMQ_COUNT + 1 and ds.sizes["image.row"] == ADZMQ_COUNT
    for i in range(ADZMQ_COUNT):
        np.testing.assert_array_equal(ds["image"][i].values, sent.camera.image(i))
    assert list(ds["image.seq"].values) == list(range(1, ADZMQ_COUNT + 1))
    assert list(ds["seq"].values) == [*range(1, ADZMQ_COUNT + 1), -1]
    assert ds["seq"].attrs["missing_value"] == -1
    temps = ds["ndattr.Temperature"].values[:ADZMQ_COUNT]
    assert list(temps) == [sent.camera.ndattr(i)["Temperature"] for i in range(ADZMQ_COUNT)]
    assert ds.attrs["protocol"] == "adzmq" and ds.attrs["stream"] == "camera"


def test_datatree_has_every_stream_as_a_node(sent):
    tree = open_run(sent.path).to_datatree()
    assert isinstance(tree, xr.DataTree)
    assert set(tree.children) == {"bridge", "camera", "ephys", "video"}
    assert tree.attrs["run_id"] == RUN_ID
    video = tree["video"].to_dataset()
    for i in range(VIDEO_COUNT):
        np.testing.assert_array_equal(video["image"][i].values, sent.video.image(i))
    xgm = tree["bridge"]["SA1_XTD2_XGM.DOOCS.MAIN:beamPosition.ixPos.value"]
    assert xgm.attrs["name"] == "SA1_XTD2_XGM/DOOCS/MAIN:beamPosition.ixPos.value"


def test_importing_the_recorder_loads_no_analysis_library():
    """`recorder --help` stays fast: xarray, pandas and dask load only when asked for."""
    code = (
        "import sys, recorder, recorder.cli.main, recorder.analysis\n"
        "heavy = {'xarray', 'pandas', 'dask'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
        "recorder.open_run\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_source_time_when_the_run_names_the_epoch(sent, tmp_path):
    """A stream whose `meaning` names the epoch of source_ns (format 2: ``1990-01-01`` for
    EPICS areaDetector) gets `source_time` in its table and Dataset, NaT where there is none."""
    import shutil

    import zarr

    path = tmp_path / sent.path.name
    shutil.copytree(sent.path, path)
    group = zarr.open_group(path / "streams" / "camera", mode="r+")
    group.attrs["meaning"] = {"seq": "NDArray uniqueId", "source_epoch": "1990-01-01"}
    camera = open_run(path).streams["camera"]
    table = camera.table()
    epics = pd.Timestamp("1990-01-01", tz="UTC")
    want = [epics + pd.Timedelta(seconds=sent.camera.timestamp(i)) for i in range(ADZMQ_COUNT)]
    got = table["source_time"].iloc[:ADZMQ_COUNT]
    assert all(abs(g - w) < pd.Timedelta(microseconds=1) for g, w in zip(got, want, strict=True))
    assert pd.isna(table["source_time"].iloc[-1])  # STOP has no time
    ds = camera.to_xarray()
    assert ds["source_time"].dtype == np.dtype("datetime64[ns]")
    assert np.isnat(ds["source_time"].values[-1])
    # pyMultiVideo's camera clock is no wall clock: no epoch, no source_time
    assert "source_time" not in open_run(sent.path).streams["video"].table()
