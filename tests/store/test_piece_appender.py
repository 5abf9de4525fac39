"""PieceAppender.extend_pieces stores rows given as many buffers (a received frame per message)
exactly as the same rows given joined: across shard ends, after small rows still gathering,
raw (streamed into the shard file) and compressed (kept as views until written)."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from recorder.store import arrays
from recorder.store.appender import PieceAppender

pytestmark = pytest.mark.timeout(60)

ROW = (16, 8)  # 512 bytes of float32 a row
SHARD_ROWS = 300  # about 200 KiB a shard (384 rows): the pieces below cross several shard ends


def _appender(tmp_path, name: str, compression: str) -> PieceAppender:
    group = zarr.open_group(tmp_path / "run", mode="a", zarr_format=3)
    array = arrays.bulk(group, name, "<f4", SHARD_ROWS, ["row", "y", "x"], row_shape=ROW,
                        compression=compression)  # fmt: skip
    return PieceAppender(array)


def _read(tmp_path, name: str, rows: int) -> np.ndarray:
    array = zarr.open_array(tmp_path / "run" / name, mode="r")
    return array[:rows]


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_rows_given_as_pieces_read_back_as_rows_given_joined(tmp_path, compression):
    rng = np.random.default_rng(7)
    # a few rows joined first (under SMALL_PIECE: they gather in `small`), then pieces of
    # 1 to 40 rows, each a separate buffer, as ragged trains of pulses arrive
    head = rng.standard_normal((3, *ROW)).astype("<f4")
    pieces = [rng.standard_normal((int(k), *ROW)).astype("<f4") for k in rng.integers(1, 41, 60)]
    pieces[5] = rng.standard_normal((7, ROW[0], 2 * ROW[1])).astype("<f4")[:, :, ::2]  # strided
    expect = np.concatenate([head, *pieces])

    joined = _appender(tmp_path, "joined", compression)
    joined.extend_rows(head)
    joined.extend_rows(np.concatenate(pieces))
    given = _appender(tmp_path, "given", compression)
    given.extend_rows(head)
    given.extend_pieces(pieces, sum(len(p) for p in pieces))
    assert given.streamed == (compression == "none")
    assert given.rows == joined.rows == len(expect) > 3 * SHARD_ROWS
    for app in (joined, given):
        app.flush()
        app.trim()
        app.close()
    np.testing.assert_array_equal(_read(tmp_path, "given", len(expect)), expect)
    np.testing.assert_array_equal(_read(tmp_path, "joined", len(expect)), expect)
    files = {p.name: p.read_bytes() for p in (tmp_path / "run" / "given").iterdir()}
    assert files == {p.name: p.read_bytes() for p in (tmp_path / "run" / "joined").iterdir()}


def test_pieces_that_end_a_shard_exactly_leave_no_partial_file(tmp_path):
    """A shard filled to its last byte by a piece is finished at once (renamed into place),
    and a flush after it has nothing partial to copy."""
    app = _appender(tmp_path, "exact", "none")
    shard = app.chunk_rows  # a whole number of inner chunks: 384 rows
    rows = np.arange(2 * shard * 128, dtype="<f4").reshape(-1, *ROW)
    app.extend_pieces([rows[:shard], rows[shard:]], len(rows))
    assert app.index == 2 and app.fill == 0
    app.flush()
    app.close()
    files = sorted(p.name for p in (tmp_path / "run" / "exact").iterdir())
    assert files == ["c.0.0.0", "c.1.0.0", "zarr.json"]
    np.testing.assert_array_equal(_read(tmp_path, "exact", len(rows)), rows)
