"""String columns written without zarr's pipeline (store/string_chunks.py) are the chunk files
zarr itself writes for the same rows, byte for byte, and read back as the strings appended."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from recorder.store import arrays, string_chunks
from recorder.store.appender import BufferedAppender, appender_for
from recorder.store.chunk_io import chunk_file

pytestmark = pytest.mark.timeout(120)

VALUES = [f"s{i}" if i % 7 else f"\u00e9t\u00e9 {i} \U0001f600" for i in range(23)] + [""] * 3


# strings the encoder keeps, and lookups before it may judge them useless: all kept; or so
# few that most miss, and later chunks go through numcodecs
@pytest.mark.parametrize(("kept", "judged"), [(4096, 16384), (2, 4)])
@pytest.mark.parametrize("fill", ["", None])
def test_string_chunks_are_the_files_zarr_writes(tmp_path, fill, kept, judged, monkeypatch):
    monkeypatch.setattr(string_chunks, "_ITEMS", kept)
    monkeypatch.setattr(string_chunks, "_JUDGED_AFTER", judged)
    group = zarr.open_group(tmp_path / "g", mode="w")
    ours = arrays.column(group, "ours", str, 5, ["m"], fill=fill)
    theirs = arrays.column(group, "theirs", str, 5, ["m"], fill=fill)
    app = appender_for(ours)
    assert isinstance(app, BufferedAppender) and app.encode is not None
    for start, stop in ((0, 3), (3, 4), (4, 12), (12, 12), (12, 26)):  # partial chunks again
        app.extend(VALUES[start:stop])
        app.flush()
        assert list(ours[:stop]) == VALUES[:stop]
    theirs.resize(ours.shape)
    data = np.empty(len(VALUES), dtype=object)
    data[:] = VALUES
    theirs[: len(VALUES)] = data
    for index in range(-(-len(VALUES) // 5)):
        assert chunk_file(ours, index).read_bytes() == chunk_file(theirs, index).read_bytes()
    app.trim()
    assert list(zarr.open_array(tmp_path / "g" / "ours", mode="r")[:]) == VALUES


def test_arrays_zarr_must_write_are_left_to_it(tmp_path):
    group = zarr.open_group(tmp_path / "g", mode="w")
    numbers = arrays.column(group, "n", "int64", 5, ["m"])
    assert string_chunks.encoder(numbers) is None
    sharded = group.create_array("s", shape=(0,), dtype=str, chunks=(5,), shards=(10,))
    assert string_chunks.encoder(sharded) is None
