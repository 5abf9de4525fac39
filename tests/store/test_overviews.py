"""Overview levels (store/overviews.py): min/max per bucket equal numpy's over the raw rows,
NaN cells ignored, gaps in the placed array, integer samples, and reading a run being recorded
(levels written only in part: the rest from finer levels and raw rows)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import zarr

from recorder.store import overviews

pytestmark = pytest.mark.timeout(60)


def _values(tmp_path, data: np.ndarray) -> zarr.Group:
    g = zarr.open_group(tmp_path / "fam", mode="w", zarr_format=3)
    a = g.create_array("v", shape=data.shape, chunks=(4096, data.shape[1]), dtype=data.dtype,
                       fill_value=np.nan if data.dtype.kind == "f" else 0,
                       dimension_names=["sample", "channel"])  # fmt: skip
    a[:] = data
    return g


def _feed(g: zarr.Group, data: np.ndarray, chunk: int, *, finish: bool = True, skip=()):
    w = overviews.OverviewWriter(g, "v", data.shape[1], data.dtype)
    for k, r in enumerate(range(0, len(data), chunk)):
        if k not in skip:  # a chunk nobody filled is never fed (placed.py)
            w.feed(r, data[r : r + chunk])
    if finish:
        w.finish()
    return w


def _ref(data: np.ndarray, bucket: int) -> tuple[np.ndarray, np.ndarray]:
    n = -(-len(data) // bucket)
    pad = np.full((n * bucket - len(data), data.shape[1]), np.nan)
    d = np.concatenate([data.astype(np.float64), pad]).reshape(n, bucket, data.shape[1])
    with warnings.catch_warnings():  # all-NaN buckets: NaN, as the levels have them
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmin(d, axis=1), np.nanmax(d, axis=1)


def test_levels_with_nan_cells_and_an_unfilled_chunk(tmp_path):
    rng = np.random.default_rng(3)
    data = rng.normal(0, 100, (300_000, 3)).astype(np.float32)
    data[100:300, 1] = np.nan  # a dropped message: its cells stay NaN
    data[5000:5100, 2] = 1e6
    data[8192:12288] = np.nan  # chunk 2 (of 4096 rows) was never filled or fed
    g = _values(tmp_path, data)
    _feed(g, data, 4096, skip={2})
    found = overviews.levels(g, "v")
    assert [lv.bucket for lv in found] == [64, 1024]
    for lv in found:
        lo, hi = _ref(data, lv.bucket)
        assert lv.rows == len(lo)
        np.testing.assert_array_equal(lv.min[:], lo)
        np.testing.assert_array_equal(lv.max[:], hi)
    assert dict(g[overviews.group_name("v")].attrs)["complete"] is True


def test_integer_samples_are_summarised_exactly(tmp_path):
    data = (np.arange(50_000 * 2, dtype=np.int64).reshape(-1, 2) % 30011 - 15000).astype("<i2")
    g = _values(tmp_path, data)
    _feed(g, data, 3000)  # chunks that do not line up with the buckets
    (lv64, *_) = overviews.levels(g, "v")
    assert lv64.min.dtype == np.float32
    lo, hi = _ref(data, 64)
    np.testing.assert_array_equal(lv64.min[:], lo)
    np.testing.assert_array_equal(lv64.max[:], hi)


def test_a_run_being_recorded_reads_unwritten_rows_from_finer_data(tmp_path, monkeypatch):
    monkeypatch.setattr(overviews, "CHUNK_BYTES", 64 * 2 * 4)  # 64-row chunks of a level
    rng = np.random.default_rng(5)
    data = rng.normal(0, 1, (300_000, 2)).astype(np.float32)
    g = _values(tmp_path, data)
    _feed(g, data, 8192, finish=False)  # only whole chunks of each level are written
    found = overviews.levels(g, "v")
    assert found and all(lv.rows * lv.bucket < len(data) for lv in found), "some rows pending"
    p = overviews.Pyramid(g, "v", len(data), [0, 1])
    for r0, r1, points in [(0, len(data), 100), (1000, 250_000, 700), (299_000, 300_000, 50)]:
        env = p.envelope(r0, r1, points)
        assert env.start <= r0 and env.start + len(env.min) * env.width >= r1
        assert len(env.min) <= points + 1
        for j in range(len(env.min)):
            a, b = env.start + j * env.width, min(len(data), env.start + (j + 1) * env.width)
            np.testing.assert_array_equal(env.min[j], data[a:b].min(axis=0))
            np.testing.assert_array_equal(env.max[j], data[a:b].max(axis=0))


def test_reading_stops_when_cancelled(tmp_path):
    data = np.zeros((20_000, 2), np.float32)
    g = _values(tmp_path, data)
    p = overviews.Pyramid(g, "v", len(data), [0])

    def cancelled():
        raise overviews.Cancelled()

    p.check = cancelled
    with pytest.raises(overviews.Cancelled):
        p.envelope(0, len(data), 10)


def test_build_afterwards_equals_written_while_recording(tmp_path):
    rng = np.random.default_rng(7)
    data = rng.normal(0, 1, (100_000, 2)).astype(np.float32)
    g = _values(tmp_path, data)
    assert overviews.levels(g, "v") == []
    assert overviews.build(g, "v", len(data))
    built = overviews.levels(zarr.open_group(tmp_path / "fam", mode="r"), "v")
    lo, hi = _ref(data, 64)
    np.testing.assert_array_equal(built[0].min[:], lo)
    np.testing.assert_array_equal(built[0].max[:], hi)
    assert not overviews.build(g, "v", len(data)), "only once"
    assert not list((tmp_path / "fam").glob("*.building-*"))
