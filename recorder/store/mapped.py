"""Reading raw-bytes chunks by mapping their files: the reader's twin of chunk_io.

A chunk of an uncompressed array in the machine's byte order is, on disk, exactly its values.
Mapping the file gives those values without a read copy, and replay hands slices of the map
to zmq, which sends them straight from the page cache (zarr's own read path costs about as much
as the network send itself for 1 MiB frames). Anything else — other stores, encoded chunks, a
chunk never written (fill value) — goes through zarr as usual.
"""

from __future__ import annotations

import mmap
import os
from collections import OrderedDict

import numpy as np
import zarr

from recorder.store.chunk_io import (
    ChunkFormat,
    chunk_file,
    chunk_format,
    contiguous_rows,
    file_rows,
)
from recorder.store.nodes import read_rows

_MAPS_KEPT = 8  # chunks kept mapped: a few, so frames straddling chunk ends stay cheap
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # fault the whole chunk in with one call


def mappable(array: zarr.Array) -> bool:
    """Raw rows in local files: a format-1 raw chunk, or a format-2 uncompressed shard."""
    fmt = chunk_format(array)
    return fmt is not None and fmt.raw and chunk_file(array, 0) is not None


class MappedWindow:
    """`get(start, count)` -> rows [start, start + count) of a mapped raw-bytes array."""

    def __init__(self, array: zarr.Array, limit: int):
        self.array, self.limit = array, limit
        self.chunk = file_rows(array)
        self.row_shape = tuple(array.shape[1:])
        self.dtype = array.dtype
        fmt = chunk_format(array)
        assert fmt is not None, "only mappable arrays get a MappedWindow"
        self.fmt: ChunkFormat = fmt
        self.maps: OrderedDict[int, np.ndarray | None] = OrderedDict()

    def _chunk(self, index: int) -> np.ndarray | None:
        if index in self.maps:
            self.maps.move_to_end(index)
            return self.maps[index]
        path = chunk_file(self.array, index)
        try:
            fd = os.open(path, os.O_RDONLY) if path is not None else -1
        except FileNotFoundError:
            fd = -1  # never written: fill value, read through zarr
        if fd < 0:
            view = None
        else:
            try:
                mm = mmap.mmap(fd, 0, flags=mmap.MAP_SHARED | _POPULATE, prot=mmap.PROT_READ)
            finally:
                os.close(fd)
            view = self._rows_of(mm)
        self.maps[index] = view
        if len(self.maps) > _MAPS_KEPT:
            self.maps.popitem(last=False)  # the map closes when the last frame using it goes
        return view

    def _rows_of(self, mm: mmap.mmap) -> np.ndarray | None:
        """The rows a mapped chunk file holds in place: all of a raw chunk; of a shard, the
        inner chunks written in order from its start (None: laid out otherwise)."""
        fmt = self.fmt
        if fmt.inner_rows is None:
            return np.frombuffer(mm, dtype=self.dtype).reshape(-1, *self.row_shape)
        tail = fmt.index_bytes()
        if len(mm) < tail:
            return None
        rows = contiguous_rows(fmt, mm[len(mm) - tail :])
        if not rows:
            return None
        items = rows * fmt.row_bytes // self.dtype.itemsize
        return np.frombuffer(mm, dtype=self.dtype, count=items).reshape(-1, *self.row_shape)

    def get(self, start: int, count: int) -> np.ndarray:
        if count <= 0:
            return read_rows(self.array, start, start)
        first, last = start // self.chunk, (start + count - 1) // self.chunk
        chunks = [self._chunk(i) for i in range(first, last + 1)]
        lo = start - first * self.chunk
        hi = start + count - last * self.chunk  # rows needed from the last chunk
        # whole chunks, but the last may be a partly written shard holding the rows asked for
        views = [v for v in chunks if v is not None]
        whole = all(len(v) == self.chunk for v in views[:-1])
        if len(views) != len(chunks) or not whole or len(views[-1]) < hi:
            return read_rows(self.array, start, min(start + count, self.limit))  # let zarr
        if first == last:
            return views[0][lo : lo + count]
        # a frame straddling chunk ends (heap frames do): join just its own rows
        return np.concatenate([views[0][lo:], *views[1:-1], views[-1][:hi]])
