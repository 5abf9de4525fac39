"""Creates the arrays of a format-2 run: which codecs, chunks and dimension names each kind gets.

Two kinds, by how much data they hold and how fast it arrives:
- columns (per message, per frame, decoded scalars, row indexes): small, so zstd-compressed
  regular chunks; the padding of a column's last chunk compresses to nothing;
- bulk (the heap, typed arrays): sharded, so the last shard holds only the inner chunks its rows
  reached, and stored raw by default (chunk_io writes received frames into the shard file with
  no copy); a stream's `compression` trades that speed for disk.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec, ZstdCodec
from zarr.core.common import JSON

from recorder.store import layout

#: Chunk files sit in the array's folder as `c.0.0` (not `c/0/0`): fewer folders, and on most
#: file systems every folder takes a block of its own.
CHUNK_KEYS: dict[str, JSON] = {"name": "default", "configuration": {"separator": "."}}


def _compressors(compression: str, dtype: np.dtype) -> list | None:
    if compression == "zstd":
        return [ZstdCodec(level=3)]
    if compression == "blosc-zstd":  # bitshuffle suits detector images (counts in few bits)
        return [BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle", typesize=dtype.itemsize)]
    return None


def column(
    group: zarr.Group,
    name: str,
    dtype: Any,
    chunk_rows: int,
    dims: list[str],
    *,
    fill: Any = None,
    row_shape: tuple[int, ...] = (),
    attributes: dict[str, JSON] | None = None,
    overwrite: bool = False,
) -> zarr.Array:
    """A compressed, growing array of small rows (starts empty)."""
    if fill is None and np.dtype(dtype).kind not in "OTU":
        fill = 0
    return group.create_array(
        name,
        shape=(0, *row_shape),
        dtype=dtype,
        chunks=(chunk_rows, *row_shape),
        compressors=[ZstdCodec(level=layout.COLUMN_ZSTD_LEVEL)],
        fill_value=fill,
        attributes=attributes,
        dimension_names=dims,
        chunk_key_encoding=CHUNK_KEYS,
        config={"write_empty_chunks": True},
        overwrite=overwrite,
    )


def bulk(
    group: zarr.Group,
    name: str,
    dtype: Any,
    chunk_rows: int,
    dims: list[str],
    *,
    row_shape: tuple[int, ...] = (),
    compression: str = "none",
    fill: Any = 0,
    attributes: dict[str, JSON] | None = None,
) -> zarr.Array:
    """A sharded, growing array of large data (starts empty)."""
    dtype = np.dtype(dtype)
    if 0 in row_shape:  # rows of no values: nothing to shard (zarr cannot divide by 0)
        return group.create_array(
            name,
            shape=(0, *row_shape),
            dtype=dtype,
            chunks=(chunk_rows, *row_shape),
            compressors=None,
            fill_value=fill,
            attributes=attributes,
            dimension_names=dims,
            chunk_key_encoding=CHUNK_KEYS,
            config={"write_empty_chunks": True},
        )
    row_bytes = max(1, int(np.prod(row_shape, dtype=np.int64))) * dtype.itemsize
    shard, inner = layout.shard_rows(chunk_rows, row_bytes)
    return group.create_array(
        name,
        shape=(0, *row_shape),
        dtype=dtype,
        chunks=(inner, *row_shape),
        shards=(shard, *row_shape),
        compressors=_compressors(compression, dtype),
        fill_value=fill,
        attributes=attributes,
        dimension_names=dims,
        chunk_key_encoding=CHUNK_KEYS,
        config={"write_empty_chunks": False},
    )


def small(
    group: zarr.Group,
    name: str,
    data: np.ndarray,
    dims: list[str],
    attributes: dict[str, JSON] | None = None,
    fill: Any = None,
) -> zarr.Array:
    """A finished array written at once (coordinates made when a stream closes)."""
    arr = column(
        group,
        name,
        data.dtype if data.dtype.kind not in "OTU" else str,
        max(1, min(len(data), 1 << 20)),
        dims,
        fill=fill,
        attributes=attributes,
        overwrite=True,
    )
    if len(data):
        arr.resize((len(data),))
        arr[:] = data
    return arr
