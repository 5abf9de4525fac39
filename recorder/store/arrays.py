"""Creates the arrays of a format-2 run: which codecs, chunks and dimension names each kind gets.

Two kinds, by how much data they hold and how fast it arrives:
- columns (per message, per frame, decoded scalars, row indexes): small, so zstd-compressed
  regular chunks; the padding of a column's last chunk compresses to nothing;
- bulk (the heap, typed arrays): sharded, so the last shard holds only the inner chunks its rows
  reached, and stored raw by default (chunk_io writes received frames into the shard file with
  no copy); a stream's `compression` trades that speed for disk.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec, ZstdCodec
from zarr.core.array_spec import ArrayConfigParams
from zarr.core.common import JSON
from zarr.core.metadata import ArrayV3Metadata
from zarr.storage import MemoryStore

from recorder.store import compact, fast_nodes, layout, string_chunks
from recorder.store.chunk_io import chunk_file, chunk_format, write_rows

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
    rows: int = 0,
    room: bool = False,
) -> zarr.Array:
    """A compressed, growing array of small rows (starts with `rows` rows of fill).

    `room`: made at least a chunk long, for a column a stream appends to. A stream has a few
    dozen of them, and growing each from 0 rows at the first flush rewrote every one's
    metadata while messages waited (1-2 ms a file on a busy writer). Rows past the committed
    counts are fill in any case; closing the stream cuts the shape to the rows written."""
    if room:
        rows = max(rows, chunk_rows)
    is_str = dtype is str or np.dtype(dtype).kind in "OTU"
    if fill is None and not is_str:
        fill = 0
    config: ArrayConfigParams = {"write_empty_chunks": True}

    def make() -> zarr.Array:
        return group.create_array(
            name,
            shape=(rows, *row_shape),
            dtype=dtype,
            chunks=(chunk_rows, *row_shape),
            compressors=[ZstdCodec(level=layout.COLUMN_ZSTD_LEVEL)],
            fill_value=fill,
            attributes=attributes,
            dimension_names=dims,
            chunk_key_encoding=CHUNK_KEYS,
            config=config,
            overwrite=overwrite,
        )

    kind = ("column", "str" if is_str else np.dtype(dtype).str, chunk_rows, row_shape, repr(fill))
    return fast_nodes.array(
        group,
        name,
        kind,
        make,
        attributes=attributes,
        dims=dims,
        config=config,
        overwrite=overwrite,
        shape=[rows, *row_shape],
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
    # rows of no values: nothing to shard or compress (zarr cannot divide a shard by 0)
    empty = 0 in row_shape
    row_bytes = max(1, int(np.prod(row_shape, dtype=np.int64))) * dtype.itemsize
    shard, inner = layout.shard_rows(chunk_rows, row_bytes)
    config: ArrayConfigParams = {"write_empty_chunks": empty}

    def make() -> zarr.Array:
        return group.create_array(
            name,
            shape=(0, *row_shape),
            dtype=dtype,
            chunks=((chunk_rows if empty else inner), *row_shape),
            shards=None if empty else (shard, *row_shape),
            compressors=None if empty else _compressors(compression, dtype),
            fill_value=fill,
            attributes=attributes,
            dimension_names=dims,
            chunk_key_encoding=CHUNK_KEYS,
            config=config,
        )

    kind = ("bulk", dtype.str, empty, chunk_rows, shard, inner, row_shape, compression, repr(fill))
    return fast_nodes.array(
        group, name, kind, make, attributes=attributes, dims=dims, config=config
    )


def small(
    group: zarr.Group,
    name: str,
    data: np.ndarray,
    dims: list[str],
    attributes: dict[str, JSON] | None = None,
    fill: Any = None,
) -> zarr.Array:
    """A finished 1-D array written at once (coordinates made when a stream closes)."""
    is_str = data.dtype.kind in "OTU"
    arr = column(
        group,
        name,
        str if is_str else data.dtype,
        layout.COLUMN_CHUNK,
        dims,
        fill=fill,
        attributes=attributes,
        overwrite=True,
        rows=len(data),
    )
    if is_str:
        _write_strings(arr, data)
        return arr
    _write_chunks(arr, len(data), lambda lo, hi: data[lo:hi])
    return arr


def _write_strings(arr: zarr.Array, data: np.ndarray) -> None:
    """A string array's chunks encoded and written directly where string_chunks can (zarr's
    own write of 384 channel names was 10-13 ms of a stream's close), else through zarr."""
    if not len(data):
        return
    encode = string_chunks.encoder(arr)
    values = data.tolist()
    if encode is None or not all(isinstance(v, str) for v in values):
        arr[:] = data
        return
    string_chunks.write_chunks(arr, encode, 0, values)


def counting(
    group: zarr.Group,
    name: str,
    first: int,
    rows: int,
    dims: list[str],
    attributes: dict[str, JSON] | None = None,
    ahead_in: zarr.Array | None = None,
) -> zarr.Array:
    """A finished int64 array of `rows` rows holding first, first + 1, ... (a placed array's
    sample numbers), made a chunk at a time: an hour of one Open Ephys stream is 10^8 samples,
    0.9 GB as one range in memory when the stream closes. Chunks a CountingAhead wrote in
    `ahead_in` are taken as they are."""
    arr = column(
        group,
        name,
        np.int64,
        layout.COLUMN_CHUNK,
        dims,
        attributes=attributes,
        overwrite=True,
        rows=rows,
    )

    done = _take_staged(
        arr, None if ahead_in is None else _staged_folder(ahead_in, name, first), rows
    )
    _write_chunks(
        arr, rows, lambda lo, hi: np.arange(first + lo, first + hi, dtype=np.int64), start=done
    )
    return arr


class CountingAhead:
    """The whole chunks of a future `counting(..., name, first, ..., ahead_in=holder)` array,
    written while its rows come in (a placed array's `sample` numbers, as the array's chunks
    become final), so the close does not encode them all: 0.3 s per 10^7 rows here, 3 s per
    hour of a 30 kHz stream.

    They wait in `<name>.<first>.compact` inside `holder`'s folder (an array's: zarr lists no
    members there, and the spool's upload and `recorder recover`'s cleanup pass over or remove
    `.compact` folders); counting() moves those its rows cover into the array it makes. Their
    bytes are what counting() would write: the same values, with the metadata of the same
    column() call. Local stores only (elsewhere a no-op)."""

    def __init__(self, holder: zarr.Array, name: str, first: int):
        self.first, self.done = first, 0
        folder = _staged_folder(holder, name, first)
        self.array: zarr.Array | None = None
        if folder is not None:
            memory = zarr.open_group(MemoryStore(), mode="w")
            template = column(memory, name, np.int64, layout.COLUMN_CHUNK, [])
            self.array = fast_nodes.unlisted_array(holder, folder.name, template)

    def write_until(self, rows: int) -> None:
        """Every whole chunk below row `rows` written (the array will have at least that many)."""
        chunk = layout.COLUMN_CHUNK
        while self.array is not None and (self.done + 1) * chunk <= rows:
            lo = self.first + self.done * chunk
            write_rows(self.array, self.done, np.arange(lo, lo + chunk, dtype=np.int64))
            self.done += 1


def _staged_folder(holder: zarr.Array, name: str, first: int) -> Path | None:
    folder = fast_nodes.local_folder(holder)
    return None if folder is None else folder / f"{name}.{first}{compact.NEW_SUFFIX}"


def _take_staged(arr: zarr.Array, staged: Path | None, rows: int) -> int:
    """Move the leading whole chunks written ahead (CountingAhead) that `rows` covers into
    `arr`, drop the rest: how many chunks were moved."""
    if staged is None or not staged.is_dir():
        return 0
    done, chunk = 0, layout.COLUMN_CHUNK
    if chunk_format(arr) is not None:
        while (done + 1) * chunk <= rows:
            target = chunk_file(arr, done)
            assert target is not None, "a staged folder exists on local stores only"
            try:
                os.replace(staged / target.name, target)
            except FileNotFoundError:
                break
            done += 1
    shutil.rmtree(staged, ignore_errors=True)
    return done


def _write_chunks(
    arr: zarr.Array, rows: int, values: Callable[[int, int], np.ndarray], start: int = 0
) -> None:
    """Every chunk of a numeric 1-D array from `values(lo, hi)` (rows lo to hi), from chunk
    `start` on: chunk files written directly, the last padded with the fill value; through
    zarr where it must encode them (another store or byte order)."""
    chunk = layout.COLUMN_CHUNK
    native = chunk_format(arr) is not None
    for k in range(start, -(-rows // chunk)):
        lo, hi = k * chunk, min(rows, (k + 1) * chunk)
        part = values(lo, hi)
        if not native:
            arr[lo:hi] = part
            continue
        buf = np.full(chunk, arr.fill_value, dtype=part.dtype)
        buf[: len(part)] = part
        write_rows(arr, k, buf, len(part))


def twin(
    group: zarr.Group,
    name: str,
    source: zarr.Array,
    attributes: dict[str, JSON] | None,
    dims: list[str] | None = None,
) -> None:
    """A second array holding the same values as `source` (another name, attributes and, if
    given, dimension names): the chunk files are linked, not encoded again (Open Ephys `time`
    is `sample` with a CF scale_factor; typed arrays of a train whose rows come from the same
    messages share their per-row coordinates)."""
    if dims is None:
        dims = [str(d) for d in source.metadata.dimension_names or []]  # type: ignore[union-attr]
    arr = column(
        group,
        name,
        source.dtype,
        layout.COLUMN_CHUNK,
        dims,
        fill=source.fill_value,
        attributes=attributes,
        overwrite=True,
        rows=source.shape[0],
    )
    src = chunk_file(source, 0)
    dst = chunk_file(arr, 0)
    if src is None or dst is None or not _same_chunks(arr, source):
        arr[:] = source[:]
        return
    for f in src.parent.glob("c.*"):
        target = dst.parent / f.name
        try:
            os.link(f, target)
        except OSError:
            shutil.copyfile(f, target)


def _same_chunks(a: zarr.Array, b: zarr.Array) -> bool:
    """The two arrays' chunk files are interchangeable: same shape, chunks, codecs and fill."""
    ma, mb = a.metadata, b.metadata
    return (
        isinstance(ma, ArrayV3Metadata)
        and isinstance(mb, ArrayV3Metadata)
        and ma.shape == mb.shape
        and ma.data_type == mb.data_type
        and ma.chunk_grid == mb.chunk_grid
        and ma.chunk_key_encoding == mb.chunk_key_encoding
        and ma.codecs == mb.codecs
        and np.array_equal(np.asarray(ma.fill_value), np.asarray(mb.fill_value), equal_nan=True)
    )
