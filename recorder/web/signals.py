"""The signal view's data: any window of a placed (samples, channels) array (Open Ephys
continuous data) at any zoom, with the TTL events and spikes of that window on the same time
axis.

Served from the overview levels kept with the run (store/overviews.py), so a window costs
about the same in a 1-hour run as in a 1-minute one: at most ~16 level rows per point, raw
samples only when fewer than 64 samples fall on a point. A run written before the levels
existed gets them built once, on its first request, and kept in the run (a closed run only).

Time is seconds from the run's start on the receive clock, as everywhere on the run page: the
sample clock is anchored at the segment's first message (its last sample arrived when the
message did) and runs at the stream's sample rate from there, so events and spikes, which
carry sample numbers, land exactly on the samples they belong to.

A viewer sends `view` (its own id) and `gen` (a number it raises with every request): a
request that a newer one of the same viewer supersedes stops reading at its next block and is
answered 409, so panning and zooming quickly does not queue work for pictures nobody sees.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from recorder.errors import Conflict, NotFound, StreamNotFound, UsageError
from recorder.store import layout, nodes, overviews
from recorder.store.reader import ArraySegment, RunReader, StreamReader
from recorder.web import models as m
from recorder.web.api import _stream, api

MAX_CHANNELS = 64  # channels per request
MAX_POINTS = 4000
EVENT_SCAN_MESSAGES = 200_000  # events and spikes are listed when the window holds fewer messages
TTL_EVENT = 3  # Open Ephys EventType TTL


class SignalQuery(m.Query):
    start: float | None = Field(None, ge=-1e9, le=1e9, description="Seconds from the run start.")
    end: float | None = Field(None, ge=-1e9, le=1e9)
    points: int = Field(1500, ge=2, le=MAX_POINTS, description="Buckets of min/max (at most).")
    array: Annotated[str, Field(max_length=256)] | None = Field(
        None, description="A placed array (`continuous/<stream>`); default: the first."
    )
    channels: Annotated[str, Field(max_length=1000, pattern=r"^[0-9, ]*$")] | None = Field(
        None, description="Channel numbers, comma-separated (default: the first 8; at most 64)."
    )
    view: Annotated[str, Field(max_length=64)] | None = Field(
        None, description="The asking viewer's id: with `gen`, newer requests supersede older."
    )
    gen: int = Field(0, ge=0, le=2**53, description="The viewer's request number.")


class Signal(m.Response):
    stream: str
    array: str
    arrays: list[str]
    start_s: float
    end_s: float
    extent_s: list[float]
    bucket: int = Field(description="Samples per point (1: raw samples, `values`).")
    level: int = Field(description="Samples per row of the level read (1: raw).")
    channels: list[int]
    labels: list[str]
    channel_names: list[str]
    units: str
    about: str = Field(description="What the protocol says the values are (units when unsent).")
    t_s: list[float]
    events: list[dict[str, Any]]
    spikes: list[dict[str, Any]]
    events_shown: bool


# -- superseded requests ------------------------------------------------------------------------


class Generations:
    """The newest request number per viewer (bounded: the oldest viewers are forgotten)."""

    def __init__(self, size: int = 4096):
        self.size = size
        self.newest: OrderedDict[str, int] = OrderedDict()
        self.lock = threading.Lock()

    def begin(self, view: str | None, gen: int) -> Callable[[], None]:
        """Register request `gen` of `view`; the answer raises overviews.Cancelled once a newer
        one began. A request older than one already seen is refused at once."""
        if not view:
            return lambda: None
        with self.lock:
            if self.newest.get(view, -1) > gen:
                raise overviews.Cancelled()
            self.newest[view] = gen
            self.newest.move_to_end(view)
            while len(self.newest) > self.size:
                self.newest.popitem(last=False)

        def check() -> None:
            if self.newest.get(view, gen) > gen:
                raise overviews.Cancelled()

        return check


GENERATIONS = Generations()
_BUILD_LOCK = threading.Lock()


# -- time <-> rows ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clock:
    """Row r of a placed segment is at `t0 + r / rate` seconds from the run's start."""

    t0: float
    rate: float

    def t(self, row: float) -> float:
        return self.t0 + row / self.rate

    def row(self, t: float) -> float:
        return (t - self.t0) * self.rate


def _recv_s(run: RunReader, s: StreamReader, i: int) -> float:
    recv = nodes.read_rows(nodes.array(s.group, "recv_ns"), i, i + 1)
    return (int(recv[0]) - run.started_ns) / 1e9


def clock(run: RunReader, s: StreamReader, seg: ArraySegment, attrs: dict) -> Clock:
    """The segment's clock: anchored at its first message, at its sample rate (or, if the
    messages carried none, the rate its first and last message's receive times imply)."""
    first = int(attrs.get("first_message", 0))
    ft = s.frame_rows(first, first + 1)
    mine = (ft.segment == seg.index) & ft.placed
    row_end = 0.0
    if mine.any():
        k = int(np.flatnonzero(mine)[0])
        row_end = float(ft.offset[k] + ft.length[k] // np.dtype(seg.dtype).itemsize)
    t_first = _recv_s(run, s, min(first, s.n_messages - 1))
    rate = attrs.get("sample_rate")
    if not isinstance(rate, int | float) or not rate > 0:
        t_last = _recv_s(run, s, s.n_messages - 1)
        rate = (seg.rows - row_end) / (t_last - t_first) if t_last > t_first else 1.0
        rate = rate if rate > 0 else 1.0
    return Clock(t_first - row_end / float(rate), float(rate))


def _index_at(s: StreamReader, recv_ns: int) -> int:
    """First message received at or after recv_ns, by bisection (a few chunk reads, not the
    whole column)."""
    arr = nodes.array(s.group, "recv_ns")
    lo, hi = 0, s.n_messages
    chunk = int(arr.chunks[0])
    while hi - lo > chunk:
        mid = (lo + hi) // 2
        if int(nodes.read_rows(arr, mid, mid + 1)[0]) < recv_ns:
            lo = mid + 1
        else:
            hi = mid
    values = nodes.read_rows(arr, lo, hi)
    return lo + int(np.searchsorted(values, recv_ns, side="left"))


# -- the window ---------------------------------------------------------------------------------


def _placed_names(s: StreamReader) -> list[str]:
    out: list[str] = []
    for seg in s.array_segments():
        if seg.placed and seg.name not in out and np.dtype(seg.dtype).kind in "iuf":
            out.append(seg.name)
    return out


def _channels(text: str | None, total: int) -> list[int]:
    if not text or not text.strip():
        return list(range(min(8, total)))
    try:
        chosen = list(dict.fromkeys(int(x) for x in text.replace(" ", "").split(",") if x))
    except ValueError as e:
        raise UsageError(f"channels: {e}") from None
    if not chosen:
        return list(range(min(8, total)))
    if len(chosen) > MAX_CHANNELS:
        raise UsageError(f"at most {MAX_CHANNELS} channels per request (asked {len(chosen)})")
    bad = [c for c in chosen if not 0 <= c < total]
    if bad:
        raise UsageError(f"no channel {bad[0]}: the array has channels 0..{total - 1}")
    return chosen


def _levels_for(run: RunReader, s: StreamReader, seg: ArraySegment) -> None:
    """A closed run's segment without levels gets them now, once (kept in the run)."""
    parent_path, _, leaf = seg.path.rpartition("/")
    parent = nodes.subgroup(s.group, parent_path)
    if run.status == "recording" or run.attrs.get("format_version") != layout.FORMAT_VERSION:
        return  # levels are an addition within format 2 (`recorder migrate` an older run)
    if seg.rows < 2 * overviews.FIRST_BUCKET or overviews.levels(parent, leaf):
        return
    # a read-only data folder: served from raw samples
    with _BUILD_LOCK, contextlib.suppress(OSError):
        overviews.build(parent, leaf, seg.rows)


def _nullable(a: np.ndarray) -> list:
    return [None if x != x else x for x in a.tolist()]


def signal(
    run: RunReader,
    s: StreamReader,
    *,
    start: float | None,
    end: float | None,
    points: int,
    array: str | None,
    channels: str | None,
    check: Callable[[], None] = lambda: None,
) -> dict:
    names = _placed_names(s)
    if not names:
        raise NotFound(f"stream {s.name} has no continuous (placed) arrays")
    name = array if array is not None else names[0]
    if name not in names:
        raise StreamNotFound(f"stream {s.name} has no continuous array {name!r}")
    segs = [seg for seg in s.array_segments(name) if seg.placed and seg.rows > 0]
    if not segs:
        raise NotFound(f"array {name} has no samples yet")
    for seg in segs:
        _levels_for(run, s, seg)
    parts = []
    for seg in segs:
        parent_path, _, leaf = seg.path.rpartition("/")
        parent = nodes.subgroup(s.group, parent_path)
        attrs = nodes.array(parent, leaf).attrs.asdict()
        parts.append((seg, parent, leaf, attrs, clock(run, s, seg, attrs)))
    total = max(int(p[0].shape[0]) if p[0].shape else 1 for p in parts)
    chosen = _channels(channels, total)
    t_begin = min(p[4].t(0) for p in parts)
    t_end = max(p[4].t(p[0].rows) for p in parts)
    t0 = t_begin if start is None else start
    t1 = t_end if end is None else end
    if t1 <= t0:
        raise UsageError("end must be after start")
    ts: list[np.ndarray] = []
    los: list[np.ndarray] = []
    his: list[np.ndarray] = []
    bucket = level = 1
    scales = np.ones(len(chosen))
    units = ""
    for seg, parent, leaf, attrs, clk in parts:
        r0 = max(0, math.floor(clk.row(t0) + 1e-6))  # rows whose time is in [t0, t1]
        r1 = min(seg.rows, math.floor(clk.row(t1) + 1e-6) + 1)
        if r1 <= r0:
            continue
        width = seg.shape[0] if seg.shape else 1
        cols = [c for c in chosen if c < width]
        pyramid = overviews.Pyramid(parent, leaf, seg.rows, cols)
        pyramid.check = check
        share = (min(t1, clk.t(seg.rows)) - max(t0, clk.t(0))) / (t1 - t0)
        pts = max(2, int(points * min(1.0, max(share, 0.0))))
        env = pyramid.envelope(r0, r1, pts)
        bucket, level = env.width, pyramid.bucket_for((r1 - r0) / pts)
        lo = np.full((len(env.min), len(chosen)), np.nan)
        hi = lo.copy()
        idx = [chosen.index(c) for c in cols]
        lo[:, idx], hi[:, idx] = env.min, env.max
        scale = attrs.get("scale")
        if isinstance(scale, list):
            for j, c in enumerate(chosen):
                if c < len(scale) and isinstance(scale[c], int | float):
                    scales[j] = float(scale[c])
        units = units or str(attrs.get("units") or "")
        rows = env.start + np.arange(len(lo)) * env.width
        if ts:  # a break in the line between segments
            ts.append(np.array([ts[-1][-1]]))
            los.append(np.full((1, len(chosen)), np.nan))
            his.append(np.full((1, len(chosen)), np.nan))
        ts.append(clk.t0 + rows / clk.rate)
        los.append(lo)
        his.append(hi)
    t = np.concatenate(ts) if ts else np.zeros(0)
    lo = (np.concatenate(los) if los else np.zeros((0, len(chosen)))) * scales
    hi = (np.concatenate(his) if his else np.zeros((0, len(chosen)))) * scales
    meaning = (s.attrs.get("meaning") or {}).get("columns") or {}
    about = next((str(v) for k, v in meaning.items() if name.startswith(k) and k), "")
    names_all = (s.channel_names(name) or [])[:total]
    names_all += [str(c) for c in range(len(names_all), total)]
    out: dict[str, Any] = {
        "stream": s.name,
        "array": name,
        "arrays": names,
        "start_s": t0,
        "end_s": t1,
        "extent_s": [t_begin, t_end],
        "bucket": bucket,
        "level": level,
        "channels": chosen,
        "labels": [names_all[c] for c in chosen],
        "channel_names": names_all,
        "units": units,
        "about": about,
        "t_s": [round(x, 9) for x in t.tolist()],
    }
    if bucket == 1:
        out["values"] = [_nullable(lo[:, j]) for j in range(len(chosen))]
    else:
        out["min"] = [_nullable(lo[:, j]) for j in range(len(chosen))]
        out["max"] = [_nullable(hi[:, j]) for j in range(len(chosen))]
    check()
    out.update(_events(run, s, name, parts, t0, t1, (t_begin, t_end)))
    return out


def _events(
    run: RunReader,
    s: StreamReader,
    name: str,
    parts: list,
    t0: float,
    t1: float,
    extent: tuple[float, float],
) -> dict:
    """TTL events and spikes in [t0, t1] (Open Ephys: the columns `event_type`, `line`,
    `state`, `electrode`, `sample_num`), timed by the segment's clock; only when the window
    holds few enough messages that reading their columns stays cheap."""
    have = set(s.column_names())
    if "sample_num" not in have or not ({"event_type", "electrode"} & have):
        return {"events": [], "spikes": [], "events_shown": True}
    t_begin, t_end = extent
    if s.n_messages * (t1 - t0) / max(t_end - t_begin, 1e-9) > 2 * EVENT_SCAN_MESSAGES:
        return {"events": [], "spikes": [], "events_shown": False}  # plainly too many: no search
    lo_ns = run.started_ns + int((t0 - 1.0) * 1e9)  # a block arrives after its samples
    hi_ns = run.started_ns + int((t1 + 1.0) * 1e9)
    i0, i1 = _index_at(s, lo_ns), _index_at(s, hi_ns)
    if i1 - i0 > EVENT_SCAN_MESSAGES:
        return {"events": [], "spikes": [], "events_shown": False}
    sample = s.column("sample_num", i0, i1)
    stream_name = name.split("/", 1)[-1]
    streams = s.column("stream", i0, i1) if "stream" in have else None
    first_sample = int(parts[0][0].first_sample or 0)
    clk = parts[0][4]
    events, spikes = [], []

    def when(k: int) -> float | None:
        if streams is not None and str(streams[k]) not in ("", stream_name):
            return None
        t = clk.t(float(sample[k]) - first_sample)
        return t if t0 <= t <= t1 else None

    if "event_type" in have:
        kind = s.column("event_type", i0, i1)
        line = s.column("line", i0, i1) if "line" in have else None
        state = s.column("state", i0, i1) if "state" in have else None
        for k in np.flatnonzero(kind == TTL_EVENT):
            t = when(int(k))
            if t is not None:
                ev: dict[str, Any] = {"t_s": t}
                if line is not None:
                    ev["line"] = int(line[k])
                if state is not None:
                    ev["state"] = bool(state[k])
                events.append(ev)
    if "electrode" in have:
        electrode = s.column("electrode", i0, i1)
        for k in np.flatnonzero(electrode != ""):
            t = when(int(k))
            if t is not None:
                spikes.append({"t_s": t, "electrode": str(electrode[k])})
    return {"events": events[:5000], "spikes": spikes[:5000], "events_shown": True}


@api.op("GET", "/runs/<run_id>/streams/<stream>/signal", tag="previews", query=SignalQuery,
        response=Signal, errors=(409,))  # fmt: skip
def get_signal(run_id: str, stream: str, query: SignalQuery):
    """Continuous data of a window at any zoom: min/max per point from the run's overview
    levels (raw samples when zoomed in), with TTL events and spikes; 409 when a newer request
    of the same `view` superseded this one."""
    try:
        check = GENERATIONS.begin(query.view, query.gen)
        reader, s = _stream(run_id, stream)
        return signal(
            reader,
            s,
            start=query.start,
            end=query.end,
            points=query.points,
            array=query.array,
            channels=query.channels,
            check=check,
        )
    except overviews.Cancelled:
        raise Conflict(f"request {query.gen} of view {query.view} was superseded") from None
