"""msgpack maps that repeat their byte layout, read a batch at a time without a msgpack parser.

A Karabo bridge sends the same small msgpack maps train after train (a source's header with its
timestamps, its non-array values) with only the values changed: msgpack writes a float64 as 9
bytes and an integer or a string of one size class in a fixed number of bytes, so the frames
have one length and differ only in the value bytes. Parsing each with msgpack costs more than
everything else the recorder does with the train. A `Shape` is learnt from one frame: which
bytes are the map's structure (keys, type bytes, string lengths) and where each scalar value
sits. A batch of frames of the shape's length is then read with numpy: one comparison for the
structure of every frame, one view per value. A frame whose structure differs (a key added, a
value of another kind or size class, a string that is not UTF-8) simply does not match, and the
caller parses it the ordinary way. So a shape can be wrong only by not matching, never by
reading a value differently (as json_shapes does for JSON headers).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

MAX_SHAPE_BYTES = 4096  # longer frames are parsed the ordinary way
_INT64_MAX = 2**63 - 1

#: fixed-width numbers: type byte -> (payload bytes, big-endian dtype of the payload)
_NUMBERS = {
    0xCA: (4, ">f4"),
    0xCB: (8, ">f8"),
    0xCC: (1, ">u1"),
    0xCD: (2, ">u2"),
    0xCE: (4, ">u4"),
    0xCF: (8, ">u8"),
    0xD0: (1, ">i1"),
    0xD1: (2, ">i2"),
    0xD2: (4, ">i4"),
    0xD3: (8, ">i8"),
}

Path = tuple[str, ...]


class Unlearnable(ValueError):
    """The frame is not a map of scalars (and maps of them) this module can learn."""


class _Slot:
    """Where one scalar value sits in the frame and what it is."""

    __slots__ = ("kind", "offset", "size", "value")

    def __init__(self, kind: str, offset: int, size: int, value: Any):
        self.kind = kind  # float, int, fixint, bool, str, nil, blob (a list: constant bytes)
        self.offset = offset  # first byte of the value (after type and length bytes)
        self.size = size
        self.value = value  # in the sample


class _Walker:
    """A msgpack reader for learning only: maps of string keys and scalars, nothing else."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0
        self.slots: dict[Path, _Slot] = {}

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise Unlearnable("truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def _str_len(self, t: int) -> int | None:
        if 0xA0 <= t <= 0xBF:
            return t & 0x1F
        if t == 0xD9:
            return self._take(1)[0]
        if t == 0xDA:
            return int(struct.unpack(">H", self._take(2))[0])
        if t == 0xDB:
            return int(struct.unpack(">I", self._take(4))[0])
        return None

    def map(self, path: Path) -> None:
        t = self._take(1)[0]
        if 0x80 <= t <= 0x8F:
            n = t & 0x0F
        elif t == 0xDE:
            n = int(struct.unpack(">H", self._take(2))[0])
        else:
            raise Unlearnable("not a map")
        seen = set()
        for _ in range(n):
            size = self._str_len(self._take(1)[0])
            if size is None:
                raise Unlearnable("a key that is not a string")
            try:
                key = self._take(size).decode("utf-8")
            except UnicodeDecodeError:
                raise Unlearnable("a key that is not UTF-8") from None
            if key in seen:
                raise Unlearnable("a key twice")
            seen.add(key)
            self.value((*path, key))

    def value(self, path: Path) -> None:
        t = self.data[self.pos] if self.pos < len(self.data) else None
        if t is None:
            raise Unlearnable("truncated")
        if 0x80 <= t <= 0x8F or t == 0xDE:
            self.map(path)
            return
        self.pos += 1
        at = self.pos
        if t <= 0x7F:
            self.slots[path] = _Slot("fixint", at - 1, 1, t)
        elif t >= 0xE0:
            self.slots[path] = _Slot("fixint", at - 1, 1, t - 256)
        elif t in (0xC2, 0xC3):
            self.slots[path] = _Slot("bool", at - 1, 1, t == 0xC3)
        elif t == 0xC0:
            self.slots[path] = _Slot("nil", at - 1, 1, None)
        elif t in _NUMBERS:
            size, dt = _NUMBERS[t]
            value = np.frombuffer(self._take(size), dt)[0].item()
            self.slots[path] = _Slot("float" if dt[1] == "f" else "int", at, size, value)
        elif 0x90 <= t <= 0x9F or t in (0xDC, 0xDD) or 0xC4 <= t <= 0xC9 or 0xD4 <= t <= 0xD8:
            # a list (or bin, ext): kept as its bytes, part of the shape; what it means is the
            # same in every frame that has the shape (the caller takes it from the sample)
            self.pos -= 1
            self.skip(0)
            self.slots[path] = _Slot("blob", at - 1, self.pos - at + 1, None)
        else:
            self.pos -= 1
            length = self._str_len(self._take(1)[0])
            if length is None:
                raise Unlearnable(f"type byte {t:#x}: not a value this module reads")
            at = self.pos
            try:
                text = self._take(length).decode("utf-8")
            except UnicodeDecodeError:
                raise Unlearnable("a string that is not UTF-8") from None
            self.slots[path] = _Slot("str", at, length, text)

    def skip(self, depth: int) -> None:
        """Past one value of any kind."""
        if depth > 64:
            raise Unlearnable("nested too deeply")
        t = self._take(1)[0]
        if t <= 0x7F or t >= 0xE0 or t in (0xC0, 0xC2, 0xC3):
            return
        if t in _NUMBERS:
            self._take(_NUMBERS[t][0])
            return
        if 0x80 <= t <= 0x8F or t in (0xDE, 0xDF):
            n = t & 0x0F if t <= 0x8F else self._count(2 if t == 0xDE else 4)
            for _ in range(2 * n):
                self.skip(depth + 1)
            return
        if 0x90 <= t <= 0x9F or t in (0xDC, 0xDD):
            n = t & 0x0F if t <= 0x9F else self._count(2 if t == 0xDC else 4)
            for _ in range(n):
                self.skip(depth + 1)
            return
        if t in (0xC4, 0xC5, 0xC6):  # bin 8/16/32
            self._take(self._count({0xC4: 1, 0xC5: 2, 0xC6: 4}[t]))
            return
        if t in (0xC7, 0xC8, 0xC9):  # ext 8/16/32
            self._take(self._count({0xC7: 1, 0xC8: 2, 0xC9: 4}[t]) + 1)
            return
        if 0xD4 <= t <= 0xD8:  # fixext 1..16
            self._take(1 + (1 << (t - 0xD4)))
            return
        self.pos -= 1
        size = self._str_len(self._take(1)[0])
        if size is None:
            raise Unlearnable(f"type byte {t:#x}")
        self._take(size)

    def _count(self, n: int) -> int:
        return int.from_bytes(self._take(n), "big")


class Batch:
    """The values of the frames of a batch that have the shape (`ok`), by path."""

    def __init__(self, shape: Shape, rows: np.ndarray, ok: np.ndarray):
        self.shape = shape
        self.rows = rows  # (frames, length) uint8; only rows where ok are meaningful
        self.ok = ok

    def values(self, path: Path) -> np.ndarray | list:
        """One value per frame (rows not ok hold anything): int64, float64 or bool arrays,
        or a list of str (or of None)."""
        slot = self.shape.slots[path]
        n = len(self.rows)
        if slot.kind == "str":
            cells = self.rows[:, slot.offset : slot.offset + slot.size]
            if n and (cells == cells[0]).all():
                return [_text(cells[0])] * n
            return [_text(c) for c in cells]
        if slot.kind == "nil":
            return [None] * n
        cells = self.rows[:, slot.offset : slot.offset + slot.size]
        if slot.kind == "fixint":
            return (
                cells[:, 0].view(np.int8).astype(np.int64)
                if slot.value < 0
                else (cells[:, 0].astype(np.int64))
            )
        if slot.kind == "bool":
            return cells[:, 0] == 0xC3
        dt = _NUMBERS[self.shape.data[slot.offset - 1]][1]
        raw = np.ascontiguousarray(cells).view(dt)[:, 0]
        return raw.astype(np.float64 if slot.kind == "float" else np.int64)

    def raw_ints(self, path: Path) -> np.ndarray:
        """An integer slot as uint64 when it is unsigned (to tell values past int64 apart)."""
        slot = self.shape.slots[path]
        dt = _NUMBERS[self.shape.data[slot.offset - 1]][1]
        cells = self.rows[:, slot.offset : slot.offset + slot.size]
        return np.ascontiguousarray(cells).view(dt)[:, 0]


class Shape:
    """One frame layout learnt from a sample frame (a msgpack map of scalars and maps).

    `pinned` paths must hold the sample's value exactly (their bytes are part of the shape):
    a Karabo header's source name and content kind say which frame it is, not a value."""

    def __init__(self, sample: bytes, pinned: Sequence[Path] = ()):
        if len(sample) > MAX_SHAPE_BYTES:
            raise Unlearnable("too long")
        walker = _Walker(sample)
        walker.map(())
        if walker.pos != len(sample):
            raise Unlearnable("bytes after the map")
        self.data = sample
        self.length = len(sample)
        self.slots = walker.slots
        varying = np.zeros(len(sample), dtype=bool)
        checks: list[tuple[int, int, int]] = []  # (offset, low, high) of one-byte values
        for path, slot in self.slots.items():
            if path in pinned or slot.kind in ("nil", "blob"):
                continue
            varying[slot.offset : slot.offset + slot.size] = True
            if slot.kind == "fixint":
                checks.append(
                    (slot.offset, 0, 0x7F) if slot.value >= 0 else (slot.offset, 0xE0, 0xFF)
                )
            elif slot.kind == "bool":
                checks.append((slot.offset, 0xC2, 0xC3))
            elif slot.kind == "int" and sample[slot.offset - 1] == 0xCF:
                # uint64: past int64 the value is another thing to its reader (no column, a
                # bad train id), so such frames do not have this shape
                if slot.value > _INT64_MAX:
                    raise Unlearnable("a uint64 past int64")
                checks.append((slot.offset, 0, 0x7F))
        self._fixed = np.flatnonzero(~varying)
        self._expected = np.frombuffer(sample, np.uint8)[self._fixed]
        self._checks = checks
        self._strings = [s for p, s in self.slots.items() if s.kind == "str" and p not in pinned]

    def read(self, frames: Sequence[Any]) -> Batch:
        """The frames as rows of this shape; `ok` says which have it."""
        n = len(frames)
        length = self.length
        same = np.fromiter(map(len, frames), dtype=np.int64, count=n) == length
        every = bool(same.all())
        if every:
            rows = np.frombuffer(b"".join(frames), np.uint8).reshape(n, length)
        else:
            pad = bytes(length)
            rows = np.frombuffer(
                b"".join(f if s else pad for f, s in zip(frames, same.tolist(), strict=True)),
                np.uint8,
            ).reshape(n, length)
        ok = (rows[:, self._fixed] == self._expected).all(axis=1)
        if not every:
            ok &= same
        for offset, low, high in self._checks:
            col = rows[:, offset]
            ok &= (col >= low) & (col <= high)
        for slot in self._strings:
            cells = rows[:, slot.offset : slot.offset + slot.size]
            if slot.size and not (cells < 0x80).all():  # not all ASCII: decode to check
                for k in np.flatnonzero(ok):
                    try:
                        cells[k].tobytes().decode("utf-8")
                    except UnicodeDecodeError:
                        ok[k] = False
        return Batch(self, rows, ok)


def _text(cells: np.ndarray) -> str:
    try:
        return cells.tobytes().decode("utf-8")
    except UnicodeDecodeError:
        return ""  # a row that is not ok (Shape.read said so): its values are not used
