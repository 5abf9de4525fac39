"""What an NWB export holds, found by one pass over the chosen messages, and the block readers
that feed pynwb afterwards.

The pass reads the frame table and a few columns block by block (never a whole stream) and
notes, per Open Ephys data stream, which rows of each placed segment the window covers, how many
TTL events and which spike rows it holds. The file is then written from those notes, reading
the store again block by block, so memory stays flat in run length.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from recorder.export.base import StreamWindow
from recorder.store import nodes
from recorder.store.reader import ArraySegment, StreamReader

BLOCK = 4096  # messages read at once
CONTINUOUS, SPIKES = "continuous/", "spikes/"
_MISSING_INT = np.iinfo(np.int64).min
_TTL = 3  # Open Ephys event type of a TTL event


def blocks(lo: int, hi: int, size: int = BLOCK) -> Iterator[tuple[int, int]]:
    for b0 in range(lo, hi, size):
        yield b0, min(hi, b0 + size)


def seconds(reader: StreamReader, messages: np.ndarray, t0_ns: int) -> np.ndarray:
    """Receive times of `messages` (ascending indices) in seconds from `t0_ns`."""
    if not len(messages):
        return np.zeros(0)
    lo, hi = int(messages[0]), int(messages[-1]) + 1
    return (reader.column("recv_ns", lo, hi)[messages - lo] - t0_ns) / 1e9


class Regularity:
    """Are a series' times evenly spaced? The NWB Inspector wants such a series written with
    `starting_time` and `rate` instead of timestamps (diffs equal to 9 decimals, as it checks);
    this follows the times block by block."""

    def __init__(self) -> None:
        self.n = 0
        self.first: float | None = None
        self.last: float | None = None
        self.step: float | None = None
        self.even = True

    def add(self, times: np.ndarray) -> None:
        if not len(times):
            return
        joined = times if self.last is None else np.concatenate([[self.last], times])
        for step in np.unique(np.diff(joined).round(decimals=9)).tolist():
            if self.step is None:
                self.step = step
            elif step != self.step:
                self.even = False
        if self.first is None:
            self.first = float(times[0])
        self.last = float(times[-1])
        self.n += len(times)

    @property
    def rate(self) -> float | None:
        """Events per second when the times are evenly spaced (and there are more than 2)."""
        if self.even and self.n > 2 and self.step:
            return 1.0 / self.step
        return None


@dataclass
class ContinuousPart:
    """Rows [row_lo, row_hi) of one placed segment (one Open Ephys data stream's samples)."""

    window: StreamWindow
    seg: ArraySegment
    oe_stream: str
    row_lo: int
    row_hi: int
    first_recv_ns: int  # receive time of the message that carried row_lo
    rate: float | None
    channel_names: list[str]
    units: str | None
    scale: list[float | None] | None

    @property
    def rows(self) -> int:
        return self.row_hi - self.row_lo

    @property
    def channels(self) -> int:
        return int(self.seg.shape[0])

    @property
    def first_sample(self) -> int:
        return int(self.seg.first_sample or 0) + self.row_lo


@dataclass
class SpikePart:
    """The spikes of one electrode with one waveform shape (channels, samples) in one segment.

    A stacked segment holds a message's waveform as one row; a ragged one (format 2, once the
    channel count changed) as `channels` rows of `samples`, so one segment can hold waveforms
    of several shapes: each shape is a part of its own."""

    window: StreamWindow
    seg: ArraySegment
    oe_stream: str
    electrode: str
    channels: int
    samples: int
    count: int = 0
    times: Regularity = field(default_factory=Regularity)

    def frames(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(message index, first row) of each of the part's waveforms, block by block."""
        reader, k = self.window.reader, self.seg.index
        row_bytes = self.samples * np.dtype(self.seg.dtype).itemsize
        for b0, b1 in blocks(self.window.lo, self.window.hi):
            fr = reader.frame_rows(b0, b1)
            pick = ~fr.placed & (fr.segment == k) & (fr.offset < self.seg.rows)
            if self.seg.ragged:
                pick &= fr.length // row_bytes == self.channels
            if pick.any():
                yield fr.message[pick], fr.offset[pick]

    def waveforms(self) -> Iterator[np.ndarray]:
        """(spikes, channels, samples) blocks in message order."""
        reader, k = self.window.reader, self.seg.index
        height = self.channels if self.seg.ragged else 1
        for _, rows in self.frames():
            lo, hi = int(rows.min()), int(rows.max()) + height
            values = reader.read_segment(k, lo, hi)
            if self.seg.ragged:
                yield np.stack([values[r - lo : r - lo + height] for r in rows])
            else:
                yield values[rows - lo]


@dataclass
class TtlPart:
    """The TTL events of one Open Ephys data stream in a window."""

    window: StreamWindow
    oe_stream: str
    count: int = 0
    times: Regularity = field(default_factory=Regularity)


@dataclass
class Scan:
    continuous: list[ContinuousPart] = field(default_factory=list)
    spikes: list[SpikePart] = field(default_factory=list)
    ttl: list[TtlPart] = field(default_factory=list)


def segment_attrs(reader: StreamReader, seg: ArraySegment) -> dict:
    return nodes.attrs_of(nodes.array(reader.group, seg.path))


def _name_tail(name: str, prefix: str) -> str:
    return name[len(prefix) :] if name.startswith(prefix) else name


class TtlColumns:
    """Which columns say a message is a TTL event: the ZMQ Interface's (event_type 3 with a
    line) and the Event Broadcaster's JSON (`line`, `state`, `sample_number`)."""

    def __init__(self, reader: StreamReader):
        names = set(reader.column_names())
        self.reader = reader
        self.usable = {"line", "state"} <= names
        self.sample = "sample_num" if "sample_num" in names else "sample_number"
        self.has_sample = self.sample in names
        self.has_type = "event_type" in names
        self.has_stream = "stream" in names
        self.has_word = "word" in names

    def block(self, b0: int, b1: int) -> dict[str, np.ndarray] | None:
        """The TTL rows of messages [b0, b1): message index, line, state, sample, word,
        stream; None when the stream holds no TTL columns."""
        if not self.usable:
            return None
        r = self.reader
        line = r.column("line", b0, b1)
        pick = line != _MISSING_INT
        if self.has_type:  # ZMQ Interface: type code 3; Event Broadcaster JSON: "ttl"
            kind = r.column("event_type", b0, b1)
            if kind.dtype.kind in "iu":
                pick &= (kind == _TTL) | (kind == _MISSING_INT)
            else:
                pick &= np.array([str(k).lower() in ("ttl", "") for k in kind], dtype=bool)
        idx = np.flatnonzero(pick)
        n = len(idx)
        out = {
            "message": b0 + idx,
            "line": line[idx].astype(np.int64),
            "state": r.column("state", b0, b1)[idx].astype(bool),
            "sample": (
                r.column(self.sample, b0, b1)[idx].astype(np.int64)
                if self.has_sample
                else np.full(n, -1, np.int64)
            ),
            "word": (
                r.column("word", b0, b1)[idx].astype(np.int64)
                if self.has_word
                else np.zeros(n, np.int64)
            ),
            "stream": np.array(
                [str(x) for x in r.column("stream", b0, b1)[idx]] if self.has_stream else [""] * n,
                dtype=object,
            ),
        }
        out["sample"] = np.where(out["sample"] == _MISSING_INT, -1, out["sample"])
        out["word"] = np.where(out["word"] == _MISSING_INT, 0, out["word"])  # none sent
        return out


def _continuous_part(
    window: StreamWindow, seg: ArraySegment, lo: int, hi: int, recv_ns: int
) -> ContinuousPart:
    attrs = segment_attrs(window.reader, seg)
    names = attrs.get("channel_names")
    names = [str(x) for x in names] if isinstance(names, list) else []
    names = [names[c] if c < len(names) and names[c] else str(c) for c in range(int(seg.shape[0]))]
    rate = attrs.get("sample_rate")
    scale = attrs.get("scale")
    return ContinuousPart(
        window=window,
        seg=seg,
        oe_stream=_name_tail(seg.name, CONTINUOUS),
        row_lo=lo,
        row_hi=hi,
        first_recv_ns=recv_ns,
        rate=float(rate) if rate else None,
        channel_names=names,
        units=attrs.get("units") if isinstance(attrs.get("units"), str) else None,
        scale=[None if s is None else float(s) for s in scale] if isinstance(scale, list) else None,
    )


def _spike_part(window: StreamWindow, seg: ArraySegment, channels: int, message: int) -> SpikePart:
    """A spike part named after the electrode the message says (the segment's name is the
    sanitized one)."""
    reader = window.reader
    stream, _, electrode = _name_tail(seg.name, SPIKES).partition("/")
    if "electrode" in reader.column_names():
        electrode = str(reader.column("electrode", message, message + 1)[0]) or electrode
    samples = int(seg.shape[-1])
    return SpikePart(window, seg, stream, electrode, channels, samples)


def scan_window(window: StreamWindow, scan: Scan, t0_ns: int) -> None:
    """Add what `window` holds to `scan`: placed rows, spike rows and TTL counts, and whether
    event times (receive times from `t0_ns`) are evenly spaced."""
    reader = window.reader
    segs = {s.index: s for s in reader.array_segments()}
    placed = {k for k, s in segs.items() if s.placed and s.name.startswith(CONTINUOUS)}
    spiky = {k for k, s in segs.items() if not s.placed and s.name.startswith(SPIKES)}
    rows: dict[int, list[int]] = {}  # segment -> [lo, hi, message of lo]
    spike_parts: dict[tuple[int, int], SpikePart] = {}  # (segment, channels) -> part
    ttl = TtlColumns(reader)
    ttl_parts: dict[str, TtlPart] = {}
    for b0, b1 in blocks(window.lo, window.hi):
        fr = reader.frame_rows(b0, b1)
        for k in placed & set(np.unique(fr.segment[fr.placed]).tolist()):
            pick = fr.placed & (fr.segment == k)
            itemsize = np.dtype(segs[k].dtype).itemsize
            starts, ends = fr.offset[pick], fr.offset[pick] + fr.length[pick] // itemsize
            j = int(np.argmin(starts))
            lo, hi, msg = int(starts[j]), int(ends.max()), int(fr.message[pick][j])
            got = rows.setdefault(k, [lo, hi, msg])
            if lo < got[0]:
                got[0], got[2] = lo, msg
            got[1] = max(got[1], hi)
        for k in spiky & set(np.unique(fr.segment[~fr.placed]).tolist()):
            seg = segs[k]
            pick = ~fr.placed & (fr.segment == k) & (fr.offset < seg.rows)
            if seg.ragged:
                row_bytes = int(seg.shape[0]) * np.dtype(seg.dtype).itemsize
                heights = fr.length[pick] // max(1, row_bytes)
            else:
                heights = np.full(int(pick.sum()), seg.shape[0])
            for height, first in zip(*np.unique(heights, return_index=True), strict=True):
                part = spike_parts.get((k, int(height)))
                if part is None:
                    part = spike_parts[(k, int(height))] = _spike_part(
                        window, seg, int(height), int(fr.message[pick][first])
                    )
                mine = heights == height
                part.count += int(mine.sum())
                part.times.add(seconds(reader, fr.message[pick][mine], t0_ns))
        events = ttl.block(b0, b1)
        if events is not None:
            for name in np.unique(events["stream"]).tolist():
                tp = ttl_parts.setdefault(name, TtlPart(window, name))
                mine = events["stream"] == name
                tp.count += int(mine.sum())
                tp.times.add(seconds(reader, events["message"][mine], t0_ns))
    for k, (lo, hi, msg) in sorted(rows.items()):
        hi = min(hi, segs[k].rows)
        if hi > lo:
            recv = int(reader.column("recv_ns", msg, msg + 1)[0])
            scan.continuous.append(_continuous_part(window, segs[k], lo, hi, recv))
    scan.spikes.extend(p for _, p in sorted(spike_parts.items()) if p.count)
    scan.ttl.extend(part for _, part in sorted(ttl_parts.items()))


def ttl_events(part: TtlPart) -> Iterator[dict[str, np.ndarray]]:
    """The TTL rows of `part`'s Open Ephys stream, block by block."""
    ttl = TtlColumns(part.window.reader)
    for b0, b1 in blocks(part.window.lo, part.window.hi):
        events = ttl.block(b0, b1)
        if events is None:
            return
        pick = events["stream"] == part.oe_stream
        if pick.any():
            yield {key: values[pick] for key, values in events.items()}
