"""fast_nodes writes what zarr would: a node made, reshaped or given new attributes without
zarr's round trip reads back through zarr (a fresh open) exactly as if zarr had done it."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from recorder.store import fast_nodes
from recorder.store.appender import AHEAD_CHUNKS, grow, trim


@pytest.mark.timeout(30)
def test_new_attributes_of_a_group_and_an_array_read_back_through_zarr(tmp_path):
    root = zarr.open_group(tmp_path / "run", mode="w", zarr_format=3)
    group = root.create_group("g", attributes={"old": 1})
    array = group.create_array("a", shape=(4,), dtype="<f4", attributes={"old": 1})
    fast_nodes.put_attributes(group, {"levels": [{"bucket": 64, "rows": 3}], "nan": None})
    fast_nodes.put_attributes(array, {"reduce": "min"})
    assert dict(group.attrs) == {"levels": [{"bucket": 64, "rows": 3}], "nan": None}
    again = zarr.open_group(tmp_path / "run", mode="r")
    assert dict(again["g"].attrs) == {"levels": [{"bucket": 64, "rows": 3}], "nan": None}
    assert dict(again["g/a"].attrs) == {"reduce": "min"}  # replaced, as attrs.put does


@pytest.mark.timeout(30)
def test_a_shape_set_in_place_keeps_the_written_chunks(tmp_path):
    root = zarr.open_group(tmp_path / "run", mode="w", zarr_format=3)
    array = root.create_array("a", shape=(0, 2), chunks=(4, 2), dtype="<f4", fill_value=np.nan)
    assert fast_nodes.set_shape(array, (16, 2))  # grows ahead of the rows
    array[:6] = np.arange(12, dtype="<f4").reshape(6, 2)
    assert fast_nodes.set_shape(array, (6, 2))  # cut to the rows written: no chunk past them
    back = zarr.open_array(tmp_path / "run" / "a", mode="r")
    assert back.shape == (6, 2)
    np.testing.assert_array_equal(back[:], np.arange(12, dtype="<f4").reshape(6, 2))


@pytest.mark.timeout(30)
def test_a_store_that_is_not_local_is_left_to_zarr(tmp_path):
    root = zarr.open_group(zarr.storage.MemoryStore(), mode="w", zarr_format=3)
    array = root.create_array("a", shape=(0,), chunks=(4,), dtype="<i8")
    assert fast_nodes.set_shape(array, (8,)) is False
    assert array.shape == (0,)
    fast_nodes.put_attributes(array, {"k": "v"})  # through zarr
    assert dict(root["a"].attrs) == {"k": "v"}


@pytest.mark.timeout(30)
def test_an_array_grows_ahead_of_its_rows_a_few_times_not_at_every_flush(tmp_path):
    root = zarr.open_group(tmp_path / "run", mode="w", zarr_format=3)
    array = root.create_array("a", shape=(0,), chunks=(100,), dtype="<i8")
    shapes = []
    for rows in range(50, 200_001, 50):  # a flush every 50 rows
        grow(array, rows)
        assert array.shape[0] >= rows
        assert array.shape[0] % 100 == 0  # whole chunks
        assert array.shape[0] <= max(2 * rows, rows + AHEAD_CHUNKS * 100) + 100
        if not shapes or shapes[-1] != array.shape[0]:
            shapes.append(array.shape[0])
    assert len(shapes) < 50  # 4000 flushes, 2000 chunks: a few dozen metadata writes
    assert zarr.open_array(tmp_path / "run" / "a", mode="r").shape == array.shape


@pytest.mark.timeout(30)
def test_trim_cuts_to_the_rows_and_drops_chunks_past_them_when_there_are_any(tmp_path):
    root = zarr.open_group(tmp_path / "run", mode="w", zarr_format=3)
    plain = root.create_array("plain", shape=(0,), chunks=(4,), dtype="<i8", fill_value=-1)
    grow(plain, 10)  # room ahead: 12 rows or more
    plain[:10] = np.arange(10)
    trim(plain, 10)
    stale = root.create_array("stale", shape=(16,), chunks=(4,), dtype="<i8", fill_value=-1)
    stale[:] = np.arange(16)  # chunks 0-3 on disk
    trim(stale, 6)
    again = zarr.open_group(tmp_path / "run", mode="r")
    np.testing.assert_array_equal(again["plain"][:], np.arange(10))
    assert again["stale"].shape == (6,)
    assert not (tmp_path / "run" / "stale" / "c" / "2").exists()  # zarr deleted what lay past
    stale.resize((16,))  # grown again: the chunks that lay past the rows are gone, fill now
    np.testing.assert_array_equal(stale[8:], [-1] * 8)


@pytest.mark.timeout(30)
def test_a_node_opened_from_its_document_is_the_node_zarr_opens(tmp_path):
    root = zarr.open_group(tmp_path / "run", mode="w", zarr_format=3)
    group = root.create_group("g/h", attributes={"k": [1, "two"]})
    array = group.create_array(
        "a", shape=(5, 2), chunks=(2, 2), dtype="<i4", fill_value=-1, dimension_names=["r", "c"]
    )
    array[:3] = np.arange(6, dtype="<i4").reshape(3, 2)
    again = zarr.open_group(tmp_path / "run", mode="r+", use_consolidated=False)
    fast_group = fast_nodes.open_node(again, "g/h")
    fast_array = fast_nodes.open_node(again["g"], "h/a")
    assert isinstance(fast_group, zarr.Group) and isinstance(fast_array, zarr.Array)
    assert fast_group.metadata == again["g/h"].metadata
    assert fast_array.metadata == again["g/h/a"].metadata
    assert fast_array.path == "g/h/a" and fast_group.path == "g/h"
    np.testing.assert_array_equal(fast_array[:], again["g/h/a"][:])  # reads, fill included
    fast_array[4] = [7, 8]  # and writes where zarr would
    assert again["g/h/a"][4].tolist() == [7, 8]
    with pytest.raises(KeyError):
        fast_nodes.open_node(again, "g/missing")
    with pytest.raises(KeyError):  # a path through an array's document is no node either
        fast_nodes.open_node(again, "g/h/a/zarr.json")


@pytest.mark.timeout(30)
def test_zarr_answers_for_what_open_node_does_not_read_itself(tmp_path):
    root = zarr.open_group(tmp_path / "run", mode="w", zarr_format=3)
    root.create_array("a", shape=(2,), dtype="<i8")
    zarr.consolidate_metadata(tmp_path / "run")
    consolidated = zarr.open_group(tmp_path / "run", mode="r")  # answers from the copy
    assert consolidated.metadata.consolidated_metadata is not None
    assert fast_nodes.open_node(consolidated, "a") is None
    (tmp_path / "run" / "bad").mkdir()
    (tmp_path / "run" / "bad" / "zarr.json").write_text("{not json")
    assert fast_nodes.open_node(root, "bad") is None  # zarr raises its own error for it
    memory = zarr.open_group(zarr.storage.MemoryStore(), mode="w", zarr_format=3)
    memory.create_array("a", shape=(2,), dtype="<i8")
    assert fast_nodes.open_node(memory, "a") is None
