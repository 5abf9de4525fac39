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

from recorder.store.chunk_io import chunk_file, stores_native_bytes
from recorder.store.nodes import read_rows

_MAPS_KEPT = 8  # chunks kept mapped: a few, so frames straddling chunk ends stay cheap
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # fault the whole chunk in with one call


def mappable(array: zarr.Array) -> bool:
    return stores_native_bytes(array) and chunk_file(array, 0) is not None


class MappedWindow:
    """`get(start, count)` -> rows [start, start + count) of a mapped raw-bytes array."""

    def __init__(self, array: zarr.Array, limit: int):
        self.array, self.limit = array, limit
        self.chunk = int(array.chunks[0])
        self.row_shape = tuple(array.shape[1:])
        self.dtype = array.dtype
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
            view = np.frombuffer(mm, dtype=self.dtype).reshape(-1, *self.row_shape)
        self.maps[index] = view
        if len(self.maps) > _MAPS_KEPT:
            self.maps.popitem(last=False)  # the map closes when the last frame using it goes
        return view

    def get(self, start: int, count: int) -> np.ndarray:
        if count <= 0:
            return read_rows(self.array, start, start)
        first, last = start // self.chunk, (start + count - 1) // self.chunk
        chunks = [self._chunk(i) for i in range(first, last + 1)]
        views = [v for v in chunks if v is not None and len(v) == self.chunk]
        if len(views) != len(chunks):  # unusual: let zarr do it
            return read_rows(self.array, start, min(start + count, self.limit))
        lo = start - first * self.chunk
        if first == last:
            return views[0][lo : lo + count]
        # a frame straddling chunk ends (heap frames do): join just its own rows
        hi = start + count - last * self.chunk
        return np.concatenate([views[0][lo:], *views[1:-1], views[-1][:hi]])
