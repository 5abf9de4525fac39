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


def test_counting_takes_the_chunks_written_ahead_that_its_rows_cover(tmp_path, monkeypatch):
    """CountingAhead's chunk files wait inside another array's folder (zarr lists no members
    there) with no zarr.json; counting() moves those within its rows in (the same files, not
    encoded again), writes the rest itself and removes the folder: the array is the range."""
    monkeypatch.setattr(layout, "COLUMN_CHUNK", 1000)
    group = zarr.open_group(tmp_path / "run", mode="a", zarr_format=3)
    values = arrays.bulk(group, "values", np.float32, 100, ["sample", "channel"], row_shape=(4,))
    first = 5_000_000_123
    ahead = arrays.CountingAhead(values, "sample", first)
    ahead.write_until(999)  # no whole chunk yet
    ahead.write_until(3500)  # chunks 0, 1, 2
    staged = tmp_path / "run" / "values" / f"sample.{first}.compact"
    assert sorted(p.name for p in staged.iterdir()) == ["c.0", "c.1", "c.2"]
    assert list(zarr.open_group(tmp_path / "run", mode="r").keys()) == ["values"]
    inodes = [(staged / f"c.{k}").stat().st_ino for k in range(2)]
    whole_third = (staged / "c.2").read_bytes()
    arrays.counting(group, "sample", first, 2500, ["sample"], ahead_in=values)  # fewer rows
    folder = tmp_path / "run" / "sample"
    assert [(folder / f"c.{k}").stat().st_ino for k in range(2)] == inodes
    assert (folder / "c.2").read_bytes() != whole_third  # the partial last chunk is its own
    assert not staged.exists()
    back = zarr.open_array(folder, mode="r")
    np.testing.assert_array_equal(back[:], first + np.arange(2500, dtype=np.int64))


def test_counting_ahead_is_a_no_op_where_the_store_is_not_local(monkeypatch):
    monkeypatch.setattr(layout, "COLUMN_CHUNK", 1000)
    group = zarr.open_group(zarr.storage.MemoryStore(), mode="w", zarr_format=3)
    values = arrays.bulk(group, "values", np.float32, 100, ["sample", "channel"], row_shape=(4,))
    before = set(group.store_path.store._store_dict)
    arrays.CountingAhead(values, "sample", 0).write_until(5000)
    assert set(group.store_path.store._store_dict) == before
    arrays.counting(group, "sample", 0, 2500, ["sample"], ahead_in=values)
    np.testing.assert_array_equal(group["sample"][:], np.arange(2500))
