"""Finished coordinate arrays written at a stream's close (recorder/store/arrays.py)."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from recorder.store import arrays, layout

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("rows", [0, 1, 1000, 2500])
def test_a_counting_array_reads_as_the_range_it_holds(tmp_path, monkeypatch, rows):
    """Written a chunk at a time (the last one padded), read back by plain zarr as
    first, first + 1, ... with exactly `rows` rows."""
    monkeypatch.setattr(layout, "COLUMN_CHUNK", 1000)
    group = zarr.open_group(tmp_path / "run", mode="a", zarr_format=3)
    first = 2**40 + 7
    arrays.counting(group, "sample", first, rows, ["sample"], {"long_name": "sample number"})
    back = zarr.open_array(tmp_path / "run" / "sample", mode="r")
    assert back.shape == (rows,) and back.chunks == (1000,)
    np.testing.assert_array_equal(back[:], first + np.arange(rows, dtype=np.int64))
    assert back.dtype == np.int64 and back.attrs["long_name"] == "sample number"
    assert len(list((tmp_path / "run" / "sample").glob("c.*"))) == -(-rows // 1000)


def test_a_small_array_reads_back_as_given(tmp_path, monkeypatch):
    monkeypatch.setattr(layout, "COLUMN_CHUNK", 1000)
    group = zarr.open_group(tmp_path / "run", mode="a", zarr_format=3)
    data = np.random.default_rng(0).integers(-(2**62), 2**62, 2345)
    arrays.small(group, "x", data, ["row"], fill=-1)
    back = zarr.open_array(tmp_path / "run" / "x", mode="r")
    np.testing.assert_array_equal(back[:], data)


@pytest.mark.parametrize("rows", [0, 3, 2345])
def test_a_small_string_array_is_the_files_zarr_writes(tmp_path, monkeypatch, rows):
    """Channel labels and the like: chunks encoded without zarr, byte for byte what zarr
    itself writes for the same strings, and read back as given."""
    monkeypatch.setattr(layout, "COLUMN_CHUNK", 1000)
    group = zarr.open_group(tmp_path / "run", mode="a", zarr_format=3)
    data = np.array([f"CH{i} \u00e9" if i % 5 else "" for i in range(rows)])
    arrays.small(group, "ours", data, ["channel"])
    theirs = arrays.column(group, "theirs", str, 1000, ["channel"], rows=rows)
    if rows:
        theirs[:] = data
    assert list(zarr.open_array(tmp_path / "run" / "ours", mode="r")[:]) == data.tolist()
    files = sorted(p.name for p in (tmp_path / "run" / "ours").glob("c.*"))
    assert files == sorted(p.name for p in (tmp_path / "run" / "theirs").glob("c.*"))
    for name in files:
        mine, zarrs = (tmp_path / "run" / a / name for a in ("ours", "theirs"))
        assert mine.read_bytes() == zarrs.read_bytes()
