"""Looking into a run without downloading it: image frames as PNG, min/max-decimated waveforms,
and message headers decoded for display.

No Flask here, and nothing is ever unpickled or evaluated: headers are shown as JSON, msgpack,
text or hex, whatever they decode to safely. Everything reads only committed rows, so a run
being recorded can be looked at while it grows.
"""

from __future__ import annotations

import json
import math

import msgpack
import numpy as np

from recorder.errors import NotFound, StreamNotFound, UsageError
from recorder.store.reader import ArraySegment, FrameRows, RunReader, StreamReader
from recorder.web import imaging

_BLOCK_ROWS = 1 << 20  # rows of a waveform read at once
_MAX_CHANNELS = 64  # a (channels, samples) row with more "channels" is an image, not a waveform


def _check_index(s: StreamReader, i: int) -> None:
    if not 0 <= i < s.n_messages:
        raise NotFound(f"stream {s.name} has no message {i} (it has {s.n_messages})")


# -- images ------------------------------------------------------------------------------------


def picture_png(a: np.ndarray, size: int = 512) -> bytes:
    """Any image-like array as a contrast-stretched PNG that fits in size x size pixels (a
    run's frame and the live view's latest one look the same)."""
    return imaging.render_png(a, imaging.Look(), size)


def frame_png(s: StreamReader, index: int, *, array: str | None = None, size: int = 512) -> bytes:
    """Message `index`'s first image frame (or its frame of array `array`) as a PNG that fits
    in size x size pixels."""
    return imaging.frame_png(s, index, array=array, size=size, look=imaging.Look())


# -- waveforms ---------------------------------------------------------------------------------


class MinMax:
    """min/max of every channel in `points` equal time buckets over [t0, t1)."""

    def __init__(self, t0: float, t1: float, points: int, channels: int):
        self.t0, self.t1, self.points = t0, t1, points
        self.span = max(t1 - t0, 1e-9)
        self.min = np.full((points, channels), np.nan)
        self.max = np.full((points, channels), np.nan)
        self.samples = 0

    def add(self, t: np.ndarray, v: np.ndarray) -> None:
        if not len(t):
            return
        b = np.floor((t - self.t0) / self.span * self.points).astype(np.int64)
        b[t == self.t1] = self.points - 1
        keep = (b >= 0) & (b < self.points)
        b, v = b[keep], v[keep]
        if not len(b):
            return
        self.samples += len(b)
        if np.any(np.diff(b) < 0):
            order = np.argsort(b, kind="stable")
            b, v = b[order], v[order]
        starts = np.concatenate(([0], np.flatnonzero(np.diff(b)) + 1))
        ids = b[starts]
        c = v.shape[1]
        with np.errstate(invalid="ignore"):
            lo = np.fmin.reduceat(v, starts, axis=0)
            hi = np.fmax.reduceat(v, starts, axis=0)
            self.min[ids, :c] = np.fmin(self.min[ids, :c], lo)
            self.max[ids, :c] = np.fmax(self.max[ids, :c], hi)

    def result(self) -> dict:
        def cols(a):
            return [
                [None if math.isnan(x) else float(x) for x in a[:, k]] for k in range(a.shape[1])
            ]

        centers = self.t0 + (np.arange(self.points) + 0.5) * self.span / self.points
        return {
            "t_s": [float(x) for x in centers],
            "min": cols(self.min),
            "max": cols(self.max),
            "samples": int(self.samples),
        }


def _numeric(a: np.ndarray, what: str) -> np.ndarray:
    if a.dtype.kind == "b":
        return a.astype(np.float64)
    if a.dtype.kind not in "iuf":
        raise UsageError(f"{what} is not numeric ({a.dtype})")
    return a.astype(np.float64)


def _waveform_rows(rows: np.ndarray) -> np.ndarray:
    """Stacked per-message rows -> (messages, samples per message, channels)."""
    if rows.ndim == 1:
        return rows[:, None, None]
    if rows.ndim == 2:
        return rows[:, :, None]
    return np.swapaxes(rows, 1, 2)  # (n, channels, samples) -> (n, samples, channels)


def series(
    run: RunReader,
    s: StreamReader,
    *,
    start: float | None = None,
    end: float | None = None,
    points: int = 1000,
    array: str | None = None,
    column: str | None = None,
) -> dict:
    """min/max per bucket of a typed array (a waveform) or a per-message column, against
    seconds from the run's start."""
    if array is not None and column is not None:
        raise UsageError("give array or column, not both")
    t_run = run.started_ns
    recv = s.column("recv_ns")
    if not len(recv):
        raise NotFound(f"stream {s.name} has no messages yet")
    t_msgs = (recv - t_run) / 1e9
    t0 = float(t_msgs[0]) if start is None else start
    t1 = float(t_msgs[-1]) if end is None else end
    if t1 < t0:
        raise UsageError("end is before start")
    if t1 == t0:
        t1 = t0 + 1e-3
    i0 = int(np.searchsorted(t_msgs, t0, side="left"))
    i1 = int(np.searchsorted(t_msgs, t1, side="right"))
    out = {"stream": s.name, "array": array, "column": column, "start_s": t0, "end_s": t1}
    if column is not None or not _waveform_names(s, strict=array is None):
        if column is None:
            raise NotFound(f"stream {s.name} has no waveform arrays; ask for a column")
        if column not in s.column_names():
            raise StreamNotFound(f"stream {s.name} has no column {column!r}")
        values = _numeric(np.asarray(s.column(column, i0, i1)), f"column {column}")
        mm = MinMax(t0, t1, points, 1)
        mm.add(t_msgs[i0:i1], values.reshape(-1, 1))
        return {**out, "channels": [column], **mm.result()}
    names = _waveform_names(s, strict=array is None)
    name = array if array is not None else names[0]
    if name not in names:
        if name in s.array_names():
            raise UsageError(f"array {name!r} has no line plot (rows of 3+ dimensions)")
        raise StreamNotFound(f"stream {s.name} has no array {name!r}")
    out["array"] = name
    segs = s.array_segments(name)
    channels = max(_channels(seg) for seg in segs)
    mm = MinMax(t0, t1, points, channels)
    ft = s.frame_rows(i0, i1)
    in_cells = ft.placed
    for seg in segs:
        mine = (ft.segment == seg.index) & ~in_cells
        placed = (ft.segment == seg.index) & in_cells
        if mine.any():
            _add_rows(s, seg, ft.offset[mine], t_msgs[ft.message[mine]], mm)
        if placed.any():
            _add_placed(s, seg, ft, placed, t_msgs, mm)
    labels = (s.channel_names(name) or [])[:channels]
    labels += [str(c) for c in range(len(labels), channels)]
    return {**out, "channels": labels, **mm.result()}


def _channels(seg: ArraySegment) -> int:
    shape = seg.shape
    if seg.placed:
        return int(shape[0]) if shape else 1
    return int(shape[0]) if len(shape) == 2 else 1


def _waveform_names(s: StreamReader, *, strict: bool = True) -> list[str]:
    """Arrays that plot as lines: scalars, 1-D blocks, placed arrays, and (channels, samples)
    blocks with many more samples than channels (a 48 x 64 frame is an image). Not `strict`
    (the caller named the array): any numeric array with rows of at most two dimensions.

    Placed arrays (continuous data) come first, the rest in creation order: the first name is
    the series' default, and which message happened to arrive first (a spike before any
    continuous block) must not choose it."""
    out = []
    for seg in s.array_segments():
        shape = seg.shape
        if strict:
            wave = (
                seg.placed
                or len(shape) <= 1
                or (len(shape) == 2 and shape[0] <= _MAX_CHANNELS and shape[1] >= 4 * shape[0])
            )
        else:
            wave = seg.placed or len(shape) <= 2
        if wave and np.dtype(seg.dtype).kind in "iufb" and seg.name not in out:
            out.append(seg.name)
    placed = {seg.name for seg in s.array_segments() if seg.placed}
    return sorted(out, key=lambda name: name not in placed)  # stable: creation order kept


def _add_rows(
    s: StreamReader, seg: ArraySegment, rows: np.ndarray, t: np.ndarray, mm: MinMax
) -> None:
    """Unplaced segment: one row per message; every sample takes its message's time."""
    keep = rows < seg.rows
    rows, t = rows[keep], t[keep]
    if not len(rows):
        return
    lo = int(rows.min())
    row_size = max(1, int(np.prod(seg.shape, dtype=np.int64)))
    step = max(1, _BLOCK_ROWS // row_size)
    for b0 in range(lo, int(rows.max()) + 1, step):
        sel = (rows >= b0) & (rows < b0 + step)
        if not sel.any():
            continue
        block = _numeric(np.asarray(s.read_segment(seg.index, b0, b0 + step)), seg.name)
        w = _waveform_rows(block[rows[sel] - b0])  # (n, samples, channels)
        n, per, c = w.shape
        mm.add(np.repeat(t[sel], per), w.reshape(n * per, c))


def _add_placed(
    s: StreamReader, seg: ArraySegment, ft: FrameRows, sel: np.ndarray, t_msgs, mm: MinMax
) -> None:
    """Placed (samples, channels) segment: a row's time is interpolated between the receive
    times of the messages that filled it, so no sample rate needs to be known."""
    starts = ft.offset[sel]
    lengths = ft.length[sel] // max(1, np.dtype(seg.dtype).itemsize)
    times = t_msgs[ft.message[sel]]
    r0, r1 = int(starts.min()), min(seg.rows, int((starts + lengths).max()))
    order = np.argsort(starts, kind="stable")
    xs, ts = starts[order].astype(np.float64), times[order]
    for b0 in range(r0, r1, _BLOCK_ROWS):
        b1 = min(r1, b0 + _BLOCK_ROWS)
        block = _numeric(np.asarray(s.read_segment(seg.index, b0, b1)), seg.name)
        if block.ndim == 1:
            block = block[:, None]
        mm.add(np.interp(np.arange(b0, b1, dtype=np.float64), xs, ts), block)


# -- message headers ---------------------------------------------------------------------------

_TEXT_LIMIT = 2000
_DECODE_LIMIT = 1 << 20


def jsonable(obj, depth: int = 0):
    """Anything decoded from a header as JSON-safe, bounded data (bytes shown as hex)."""
    if depth > 8:
        return "..."
    if obj is None or isinstance(obj, bool | int | str):
        if isinstance(obj, int) and not isinstance(obj, bool) and abs(obj) > 2**63:
            return str(obj)
        return obj[:_TEXT_LIMIT] if isinstance(obj, str) else obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if isinstance(obj, bytes | bytearray | memoryview):
        b = bytes(obj)
        return {"bytes": len(b), "hex": b[:32].hex()}
    if isinstance(obj, dict):
        items = list(obj.items())[:200]
        return {str(jsonable(k, depth + 1)): jsonable(v, depth + 1) for k, v in items}
    if isinstance(obj, list | tuple):
        out = [jsonable(v, depth + 1) for v in obj[:200]]
        if len(obj) > 200:
            out.append(f"... {len(obj) - 200} more")
        return out
    return str(obj)[:_TEXT_LIMIT]


def describe_bytes(raw: bytes, hex_bytes: int = 64) -> dict:
    """The most readable safe view of one verbatim frame."""
    if raw[:1] == b"\x80" and len(raw) > 1 and raw[1:2] in b"\x02\x03\x04\x05":
        return {"kind": "pickle", "hex": raw[:32].hex()}  # never unpickled
    if len(raw) <= _DECODE_LIMIT:
        head = raw.lstrip()[:1]
        if head in (b"{", b"["):
            try:
                return {"kind": "json", "value": jsonable(json.loads(raw))}
            except (ValueError, RecursionError):
                pass
        try:
            value = msgpack.unpackb(raw, raw=False, strict_map_key=False)
            if isinstance(value, dict | list):
                return {"kind": "msgpack", "value": jsonable(value)}
        except Exception:  # any malformed input just is not msgpack
            pass
    try:
        text = raw[: _TEXT_LIMIT * 4].decode("utf-8")
        if text.isprintable() or all(ch.isprintable() or ch in "\r\n\t" for ch in text):
            return {"kind": "text", "text": text[:_TEXT_LIMIT]}
    except UnicodeDecodeError:
        pass
    return {"kind": "bytes", "hex": raw[:hex_bytes].hex()}


def messages_page(
    run: RunReader, s: StreamReader, *, start: int = 0, limit: int = 50, hex_bytes: int = 64
) -> dict:
    stop = min(s.n_messages, start + limit)
    items = []
    if start < stop:
        ft = s.frame_rows(start, stop)
        placed = ft.placed
        segments = s.array_segments()
        rejects = dict(s.rejects())
        pos = 0
        for m in s.messages(start, stop):
            frames = []
            for j, f in enumerate(m.frames):
                seg = int(ft.segment[pos + j])
                info: dict = {"index": j, "size": len(f)}
                if seg >= 0 and seg < len(segments):
                    seg_info = segments[seg]
                    info.update(kind="array", array=seg_info.name, dtype=seg_info.dtype)
                    if not placed[pos + j]:
                        info["shape"] = list(seg_info.shape)
                    else:
                        row, col = int(ft.offset[pos + j]), int(ft.column[pos + j])
                        info["placed"] = {"row": row, "column": col}
                else:
                    info.update(describe_bytes(bytes(f), hex_bytes))
                frames.append(info)
            pos += len(m.frames)
            item = {
                "index": m.index,
                "recv_ns": m.recv_ns,
                "t_s": (m.recv_ns - run.started_ns) / 1e9,
                "seq": m.seq,
                "source_ns": m.source_ns,
                "rejected": m.rejected,
                "frames": frames,
            }
            if m.index in rejects:
                item["reject_reason"] = rejects[m.index]
            items.append(item)
    return {"stream": s.name, "start": start, "total": s.n_messages, "messages": items}
