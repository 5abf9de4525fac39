"""Chunk-aligned appends to one growing zarr array.

zarr has no cheap append: each call rewrites metadata and the touched chunks. So rows gather in
memory per chunk and a full chunk is written at once; the partial last chunk is written at each
flush from what is still gathering, so the next flush rewrites that chunk from memory and no
chunk is ever read back. An array's shape grows by whole chunks, ahead of the rows (`grow`:
its metadata is rewritten a few times, not once per flush): readers use the stream's committed
counts, and `trim` cuts the shape to the rows when the array is finished. Three kinds, by what
the array's chunks hold:

- PieceAppender (the byte heap, typed payload segments): the received frames are streamed into
  the chunk file as they arrive when it is stored raw, and let go (a flush copies the file so
  far in the kernel); else a chunk is a list of views of them, encoded when full or at a flush.
- DirectAppender (per-message columns): values built in Python, gathered in a numpy chunk buffer.
- BufferedAppender (strings, non-native byte order): chunks zarr must encode; written through
  zarr at flush time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import zarr

from recorder.store import fast_nodes, string_chunks
from recorder.store.chunk_io import (
    ChunkStream,
    chunk_file,
    chunk_format,
    file_rows,
    write_chunk,
    write_rows,
)

SMALL_PIECE = 16 << 10  # pieces smaller than this are copied together ...
SMALL_RUN = 256 << 10  # ... into runs of about this much


AHEAD_CHUNKS = 64  # at most this many chunks of room made ahead of the rows at once


def grow(array: zarr.Array, rows: int) -> None:
    """Make room for `rows` rows: whole chunks, and as many again as the array has (up to
    AHEAD_CHUNKS more), so an array's metadata is rewritten a few times in its life, not at
    every flush (a stream has a dozen or more arrays, each a file write per growth). Rows
    past the committed counts are fill; `trim` cuts the shape to the rows at the end."""
    if array.shape[0] < rows:
        chunk = file_rows(array)
        have = array.shape[0] // chunk
        need = -(-rows // chunk)
        shape = (max(need, have + min(have, AHEAD_CHUNKS)) * chunk, *array.shape[1:])
        fast_nodes.resize(array, shape)  # zarr's own: ~1 ms async round trip


def trim(array: zarr.Array, rows: int) -> None:
    """The final shape: exactly the rows written. Rows are written in order, so no chunk file
    lies past the one holding the last row unless the one right after it exists: then zarr
    cuts the array (and deletes them); else only the metadata changes (a Karabo stream has
    dozens of arrays, and zarr's resize is a ~1 ms async round trip each)."""
    if array.shape[0] == rows:
        return
    shape = (rows, *array.shape[1:])
    rows_per_file = file_rows(array)
    whole_rows = tuple(array.chunks[1:]) == tuple(array.shape[1:])  # one file per row range
    after = chunk_file(array, -(-rows // rows_per_file)) if whole_rows else None
    if after is not None and not after.exists():
        fast_nodes.resize(array, shape)
    else:
        array.resize(shape)


def appender_for(array: zarr.Array, *, pieces: bool = False) -> Appender:
    if chunk_format(array) is None:
        return BufferedAppender(array)
    if pieces:
        return PieceAppender(array)
    return DirectAppender(array)


class PieceAppender:
    """Rows (or bytes, for a 1-D uint8 heap) written from the caller's buffers.

    A raw chunk on a local store is streamed into its file as rows arrive and nothing is kept
    (ChunkStream); any other chunk is kept as references to the caller's buffers until it is
    written. The caller must not change a buffer after handing it over: received frames never
    change.
    """

    def __init__(self, array: zarr.Array):
        self.array = array
        self.stream = ChunkStream(array)
        self.streamed = self.stream.local  # else: the chunk is kept in `pieces` until written
        self.row_shape = tuple(array.shape[1:])
        self.dtype = array.dtype  # zarr computes it on every access: asked once per row here
        self.row_bytes = max(1, int(np.prod(self.row_shape))) * self.dtype.itemsize
        self.chunk_rows = file_rows(array)
        self.chunk_bytes = self.chunk_rows * self.row_bytes
        self.pieces: list = []
        # small pieces are copied together (one list entry per SMALL_RUN bytes, not per train
        # of a Karabo scalar) and written with the next large piece, in one system call: the
        # chunk is `pieces` then `small`
        self.small = bytearray()
        self.fill = 0  # bytes gathered for the current chunk
        self.index = 0  # current chunk
        self.rows = 0
        self.persisted = 0

    def _put(self, *pieces) -> None:
        """Small bytes gathered so far, then `pieces`, become the chunk's next bytes: one
        system call for all of them when the chunk is streamed."""
        small = self.small
        if small:
            self.small = bytearray()
            pieces = (small if self.streamed else bytes(small), *pieces)
        if not pieces:
            return
        if self.streamed:
            self.stream.write(self.index, *pieces)
        else:
            self.pieces.extend(pieces)

    def _next_chunk(self) -> None:
        """The chunk is full (its bytes all put): in place, and the next one begins."""
        self.stream.finish(self.index, self.pieces)
        self.index += 1
        self.pieces, self.fill = [], 0

    def _add(self, view: memoryview) -> None:
        while view.nbytes:
            take = min(self.chunk_bytes - self.fill, view.nbytes)
            piece = view[:take] if take < view.nbytes else view
            if take < SMALL_PIECE:
                self.small += piece
                if len(self.small) >= SMALL_RUN:
                    self._put()
            else:
                self._put(piece)
            self.fill += take
            view = view[take:]
            if self.fill == self.chunk_bytes:
                self._put()
                self._next_chunk()

    def extend_pieces(self, pieces: Sequence, rows: int) -> None:
        """Append `rows` rows held in consecutive buffers of the array's dtype (a received frame
        per message, say), in order: as they are, with one system call per chunk file, where
        joining them first would copy every byte once more (`_add` takes one buffer)."""
        pending: list = []
        for piece in pieces:
            view = np.ascontiguousarray(piece).reshape(-1).view(np.uint8).data  # as they are
            while view.nbytes:
                take = min(self.chunk_bytes - self.fill, view.nbytes)
                pending.append(view[:take] if take < view.nbytes else view)
                self.fill += take
                view = view[take:]
                if self.fill == self.chunk_bytes:
                    self._put(*pending)
                    pending = []
                    self._next_chunk()
        self._put(*pending)
        self.rows += rows

    def extend(self, data) -> None:
        """Append bytes (1-D uint8 arrays only)."""
        view = memoryview(data).cast("B")
        self._add(view)
        self.rows += view.nbytes

    def append(self, row: np.ndarray) -> None:
        """Append one row of the array's dtype and row shape."""
        row = np.ascontiguousarray(row, dtype=self.dtype)
        self._add(row.reshape(-1).view(np.uint8).data)
        self.rows += 1

    def append_repeat(self, value, n: int) -> None:
        self.extend_rows(np.full(n, value, dtype=self.dtype))

    def extend_rows(self, rows: np.ndarray) -> None:
        """Append the rows of an array of rows (its first axis), e.g. a train's pulses."""
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.size:
            self._add(rows.reshape(-1).view(np.uint8).data)
        self.rows += len(rows)

    def flush(self) -> None:
        """Everything appended is in the store when this returns (the partial chunk too)."""
        if self.rows == self.persisted:
            return
        if self.fill:
            rows = -(-self.fill // self.row_bytes)
            if self.streamed:
                self._put()
                self.stream.commit(self.index, rows)
            else:
                write_chunk(self.array, self.index, [*self.pieces, bytes(self.small)], rows)
        grow(self.array, self.rows)
        self.persisted = self.rows

    def trim(self) -> None:
        trim(self.array, self.persisted)

    def close(self) -> None:
        self.stream.abort()
        self.pieces = []  # the received frames they point to can go
        self.small = bytearray()


class DirectAppender:
    """Values gathered in a numpy chunk buffer; a full chunk is written at once."""

    def __init__(self, array: zarr.Array):
        self.array = array
        self.row_shape = tuple(array.shape[1:])
        self.dtype = array.dtype
        self.chunk = file_rows(array)
        self._fill_value = array.fill_value
        self.cur = self._new_buffer()
        self.fill = 0  # rows in cur
        self.index = 0  # chunk index of cur
        self.rows = 0
        self.persisted = 0

    def _new_buffer(self) -> np.ndarray:
        # rows not appended yet read as the fill value (the missing value of a scalar column)
        fill = self._fill_value
        return np.full((self.chunk, *self.row_shape), 0 if fill is None else fill, self.dtype)

    def _next_buffer(self) -> None:
        write_rows(self.array, self.index, self.cur)
        self.index += 1
        self.fill = 0
        self.cur = self._new_buffer()

    def append(self, value) -> None:
        self.cur[self.fill] = value
        self.fill += 1
        self.rows += 1
        if self.fill == self.chunk:
            self._next_buffer()

    def extend_rows(self, rows) -> None:
        self.extend(rows)

    def append_repeat(self, value, n: int) -> None:
        """`n` rows of `value` (a ragged array's message index for each of its rows; a
        column's missing value for the messages since its last one, and a column of an
        event-only key grows by every data message between its values). The fill value is
        never assigned: the buffer's rows past `fill` hold it already, and a chunk that gets
        no other row is never written (a missing chunk reads as the fill value)."""
        skip = self._is_fill(value)
        while n:
            take = min(self.chunk - self.fill, n)
            if skip and take == self.chunk:  # a whole chunk of fill, in a buffer still fresh
                self.index += 1
                self.rows += take
                n -= take
                continue
            if not skip:
                self.cur[self.fill : self.fill + take] = value
            self.fill += take
            self.rows += take
            n -= take
            if self.fill == self.chunk:
                self._next_buffer()

    def _is_fill(self, value) -> bool:
        """Is a scalar `value` the array's fill value (NaN is NaN's)?"""
        fill = self._fill_value
        if fill is None or self.row_shape:
            return False
        return bool(value == fill) or (value != value and fill != fill)

    def extend(self, values) -> None:
        n, fill = len(values), self.fill
        if fill + n < self.chunk:  # inside the current chunk: one assignment (a batch of one
            if n == 1:  # message extends ten columns by one value each)
                self.cur[fill] = values[0]
            elif n:
                self.cur[fill : fill + n] = values
            self.fill = fill + n
            self.rows += n
            return
        values = np.asarray(values, dtype=self.dtype)
        done = 0
        while done < n:
            take = min(self.chunk - self.fill, n - done)
            self.cur[self.fill : self.fill + take] = values[done : done + take]
            self.fill += take
            done += take
            if self.fill == self.chunk:
                self._next_buffer()
        self.rows += n

    def flush(self) -> None:
        if self.rows == self.persisted:
            return
        if self.fill:  # the partial chunk, whole (compressed columns cannot be patched)
            write_rows(self.array, self.index, self.cur, self.fill)
        grow(self.array, self.rows)
        self.persisted = self.rows

    def trim(self) -> None:
        trim(self.array, self.persisted)

    def close(self) -> None:
        pass


class BufferedAppender:
    """Rows that zarr must encode: gathered, written through zarr at flush."""

    def __init__(self, array: zarr.Array):
        self.array = array
        self.row_shape = tuple(array.shape[1:])
        self.chunk = file_rows(array)
        self.rows = 0
        self.persisted = 0
        self.base = 0  # first row held in self.held
        self.held: list = []
        self.encode = string_chunks.encoder(array)  # strings: written without zarr

    def append(self, value) -> None:
        self.held.append(value)
        self.rows += 1

    def extend(self, values) -> None:
        self.held.extend(values)
        self.rows += len(values)

    def extend_rows(self, rows) -> None:
        self.extend(list(rows))

    def append_repeat(self, value, n: int) -> None:
        self.extend([value] * n)

    def flush(self) -> None:
        if self.rows == self.persisted:
            return
        end = self.base + len(self.held)
        grow(self.array, end)
        if self.encode is not None:  # whole chunks from memory, the last one padded
            string_chunks.write_chunks(self.array, self.encode, self.base // self.chunk, self.held)
        else:
            if self.array.dtype.kind in "OT":  # variable-length strings, one per row
                data = np.empty(len(self.held), dtype=object)
                data[:] = self.held
            else:
                data = np.asarray(self.held, dtype=self.array.dtype)
            self.array[self.base : end] = data
        keep = len(self.held) % self.chunk  # rewrite the partial chunk from memory next time
        whole = len(self.held) - keep
        self.held = self.held[whole:]
        self.base += whole
        self.persisted = end

    def trim(self) -> None:
        trim(self.array, self.persisted)

    def close(self) -> None:
        pass


class Appender(Protocol):
    """What every kind above offers: rows so far, and the array they go to."""

    array: zarr.Array
    rows: int
    persisted: int
    """Rows in the store at the last flush."""

    def append(self, value: Any, /) -> None: ...
    def extend(self, values: Any, /) -> None: ...
    def extend_rows(self, rows: Any, /) -> None: ...
    def append_repeat(self, value: Any, n: int, /) -> None: ...
    def flush(self) -> None: ...
    def trim(self) -> None: ...
    def close(self) -> None: ...
