"""Writes one stream of a run: message columns, frame table, heap, typed segments, rejects.

One writer per stream group (zarr has no locking). Frames that a protocol marks as bulk go into
typed arrays ("segments", one per run of equal shape and dtype; or, for placed frames, cells of
a (samples, channels) array, see placed.py), every other frame goes verbatim into the byte heap;
the frame table says where each frame's bytes are, so the reader can rebuild every message byte
for byte. Nothing counts as recorded until `flush()` has written it and then stored the committed
counts in the stream's attributes.
"""

from __future__ import annotations

import hashlib
import math
import operator
import re
import time
from collections.abc import Callable, Mapping, Sequence
from itertools import accumulate, chain
from operator import itemgetter
from typing import Any, NamedTuple

import numpy as np
import zarr

from recorder import protocols
from recorder.contracts import (
    ColumnValue,
    Committed,
    SegmentInfo,
    StreamAttrs,
    StreamConfig,
    StreamStats,
    WriteItem,
)
from recorder.protocols.base import (
    NO_SEQ,
    NO_TIME,
    AlikeRun,
    BulkFrame,
    Decoded,
    DecodedPart,
    FrameBytes,
    PlacedRun,
    Verbatim,
    frame_sizes,
)
from recorder.store import arrays, compact, coordinates, fast_nodes, file_jobs, layout, nodes
from recorder.store.appender import Appender, PieceAppender, appender_for, trim
from recorder.store.family_names import FamilyPaths
from recorder.store.gaps import GapCounter
from recorder.store.placed import NEW_SEGMENT, TO_HEAP, PlacedAppender, placeable

_BIG_FRAME = 64 << 10  # frames this large are copied into the heap on their own, not joined
_MSG = [layout.MESSAGE_DIM]


class _FrameRows:
    """Frame table rows of messages being appended. Small heap frames are gathered and joined
    into one copy; a frame of _BIG_FRAME bytes or more is copied on its own, in order."""

    def __init__(self, writer: StreamWriter):
        self.writer = writer
        self.seg: list[int] = []
        self.off: list[int] = []
        self.len: list[int] = []
        self.col: list[int] = []
        self.computed: tuple[np.ndarray, ...] | None = None  # or all rows at once (columns())
        self.small: list[FrameBytes] = []
        self.heap_pos = writer.heap.rows
        self.total = 0

    def placed(self, segment: int, row: int, column: int, length: int) -> None:
        """A frame whose bytes are cells of a typed segment."""
        self.seg.append(segment)
        self.off.append(row)
        self.len.append(length)
        self.col.append(column)
        self.total += length

    def heap(self, frame: FrameBytes) -> None:
        """A frame kept verbatim in the heap."""
        if not isinstance(frame, bytes):
            frame = _view_bytes(frame)
        length = len(frame)
        # placed() inlined: a Karabo train has a dozen heap frames
        self.seg.append(layout.HEAP_SEGMENT)
        self.off.append(self.heap_pos)
        self.len.append(length)
        self.col.append(layout.WHOLE_ROWS)
        self.total += length
        self.heap_pos += length
        if length >= _BIG_FRAME:
            self.writer._heap_put(self.small)
            self.small = []
            self.writer.heap.extend(frame)
        elif length:
            self.small.append(frame)

    def columns(self, seg, off, length, col, heap_bytes: bytes, total: int) -> None:
        """Rows computed in columns (append_run), with their heap bytes already joined."""
        self.computed = (seg, off, length, col)
        if heap_bytes:
            self.writer.heap.extend(heap_bytes)
        self.total = total

    def finish(self) -> None:
        self.writer._heap_put(self.small)
        self.small = []
        rows = self.computed or (self.seg, self.off, self.len, self.col)
        frames = self.writer.frames
        for name, values in zip(("segment", "offset", "length", "column"), rows, strict=True):
            frames[name].extend(values)


class _Family(NamedTuple):
    """One typed array of every message stored together (_store_alike)."""

    name: str
    frame: int  # -1: a typed copy (derived), no frame is its bytes
    ragged: bool
    dtype: np.dtype
    row_shape: tuple[int, ...]
    sizes: np.ndarray | None  # ragged: rows per message
    rows: np.ndarray | list[np.ndarray]  # joined already, or each message's array


_ALIKE_MIN = 8  # messages of one layout in a row stored together (_append_alike), at least


def _derived_array(d: tuple[str, np.ndarray] | BulkFrame) -> np.ndarray:
    return d.array if isinstance(d, BulkFrame) else d[1]


def _layout_key(item: WriteItem) -> tuple | None:
    """What must be the same for messages to be stored together (_append_alike): frame
    count, which frames are typed arrays of which name, dtype and row shape, the derived
    arrays and the column keys. None: a reject, a placed frame or anything unusual, which
    goes one by one. (Names must also be distinct: `_distinct_names` says so once per run.)"""
    _, frames, decoded, reason = item
    if reason is not None or decoded is None:
        return None
    n = len(frames)
    bulk = []
    for b in decoded.bulk:
        a = b.array
        if b.row is not None or b.column is not None or not 0 <= b.frame < n:
            return None
        if b.ragged and a.ndim >= 1:
            bulk.append((b.frame, b.name, a.dtype, a.shape[1:], True))
        else:
            bulk.append((b.frame, b.name, a.dtype, a.shape, False))
    derived = []
    for d in decoded.derived:
        name, a, r = (d.name, d.array, d.ragged) if isinstance(d, BulkFrame) else (*d, False)
        ragged = r and a.ndim >= 1
        derived.append((name, a.dtype, a.shape[1:] if ragged else a.shape, ragged))
    return (n, tuple(bulk), tuple(derived), tuple(decoded.columns))


def _distinct_names(key: tuple) -> bool:
    """A layout's arrays have distinct names (as stored) and frames; else its messages go one
    by one, in order."""
    _, bulk, derived, _ = key
    names = [k[1] for k in bulk] + [k[0] for k in derived]
    if len({layout.valid_text(x) for x in names}) != len(names):
        return False  # two arrays of one name in a message
    return len({k[0] for k in bulk}) == len(bulk)


def _row_dims(b: BulkFrame | None, array: np.ndarray, ragged: bool) -> list[str]:
    """Dimension names of a typed array: the row axis, then the source's names for the rest
    when it gave valid ones, else dim_1, dim_2 ..."""
    rest = array.ndim - 1 if ragged else array.ndim
    given = list(b.dims) if b is not None and b.dims else []
    first = layout.RAGGED_DIM if ragged else layout.STACKED_DIM
    if ragged and len(given) == array.ndim:
        first, given = given[0], given[1:]
    if len(given) != rest:
        given = [f"dim_{i + 1}" for i in range(rest)]
    dims = [first, *given]
    ok = all(isinstance(d, str) and d for d in dims) and len(set(dims)) == len(dims)
    if not ok or set(dims) & {layout.MESSAGE_DIM}:
        dims = [first if first != layout.MESSAGE_DIM else layout.RAGGED_DIM]
        dims += [f"dim_{i + 1}" for i in range(rest)]
    return [layout.valid_text(d)[:64] for d in dims]


_NBYTES = operator.attrgetter("nbytes")


def _view_bytes(frame: FrameBytes) -> memoryview:
    mv = frame if isinstance(frame, memoryview) else memoryview(frame)
    return mv.cast("B") if mv.format != "B" or mv.ndim != 1 else mv


class StreamWriter:
    def __init__(self, group: zarr.Group, attrs: StreamConfig):
        self.group = group
        self.name = group.basename
        self.attrs = attrs
        self.compression = attrs.get("compression", "none")
        self.after_flush: Callable[[], None] | None = None
        """Called after each flush committed (a run uploading to a bucket checks it here)."""
        self.columns = {
            name: self._appender(
                arrays.column(
                    group,
                    name,
                    dt,
                    layout.COLUMN_CHUNK,
                    _MSG,
                    fill=layout.MESSAGE_FILL.get(name),
                    attributes=layout.MESSAGE_ATTRS.get(name),
                    room=True,
                )
            )
            for name, dt in layout.MESSAGE_COLUMNS.items()
        }
        frames = group.create_group("frames")
        self.frames = {
            name: self._appender(
                arrays.column(frames, name, dt, layout.COLUMN_CHUNK, [layout.FRAME_DIM], room=True)
            )
            for name, dt in layout.FRAME_COLUMNS.items()
        }
        self.heap = self._appender(
            arrays.bulk(
                group,
                "heap",
                "uint8",
                layout.HEAP_CHUNK,
                [layout.HEAP_DIM],
                compression=self.compression,
            ),
            pieces=True,
        )
        self._data_group = group.create_group(layout.DATA_GROUP)
        self._family_paths = FamilyPaths()
        self._segment_index: dict[int, Appender] = {}  # segment -> message index per row
        # whole-row segment -> (dtype, row shape, ragged): what the next array must match
        self._segment_keys: dict[int, tuple[np.dtype, tuple[int, ...], bool]] = {}
        self._columns_group = group.create_group("columns")
        rejects = group.create_group("rejects")
        self._reject_message = self._appender(
            arrays.column(rejects, "message", "int64", layout.COLUMN_CHUNK, [layout.REJECT_DIM])
        )
        self._reject_reason = self._appender(
            arrays.column(rejects, "reason", str, layout.COLUMN_CHUNK, [layout.REJECT_DIM])
        )
        self.segments: list[SegmentInfo] = []  # in creation order
        self._segment_appenders: list[Appender | PlacedAppender] = []
        self._current_segment: dict[str, int] = {}  # array name -> segment index in use
        self._current_placed: dict[str, int] = {}  # the same for placed segments
        self._extra: dict[str, Appender] = {}  # per-message scalar columns
        self._extra_kinds: dict[str, str] = {}
        self._extra_paths: set[str] = set()  # array names taken under columns/
        self._name_bytes = 0  # of the column names, bounded by layout.MAX_COLUMN_NAME_BYTES
        self._retired: list[int] = []  # segments no longer current, finished at the next flush
        self._finished: set[int] = set()  # segments written for the last time
        self.columns_dropped = 0  # values not given a column: past layout.MAX_COLUMNS
        self.segments_capped = 0  # arrays not given a segment: past layout.MAX_SEGMENTS
        self.slowest_flush_ns = 0
        self.n_messages = 0
        self.n_frames = 0
        self.bytes = 0
        self.rejects = 0
        self.drops = 0
        self.gaps = GapCounter()
        self.first_recv_ns: int | None = None
        self.last_recv_ns: int | None = None
        self._write_attrs(committed=self._committed())

    def _appender(self, array: zarr.Array, *, pieces: bool = False) -> Appender:
        return appender_for(array, pieces=pieces)

    # -- appending -----------------------------------------------------------------------------

    def append(
        self,
        recv_ns: int,
        frames: Sequence[FrameBytes],
        decoded: Decoded | None = None,
        reject_reason: str | None = None,
    ) -> None:
        """Add one message. `frames` may be bytes, memoryviews or zmq.Frame buffers."""
        self.append_batch([(recv_ns, frames, decoded, reject_reason)])

    def append_batch(self, items: Sequence[WriteItem]) -> None:
        """Add messages given as (recv_ns, frames, decoded or None, reject reason or None).

        Batches keep the per-message cost low at high message rates: columns grow once per
        batch, and small frames reach the heap in one joined copy. Runs of messages of one
        layout (every Karabo train of a steady source, every image of a camera) are stored a
        typed array at a time (_append_alike) instead of a frame at a time.
        """
        if len(items) <= _ALIKE_MIN:
            self._append_each(items)
            return
        keys = [_layout_key(item) for item in items]
        start, n = 0, len(items)
        while start < n:
            key, end = keys[start], start + 1
            while end < n and keys[end] == key:
                end += 1
            if key is None or end - start <= _ALIKE_MIN or not _distinct_names(key):
                while end < n and (keys[end] is None or keys[end] != keys[end - 1]):
                    end += 1  # irregular messages go one by one, together
                self._append_each(items[start:end])
            else:
                # the first message makes (or checks) the segments the rest then extend
                self._append_each(items[start : start + 1])
                rest = items[start + 1 : end]
                if not self._append_alike(rest):
                    self._append_each(rest)
            start = end

    def _append_each(self, items: Sequence[WriteItem]) -> None:
        """append_batch a message at a time: any mix of messages, rejects and layouts."""
        recv: list[int] = []
        seq: list[int] = []
        src: list[int] = []
        first: list[int] = []
        nfr: list[int] = []
        flags: list[int] = []
        table = _FrameRows(self)
        # asked per batch: `--protocol auto` names the protocol after the first messages
        restart_first = protocols.lookup(self.attrs.get("protocol", "")).restart_first_seq
        n_frames = self.n_frames
        index = self.n_messages
        for recv_ns, frames, decoded, reason in items:
            ok = decoded if reason is None else None  # the decoded message, unless rejected
            bulk = {b.frame: b for b in ok.bulk} if ok and ok.bulk else None
            recv.append(recv_ns)
            first.append(n_frames)
            nfr.append(len(frames))
            seq.append(ok.seq if ok else NO_SEQ)
            src.append(ok.source_ns if ok else NO_TIME)
            flags.append(layout.FLAG_REJECTED if reason else 0)
            for i, frame in enumerate(frames):
                b = bulk.get(i) if bulk else None
                where = self._store_bulk(b, index) if b is not None else None
                if b is not None and where is not None:
                    table.placed(*where, b.array.nbytes)
                else:
                    table.heap(frame)
            n_frames += len(frames)
            if reason:
                self.rejects += 1
                self._reject_message.append(index)
                self._reject_reason.append(reason)
            elif ok:
                if ok.seq != NO_SEQ:
                    self.gaps.see(ok.seq_key, ok.seq, restart_first)
                if ok.columns:
                    self._append_extra(index, ok.columns)
                for item in ok.derived:
                    if isinstance(item, BulkFrame):
                        d: BulkFrame | None = item
                        name, array = item.name, item.array
                    else:
                        d, (name, array) = None, item
                    placed_at = self._append_bulk(
                        layout.valid_text(name), array, index, derived=True, frame=d
                    )
                    if placed_at is None:
                        self.segments_capped += 1
            index += 1
        if recv:
            self._add_messages(recv, seq, src, first, nfr, flags, table, n_frames)

    def _append_alike(self, items: Sequence[WriteItem]) -> bool:
        """Store messages of one layout (_layout_key) whose typed arrays all extend the
        current segments of their names: exactly what _append_each would store, a typed array
        and a column at a time. False (nothing stored): they need _append_each (a new
        segment, a name that changes raggedness)."""
        decoded = [item[2] for item in items if item[2] is not None]
        if len(decoded) != len(items):
            return False  # _layout_key lets none through
        d0 = decoded[0]
        derived = [
            (d.name, d.array, d.ragged) if isinstance(d, BulkFrame) else (d[0], d[1], False)
            for d in d0.derived
        ]
        named = [(b.name, b.array, b.ragged, b.frame) for b in d0.bulk]
        named += [(name, a, r, -1) for name, a, r in derived]
        families: list[_Family] = []
        nb = len(d0.bulk)
        for k, (name, a, ragged_frame, frame) in enumerate(named):
            ragged = ragged_frame and a.ndim >= 1
            if k < nb:
                arrays = [d.bulk[k].array for d in decoded]
            else:
                arrays = [_derived_array(d.derived[k - nb]) for d in decoded]
            sizes = (
                np.fromiter(map(len, arrays), dtype=np.int64, count=len(arrays)) if ragged else None
            )
            row_shape = a.shape[1:] if ragged else a.shape
            families.append(_Family(name, frame, ragged, a.dtype, row_shape, sizes, arrays))
        columns = {key: [d.columns[key] for d in decoded] for key in d0.columns}
        return self._store_alike(
            [item[0] for item in items],
            [item[1] for item in items],
            [d.seq for d in decoded],
            [d.source_ns for d in decoded],
            [d.seq_key for d in decoded],
            columns,
            families,
        )

    def _store_alike(
        self,
        recv: Sequence[int],
        messages: Sequence[Sequence[FrameBytes]],
        seq: Sequence[int] | np.ndarray,
        source_ns: Sequence[int] | np.ndarray,
        seq_keys: Sequence[str],
        columns: Mapping[str, list | np.ndarray],
        families: list[_Family],
    ) -> bool:
        """_append_alike's messages given in columns (also AlikeRun's): False, nothing
        stored, unless every typed array extends the current segment of its name."""
        checked = []
        for fam in families:
            idx = self._current_segment.get(layout.valid_text(fam.name))
            if idx is None:
                return False
            dtype, shape, seg_ragged = self._segment_keys[idx]
            if dtype != fam.dtype or seg_ragged != fam.ragged or shape != fam.row_shape:
                return False
            checked.append(idx)
        count = len(recv)
        index0 = self.n_messages
        n_fr = len(messages[0])
        lengths = np.empty((count, n_fr), dtype=np.int64)
        f_seg = np.full((count, n_fr), layout.HEAP_SEGMENT, dtype=np.int64)
        f_off = np.empty((count, n_fr), dtype=np.int64)
        placed_frames = set()
        for idx, fam in zip(checked, families, strict=True):
            app = self._segment_appenders[idx]
            assert not isinstance(app, PlacedAppender), "_current_segment holds whole rows"
            row0 = app.rows
            row_bytes = fam.dtype.itemsize * math.prod(fam.row_shape)
            data, sizes = fam.rows, fam.sizes
            if fam.ragged:
                assert sizes is not None
                rows = row0 + np.cumsum(sizes) - sizes
                messages_of = np.repeat(np.arange(index0, index0 + count, dtype=np.int64), sizes)
            else:
                rows = row0 + np.arange(count, dtype=np.int64)
                messages_of = np.arange(index0, index0 + count, dtype=np.int64)
            if isinstance(data, np.ndarray):  # joined already (AlikeRun)
                app.extend_rows(data)
            elif isinstance(app, PieceAppender) and data[0].dtype == app.dtype:
                n_rows = int(sizes.sum()) if sizes is not None else count
                app.extend_pieces(data, n_rows)  # as received: no join, one write a chunk
            elif data[0].nbytes < _BIG_FRAME:  # one join: cheaper than a piece per array
                app.extend_rows(np.concatenate(data) if fam.ragged else np.stack(data))
            else:  # large: the appender keeps views of the received frames, no copy
                for a in data:
                    if fam.ragged:
                        app.extend_rows(a)
                    else:
                        app.append(a)
            self._segment_index[idx].extend(messages_of)
            if fam.frame >= 0:
                frame = fam.frame
                placed_frames.add(frame)
                f_seg[:, frame] = idx
                f_off[:, frame] = rows
                if sizes is not None:  # ragged: bytes per row times rows
                    lengths[:, frame] = sizes * row_bytes
                else:
                    lengths[:, frame] = row_bytes  # one shape for all
        heap_cols = [i for i in range(n_fr) if i not in placed_frames]
        heap_pos = self.heap.rows
        if heap_cols:
            pick = itemgetter(*heap_cols) if len(heap_cols) > 1 else lambda m: (m[heap_cols[0]],)
            heap = list(chain.from_iterable(map(pick, messages)))  # message by message
            if set(map(type, heap)) != {bytes}:
                heap = [f if isinstance(f, bytes) else _view_bytes(f) for f in heap]
            sizes = np.fromiter(map(len, heap), dtype=np.int64, count=len(heap))
            grid = sizes.reshape(count, len(heap_cols))
            lengths[:, heap_cols] = grid
            ends = heap_pos + np.cumsum(sizes)
            f_off[:, heap_cols] = (ends - sizes).reshape(count, len(heap_cols))
            self._heap_frames(heap, sizes.tolist())
        table = _FrameRows(self)
        f_col = np.full(count * n_fr, layout.WHOLE_ROWS, dtype=np.int64)
        table.columns(f_seg.ravel(), f_off.ravel(), lengths.ravel(), f_col, b"", 0)
        table.total = int(lengths.sum())
        restart_first = protocols.lookup(self.attrs.get("protocol", "")).restart_first_seq
        see = self.gaps.see
        seq_list = seq.tolist() if isinstance(seq, np.ndarray) else seq
        for key, s in zip(seq_keys, seq_list, strict=True):
            if s != NO_SEQ:
                see(key, s, restart_first)
        if columns:
            self._extend_extra(index0, columns)
        first = self.n_frames + n_fr * np.arange(count, dtype=np.int64)
        self._add_messages(
            recv,
            seq,
            source_ns,
            first,
            np.full(count, n_fr, dtype=np.int64),
            np.zeros(count, dtype=np.int64),
            table,
            self.n_frames + n_fr * count,
        )
        return True

    def _add_messages(self, recv, seq, src, first, nfr, flags, table: _FrameRows, n_frames: int):
        """The message columns and frame table rows of appended messages, and the counts."""
        table.finish()
        cols = self.columns
        cols["recv_ns"].extend(recv)
        cols["seq"].extend(seq)
        cols["source_ns"].extend(src)
        cols["first_frame"].extend(first)
        cols["n_frames"].extend(nfr)
        cols["flags"].extend(flags)
        self.n_frames = n_frames
        self.n_messages += len(recv)
        self.bytes += table.total
        if self.first_recv_ns is None:
            self.first_recv_ns = recv[0]
        self.last_recv_ns = recv[-1]

    def append_part(self, part: DecodedPart) -> None:
        """Store one part of protocols.base.decode_batch's answer, whichever kind it is."""
        if isinstance(part, list):
            self.append_batch(part)
        elif isinstance(part, Verbatim):
            self.append_verbatim(part.recv, part.messages)
        else:
            self.append_run(*part)

    def append_verbatim(
        self, recv: Sequence[int], messages: Sequence[Sequence[FrameBytes]]
    ) -> None:
        """Add messages of a codec that reads nothing (raw), every frame in the heap: what
        append_batch stores for them with an empty Decoded each, built in columns (a raw stream
        of 4 KiB messages is as many messages a second as it is MB)."""
        count = len(messages)
        if not count:
            return
        heap = [f if isinstance(f, bytes) else _view_bytes(f) for m in messages for f in m]
        n = len(heap)
        sizes = list(map(len, heap))
        nfr = list(map(len, messages))
        table = _FrameRows(self)
        ends = list(accumulate(sizes, initial=table.heap_pos))
        self._heap_frames(heap, sizes)
        segment = [layout.HEAP_SEGMENT] * n
        table.columns(segment, ends[:-1], sizes, [layout.WHOLE_ROWS] * n, b"", 0)
        table.total = ends[-1] - ends[0]
        first = list(accumulate(nfr, initial=self.n_frames))
        self._add_messages(
            recv,
            [NO_SEQ] * count,
            [NO_TIME] * count,
            first[:-1],
            nfr,
            [0] * count,
            table,
            first[-1],
        )

    def append_run(
        self,
        recv: Sequence[int],
        messages: Sequence[Sequence[FrameBytes]],
        run: PlacedRun | AlikeRun,
    ) -> None:
        """Add messages decoded together (protocols.base.PlacedRun, AlikeRun): stored exactly
        as append_batch stores the same messages decoded one by one, at a fraction of the
        cost."""
        if isinstance(run, AlikeRun):
            self._append_alike_run(recv, messages, run)
            return
        count = run.count
        if not count:
            return
        restart_first = protocols.lookup(self.attrs.get("protocol", "")).restart_first_seq
        n_frames, first_index = self.n_frames, self.n_messages
        table = _FrameRows(self)
        where = self._place_run(run, first_index)
        computed = self._run_frame_table(messages, run, where, table.heap_pos)
        if computed is not None:  # the common case, in columns
            seg, off, length, col, first, nfr, heap_bytes, total = computed
            table.columns(seg, off, length, col, heap_bytes, total)
            n_frames += 3 * count
        else:
            first, nfr = [], []
            for k, frames in enumerate(messages[:count]):
                first.append(n_frames)
                nfr.append(len(frames))
                for i, frame in enumerate(frames):
                    at = where[k] if i == run.frame else None
                    if at is not None:
                        table.placed(*at, run.arrays[k].nbytes)
                    else:
                        table.heap(frame)
                n_frames += len(frames)
        self.gaps.see_run(run.seq_key, run.seq, restart_first, NO_SEQ)
        self._extend_extra(first_index, run.columns)
        flags = np.zeros(count, dtype=np.int64)
        self._add_messages(recv, run.seq, run.source_ns, first, nfr, flags, table, n_frames)

    def _append_alike_run(
        self, recv: Sequence[int], messages: Sequence[Sequence[FrameBytes]], run: AlikeRun
    ) -> None:
        """As append_batch stores the run's messages decoded one by one: in columns
        (_store_alike) when every typed array extends the current segment of its name (the
        stream's columns are made as _append_each makes them); else the first on its own, as
        Decoded (it makes the segments), then the rest in columns."""
        count = run.count
        names = [layout.valid_text(b.name) for b in run.arrays]
        frames = [b.frame for b in run.arrays if b.frame >= 0]
        if len(set(names)) != len(names) or len(set(frames)) != len(frames):
            self._append_each([(recv[k], messages[k], run.decode(k), None) for k in range(count)])
            return
        if self._store_run(recv, messages, run, 0):
            return
        self._append_each([(recv[0], messages[0], run.decode(0), None)])
        if count > 1 and not self._store_run(recv, messages, run, 1):
            self._append_each(
                [(recv[k], messages[k], run.decode(k), None) for k in range(1, count)]
            )

    def _store_run(
        self,
        recv: Sequence[int],
        messages: Sequence[Sequence[FrameBytes]],
        run: AlikeRun,
        start: int,
    ) -> bool:
        """Messages start.. of the run through _store_alike (False: nothing stored)."""
        families = []
        count = run.count - start
        for b in run.arrays:
            rows = (
                b.rows[start:]
                if isinstance(b.rows, list) or not b.ragged
                else (b.rows[start * b.shape[0] :])
            )
            row_shape = b.shape[1:] if b.ragged else b.shape
            sizes = np.full(count, b.shape[0], dtype=np.int64) if b.ragged else None
            families.append(_Family(b.name, b.frame, b.ragged, b.dtype, row_shape, sizes, rows))
        return self._store_alike(
            recv[start:],
            messages[start:],
            run.seq[start:],
            run.source_ns[start:],
            [run.seq_key] * count,
            {key: values[start:] for key, values in run.columns.items()},
            families,
        )

    def _run_frame_table(
        self,
        messages: Sequence[Sequence[FrameBytes]],
        run: PlacedRun,
        where: list[tuple[int, int, int] | None],
        heap_pos: int,
    ) -> tuple | None:
        """The frame table rows, heap bytes and byte total of a run whose messages are three
        frames, the third placed and the other two small (what Open Ephys sends), computed in
        columns; None for any other run (append_run's loop does those)."""
        count = run.count
        if run.frame != 2 or None in where:
            return None
        heads: list[Any] = [m[0] for m in messages] + [m[1] for m in messages]
        if any(len(m) != 3 for m in messages):
            return None
        # byte sizes whatever the buffers' item format (C maps: no Python step per frame)
        lens = np.array(frame_sizes(heads), dtype=np.int64)
        if count == 0 or int(lens.max()) >= _BIG_FRAME:
            return None
        pairs = lens.reshape(2, count).T  # (message, frame 0 and 1)
        placed = np.array(where, dtype=np.int64).reshape(count, 3)  # (segment, offset, column)
        f_len = np.empty((count, 3), dtype=np.int64)
        f_len[:, :2] = pairs
        f_len[:, 2] = np.fromiter(map(_NBYTES, run.arrays), dtype=np.int64, count=count)
        ends = np.cumsum(pairs.ravel())
        f_off = np.empty((count, 3), dtype=np.int64)
        f_off[:, :2] = (heap_pos + ends - pairs.ravel()).reshape(count, 2)
        f_off[:, 2] = placed[:, 1]
        f_seg = np.full((count, 3), layout.HEAP_SEGMENT, dtype=np.int64)
        f_seg[:, 2] = placed[:, 0]
        f_col = np.full((count, 3), layout.WHOLE_ROWS, dtype=np.int64)
        f_col[:, 2] = placed[:, 2]
        interleaved: list = [None] * (2 * count)
        interleaved[0::2], interleaved[1::2] = heads[:count], heads[count:]
        first = self.n_frames + 3 * np.arange(count, dtype=np.int64)
        return (
            f_seg.ravel(),
            f_off.ravel(),
            f_len.ravel(),
            f_col.ravel(),
            first,
            np.full(count, 3, dtype=np.int64),
            b"".join(interleaved),
            int(f_len.sum()),
        )

    def _place_run(self, run: PlacedRun, index: int) -> list[tuple[int, int, int] | None]:
        """Where each message's placed frame went (None: the heap), as _store_bulk would
        say message by message; blocks of channels go in at once (PlacedAppender.place_block)."""
        where: list[tuple[int, int, int] | None] = []
        name = layout.valid_text(run.name)
        rows, cols, arrays = run.rows, run.cols, run.arrays
        count, k = run.count, 0
        # where the first sample or the length changes: blocks end there at the latest
        first = np.asarray(rows, dtype=np.int64)
        sizes = np.fromiter(map(len, arrays), dtype=np.int64, count=count)
        edges = np.flatnonzero((first[1:] != first[:-1]) | (sizes[1:] != sizes[:-1])) + 1
        ends = np.append(edges, count)
        while k < count:
            limit = int(ends[np.searchsorted(ends, k, side="right")])
            if len(set(cols[k:limit])) == limit - k:  # distinct channels: one block
                end = limit
            else:  # a channel again: the block ends before it
                end, seen = k + 1, {cols[k]}
                while end < limit and cols[end] not in seen:
                    seen.add(cols[end])
                    end += 1
            idx = self._current_placed.get(name)
            if idx is not None and end - k > 1 and arrays[k].dtype.isnative:
                at = self._placed(idx).place_block(
                    rows[k], cols[k:end], arrays[k:end], run.channel_names[k:end], run.sample_rate
                )
                if at is not None:
                    where.extend([(idx, at, c) for c in cols[k:end]])
                    k = end
                    continue
            where.append(self._store_bulk(run.bulk(k), index + k))  # one by one, as ever
            k += 1
        return where

    def _extend_extra(self, start: int, values: Mapping[str, list | np.ndarray]) -> None:
        """Columns of messages start, start+1, ...: each list holds one value per message.
        The same result as _append_extra message by message, one extend per column."""
        for key, column in values.items():
            name = layout.valid_text(key)
            app = self._extra.get(name)
            if isinstance(column, np.ndarray):  # int64, float64 or bool values (AlikeRun)
                kind = self._extra_kinds.get(name)
                if app is None or app.rows > start or name != key or kind is None:
                    column = column.tolist()
                elif column.dtype.kind in _ARRAY_FITS[kind]:  # what _coerce keeps as it is
                    if app.rows < start:
                        app.append_repeat(_missing(kind), start - app.rows)
                    app.extend(column)
                    continue
                else:
                    column = column.tolist()
            if app is None or app.rows > start or name != key:
                for k, value in enumerate(column):  # the general way, message by message
                    self._append_extra(start + k, {key: value})
                continue
            kind = self._extra_kinds[name]
            if app.rows < start:  # messages since that had no such key
                app.append_repeat(_missing(kind), start - app.rows)
            types = set(map(type, column))
            if types <= _FITS[kind]:
                if kind == "str" and not "".join(column).isascii():  # ASCII is valid as it is
                    column = [layout.valid_text(v) for v in column]
                app.extend(column)
            else:
                app.extend([_coerce(kind, v) for v in column])

    def _heap_frames(self, frames: list, sizes: list[int]) -> None:
        """Frames into the heap in order: runs of small ones joined (one write each), large ones
        passed on as they are (no copy)."""
        if not frames or max(sizes) < _BIG_FRAME:
            self._heap_put(frames)  # all small: one join (empty frames add nothing)
            return
        small: list = []
        for f, size in zip(frames, sizes, strict=True):
            if size >= _BIG_FRAME:
                self._heap_put(small)
                small = []
                self.heap.extend(f)
            elif size:
                small.append(f)
        self._heap_put(small)

    def _heap_put(self, small: list) -> None:
        if small:
            self.heap.extend(b"".join(small))

    def add_drops(self, n: int) -> None:
        self.drops += n

    def _store_bulk(self, b: BulkFrame, index: int) -> tuple[int, int, int] | None:
        """(segment, row, column) of a bulk frame's bytes, or None: keep it in the heap."""
        if b.row is None or b.column is None:
            where = self._append_bulk(layout.valid_text(b.name), b.array, index, frame=b)
            if where is None:
                self.segments_capped += 1
                return None
            return (*where, layout.WHOLE_ROWS)
        if not placeable(b):
            return None
        name = layout.valid_text(b.name)
        idx = self._current_placed.get(name)
        row = NEW_SEGMENT if idx is None else self._placed(idx).place(b)
        if idx is None or row == NEW_SEGMENT:
            if len(self.segments) >= layout.MAX_SEGMENTS:
                self.segments_capped += 1
                return None
            idx = self._new_placed(name, b, index)
            row = self._placed(idx).place(b)  # a fresh segment takes any frame
        if row == TO_HEAP:
            return None
        return idx, row, b.column

    def _placed(self, idx: int) -> PlacedAppender:
        app = self._segment_appenders[idx]
        assert isinstance(app, PlacedAppender), "_current_placed holds placed segments"
        return app

    def _family_group(self, name: str, kind: str, segment: int) -> tuple[zarr.Group, str, str]:
        """(group, values array name, its path under the stream) of a new segment of `name`."""
        count = sum(1 for s in self.segments if s["name"] == name)
        path, leaf = self._family_paths.place(name, count)
        rel = path[len(layout.DATA_GROUP) + 1 :]
        attrs = {"name": name, "kind": kind, "segment": segment}
        group = fast_nodes.group(self._data_group, rel, attrs)
        return group, leaf, f"{path}/{leaf}"

    def _new_placed(self, name: str, b: BulkFrame, index: int) -> int:
        """Reserve the segment now; its array appears once the channel count is known."""
        idx = len(self.segments)
        group, leaf, path = self._family_group(name, "placed", idx)
        info: SegmentInfo = {
            "path": path,
            "name": name,
            "dtype": b.array.dtype.str,
            "shape": [],
            "placed": True,
            "first_sample": b.row or 0,  # placeable: row is set
        }
        self.segments.append(info)
        self._segment_appenders.append(PlacedAppender(group, leaf, info, index, self.compression))
        self._retire(self._current_placed.get(name))
        self._current_placed[name] = idx
        return idx

    def _retire(self, idx: int | None) -> None:
        """A segment that is not current any more is written one last time, then let go."""
        if idx is not None:
            self._retired.append(idx)

    def _append_bulk(
        self,
        name: str,
        array: np.ndarray,
        index: int,
        *,
        derived: bool = False,
        frame: BulkFrame | None = None,
    ) -> tuple[int, int] | None:
        """(segment, first row) of the array's copy, or None: no segment left for a new shape.

        A stacked segment takes one row per message, a ragged one the array's rows (its first
        axis). A stacked segment whose arrays change only in their first dimension is
        followed by a ragged one: the first axis varies, as pulses per train do.
        """
        ragged = bool(frame is not None and frame.ragged and array.ndim >= 1)
        idx = self._current_segment.get(name)
        if idx is not None:
            dtype, shape, seg_ragged = self._segment_keys[idx]
            if dtype != array.dtype:
                idx = None
            elif seg_ragged:
                if array.ndim < 1 or shape != array.shape[1:]:
                    idx = None
                else:
                    ragged = True
            elif shape != array.shape:
                if array.ndim >= 1 and len(shape) == array.ndim and shape[1:] == array.shape[1:]:
                    ragged = True  # only the first dimension changed
                idx = None
        if idx is None:
            if len(self.segments) >= layout.MAX_SEGMENTS:
                return None
            idx = self._new_segment(name, array, index, derived, ragged, frame)
        app = self._segment_appenders[idx]
        assert not isinstance(app, PlacedAppender), "_current_segment holds whole-row segments"
        row = app.rows
        if ragged:
            app.extend_rows(array)
            self._segment_index[idx].append_repeat(index, len(array))
        else:
            app.append(array)
            self._segment_index[idx].append(index)
        return idx, row

    def _new_segment(
        self,
        name: str,
        array: np.ndarray,
        index: int,
        derived: bool,
        ragged: bool,
        frame: BulkFrame | None,
    ) -> int:
        idx = len(self.segments)
        kind = "ragged" if ragged else "stacked"
        group, leaf, path = self._family_group(name, kind, idx)
        row_shape = array.shape[1:] if ragged else array.shape
        dims = _row_dims(frame, array, ragged)
        attrs: dict = {"name": name, "first_message": index}
        if frame is not None and frame.units:
            attrs["units"] = layout.valid_text(frame.units)
        if frame is not None and frame.scale is not None:
            attrs["scale"] = float(frame.scale)
        arr = arrays.bulk(
            group,
            leaf,
            array.dtype,
            layout.segment_chunk_rows(row_shape, array.dtype, ragged=ragged),
            dims,
            row_shape=row_shape,
            compression=self.compression,
            attributes=attrs,
        )
        info: SegmentInfo = {
            "path": path,
            "name": name,
            "dtype": array.dtype.str,
            "shape": list(row_shape),
            "index": f"{path.rsplit('/', 1)[0]}/message",
        }
        if ragged:
            info["ragged"] = True
        if derived:
            info["derived"] = True
        self.segments.append(info)
        self._segment_keys[idx] = (array.dtype, tuple(row_shape), ragged)
        self._segment_appenders.append(self._appender(arr, pieces=True))
        self._segment_index[idx] = self._appender(
            arrays.column(
                group, "message", "int64", layout.COLUMN_CHUNK, [dims[0]], fill=-1, room=True
            )
        )
        self._retire(self._current_segment.get(name))
        self._current_segment[name] = idx
        return idx

    def _append_extra(self, index: int, values: dict[str, ColumnValue]) -> None:
        extra, kinds, fits = self._extra, self._extra_kinds, _FITS
        for key, value in values.items():
            if not key.isascii():
                key = layout.valid_text(key)
            app = extra.get(key)
            if app is None:
                app = self._new_extra(key, value, index)
                if app is None:
                    self.columns_dropped += 1
                    continue
            kind = kinds[key]
            missing = index - app.rows
            if missing < 0:  # two keys that are one name once made valid text: keep the first
                continue
            if missing:
                app.append_repeat(_missing(kind), missing)
            if kind != "str" and type(value) in fits[kind]:  # what _coerce keeps as it is
                app.append(value)
            else:
                app.append(_coerce(kind, value))

    def _new_extra(self, key: str, value, index: int) -> Appender | None:
        """A column for a new key, or None when the stream has as many as it may hold."""
        name_bytes = len(key.encode("utf-8", "surrogatepass"))
        if (
            len(self._extra) >= layout.MAX_COLUMNS
            or self._name_bytes + name_bytes > layout.MAX_COLUMN_NAME_BYTES
        ):
            return None
        kind = _kind_of(value)
        dtype = {"bool": "bool", "int": "int64", "float": "float64", "str": str}[kind]
        path = _column_path(key, self._extra_paths)
        # cells no value reached (rows the column never got) read as the missing value
        wide = len(self._extra) < layout.WIDE_EXTRA_COLUMNS
        arr = arrays.column(
            self._columns_group,
            path,
            dtype,
            layout.COLUMN_CHUNK if wide else layout.EXTRA_COLUMN_CHUNK,
            _MSG,
            fill=_missing(kind),
            attributes={"name": key, "missing": _missing_attr(kind)},
            room=True,
        )
        app = self._appender(arr)
        self._extra[key] = app
        self._extra_kinds[key] = kind
        self._extra_paths.add(path)
        self._name_bytes += name_bytes
        return app

    # -- committing ----------------------------------------------------------------------------

    def _all_appenders(self):
        yield self.heap
        for idx, app in enumerate(self._segment_appenders):
            if idx not in self._finished:
                yield app
                if idx in self._segment_index:
                    yield self._segment_index[idx]
        yield from self.frames.values()
        yield from self.columns.values()
        yield self._reject_message
        yield self._reject_reason

    def flush(self) -> None:
        """Write everything appended so far, then record it as committed (in that order).

        Only arrays that got rows since the last flush are written (an appender with nothing
        new returns at once), and a column is not padded for messages that did not carry its
        key: its fill value is the missing value. So a flush costs what changed, not how many
        columns or past segments the stream has.
        """
        t0 = time.perf_counter_ns()
        appenders = [*self._all_appenders(), *self._extra.values()]
        file_jobs.run_all([app.flush for app in appenders])  # independent arrays: side by side
        for idx in self._retired:
            app = self._segment_appenders[idx]
            index = self._segment_index.get(idx)
            for a in (app, index) if index is not None else (app,):
                a.flush()  # already flushed above unless it failed: then this raises again
                a.trim()
                a.close()
            self._finished.add(idx)
        self._retired = []
        # measured up to the attributes' write: what the SIGKILL loss bound adds to the interval
        self.slowest_flush_ns = max(self.slowest_flush_ns, time.perf_counter_ns() - t0)
        self._write_attrs(committed=self._committed())
        if self.after_flush is not None:
            self.after_flush()

    def _committed(self) -> Committed:
        return {
            "messages": self.n_messages,
            "frames": self.n_frames,
            "heap_bytes": self.heap.rows,
            "segment_rows": [a.rows for a in self._segment_appenders],
            "rejects": self.rejects,
            "committed_ns": time.time_ns(),
        }

    def close(self) -> None:
        """Drop unfinished chunk files (after the final flush, which stored their data) and cut
        every array to the rows stored (scalar columns to every stored message: the cells past
        a column's last value are its fill value, the missing value)."""
        for app in self._all_appenders():
            app.close()
        try:
            for app in self._all_appenders():
                app.trim()
            for app in self._extra.values():
                trim(app.array, self.columns["recv_ns"].persisted)
            coordinates.write_stream(self.group, self._committed(), self.segments)
            self._compact()
        except OSError:  # a full disk: the committed counts still say what is valid
            pass

    def _compact(self) -> None:
        """Arrays of one shard become one exact chunk (compact.py): a short run is small."""
        compact.compact(self.group, "heap")
        for seg in self.segments:
            parent, _, leaf = seg["path"].rpartition("/")
            compact.compact(nodes.subgroup(self.group, parent), leaf)

    def stats(self) -> StreamStats:
        return {
            "messages": self.n_messages,
            "frames": self.n_frames,
            "bytes": self.bytes,
            "gaps": self.gaps.missing,
            "seq_resets": self.gaps.resets,
            "drops": self.drops,
            "rejects": self.rejects,
            "columns_dropped": self.columns_dropped,
            "segments_capped": self.segments_capped,
            "slowest_flush_ns": self.slowest_flush_ns,
            "first_recv_ns": self.first_recv_ns,
            "last_recv_ns": self.last_recv_ns,
        }

    def _write_attrs(self, committed: Committed) -> None:
        attrs: StreamAttrs = {
            **self.attrs,
            "meaning": protocols.lookup(self.attrs.get("protocol", "")).meaning.as_attrs(),
            "segments": self.segments,
            "columns": {k: a.array.basename for k, a in self._extra.items()},
            "stats": self.stats(),
            "committed": committed,
        }
        self.group.attrs.put(nodes.json_attrs(attrs))


def _kind_of(value) -> str:
    if isinstance(value, bool | np.bool_):
        return "bool"
    if isinstance(value, int | np.integer):
        return "int"
    if isinstance(value, float | np.floating):
        return "float"
    return "str"


_MISSING = {"bool": False, "int": np.iinfo(np.int64).min, "float": float("nan"), "str": ""}


def _missing(kind: str):
    return _MISSING[kind]


def _missing_attr(kind: str):
    value = _MISSING[kind]
    return "NaN" if kind == "float" else value


_PLAIN_KINDS = {bool: "bool", int: "int", float: "float", str: "str"}
#: Python types whose values a column of each kind takes as they are (what _coerce keeps).
_FITS: dict[str, set[type]] = {"bool": {bool}, "int": {int}, "float": {float, int}, "str": {str}}


#: dtype kinds of value arrays a column of each kind takes as they are (as _FITS; strings
#: come as lists).
_ARRAY_FITS: dict[str, str] = {"bool": "b", "int": "i", "float": "fi", "str": ""}


def _coerce(kind: str, value):
    """Keep a column's first type; a value of another type is stored as missing, not mangled."""
    got = _PLAIN_KINDS.get(type(value)) or _kind_of(value)  # plain Python values: one lookup
    if got == kind or (kind == "float" and got == "int"):
        return layout.valid_text(value) if kind == "str" else value
    return _missing(kind)


_PLAIN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}")


def _column_path(key: str, taken: set[str]) -> str:
    """The array name under columns/ for a key from the wire: never a path.

    A short plain name is kept as it is (readable for plain zarr users); anything else (long,
    `/`, `..`, NUL, non-ASCII, a name zarr reserves) becomes a short sanitized prefix and a hash
    of the key. The key itself lives in the array's `name` attribute and the stream's
    `columns` map, which is how readers find it.
    """
    lower = {t.lower() for t in taken}  # case-insensitive file systems
    if _PLAIN_NAME.fullmatch(key) and not key.endswith(".json") and key.lower() not in lower:
        return key
    prefix = re.sub(r"[^A-Za-z0-9_.\-]", "_", key)[:32].lstrip("._-") or "column"
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    path, n = f"{prefix}-{digest}", 1
    while path.lower() in lower:
        path, n = f"{prefix}-{digest}-{n}", n + 1
    return path
