"""Overview levels of placed (samples, channels) arrays: min and max per channel over buckets of
64, 1024, 16384 ... samples, like an image pyramid, kept with the run.

A plot of an hour of Open Ephys data needs a few thousand points, not a hundred million samples
per channel: with the levels, any window at any zoom is answered by reading at most about 16
rows per point from the level that fits (or raw samples, when the window is short), so the cost
of a view does not grow with the run.

The writer is fed each chunk of the placed array once it can no longer change (placed.py calls
`feed` in row order, skipping chunks nobody filled) and keeps the newest, incomplete rows of
every level in memory; whole chunks of a level are written as they fill, everything at `finish`.
The group's attribute `levels` says how many rows of every level are written: a reader uses
those rows and computes the rest (a run being recorded) from the next finer level, and finally
from the raw samples. docs/format.md (*Overview levels*) is the contract.

Runs without levels (written before they existed, or by another writer) are read from the raw
samples; `build` makes the levels of a closed run's segment afterwards from its stored samples.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from recorder.store import fast_nodes, nodes
from recorder.store.chunk_io import chunk_file, chunk_format, write_rows

FIRST_BUCKET = 64  # samples per row of the finest level
FACTOR = 16  # rows of a level per row of the next coarser one
MAX_LEVELS = 6  # 64 .. 64 * 16**5 (67M samples: 37 min at 30 kHz per row)
KEEP_ROWS = 4096  # levels stop at the first with at most this many rows ("a few thousand")
CHUNK_BYTES = 256 << 10  # per chunk of a level's min (or max) array
PREFIX = "overview_"  # group `<PREFIX><values array>` beside the placed values array
FORMAT = "min-max-pyramid-1"


def group_name(leaf: str) -> str:
    return PREFIX + leaf


def overview_dtype(dtype: np.dtype) -> np.dtype:
    """float32 where it holds every value exactly (float32, 8- and 16-bit ints), else float64:
    NaN is the fill of a bucket no sample reached."""
    dtype = np.dtype(dtype)
    if (dtype.kind == "f" and dtype.itemsize <= 4) or (dtype.kind in "iub" and dtype.itemsize <= 2):
        return np.dtype("<f4")
    return np.dtype("<f8")


def bucket_of(level: int) -> int:
    return FIRST_BUCKET * FACTOR**level


class _Level:
    """One level being written: buckets of `bucket` samples, made from rows of the finer input
    (raw samples or the previous level), `ratio` input rows per bucket."""

    def __init__(self, owner: OverviewWriter, level: int):
        self.owner, self.level = owner, level
        self.bucket = bucket_of(level)
        self.ratio = FIRST_BUCKET if level == 0 else FACTOR
        c = owner.channels
        self.chunk_rows = max(1, CHUNK_BYTES // (c * owner.dtype.itemsize))
        self.carry_id = -1  # bucket of the incomplete last bucket, -1: none
        self.carry_min = np.zeros(c, owner.dtype)
        self.carry_max = np.zeros(c, owner.dtype)
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []  # rows not written yet
        self.pending_rows = 0
        self.rows = 0  # buckets emitted (written + pending)
        self.written = 0
        self.arrays: tuple[zarr.Array, zarr.Array] | None = None
        self.next: _Level | None = None

    def push(self, i0: int, lo: np.ndarray, hi: np.ndarray) -> None:
        """Input rows i0, i0+1, ... (contiguous; later pushes start further on)."""
        n, f = len(lo), self.ratio
        head = min(n, (-i0) % f)  # rows that finish the bucket before the first whole one
        whole = head + (n - head) // f * f
        lo_parts, hi_parts = [], []
        with np.errstate(invalid="ignore"):  # whole buckets by reshaping: 5x reduceat's speed
            for a, b in ((0, head), (head, whole), (whole, n)):
                if b <= a:
                    continue
                if (a, b) == (head, whole):
                    c = lo.shape[1]
                    lo_parts.append(np.fmin.reduce(lo[a:b].reshape(-1, f, c), axis=1))
                    hi_parts.append(np.fmax.reduce(hi[a:b].reshape(-1, f, c), axis=1))
                else:
                    lo_parts.append(np.fmin.reduce(lo[a:b], axis=0)[None])
                    hi_parts.append(np.fmax.reduce(hi[a:b], axis=0)[None])
        mins = lo_parts[0] if len(lo_parts) == 1 else np.concatenate(lo_parts)
        maxs = hi_parts[0] if len(hi_parts) == 1 else np.concatenate(hi_parts)
        b0 = i0 // f
        if self.carry_id == b0:
            mins[0] = np.fmin(mins[0], self.carry_min)
            maxs[0] = np.fmax(maxs[0], self.carry_max)
        elif self.carry_id >= 0:
            self._emit(self.carry_id, self.carry_min[None], self.carry_max[None])
        self.carry_id = -1
        touched = len(mins)  # buckets the rows reach, from b0 on
        complete = touched if (i0 + n) % f == 0 else touched - 1
        if complete < touched:
            self.carry_id = b0 + complete
            self.carry_min, self.carry_max = mins[complete].copy(), maxs[complete].copy()
        if complete:
            self._emit(b0, mins[:complete], maxs[:complete])

    def _emit(self, b0: int, mins: np.ndarray, maxs: np.ndarray) -> None:
        if b0 > self.rows:  # buckets no sample reached (a gap in the placed array)
            gap = np.full((b0 - self.rows, mins.shape[1]), np.nan, self.owner.dtype)
            mins, maxs = np.concatenate([gap, mins]), np.concatenate([gap, maxs])
            b0 = self.rows
        start = self.rows
        self.pending.append((mins, maxs))
        self.pending_rows += len(mins)
        self.rows += len(mins)
        if self.next is None and self.level + 1 < MAX_LEVELS:
            self.next = _Level(self.owner, self.level + 1)
        if self.next is not None:
            self.next.push(start, mins, maxs)
        if self.pending_rows >= self.chunk_rows:
            self.write(whole_chunks=True)

    def finish(self) -> None:
        if self.carry_id >= 0:
            self._emit(self.carry_id, self.carry_min[None], self.carry_max[None])
            self.carry_id = -1
        if self.next is not None:
            self.next.finish()

    def write(self, *, whole_chunks: bool) -> None:
        """Pending rows to the store: whole chunks only while recording (a chunk is written
        once), everything at the end."""
        if not self.pending_rows:
            return
        mins = np.concatenate([p[0] for p in self.pending])
        maxs = np.concatenate([p[1] for p in self.pending])
        take = len(mins)
        if whole_chunks:
            take = (self.written + take) // self.chunk_rows * self.chunk_rows - self.written
            if take <= 0:
                return
        lo_arr, hi_arr = self._made()
        end = self.written + take
        for arr, values in ((lo_arr, mins), (hi_arr, maxs)):
            self._store(arr, values[:take], end)
        self.written = end
        rest = (mins[take:], maxs[take:])
        self.pending = [rest] if len(rest[0]) else []
        self.pending_rows = len(rest[0])
        self.owner.commit()

    def _store(self, arr: zarr.Array, values: np.ndarray, end: int) -> None:
        """Rows [written, end) into `arr`: chunk files written directly where we can (as the
        recorder writes every raw array; zarr's own write path costs milliseconds a call),
        the shape grown 64 chunks at a time (readers use the `rows` attribute) and cut to the
        rows at the end."""
        cr, c = self.chunk_rows, self.owner.channels
        if arr.shape[0] < end:
            step = cr * (64 if not self.owner.complete else 1)
            fast_nodes.resize(arr, (-(-end // step) * step, c))
        if chunk_format(arr) is None or chunk_file(arr, 0) is None:
            arr[self.written : end] = values
        else:
            first = self.written // cr
            for k in range(first, -(-end // cr)):
                # `written` is a multiple of the chunk rows: only the last chunk is partial
                part = values[k * cr - self.written : min(end, (k + 1) * cr) - self.written]
                if len(part) < cr:
                    part = np.concatenate([part, np.full((cr - len(part), c), np.nan, part.dtype)])
                write_rows(arr, k, np.ascontiguousarray(part))
        if self.owner.complete:  # no chunk lies past `end`: only written rows have chunks
            fast_nodes.resize(arr, (end, c))

    def _made(self) -> tuple[zarr.Array, zarr.Array]:
        if self.arrays is None:
            group = self.owner.made()
            dims = [f"bucket_{self.bucket}", "channel"]
            made = []
            shape = (0, self.owner.channels)
            for kind in ("min", "max"):
                name = f"{kind}_{self.bucket}"
                attributes: dict[str, Any] = {"bucket_samples": self.bucket, "reduce": kind}
                make = functools.partial(
                    group.create_array,
                    name,
                    shape=shape,
                    chunks=(self.chunk_rows, self.owner.channels),
                    dtype=self.owner.dtype,
                    fill_value=np.nan,
                    compressors=None,
                    dimension_names=dims,
                    attributes=attributes,
                )
                kind_key = ("overview", self.chunk_rows, shape, self.owner.dtype.str)
                made.append(
                    fast_nodes.array(group, name, kind_key, make, attributes=attributes, dims=dims)
                )
            self.arrays = (made[0], made[1])
        return self.arrays


class OverviewWriter:
    """Overview levels of one placed array `leaf` of `parent` (its family group)."""

    def __init__(self, parent: zarr.Group, leaf: str, channels: int, dtype: np.dtype):
        self.parent, self.name = parent, group_name(leaf)
        self.channels = channels
        self.dtype = overview_dtype(dtype)
        self.group: zarr.Group | None = None
        self.top = _Level(self, 0)
        self.fed = 0  # rows fed so far
        self.complete = False

    def feed(self, row0: int, values: np.ndarray) -> None:
        """Rows row0.. of the placed array, final (no later placement changes them), in order."""
        if not len(values) or row0 < self.fed:
            return
        if values.shape[1] != self.channels:  # never after the first chunk (placed.py)
            return
        v = values.astype(self.dtype, copy=False)
        self.top.push(row0, v, v)
        self.fed = row0 + len(values)

    def finish(self) -> None:
        """The array is complete: every level's last rows written, the group marked complete.
        Levels past the first with at most KEEP_ROWS rows are dropped unless already written."""
        self.top.finish()
        self.complete = True  # the last writes cut every array to its rows
        level: _Level | None = self.top
        keep = True
        while level is not None:
            if keep or level.written:
                level.write(whole_chunks=False)
            if level.rows <= KEEP_ROWS:
                keep = False
            level = level.next
        self.complete = True
        self.commit()

    def made(self) -> zarr.Group:
        if self.group is None:
            self.group = fast_nodes.group(self.parent, self.name, self._attrs())
        return self.group

    def commit(self) -> None:
        """Written rows per level into the group's attributes, after the rows themselves."""
        if self.group is not None:
            fast_nodes.put_attributes(self.group, self._attrs())

    def _attrs(self) -> dict:
        levels = []
        level: _Level | None = self.top
        while level is not None and level.arrays is not None:
            levels.append({"bucket": level.bucket, "rows": level.written})
            level = level.next
        return {
            "format": FORMAT,
            "reduce": ["min", "max"],
            "levels": levels,
            "samples": self.fed,
            "complete": self.complete,
        }


# -- reading ------------------------------------------------------------------------------------


class Cancelled(Exception):
    """The caller no longer wants the answer (a newer request superseded it)."""


@dataclass(frozen=True)
class Level:
    bucket: int
    rows: int  # rows written: samples [0, rows * bucket) are covered
    min: zarr.Array
    max: zarr.Array


def levels(parent: zarr.Group, leaf: str) -> list[Level]:
    """The written levels of placed array `leaf` of `parent`, finest first ([] if none)."""
    try:
        group = nodes.subgroup(parent, group_name(leaf))
    except Exception:  # no levels: an older run, or not written yet
        return []
    attrs: dict[str, Any] = dict(group.attrs.asdict())
    if attrs.get("format") != FORMAT:
        return []
    out = []
    for entry in attrs.get("levels") or []:
        b = int(entry["bucket"])
        try:
            lo, hi = nodes.array(group, f"min_{b}"), nodes.array(group, f"max_{b}")
        except Exception:
            break
        out.append(Level(b, int(entry["rows"]), lo, hi))
    return out


def _never() -> None:
    return None


BLOCK_CELLS = 1 << 22  # values read at once between checks for cancellation


@dataclass
class Envelope:
    """min/max per bucket of `width` samples, bucket j starting at row `start + j * width`."""

    start: int
    width: int
    min: np.ndarray  # (buckets, channels)
    max: np.ndarray


class Pyramid:
    """Reads any rows of a placed array at any resolution: from the coarsest written level
    that fits, the rows it does not cover from finer levels, then raw samples."""

    def __init__(self, parent: zarr.Group, leaf: str, rows: int, channels: list[int]):
        self.values = nodes.array(parent, leaf)
        self.rows = rows  # committed rows of the placed array
        self.channels = channels
        self.levels = levels(parent, leaf)
        self.check: Callable[[], None] = _never

    def bucket_for(self, samples_per_point: float) -> int:
        """The coarsest resolution (1: raw) at most `samples_per_point` samples per row."""
        best = 1
        for lv in self.levels:
            if lv.bucket <= samples_per_point and lv.rows > 0:
                best = lv.bucket
        return best

    def envelope(self, r0: int, r1: int, points: int) -> Envelope:
        """min/max over rows [r0, r1) in about `points` buckets whose edges are multiples of
        their width (panning keeps the buckets: a plot does not flicker)."""
        n = max(1, r1 - r0)
        bucket = self.bucket_for(n / points)
        width = bucket * max(1, -(-n // (points * bucket)))
        start = r0 // width * width
        end = -(-r1 // width) * width
        lo, hi = self.resolution(bucket, start // bucket, end // bucket)
        k = width // bucket
        c = lo.shape[1]
        with np.errstate(invalid="ignore"):
            lo = np.fmin.reduce(lo.reshape(-1, k, c), axis=1)
            hi = np.fmax.reduce(hi.reshape(-1, k, c), axis=1)
        return Envelope(start, width, lo, hi)

    def resolution(self, bucket: int, i0: int, i1: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows [i0, i1) at `bucket` samples per row (1: raw samples, min == max)."""
        if bucket == 1:
            raw = self.raw(i0, i1)
            return raw, raw
        lv = next(lv for lv in self.levels if lv.bucket == bucket)
        upto = min(i1, lv.rows)
        parts_lo, parts_hi = [], []
        if upto > i0:
            parts_lo.append(self._read(lv.min, i0, upto))
            parts_hi.append(self._read(lv.max, i0, upto))
        if i1 > max(i0, upto):  # not written yet: from the next finer resolution
            a = max(i0, upto)
            finer = max([b.bucket for b in self.levels if b.bucket < bucket], default=1)
            k = bucket // finer
            lo, hi = self.resolution(finer, a * k, i1 * k)
            c = lo.shape[1]
            with np.errstate(invalid="ignore"):
                parts_lo.append(np.fmin.reduce(lo.reshape(-1, k, c), axis=1))
                parts_hi.append(np.fmax.reduce(hi.reshape(-1, k, c), axis=1))
        return np.concatenate(parts_lo), np.concatenate(parts_hi)

    def raw(self, r0: int, r1: int) -> np.ndarray:
        """Raw rows [r0, r1) of the chosen channels as float; NaN past the committed rows."""
        out = np.full((max(0, r1 - r0), len(self.channels)), np.nan)
        upto = min(r1, self.rows)
        if upto > r0:
            out[: upto - r0] = self._read(self.values, r0, upto)
        return out

    def _read(self, arr: zarr.Array, a: int, b: int) -> np.ndarray:
        step = max(1, BLOCK_CELLS // max(1, arr.shape[1]))
        parts = []
        for s in range(a, b, step):
            self.check()
            where = (slice(s, min(b, s + step)), np.asarray(self.channels, dtype=np.int64))
            block = arr.get_orthogonal_selection(where)
            parts.append(np.asarray(block, dtype=np.float64))
        self.check()
        return np.concatenate(parts) if parts else np.zeros((0, len(self.channels)))


# -- building afterwards --------------------------------------------------------------------------


def build(parent: zarr.Group, leaf: str, rows: int) -> bool:
    """Make the levels of a closed run's placed array from its stored samples (a run written
    before levels existed). Written beside it and renamed into place, so a reader never sees
    half of them; False if they exist already or the store is not a local folder."""
    if levels(parent, leaf):
        return False
    root = getattr(parent.store_path.store, "root", None)
    if root is None:
        return False
    folder = Path(root) / parent.store_path.path
    writable = zarr.open_group(folder, mode="r+", zarr_format=3, use_consolidated=False)
    values = nodes.array(writable, leaf)
    tmp_name = group_name(leaf) + ".building-" + str(os.getpid())
    shutil.rmtree(folder / tmp_name, ignore_errors=True)
    writer = OverviewWriter(writable, leaf, int(values.shape[1]), values.dtype)
    writer.name = tmp_name
    step = max(FIRST_BUCKET, BLOCK_CELLS // max(1, values.shape[1]) // FIRST_BUCKET * FIRST_BUCKET)
    for s in range(0, rows, step):
        writer.feed(s, nodes.read_rows(values, s, min(rows, s + step)))
    writer.finish()
    writer.made()
    try:
        os.rename(folder / tmp_name, folder / group_name(leaf))
    except OSError:  # another process built them first
        shutil.rmtree(folder / tmp_name, ignore_errors=True)
    return True
