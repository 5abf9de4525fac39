"""Chunks of string columns (vlen-utf8, zstd) encoded and written without zarr's pipeline.

A string column (a Karabo source list, a state, JSON text of lists) is written at every flush:
its partial chunk again from memory. Through zarr that is an async round trip, a read of the
chunk written at the last flush and a merge, several milliseconds a column a flush, more than
the column's values cost to encode. The chunk file is what zarr would make of the same rows (the
numcodecs VLenUTF8 encoding zarr's vlen-utf8 codec uses, then the same zstd), written with the
same temp-and-rename, so zarr reads it unchanged. Any other layout (sharded, another codec,
another store) is left to zarr.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import zarr
from numcodecs import Zstd  # type: ignore[import-untyped]
from zarr.codecs import ZstdCodec
from zarr.codecs.vlen_utf8 import VLenUTF8Codec
from zarr.core.metadata import ArrayV3Metadata

from recorder.store.chunk_io import chunk_file, replace_file

#: rows of one chunk (fewer: the rest are the fill value) -> the chunk file's bytes
Encode = Callable[[Sequence[str]], bytes]


def encoder(array: zarr.Array) -> Encode | None:
    """How this array's chunks are made from their strings, or None: zarr writes them."""
    meta = array.metadata
    if (
        not isinstance(meta, ArrayV3Metadata)
        or array.ndim != 1
        or array.dtype.kind not in "OT"
        or chunk_file(array, 0) is None
    ):
        return None
    codecs = meta.codecs
    if not codecs or not isinstance(codecs[0], VLenUTF8Codec) or len(codecs) > 2:
        return None
    compress: Callable[[bytes], bytes] | None = None
    if len(codecs) == 2:
        if not isinstance(codecs[1], ZstdCodec):
            return None
        z = Zstd.from_config({"level": codecs[1].level, "checksum": codecs[1].checksum})
        compress = z.encode
    rows = int(array.chunks[0])
    fill = array.fill_value
    items = _Items()
    count = rows.to_bytes(4, "little")
    padding = items["" if fill is None else str(fill)]

    def encode(values: Sequence[str]) -> bytes:
        data = b"".join([count, *map(items.__getitem__, values), padding * (rows - len(values))])
        return bytes(compress(data) if compress is not None else data)

    return encode


class _Items(dict):
    """String -> its VLenUTF8 item (uint32 little-endian byte length, then the UTF-8 bytes), for
    the strings seen last. A chunk of a string column is rewritten at every flush, and its
    values repeat (a stream name, an Open Ephys stream's few channel names): joining cached
    items costs a third of numcodecs' encoding of an object array of them, and makes the same
    bytes. At most _ITEMS are kept, so a column of ever new strings holds no more."""

    def __missing__(self, value: str) -> bytes:
        raw = value.encode("utf-8")  # strict, as numcodecs: surrogates were escaped before
        item = len(raw).to_bytes(4, "little") + raw
        if len(self) >= _ITEMS:
            self.clear()
        self[value] = item
        return item


_ITEMS = 4096


def write(array: zarr.Array, index: int, data: bytes) -> None:
    """Chunk `index`'s file, replaced at once (temp and rename, as LocalStore does)."""
    path = chunk_file(array, index)
    assert path is not None, "encoder() said the array has chunk files"
    replace_file(path, data)
