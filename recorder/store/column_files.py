"""Reading a run's per-message columns from their chunk files, without zarr's read path.

A replay reads the message columns and the frame table (ten small 1-D arrays) in blocks of
4096 messages. Through zarr each read costs a trip through its event loop thread, and opening
each array another: ~20 ms of CPU before the first message of a replay and again at every
block, as much as sending 50 MiB. These arrays are plain: one dimension, regular chunks of
raw little-endian numbers, at most one zstd or blosc codec after them (layout.py), a chunk
file each, always whole (the writer pads the last). So their `zarr.json` is read once and the
chunk holding a block is decoded once with the codec zarr would use (numcodecs), and kept
for the next blocks. Anything else (another store, layout or codec, a chunk never written)
answers None, and the caller reads through zarr as before.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from numcodecs import Blosc, Zstd  # type: ignore[import-untyped]


def _decoder(codecs: list[dict[str, Any]], itemsize: int):
    """(bytes codec [+ zstd | blosc]) -> a decode function (None: raw), or False."""
    if not codecs or codecs[0].get("name") != "bytes":
        return False
    endian = (codecs[0].get("configuration") or {}).get("endian")
    if itemsize != 1 and endian not in (None, sys.byteorder):
        return False
    if len(codecs) == 1:
        return None
    if len(codecs) != 2:
        return False
    name = codecs[1].get("name")
    if name == "zstd":
        return Zstd().decode
    if name == "blosc":
        return Blosc().decode  # its header says how it was encoded
    return False


class ColumnFiles:
    """Rows of one 1-D array read from its chunk files; made by `open`, which answers None
    when zarr must read the array."""

    __slots__ = ("_chunk", "_data", "decode", "dtype", "folder", "rows_per_chunk", "sep")

    def __init__(self, folder: Path, dtype: np.dtype, rows: int, sep: str, decode) -> None:
        self.folder, self.dtype, self.rows_per_chunk = folder, dtype, rows
        self.sep, self.decode = sep, decode
        self._chunk = -1  # the chunk decoded last, and its rows
        self._data: np.ndarray | None = None

    @classmethod
    def open(cls, folder: Path | None) -> ColumnFiles | None:
        if folder is None:
            return None
        try:
            doc = json.loads((folder / "zarr.json").read_text())
        except (OSError, ValueError):
            return None
        try:
            if doc.get("zarr_format") != 3 or doc.get("node_type") != "array":
                return None
            if len(doc["shape"]) != 1 or doc["chunk_grid"]["name"] != "regular":
                return None
            encoding = doc["chunk_key_encoding"]
            if encoding["name"] != "default":
                return None
            sep = (encoding.get("configuration") or {}).get("separator", "/")
            dtype = np.dtype(doc["data_type"])
            if dtype.kind not in "biuf":
                return None
            decode = _decoder(doc["codecs"], dtype.itemsize)
            if decode is False:
                return None
            rows = int(doc["chunk_grid"]["configuration"]["chunk_shape"][0])
        except (KeyError, TypeError, ValueError, IndexError):
            return None
        return cls(folder, dtype, rows, sep, decode)

    def _read(self, index: int) -> np.ndarray | None:
        if index == self._chunk:
            return self._data
        try:
            raw = (self.folder / f"c{self.sep}{index}").read_bytes()
        except FileNotFoundError:
            return None  # never written: zarr gives its fill value
        data = np.frombuffer(raw if self.decode is None else self.decode(raw), dtype=self.dtype)
        if len(data) != self.rows_per_chunk:
            return None
        self._chunk, self._data = index, data
        return data

    def rows(self, start: int, stop: int) -> np.ndarray | None:
        """Rows [start, stop) (a copy, native order), or None: read them through zarr."""
        if stop <= start:
            return np.zeros(0, dtype=self.dtype.newbyteorder("="))
        n = self.rows_per_chunk
        parts = []
        for index in range(start // n, (stop - 1) // n + 1):
            data = self._read(index)
            if data is None:
                return None
            lo = max(start - index * n, 0)
            parts.append(data[lo : min(stop - index * n, n)])
        out = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return out.astype(self.dtype.newbyteorder("="), copy=True)
