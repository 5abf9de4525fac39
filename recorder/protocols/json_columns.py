"""Many headers of one JSON shape read at once, with numpy, into columns.

A `Shape` reads one header with one regex match: the regex engine steps through every literal
byte of the header (its keys, punctuation and white space), about 280 bytes of an Open Ephys
data header, and each match makes a tuple of value strings. At tens of thousands of headers a
second that was a quarter of the writer thread (on a busy machine 4-5 us a header; headers are
cold in the cache when they arrive from the receive process).

The headers of one stream differ only in a few values, and mostly not even in their length. A
`Frame` of a shape is one header text with the places of its values: a header of the same
length whose bytes outside those places are the same, and whose bytes inside are what the value
may hold (digits; for a string, no quote, backslash or control character), is matched by the
shape's regex with the values in exactly those places (each value ends at a delimiter it cannot
hold, so the match is unique). So a batch of headers is tested and read as one byte matrix per
length, and the few headers no frame fits teach a new frame (from their own regex match) or end
what is read. Which values are fixed (the stream name, the sample rate: the caller's run needs
them equal) is part of the frame, so they are compared, not read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np

from recorder.protocols.json_shapes import Shape

MAX_DIGITS = 15  # an int value read this way: float64 holds every integer of 15 digits exactly
MAX_FRAMES = 64  # kept per reader; past it the one used least recently gives way (a stream's
# numbers gain digits as it goes: its layouts change over its life, a few dozen at a time)
_ZERO, _QUOTE, _BACKSLASH, _SPACE = ord("0"), ord('"'), ord("\\"), 0x20


class _Frame:
    """One header layout: its length, its bytes outside the values that vary, and where those
    lie (int values: digits; text values: any character a plain JSON string holds)."""

    def __init__(self, sample: bytes, spans: list[tuple[int, int]], columns: ShapeColumns):
        self.length = len(sample)
        #: the raw text of each fixed value, compared with what a reader wants
        self.fixed_values = {g: sample[spans[g][0] : spans[g][1]] for g in columns.fixed}
        self.key = _key(sample, spans, columns.fixed)
        # each byte must lie in [low, low + span]: the sample's own byte outside the values,
        # a digit in an int (not '0' first when it has more than one), at least a space in a
        # text (quote and backslash are tested apart)
        self.low = np.frombuffer(sample, dtype=np.uint8).copy()
        self.span = np.zeros(self.length, dtype=np.uint8)
        digits: list[int] = []
        widths = [spans[g][1] - spans[g][0] for g in columns.ints]
        self.weights = np.zeros((sum(widths), len(widths)))  # digits -> values, one matmul
        for j, g in enumerate(columns.ints):
            s, e = spans[g]
            self.weights[len(digits) : len(digits) + e - s, j] = 10.0 ** np.arange(e - s)[::-1]
            self.low[s:e], self.span[s:e] = _ZERO, 9
            if e - s > 1:  # JSON numbers have no leading zeros
                self.low[s], self.span[s] = _ZERO + 1, 8
            digits.extend(range(s, e))
        self.digit_at = np.array(digits, dtype=np.intp)
        self.bias = _ZERO * self.weights.sum(axis=0)  # what the digits' '0's add
        self.text_spans = [spans[g] for g in columns.texts]
        for s, e in self.text_spans:
            self.low[s:e], self.span[s:e] = _SPACE, 0xFF - _SPACE
        self.text_at = np.array([i for s, e in self.text_spans for i in range(s, e)], dtype=np.intp)

    def wants(self, want: Mapping[int, bytes]) -> bool:
        return all(self.fixed_values[g] == v for g, v in want.items())

    def fits(self, rows: np.ndarray) -> np.ndarray:
        """Which rows (headers of this length, one per row) the frame reads."""
        in_range = (rows - self.low) <= self.span  # uint8: a byte below `low` wraps
        ok = cast(np.ndarray, in_range.all(axis=1))
        if self.text_at.size:
            t = rows[:, self.text_at]
            ok &= ~((t == _QUOTE) | (t == _BACKSLASH)).any(axis=1)
        return ok

    def ints(self, rows: np.ndarray) -> np.ndarray:
        """(rows, int values) int64, exact: no value has more than MAX_DIGITS digits, so every
        sum stays below 2**53."""
        return (rows[:, self.digit_at] @ self.weights - self.bias).astype(np.int64)

    def texts(self, rows: np.ndarray) -> list[np.ndarray]:
        """The raw bytes of each text value, one 'S' array per value (no trailing NUL is lost:
        control characters do not fit)."""
        return [
            np.ascontiguousarray(rows[:, s:e]).view(f"S{e - s}").ravel()
            if e > s
            else np.full(len(rows), b"", dtype=object)
            for s, e in self.text_spans
        ]


class ShapeColumns:
    """Reads headers of one `Shape`: its int values as int64 columns, its text values as raw
    bytes, and its `fixed` values compared with what the caller wants.

    `ints`, `texts` and `fixed` are group indexes of the shape (`Shape.slots`), every group
    once. ValueError: a value asked for as another kind than the shape's."""

    def __init__(
        self, shape: Shape, ints: Sequence[int], texts: Sequence[int], fixed: Sequence[int]
    ):
        kinds = shape.group_kinds
        if sorted((*ints, *texts, *fixed)) != list(range(len(kinds))):
            raise ValueError("ints, texts and fixed must name every value once")
        if any(kinds[g] is not int for g in ints) or any(kinds[g] is not str for g in texts):
            raise ValueError("a value read as another kind than the shape's")
        self.shape, self.ints, self.texts, self.fixed = shape, list(ints), list(texts), list(fixed)
        self.frames: dict[int, list[_Frame]] = {}  # by header length
        self._known: dict[tuple, _Frame] = {}  # by key, least recently used first

    def _learn(self, header: bytes) -> _Frame | None:
        """The frame of one header: a known one, or a new one learnt from it (the one used
        least recently gives way past MAX_FRAMES). None if the shape does not match it, or an
        int of it is not plain digits (negative, or too long to read exactly)."""
        m = self.shape.groups(header)
        if m is None:
            return None
        spans = [m.span(g + 1) for g in range(len(self.shape.group_kinds))]
        for g in self.ints:
            s, e = spans[g]
            if e - s > MAX_DIGITS or header[s : s + 1] == b"-":
                return None
        key = _key(header, spans, self.fixed)
        if key in self._known:  # (one whose fixed values a reader did not want)
            return self._known[key]
        while len(self._known) >= MAX_FRAMES:
            gone = self._known.pop(next(iter(self._known)))
            self.frames[gone.length].remove(gone)
        frame = self._known[key] = _Frame(header, spans, self)
        self.frames.setdefault(frame.length, []).insert(0, frame)
        return frame

    def _used(self, frame: _Frame) -> None:
        """The frame read rows: it is now the most recently used, and the first tried for its
        length (a stream's older layouts of one length stay behind it: tried first, in the
        order learnt, half the frames tested on the simulator's stream read no row)."""
        self._known[frame.key] = self._known.pop(frame.key)
        same = self.frames[frame.length]
        if same[0] is not frame:
            same.remove(frame)
            same.insert(0, frame)

    def read(
        self, headers: Sequence[Any], want: Mapping[int, bytes]
    ) -> tuple[int, np.ndarray, list[list[bytes]]]:
        """(n, ints, texts) of the leading n headers: those the shape's regex matches with the
        fixed values `want` (group -> raw text; every fixed group). `ints` is (n, len(ints))
        int64, `texts` one list of raw bytes per text value. Reading ends before the first
        header that does not match, or that no frame can be learnt from: the caller reads
        that one the ordinary way."""
        n = len(headers)
        lengths = np.fromiter(map(len, headers), dtype=np.intp, count=n)
        blob = np.frombuffer(b"".join(headers), dtype=np.uint8)
        starts = np.cumsum(lengths) - lengths
        owner = np.zeros(n, dtype=bool)  # read by a frame
        used: list[tuple[_Frame, np.ndarray, np.ndarray]] = []  # frame, its rows' indexes, bytes
        tried: set[_Frame] = set()  # (the frames themselves: an id could be reused)
        end = n
        while True:
            for length in _distinct(lengths[~owner]):
                idx = window = None  # the unread headers of this length, all bytes from each
                for frame in tuple(self.frames.get(length, ())):  # (_used reorders the list)
                    if frame in tried or not frame.wants(want):
                        continue
                    tried.add(frame)
                    if idx is None or window is None:  # row i: the `length` bytes from i on
                        idx = np.flatnonzero(~owner & (lengths == length))
                        shape = (blob.size - length + 1, length)
                        window = np.ndarray(shape, np.uint8, blob, 0, (1, 1))
                    rows = window[starts[idx]]
                    ok = frame.fits(rows)
                    if ok.any():
                        owner[idx[ok]] = True
                        used.append((frame, idx[ok], rows[ok]))
                        self._used(frame)
                        idx = idx[~ok]
                        if not idx.size:
                            break
            unread = np.flatnonzero(~owner[:end])
            if not unread.size:
                break
            first = int(unread[0])
            learnt = self._learn(bytes(headers[first]))
            if learnt is None or not learnt.wants(want):
                end = first
                break
        ints = np.empty((end, len(self.ints)), dtype=np.int64)
        texts = np.empty((len(self.texts), end), dtype=object)
        for frame, idx, rows in used:
            if idx[-1] >= end:
                keep = idx < end
                idx, rows = idx[keep], rows[keep]
                if not idx.size:
                    continue
            if self.ints:
                ints[idx] = frame.ints(rows)
            for j, values in enumerate(frame.texts(rows)):
                texts[j, idx] = values
        return end, ints, texts.tolist()


def _distinct(values: np.ndarray) -> list[int]:
    """The distinct values, ascending, as np.unique gives them: counted where they are small
    (header lengths; 4 us a step instead of 15, which was a fifth of `read`)."""
    if values.size and int(values.max()) < _COUNTED_BELOW:
        return np.flatnonzero(np.bincount(values)).tolist()
    return np.unique(values).tolist()


_COUNTED_BELOW = 1 << 16  # (a longer header is read, but not counted in a table that long)


def _key(header: bytes, spans: list[tuple[int, int]], fixed: list[int]) -> tuple:
    """What tells two frames apart: length, the places of the values, the fixed values."""
    return (len(header), tuple(spans), tuple((g, header[spans[g][0] : spans[g][1]]) for g in fixed))
