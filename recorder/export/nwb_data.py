"""hdmf chunk iterators over the store, so pynwb writes each dataset buffer by buffer while the
store is read block by block: memory stays flat however long the run."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from hdmf.data_utils import (  # type: ignore[import-untyped, unused-ignore]
    AbstractDataChunkIterator,
    DataChunk,
    GenericDataChunkIterator,
)

from recorder.export.base import Tally
from recorder.store.reader import StreamReader

_CHUNK_BYTES = 1 << 20  # HDF5 chunks of about 1 MiB
_BUFFER_BYTES = 32 << 20  # rows read from the store at once


def _shapes(rows: int, row_bytes: int, width: tuple[int, ...]) -> tuple[tuple, tuple]:
    """(chunk shape, buffer shape): whole rows, the buffer a multiple of the chunk."""
    chunk = max(1, min(rows, _CHUNK_BYTES // max(1, row_bytes)))
    buffer = max(chunk, (_BUFFER_BYTES // max(1, row_bytes)) // chunk * chunk)
    buffer = min(rows, buffer)
    return (chunk, *width), (buffer, *width)


class SegmentRows(GenericDataChunkIterator):
    """Rows [lo, hi) of a placed segment (samples x channels), read from the store a buffer at
    a time, exactly as stored (float32; NaN where no message filled a cell)."""

    def __init__(
        self, reader: StreamReader, segment: int, lo: int, hi: int, channels: int, tally: Tally
    ):
        self.reader, self.segment, self.lo, self.hi = reader, segment, lo, hi
        self.channels, self.tally = channels, tally
        self._dt = np.dtype(reader.segments[segment]["dtype"]).newbyteorder("=")
        chunk, buffer = _shapes(hi - lo, channels * self._dt.itemsize, (channels,))
        super().__init__(chunk_shape=chunk, buffer_shape=buffer)

    def _get_data(self, selection: tuple[slice, ...]) -> np.ndarray:
        rows = selection[0]
        data = self.reader.read_segment(self.segment, self.lo + rows.start, self.lo + rows.stop)
        self.tally.add(rows.stop - rows.start)
        return np.asarray(data[:, selection[1]], dtype=self._dt)

    def _get_maxshape(self) -> tuple[int, ...]:
        return (self.hi - self.lo, self.channels)

    def _get_dtype(self) -> np.dtype:
        return self._dt


class Counting(GenericDataChunkIterator):
    """first, first + 1, ... (n values, int64): the sample numbers of a series' rows."""

    def __init__(self, first: int, n: int):
        self.first, self.n = first, n
        chunk, buffer = _shapes(n, 8, ())
        super().__init__(chunk_shape=chunk, buffer_shape=buffer)

    def _get_data(self, selection: tuple[slice, ...]) -> np.ndarray:
        rows = selection[0]
        return np.arange(self.first + rows.start, self.first + rows.stop, dtype=np.int64)

    def _get_maxshape(self) -> tuple[int, ...]:
        return (self.n,)

    def _get_dtype(self) -> np.dtype:
        return np.dtype(np.int64)


class Blocks(AbstractDataChunkIterator):
    """A dataset of `n` rows of `row_shape` written from the arrays `make()` yields in order
    (each a block of rows); `n` must be what they add up to (the scan counted it)."""

    def __init__(
        self,
        make: Callable[[], Iterator[np.ndarray]],
        n: int,
        dtype: np.dtype | type,
        row_shape: tuple[int, ...] = (),
        tally: Tally | None = None,
    ):
        self.make, self.n, self._dtype = make, n, np.dtype(dtype)
        self.row_shape, self.tally = tuple(row_shape), tally
        self._blocks: Iterator[np.ndarray] | None = None
        self._pos = 0
        row_bytes = int(np.prod(row_shape, dtype=np.int64)) * self._dtype.itemsize
        self._chunk = _shapes(max(1, n), row_bytes, self.row_shape)[0]

    def __iter__(self) -> Blocks:
        return self

    def __next__(self) -> DataChunk:
        if self._blocks is None:
            self._blocks = self.make()
        for block in self._blocks:
            if len(block):
                data = np.asarray(block, dtype=self._dtype)
                lo, hi = self._pos, self._pos + len(data)
                if hi > self.n:
                    raise ValueError(f"more rows than the {self.n} counted")
                self._pos = hi
                if self.tally is not None:
                    self.tally.add(len(data))
                whole = tuple(slice(0, d) for d in self.row_shape)
                return DataChunk(data=data, selection=(slice(lo, hi), *whole))
        if self._pos != self.n:
            raise ValueError(f"{self._pos} rows written, {self.n} counted")
        raise StopIteration

    def recommended_chunk_shape(self) -> tuple[int, ...]:
        return self._chunk

    def recommended_data_shape(self) -> tuple[int, ...]:
        return (self.n, *self.row_shape)

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def maxshape(self) -> tuple[int, ...]:
        return (self.n, *self.row_shape)
