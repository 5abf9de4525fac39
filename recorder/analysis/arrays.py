"""The typed arrays of a stream as families (one per array name), lazily, through the reader.

A family is every committed segment of one name: format 1 starts a new segment when a shape
changes, format 2 keeps one (ragged) array. Whichever it is, a family gives dask arrays cut to
the committed rows, the message each row came from, and the attributes the writer left on the
arrays (sample rate, channel names, units): the one place here that opens a segment's zarr
array, by the path the reader names.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from recorder.errors import StoreError
from recorder.store import nodes
from recorder.store.reader import ArraySegment, StreamReader

if TYPE_CHECKING:
    import dask.array
    from dask.array import Array as DaskArray  # Family.dask would shadow the module's name


def segment_attrs(reader: StreamReader, seg: ArraySegment) -> dict[str, Any]:
    """What the writer says about a segment: its parent group's attributes (format 2 keeps the
    real name and units there) overlaid with the array's own (sample rate, channel names)."""
    out: dict[str, Any] = {}
    parent = seg.path.rpartition("/")[0]
    if parent:
        with contextlib.suppress(StoreError):  # format 1: the array sits in a plain folder
            out.update(nodes.attrs_of(nodes.subgroup(reader.group, parent)))
    out.update(nodes.attrs_of(nodes.array(reader.group, seg.path)))
    return out


def dask_segment(reader: StreamReader, seg: ArraySegment) -> dask.array.Array:
    """The segment's committed rows as a lazy dask array (nothing is read until computed)."""
    import dask.array as da

    return da.from_zarr(nodes.array(reader.group, seg.path))[: seg.rows]


def dimension_names(reader: StreamReader, seg: ArraySegment) -> tuple[str | None, ...] | None:
    """The segment's zarr v3 dimension names (format 2), or None (format 1 has none)."""
    names = getattr(nodes.array(reader.group, seg.path).metadata, "dimension_names", None)
    return tuple(names) if names else None


@dataclass
class Family:
    """All committed segments of one array name in a stream, in the order they were made."""

    reader: StreamReader
    name: str
    segments: list[ArraySegment]

    @property
    def placed(self) -> bool:
        return any(s.placed for s in self.segments)

    @cached_property
    def messages(self) -> list[np.ndarray]:
        """Per segment: the message index of each row (placed segments: empty)."""
        per_path: dict[str, np.ndarray] = {}
        rows_with_index = [s for s in self.segments if not s.placed]
        indexes = self.reader.array_messages(self.name)
        for seg, index in zip(rows_with_index, indexes, strict=False):
            per_path[seg.path] = np.asarray(index, dtype=np.int64)[: seg.rows]
        return [per_path.get(s.path, np.zeros(0, dtype=np.int64)) for s in self.segments]

    def attrs(self, k: int = 0) -> dict[str, Any]:
        return segment_attrs(self.reader, self.segments[k])

    def dask(self, k: int) -> dask.array.Array:
        return dask_segment(self.reader, self.segments[k])

    def row_shapes(self) -> dict[tuple[int, ...], list[int]]:
        """Segment numbers (positions in `segments`) by the shape of one row and dtype: segments
        that agree can be concatenated into one array."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for k, seg in enumerate(self.segments):
            key = (*seg.shape, np.dtype(seg.dtype).num)
            groups.setdefault(key, []).append(k)
        return groups

    @property
    def ragged(self) -> bool:
        """Does any segment hold rows of a varying first axis (format 2: ``ragged``)?"""
        return any(getattr(s, "ragged", False) for s in self.segments)

    def entries(self) -> tuple[DaskArray, np.ndarray]:
        """Every message's array split along its first axis, the entries of all messages one
        after the other, with the message of each entry (pulse-resolved data, as EuXFEL's
        files keep it). Works whether the store kept a segment per shape (format 1), a ragged
        array (format 2) or a stacked segment followed by a ragged one."""
        import dask.array as da

        tails = set()
        parts, messages = [], []
        for k, seg in enumerate(self.segments):
            x, msgs = self.dask(k), self.messages[k]
            if getattr(seg, "ragged", False):
                tails.add((tuple(seg.shape), seg.dtype))
            elif not seg.shape:
                raise ValueError(f"{self.name}: scalar rows have no first axis to split")
            else:
                tails.add((tuple(seg.shape[1:]), seg.dtype))
                n = seg.shape[0]
                x = x.reshape((x.shape[0] * n, *seg.shape[1:]))
                msgs = np.repeat(msgs, n)
            parts.append(x)
            messages.append(msgs)
        if len(tails) != 1:
            shapes = sorted({tuple(s.shape) for s in self.segments})
            raise ValueError(f"{self.name} changes shape beyond its first axis: {shapes}")
        values = parts[0] if len(parts) == 1 else da.concatenate(parts, axis=0)
        index = np.concatenate(messages) if messages else np.zeros(0, np.int64)
        order = np.argsort(index, kind="stable")
        if (order != np.arange(len(order))).any():  # segments whose messages interleave
            values, index = values[order], index[order]
        return values, index

    def rows_of_messages(self) -> list[tuple[int, int, int]]:
        """(message, segment position, row) of every row, in message order: the n-th image of
        a stream whatever segment it was written to."""
        out: list[tuple[int, int, int]] = []
        for k, index in enumerate(self.messages):
            out.extend((int(m), k, r) for r, m in enumerate(index))
        out.sort()
        return out


def families(reader: StreamReader) -> dict[str, Family]:
    """The stream's array families by name, in the order their first segment was made."""
    out: dict[str, Family] = {}
    for seg in reader.array_segments():
        if seg.rows:
            out.setdefault(seg.name, Family(reader, seg.name, [])).segments.append(seg)
    return out


@dataclass
class Placed:
    """A placed family as one (samples, channels) array: `values` (dask) and the absolute
    `sample_numbers` of its rows (they jump where the stream had a gap)."""

    values: dask.array.Array
    sample_numbers: np.ndarray
    attrs: dict[str, Any]


def _padded(x: dask.array.Array, top: int, bottom: int, right: int, fill: Any) -> Any:
    import dask.array as da

    if not (top or bottom or right):
        return x
    return da.pad(x, ((top, bottom), (0, right)), mode="constant", constant_values=fill)


def _merge(parts: list[tuple[int, Any]], lo: int, hi: int, channels: int) -> Any:
    """Segments (first sample, values) that overlap in samples as one array over [lo, hi):
    each cell from the segment that holds a value there (a later one wins)."""
    import dask.array as da

    out = None
    for first, x in parts:
        top, bottom = first - lo, hi - first - x.shape[0]
        right = channels - x.shape[1]
        fill = np.nan if x.dtype.kind == "f" else 0
        cells = _padded(x, top, bottom, right, fill)
        if out is None:
            out = cells
            continue
        if x.dtype.kind == "f":
            held = ~da.isnan(cells)
        else:
            held = _padded(da.ones(x.shape, dtype=bool, chunks=x.chunks), top, bottom, right, False)
        out = da.where(held, cells, out)
    return out


def placed(family: Family) -> Placed:
    """Every segment of a placed family as one array. A new segment starts when the channel
    count grows (a first flush that saw only some channels) or the sample numbers jump ahead;
    segments that overlap in samples are merged cell by cell, the others follow each other."""
    import dask.array as da

    segs = sorted(
        ((s.first_sample or 0, k) for k, s in enumerate(family.segments) if s.placed),
        key=lambda t: t[0],
    )
    channels = max(family.segments[k].shape[0] for _, k in segs)
    clusters: list[list[tuple[int, int]]] = []
    end = None
    for first, k in segs:
        rows = family.segments[k].rows
        if clusters and end is not None and first <= end:
            clusters[-1].append((first, k))
            end = max(end, first + rows)
        else:
            clusters.append([(first, k)])
            end = first + rows
    blocks, numbers = [], []
    for cluster in clusters:
        lo = min(first for first, _ in cluster)
        hi = max(first + family.segments[k].rows for first, k in cluster)
        blocks.append(_merge([(first, family.dask(k)) for first, k in cluster], lo, hi, channels))
        numbers.append(np.arange(lo, hi, dtype=np.int64))
    widest = max((k for _, k in segs), key=lambda k: family.segments[k].shape[0])
    values = blocks[0] if len(blocks) == 1 else da.concatenate(blocks, axis=0)
    return Placed(values, np.concatenate(numbers), family.attrs(widest))
