"""Placed segments: 1-D sample blocks written into the cells of one 2-D (samples, channels) array.

Open Ephys sends one message per channel per block, each carrying the sample number of its first
value. Users want one (samples, channels) array per Open Ephys stream whose row r is sample
`first_sample + r`; replay needs every message back byte for byte. So each frame is *placed*
into its cells and the frame table records (row offset, column): no second copy of the data.

zarr rewrites a whole chunk on every write and chunks are never read back, so the newest rows
stay in numpy buffers that later placements can still fill: the chunk where the newest
placement starts, the one before it, and any after. Older chunks are final: written once and
dropped from memory. Open Ephys sends every channel of a block before the next block, so a block
is complete long before its rows become final. `flush()` writes the mutable chunks as they are;
later placements fill them in memory and the next flush rewrites them whole (temp file and
rename: a reader never sees half a chunk, and cells once written never change).

A placement that does not fit is never forced: `place` answers NEW_SEGMENT (sample numbers went
back, as after an acquisition restart or a repeat; a jump far ahead; a channel beyond the
array; another dtype or rate) or TO_HEAP (its rows are final already: late data), and the caller
stores the frame that way instead. Cells no frame filled read as NaN, the array's fill value,
so chunks nobody touched are never written at all.

The channel count fixes the chunk shape, and Open Ephys never announces it: placements are held
until the first block is complete (a placement at another sample number or a repeated channel
says so, or a flush forces it), then the array gets max channel + 1 columns.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import zarr
from zarr.core.common import JSON

from recorder.contracts import SegmentInfo
from recorder.protocols.base import BulkFrame
from recorder.store import arrays, compact, fast_nodes, layout, nodes
from recorder.store.appender import grow, trim
from recorder.store.chunk_io import chunk_file, chunk_format, write_rows
from recorder.store.overviews import OverviewWriter

NEW_SEGMENT = -1  # `place` answers: start a new segment and place the frame there
TO_HEAP = -2  # `place` answers: keep the frame verbatim in the heap


def placeable(b: BulkFrame) -> bool:
    """Can this frame be placed at all (else it goes to the heap)? Bounds keep memory finite."""
    a = b.array
    return (
        a.ndim == 1
        and a.size > 0
        and a.dtype.kind in "iuf"
        and a.dtype.isnative
        and b.row is not None
        and b.row >= 0
        and b.column is not None
        and 0 <= b.column < layout.PLACED_MAX_COLUMNS
    )


_BLOCK_COLUMNS = 8  # channels placed together by place_block: per block of 384 channels x
# 1024 samples from received frames, 4: 1.3 ms, 8: 0.87, 16: 1.06, 32: 1.6 (the value before)
_BEHIND_CHUNKS = 4  # final chunks handed to the finishing thread and not yet written
_SPARE_BUFFERS = _BEHIND_CHUNKS  # finalized chunk buffers kept for reuse (as many as may come
# back at once: fewer, and the rest were freed while new ones were made, with their page faults)


class PlacedAppender:
    """One placed segment, array `path` of its family group (format 2: `data/continuous/<stream>/`);
    `info` is its entry in the stream's segment list."""

    def __init__(
        self,
        group: zarr.Group,
        path: str,
        info: SegmentInfo,
        first_message: int,
        compression: str = "none",
    ):
        self.group, self.path, self.info = group, path, info
        self.compression = compression
        self.first_message = first_message
        self.array: zarr.Array | None = None
        self.attrs: dict[str, JSON] = {}
        # a flush made the array before the first block was complete: channels that block
        # still brings widen the array instead of starting a new segment
        self.widenable = False
        self.attrs_changed = False
        self.dtype: np.dtype | None = None
        self.rate: float | None = None
        self.first_sample = 0
        self.held: list[BulkFrame] = []  # the first block, until the channel count is known
        self.rows = 0  # rows up to the end of the furthest placement
        self.persisted = 0  # rows in the store at the last flush
        self.channels = self.chunk_rows = self.max_gap = 0
        self.col_end = np.zeros(0, dtype=np.int64)  # per column: end row of its last placement
        self.base = 0  # first chunk that may still change
        self.newest = 0  # start row of the furthest placement so far
        self.buffers: dict[int, np.ndarray] = {}  # mutable chunks
        self.spare: list[np.ndarray] = []  # finalized chunks' buffers, for the next ones
        self.dirty: set[int] = set()  # buffers changed since they were last written
        self.fill = np.nan
        self.native = True  # chunks written as raw bytes (else through zarr's codecs)
        self.overview: OverviewWriter | None = None  # min/max levels of final chunks
        self.finisher: ThreadPoolExecutor | None = None  # writes and reduces final chunks
        self.finishing: deque[Future] = deque()  # its jobs, oldest first
        # the `sample` coordinate's whole chunks, as final chunks pass (coordinates.py)
        self.sample_ahead: arrays.CountingAhead | None = None

    def place(self, b: BulkFrame) -> int:
        """Put the frame's values in their cells: its row offset, or NEW_SEGMENT / TO_HEAP."""
        assert b.row is not None and b.column is not None, "only placeable frames are placed"
        if self.dtype is None:
            self.dtype, self.rate, self.first_sample = b.array.dtype, b.sample_rate, b.row
        elif b.array.dtype != self.dtype or b.sample_rate != self.rate:
            return NEW_SEGMENT
        if self.array is None:
            if b.row == self.first_sample and all(h.column != b.column for h in self.held):
                self.held.append(b)
                return 0
            self._create()
        return self._put(b)

    def place_block(
        self,
        row: int,
        cols: list[int],
        arrays: list[np.ndarray],
        names: list[str | None],
        rate: float | None,
    ) -> int | None:
        """Place one block of several channels at once (Open Ephys sends one message per
        channel per block: same first sample, same length, distinct channels). The same cells
        and attributes as place() one frame after the other, in one numpy assignment per
        chunk; None (nothing changed) where place() would have anything else to do: a new
        layout, a first block still held, a widening, a late block. Else the row offset."""
        if self.array is None or not arrays or rate != self.rate:
            return None
        a0 = arrays[0]
        n = len(a0)
        if a0.dtype != self.dtype or n == 0:
            return None
        r0, cr = row - self.first_sample, self.chunk_rows
        c0, k_cols = cols[0], len(cols)
        # channels c0, c0+1, ... (how Open Ephys sends them): a plain slice, not fancy indexing,
        # and its bounds without a reduction over the channels
        contiguous = cols[-1] - c0 == k_cols - 1 and cols == list(range(c0, c0 + k_cols))
        listed = None if contiguous else np.asarray(cols, dtype=np.int64)
        col_idx = slice(c0, c0 + k_cols) if listed is None else listed
        low, high = (c0, c0 + k_cols - 1) if contiguous else (min(cols), max(cols))
        if (
            r0 < 0
            or low < 0
            or high >= self.channels
            or r0 < int(self.col_end[col_idx].max())
            or r0 - self.rows > self.max_gap
            or r0 // cr < self.base
        ):
            return None
        if r0 > 0:
            self.widenable = False
        known = self.attrs.get("channel_names")
        if not (isinstance(known, list) and "" not in known):  # else every name is known
            for c, name in zip(cols, names, strict=True):
                if name is not None and (not isinstance(known, list) or known[c] == ""):
                    self._note_name(c, name)
                    known = self.attrs.get("channel_names")
        # a few channels at a time: (samples, 384 channels) at once is a transpose that misses
        # the cache on every value (4x slower than these narrow ones, which stay in it). The
        # part is copied side by side first (contiguous rows: memcpy speed) and its transpose
        # assigned: 3-5x faster than np.stack(part, axis=1), whose concatenate does the
        # strided copy and then the assignment copies again
        for j in range(0, k_cols, _BLOCK_COLUMNS):
            part = arrays[j : j + _BLOCK_COLUMNS]
            width = len(part)
            where = slice(c0 + j, c0 + j + width) if listed is None else listed[j : j + width]
            self._fill(r0, where, np.array(part).T)  # (n, channels of this part)
        self.col_end[col_idx] = r0 + n
        return self._placed_at(r0, n)

    def _put(self, b: BulkFrame) -> int:
        assert b.row is not None and b.column is not None, "only placeable frames are placed"
        r0, c, n = b.row - self.first_sample, b.column, len(b.array)
        if c >= self.channels and self.widenable and r0 == 0:
            self._widen(c + 1)
        if r0 > 0:
            self.widenable = False  # the first block is over: a new channel is a new layout
        if b.channel_name is not None and c < self.channels:
            self._note_name(c, b.channel_name)
        if r0 < 0 or c >= self.channels or r0 < self.col_end[c] or r0 - self.rows > self.max_gap:
            return NEW_SEGMENT
        cr = self.chunk_rows
        if r0 // cr < self.base:
            return TO_HEAP
        self._fill(r0, c, b.array)
        self.col_end[c] = r0 + n
        return self._placed_at(r0, n)

    def _fill(self, r0: int, columns: int | slice | np.ndarray, values: np.ndarray) -> None:
        """Copy `values` (rows from r0 on; one column, or several side by side) into the
        chunk buffers, making the buffers they reach."""
        cr, n = self.chunk_rows, len(values)
        k, done = r0 // cr, 0
        while done < n:
            buf = self.buffers.get(k)
            if buf is None:
                buf = self.buffers[k] = self._new_buffer()
            lo = r0 + done - k * cr
            take = min(cr - lo, n - done)
            buf[lo : lo + take, columns] = values[done : done + take]
            self.dirty.add(k)
            done += take
            k += 1

    def _new_buffer(self) -> np.ndarray:
        """A chunk buffer of fill values: a finalized chunk's memory when one is spare (the
        finishing thread filled it, off this thread). Fresh memory costs a page fault per 4 KiB
        on first touch, and a 4 MiB chunk of a 384-channel stream is made every 2730 samples
        (np.full was 3 % of the writer's time, the fill of a spare one 2-3 %)."""
        shape = (self.chunk_rows, self.channels)
        while self.spare:
            buf = self.spare.pop()
            if buf.shape == shape and buf.dtype == self.dtype:
                return buf
        return np.full(shape, self.fill, self.dtype)

    def _placed_at(self, r0: int, n: int) -> int:
        """After placing rows r0..r0+n: the furthest row, and chunks that can no longer change
        written out. Returns r0, the placement's row offset."""
        self.rows = max(self.rows, r0 + n)
        if r0 > self.newest:
            self.newest = r0
            self._finalize(r0 // self.chunk_rows - 1)
        return r0

    def _finalize(self, base: int) -> None:
        """Chunks before `base` can no longer change: written once and reduced into the
        overview levels, then forgotten. On a thread of their own (`_finish`), in order: the
        file write and the min/max release the GIL, so they overlap the placing of the next
        blocks (in a recording they were a quarter of the writer thread's time, 4 ms a 4 MiB
        chunk). At most _BEHIND_CHUNKS wait; `_caught_up` is the barrier before a commit."""
        if base <= self.base:
            return
        for k in sorted(k for k in self.buffers if k < base):
            buf = self.buffers.pop(k)
            dirty = k in self.dirty
            self.dirty.discard(k)
            rows = self._reached(k)
            if self.finisher is None:
                self.finisher = ThreadPoolExecutor(1, thread_name_prefix="placed")
            while len(self.finishing) >= _BEHIND_CHUNKS:
                self.finishing.popleft().result()  # raises what the job raised
            self.finishing.append(self.finisher.submit(self._finish, k, buf, rows, dirty))
        self.base = base

    def _finish(self, k: int, buf: np.ndarray, rows: int, dirty: bool) -> None:
        """A final chunk to the store and the overview (the finishing thread's job)."""
        if dirty:
            self._write(k, buf, rows)
        self._to_overview(k, buf, rows)
        if self.sample_ahead is None:
            assert self.array is not None, "chunks are final only after the array is made"
            self.sample_ahead = arrays.CountingAhead(
                self.array, layout.SAMPLE_DIM, self.first_sample
            )
        self.sample_ahead.write_until((k + 1) * self.chunk_rows)  # later chunks were placed
        if len(self.spare) < _SPARE_BUFFERS:  # written and reduced: nothing refers to it
            buf.fill(self.fill)  # (numpy lets the GIL go: the writer goes on meanwhile)
            self.spare.append(buf)

    def _reached(self, k: int) -> int:
        """Rows of chunk k that placements reached so far."""
        return max(0, self.rows - k * self.chunk_rows)

    def _caught_up(self) -> None:
        """Every final chunk handed over is written (a failure is raised here)."""
        while self.finishing:
            self.finishing.popleft().result()

    def _create(self) -> None:
        """The first block is complete (or a flush came): make the array, place what was held."""
        held, self.held = self.held, []
        dtype = self.dtype
        assert dtype is not None, "the first placement set the dtype"
        self.channels = max(h.column or 0 for h in held) + 1
        row_bytes = self.channels * dtype.itemsize
        block = max(len(h.array) for h in held)
        # a chunk holds at least one block, so two mutable chunks hold the block being filled
        chunk_rows = max(1, layout.PLACED_CHUNK_BYTES // row_bytes, block)
        self.chunk_rows, _ = layout.shard_rows(chunk_rows, row_bytes)
        self.fill = np.nan if dtype.kind == "f" else 0
        attrs: dict[str, JSON] = {
            "name": self.info["name"],
            "first_message": self.first_message,
            "first_sample": self.first_sample,
        }
        if self.rate is not None:
            attrs["sample_rate"] = self.rate
        names = {
            h.column: layout.valid_text(h.channel_name) for h in held if h.channel_name is not None
        }
        if names:
            attrs["channel_names"] = [names.get(c, "") for c in range(self.channels)]
        scales = {h.column: float(h.scale) for h in held if h.scale is not None}
        if scales:  # values x scale = `units` (Open Ephys bit_volts), per channel
            attrs["scale"] = [scales.get(c) for c in range(self.channels)]
        units = [h.units for h in held if h.units]
        if units:
            attrs["units"] = layout.valid_text(units[0])
        self.attrs = attrs
        self.array = self._make_array(self.path)
        self.native = chunk_format(self.array) is not None
        self.info["shape"] = [self.channels]
        self.info["first_sample"] = self.first_sample
        rate = self.rate if self.rate and self.rate > 0 else None
        gap = layout.PLACED_MAX_GAP_SECONDS * rate if rate else layout.PLACED_MAX_GAP_ROWS
        self.max_gap = int(min(gap, 2**62))
        self.col_end = np.zeros(self.channels, dtype=np.int64)
        for h in held:
            self._put(h)  # fits: row 0, columns below the count, as many rows as a chunk

    def _note_name(self, c: int, name: str) -> None:
        """A channel's name first seen after the array was made (written at the next flush)."""
        names = self.attrs.get("channel_names")
        if not isinstance(names, list):
            names = [""] * self.channels
        if names[c] == "":
            names[c] = layout.valid_text(name)
            self.attrs["channel_names"] = names
            self.attrs_changed = True

    def _make_array(self, name: str) -> zarr.Array:
        assert self.dtype is not None, "the first placement set the dtype"
        return arrays.bulk(
            self.group,
            name,
            self.dtype,
            self.chunk_rows,
            [layout.SAMPLE_DIM, layout.CHANNEL_DIM],
            row_shape=(self.channels,),
            compression=self.compression,
            fill=self.fill,
            attributes=self.attrs,
        )

    def _widen(self, channels: int) -> None:
        """More channels for an array a flush made during the first block (compact.swap_in:
        the wider copy is written beside it, then swapped in; cells keep their rows/columns,
        so the frame table stays valid)."""
        if channels > layout.PLACED_MAX_COLUMNS or self.array is None:
            return
        if chunk_file(self.array, 0) is None:  # swapping folders needs a local store
            return
        self._caught_up()
        old = self.channels
        self.channels = channels
        for k, buf in self.buffers.items():
            wide = np.full((self.chunk_rows, channels), self.fill, self.dtype)
            wide[:, :old] = buf
            self.buffers[k] = wide
        self.col_end = np.concatenate([self.col_end, np.zeros(channels - old, np.int64)])
        for key in ("channel_names", "scale"):
            values = self.attrs.get(key)
            if isinstance(values, list):
                pad: JSON = "" if key == "channel_names" else None
                self.attrs[key] = [*values, *([pad] * (channels - old))]
        self.array = self._make_array(self.path + compact.NEW_SUFFIX)
        for k in sorted(self.buffers):
            self._write(k, self.buffers[k], self._reached(k))
        grow(self.array, self.persisted)
        self.dirty.clear()
        compact.swap_in(self.group, self.path)
        self.array = nodes.array(self.group, self.path)
        self.info["shape"] = [channels]

    def _write(self, k: int, buf: np.ndarray, rows: int) -> None:
        """Chunk k from `buf`, of which `rows` rows were reached by a placement."""
        array = self._created()
        if self.native:  # rows past the furthest placement are fill: not written (a shard)
            write_rows(array, k, buf, max(1, min(self.chunk_rows, rows)))
            return
        end = (k + 1) * self.chunk_rows  # zarr encodes it (another byte order)
        if array.shape[0] < end:
            array.resize((end, self.channels))
        array[k * self.chunk_rows : end] = buf

    def _created(self) -> zarr.Array:
        if self.array is None:
            self.widenable = True  # made by a flush: the first block may not be complete
            self._create()
        assert self.array is not None, "_create made it"
        return self.array

    def flush(self) -> None:
        """Everything placed so far is in the store when this returns."""
        array = self._created()
        self._caught_up()  # first: zarr's own writes (another byte order) resize the array
        for k in sorted(self.dirty):
            self._write(k, self.buffers[k], self._reached(k))
        self.dirty.clear()
        if self.attrs_changed:
            fast_nodes.update_attributes(array, self.attrs)
            self.attrs_changed = False
        grow(array, self.rows)
        self.persisted = self.rows

    def trim(self) -> None:
        if self.array is not None:
            trim(self.array, self.persisted)

    def _to_overview(self, k: int, buf: np.ndarray, rows: int) -> None:
        """A chunk no placement can change any more goes into the overview levels (its first
        `rows` rows: placements reached them)."""
        if self.overview is None:
            assert self.dtype is not None, "a chunk exists: the first placement set the dtype"
            self.overview = OverviewWriter(self.group, self.path, self.channels, self.dtype)
        self.overview.feed(k * self.chunk_rows, buf[:rows])

    def close(self) -> None:
        try:
            try:
                self._caught_up()
            finally:
                if self.finisher is not None:
                    self.finisher.shutdown()
                    self.finisher = None
            for k in sorted(self.buffers):
                self._to_overview(k, self.buffers[k], self._reached(k))
            if self.overview is not None:
                self.overview.finish()
        except OSError:  # a full disk: the levels are optional, the samples are committed
            pass
        self.buffers.clear()
        self.spare = []
        self.held = []
