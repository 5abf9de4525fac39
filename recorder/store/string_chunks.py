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

import numpy as np
import zarr
from numcodecs import VLenUTF8, Zstd  # type: ignore[import-untyped]
from zarr.codecs import ZstdCodec
from zarr.codecs.vlen_utf8 import VLenUTF8Codec
from zarr.core.metadata import ArrayV3Metadata

from recorder.store.chunk_io import chunk_file, replace_file

_VLEN = VLenUTF8()

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
    fill = "" if fill is None else str(fill)
    items = _Items()
    count = rows.to_bytes(4, "little")
    padding = _item(fill)

    def encode(values: Sequence[str]) -> bytes:
        if items.useful:
            data = b"".join(
                [count, *map(items.__getitem__, values), padding * (rows - len(values))]
            )
            items.judge(len(values))
        else:  # values that rarely repeat: numcodecs encodes them faster than one by one
            cells = np.full(rows, fill, dtype=object)
            cells[: len(values)] = values
            data = _VLEN.encode(cells)
        return bytes(compress(data) if compress is not None else data)

    return encode


def _item(value: str) -> bytes:
    """A string as VLenUTF8 holds it: uint32 little-endian byte length, then UTF-8 (strict,
    as numcodecs: surrogates were escaped before)."""
    raw = value.encode("utf-8")
    return len(raw).to_bytes(4, "little") + raw


class _Items(dict):
    """Short strings -> their items. A chunk of a string column is rewritten at every flush,
    and its values mostly repeat (a stream name, an Open Ephys stream's channel names):
    joining cached items costs a third of numcodecs' encoding of an object array of them, and
    makes the same bytes. A column whose values mostly miss (ever new strings: a miss costs
    several times numcodecs' work) goes back to numcodecs for good (`useful`). At most
    _ITEMS strings of at most _ITEM_CHARS are kept: about 100 KiB a column."""

    def __init__(self) -> None:
        super().__init__()
        self.missed = self.looked = 0
        self.useful = True

    def judge(self, looked: int) -> None:
        """After `looked` more lookups: useful while at most half of all missed, judged once
        there were a few thousand (the first values of a column all miss)."""
        self.looked += looked
        self.useful = self.looked < _JUDGED_AFTER or 2 * self.missed <= self.looked

    def __missing__(self, value: str) -> bytes:
        item = _item(value)
        self.missed += 1
        if len(value) <= _ITEM_CHARS:
            if len(self) >= _ITEMS:
                self.clear()
            self[value] = item
        return item


_ITEMS = 1024
_ITEM_CHARS = 64
_JUDGED_AFTER = 4 * _ITEMS


def write_chunks(array: zarr.Array, encode: Encode, first: int, values: Sequence[str]) -> None:
    """`values` as chunks first, first + 1, ... of `array` (`encode` is its encoder; the last
    chunk padded with the fill value)."""
    rows = int(array.chunks[0])
    for k in range(0, len(values), rows):
        write(array, first + k // rows, encode(values[k : k + rows]))


def write(array: zarr.Array, index: int, data: bytes) -> None:
    """Chunk `index`'s file, replaced at once (temp and rename, as LocalStore does)."""
    path = chunk_file(array, index)
    assert path is not None, "encoder() said the array has chunk files"
    replace_file(path, data)
