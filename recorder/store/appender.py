"""Chunk-aligned appends to one growing zarr array.

zarr has no cheap append: each call rewrites metadata and the touched chunks. So rows gather in
memory and reach zarr in as few calls as possible. The tail of the last, partial chunk stays in
memory after a write, so the next write covers that chunk again from its start and zarr never
has to read a chunk back. `spill()` writes only whole chunks (keeps memory bounded between flushes
when frames are large); `flush()` writes everything, partial chunk included.
"""

from __future__ import annotations

import numpy as np
import zarr


class ChunkedAppender:
    def __init__(self, array: zarr.Array, rows: int = 0):
        self.array = array
        self.row_shape = tuple(array.shape[1:])
        self.dtype = array.dtype
        self.chunk = int(array.chunks[0])
        self.rows = rows  # rows appended so far (written or pending)
        self.base = rows - rows % self.chunk  # first row held in self.buf
        self.persisted = rows  # rows zarr holds
        self.buf = self._alloc(self.chunk)
        self.held = rows - self.base  # rows in buf (tail of a partial chunk written earlier)
        if self.held:
            self.buf[: self.held] = array[self.base : rows]

    def _alloc(self, n: int) -> np.ndarray:
        if self.dtype.kind in "OTU":  # variable-length strings
            return np.empty((n, *self.row_shape), dtype=object)
        return np.empty((n, *self.row_shape), dtype=self.dtype)

    def _reserve(self, extra: int) -> None:
        need = self.held + extra
        if need > len(self.buf):
            cap = max(need, 2 * len(self.buf))
            cap += -cap % self.chunk
            grown = self._alloc(cap)
            grown[: self.held] = self.buf[: self.held]
            self.buf = grown

    @property
    def pending_rows(self) -> int:
        return self.rows - self.persisted

    def append(self, value) -> None:
        self._reserve(1)
        self.buf[self.held] = value
        self.held += 1
        self.rows += 1

    def extend(self, values) -> None:
        n = len(values)
        self._reserve(n)
        self.buf[self.held : self.held + n] = values
        self.held += n
        self.rows += n

    def slot(self, n: int) -> np.ndarray:
        """Reserve n rows and return them for the caller to fill in place (saves one copy)."""
        self._reserve(n)
        view = self.buf[self.held : self.held + n]
        self.held += n
        self.rows += n
        return view

    def spill(self) -> None:
        """Write the whole chunks gathered so far; keep the partial one in memory."""
        whole = self.held - self.held % self.chunk
        if whole == 0 or self.base + whole <= self.persisted:
            return
        self._write(whole)
        rest = self.held - whole
        if rest:
            self.buf[:rest] = self.buf[whole : self.held]
        self.base += whole
        self.held = rest

    def flush(self) -> None:
        """Write every row appended so far (the partial chunk too, from its start)."""
        if self.rows == self.persisted:
            return
        self._write(self.held)
        whole = self.held - self.held % self.chunk
        if whole:
            rest = self.held - whole
            self.buf[:rest] = self.buf[whole : self.held]
            self.base += whole
            self.held = rest

    def _write(self, n: int) -> None:
        end = self.base + n
        if self.array.shape[0] < end:
            self.array.resize((end, *self.row_shape))
        self.array[self.base : end] = self.buf[:n]
        self.persisted = max(self.persisted, end)
