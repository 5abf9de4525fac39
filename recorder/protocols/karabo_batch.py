"""Karabo bridge trains decoded a batch at a time (KaraboCodec.decode_alike).

A bridge sends train after train of one layout: the same sources in the same frames, the same
array headers byte for byte, the same keys with values of the same kinds; only the values
differ. Decoding each train on its own (a msgpack parse per frame, a Python object per value,
a numpy view per array) costs several times what storing its bytes does. So a `Plan` is learnt
from one train that decoded well: its array header frames (kept as bytes), a `Shape`
(msgpack_shapes) per source header and value frame, and which column each value becomes. The
trains of a batch that fit the plan are then read a column at a time: one numpy comparison per
frame for the structure, one view per value, one join per array. A train that does not fit (a
reject, a new key, another array shape) is decoded on its own, and a new plan learnt where the
layout changed. What a plan gives is checked against decode() on the train it is learnt from,
so a plan is exact or not made.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

import numpy as np

from recorder.errors import MalformedMessage
from recorder.protocols.base import (
    NO_SEQ,
    NO_TIME,
    AlikeRun,
    ArrayBlock,
    BulkFrame,
    Decoded,
    FrameBytes,
)
from recorder.protocols.msgpack_shapes import Batch, Path, Shape, Unlearnable

_JOIN_BELOW = 2 << 10  # arrays smaller than this are joined; larger ones are handed over as
# views of the received frames, which the store writes as they are (the join copied nearly
# every byte of a small-detector train once more, into fresh memory: 19 % of the writer
# thread's py-spy samples)
_MIN_RUN = 8  # fewer trains in a row fitting a plan are decoded one by one (cheaper)
_SKIP_AFTER_FAILED = 64  # trains decoded one by one after a layout that cannot be a plan
_MAX_SEC = 9_223_372_035  # timestamp.sec whose ns surely fit int64 (with any .frac)
_TWO63 = 2.0**63
_POW10 = 10 ** np.arange(18, -1, -1, dtype=np.int64)  # 10**18 .. 10**0

#: where a column's values come from: ("const", value), ("slot", pair, "head" or "data",
#: path), ("seq",), ("mismatch",) or ("ns", source); a source's time: ("digits", sec path,
#: frac path), ("float", path) or ("none",)
Getter = tuple


class _Pair:
    """A source's msgpack header frame and value frame."""

    def __init__(self, index: int, frames: Sequence[FrameBytes]):
        self.index = index  # frame of the header
        self.head = Shape(bytes(frames[index]), pinned=[("source",), ("content",)])
        self.data = Shape(bytes(frames[index + 1]))
        source = self.head.slots.get(("source",))
        if source is None or source.kind != "str":
            raise Unlearnable("a header without a source name")
        self.source: str = source.value
        self.meta: dict[str, Path] = {}
        for path in self.head.slots:
            if path[0] == "metadata":
                if len(path) != 2:
                    raise Unlearnable("metadata with maps inside (JSON text)")
                self.meta[path[1]] = path


class _Rows:
    """What a plan reads from the trains of a batch: which fit, and their values."""

    def __init__(self, ok: np.ndarray, heads: list[Batch], datas: list[Batch]):
        self.ok = ok
        self.heads = heads
        self.datas = datas
        self.ns: list[np.ndarray] = []
        self.tids: list[np.ndarray] = []


class Plan:
    """One train layout: reads batches of trains that have it (see the module's docstring)."""

    def __init__(self, frames: Sequence[FrameBytes], d0: Decoded, time_keys: frozenset,
                 max_columns: int):  # fmt: skip
        n = len(frames)
        if n < 2 or n % 2 or len(d0.columns) >= max_columns:
            raise Unlearnable("not a plain 2.2 train")
        self.n_frames = n
        self.sample = [bytes(f) for f in frames]  # stands in for trains of another frame count
        bulk = {b.frame: b for b in d0.bulk}
        self.heads: list[tuple[int, bytes]] = []  # array header frames: constant bytes
        self.pairs: list[_Pair] = []
        for i in range(0, n, 2):
            if i + 1 in bulk:
                self.heads.append((i, self.sample[i]))
            else:
                self.pairs.append(_Pair(i, self.sample))
        self.blocks = [
            (b.frame, b.name, b.ragged, b.array.dtype, b.array.shape, b.array.nbytes)
            for b in d0.bulk
        ]
        # typed copies of numeric lists: lists are constant bytes in a shape, so these too
        self.derived = [_as_bulk(d) for d in d0.derived]
        by_source = {p.source: k for k, p in enumerate(self.pairs)}
        if len(by_source) != len(self.pairs):
            raise Unlearnable("a source twice")
        self.sources = sorted(by_source)
        #: (pair, how) of each source's timestamp_ns, in source order
        self.ns_specs = [
            (by_source[s], self._ns_spec(self.pairs[by_source[s]])) for s in self.sources
        ]
        self.tid_of: list[tuple[int, Path]] = []  # (pair, path) of each source with a tid
        for s in self.sources:
            k = by_source[s]
            path = self.pairs[k].meta.get("timestamp.tid")
            if path is not None:
                if self.pairs[k].head.slots[path].kind not in ("int", "fixint"):
                    raise Unlearnable("a train id that is not an integer")
                self.tid_of.append((k, path))
        self.ns_present: list[bool] | None = None
        self.ns_present = [bool(x[0] != NO_TIME) for x in self.read([self.sample]).ns]
        self.columns = self._columns(by_source, time_keys, d0)
        self._check(d0)

    @staticmethod
    def _ns_spec(pair: _Pair) -> Getter:
        """How the source's timestamp_ns is made (karabo._source_ns, by slot kinds)."""
        slots, meta = pair.head.slots, pair.meta
        sec, frac, ts = (meta.get(k) for k in ("timestamp.sec", "timestamp.frac", "timestamp"))
        if sec is not None and frac is not None:
            s, f = slots[sec], slots[frac]
            if s.kind == "str" and f.kind == "str":
                if not (0 < s.size < 12 and f.size and s.value.isdigit() and f.value.isdigit()):
                    raise Unlearnable("timestamp.sec/.frac that are not digits")
                return ("digits", sec, frac)
        if ts is not None and slots[ts].kind in ("float", "int", "fixint"):
            return ("float", ts)
        return ("none",)

    def _columns(self, by_source: dict[str, int], time_keys: frozenset, d0: Decoded) -> dict:
        """Column name -> where its value comes from, in the order decode() makes them (a
        dict, so a name made twice keeps its first place and its last value, as there)."""
        cols: dict[str, Getter] = {
            "train_id": ("seq",),
            "sources": ("const", d0.columns.get("sources")),
            "protocol_version": ("const", "2.2"),
            "tid_mismatch": ("mismatch",),
        }
        for n, src in enumerate(self.sources):
            k = by_source[src]
            pair, prefix = self.pairs[k], f"{src}:metadata."
            assert self.ns_present is not None
            if self.ns_present[n]:
                cols[prefix + "timestamp_ns"] = ("ns", n)
            path = pair.meta.get("timestamp.tid")
            if path is not None:
                cols[prefix + "timestamp.tid"] = ("slot", k, "head", path)
            if not pair.meta.keys() <= time_keys:
                for key, path in pair.meta.items():
                    if key not in time_keys:
                        _put(cols, prefix + key, pair.head.slots[path].kind, k, "head", path, d0)
        for src in self.sources:
            k = by_source[src]
            for path, slot in self.pairs[k].data.slots.items():
                if path[0] != "metadata":
                    _put(cols, f"{src}:" + ".".join(path), slot.kind, k, "data", path, d0)
        return cols

    def _check(self, d0: Decoded) -> None:
        """The plan reads its own train as decode() did, types and order included."""
        rows = self.read([self.sample])
        if not rows.ok[0]:
            raise Unlearnable("the plan does not fit its own train")
        run = self.run([self.sample], rows, 0, 1, lambda k: d0)
        if int(run.seq[0]) != d0.seq or int(run.source_ns[0]) != d0.source_ns:
            raise Unlearnable("seq or source time read differently")
        if list(run.columns) != list(d0.columns):
            raise Unlearnable("other columns")
        for name, values in run.columns.items():
            got = values.tolist()[0] if isinstance(values, np.ndarray) else values[0]
            want = d0.columns[name]
            if type(got) is not type(want) or got != want:
                raise Unlearnable(f"column {name} read differently")

    def read(self, messages: Sequence[Sequence[FrameBytes]]) -> _Rows:
        """Which trains have this layout, and their values (rows that do not: anything)."""
        n = len(messages)
        ok = _lengths(messages, n) == self.n_frames
        if not ok.all():
            messages = [m if f else self.sample for m, f in zip(messages, ok.tolist(), strict=True)]
        for i, head in self.heads:
            frames = _column(messages, i)
            same = _lengths(frames, n) == len(head)
            if not (same.all() and b"".join(frames) == head * n):  # all the same: one compare
                same &= np.array([_same(f, head) for f in frames], dtype=bool)
            ok &= same
        for frame, _, _, _, _, nbytes in self.blocks:
            ok &= _lengths(_column(messages, frame), n) == nbytes
        heads, datas = [], []
        for pair in self.pairs:
            h = pair.head.read(_column(messages, pair.index))
            d = pair.data.read(_column(messages, pair.index + 1))
            ok &= h.ok & d.ok
            heads.append(h)
            datas.append(d)
        rows = _Rows(ok, heads, datas)
        for s, (k, spec) in enumerate(self.ns_specs):
            ns = self._ns(spec, heads[k], n, rows)
            if self.ns_present is not None:  # a time in every train, or in none (as learnt)
                ok &= (ns != NO_TIME) == self.ns_present[s]
            rows.ns.append(ns)
        for k, path in self.tid_of:
            tid = np.asarray(heads[k].values(path), dtype=np.int64)
            ok &= tid >= 0  # a negative train id makes the train a reject
            rows.tids.append(tid)
        return rows

    @staticmethod
    def _ns(spec: Getter, head: Batch, n: int, rows: _Rows) -> np.ndarray:
        """karabo._source_ns for every row; rows it cannot read as decode() would are not ok."""
        if spec[0] == "none":
            return np.full(n, NO_TIME, dtype=np.int64)
        if spec[0] == "float":
            ts = np.asarray(head.values(spec[1]), dtype=np.float64)
            with np.errstate(all="ignore"):
                x = ts * 1e9
                v = np.rint(x)
                good = np.isfinite(ts) & np.isfinite(x) & (v >= 0) & (v < _TWO63)
            return np.where(good, v, float(NO_TIME)).astype(np.int64)
        sec, frac = (head.shape.slots[p] for p in spec[1:])
        s = head.rows[:, sec.offset : sec.offset + sec.size].astype(np.int64) - 48
        f = head.rows[:, frac.offset : frac.offset + frac.size].astype(np.int64) - 48
        digits = ((s >= 0) & (s <= 9)).all(axis=1) & ((f >= 0) & (f <= 9)).all(axis=1)
        s_val = s @ _POW10[-sec.size :]
        take = min(9, frac.size)
        f_val = (f[:, :take] @ _POW10[-take:]) * 10 ** (9 - take)
        rows.ok &= digits & (s_val <= _MAX_SEC)
        return s_val * 1_000_000_000 + f_val

    def run(self, messages: Sequence[Sequence[FrameBytes]], rows: _Rows, a: int, b: int,
            decode: Callable[[int], Decoded]) -> AlikeRun:  # fmt: skip
        """Trains a .. b of what `read` read (all ok) as an AlikeRun."""
        count = b - a
        if rows.tids:
            tids = np.stack([t[a:b] for t in rows.tids])
            seq = tids.min(axis=0)
            mismatch = tids.max(axis=0) != seq
        else:
            seq = np.full(count, NO_SEQ, dtype=np.int64)
            mismatch = np.zeros(count, dtype=bool)
        if rows.ns:
            ns = np.stack([x[a:b] for x in rows.ns])
            have = ns != NO_TIME
            low = np.where(have, ns, np.iinfo(np.int64).max).min(axis=0)
            source_ns = np.where(have.any(axis=0), low, NO_TIME)
        else:
            source_ns = np.full(count, NO_TIME, dtype=np.int64)
        columns: dict[str, np.ndarray | list] = {}
        for name, getter in self.columns.items():
            kind = getter[0]
            if kind == "slot":
                batch = (rows.heads if getter[2] == "head" else rows.datas)[getter[1]]
                columns[name] = batch.values(getter[3])[a:b]
            elif kind == "const":
                columns[name] = [getter[1]] * count
            elif kind == "seq":
                columns[name] = seq
            elif kind == "mismatch":
                columns[name] = mismatch
            else:  # ns
                columns[name] = rows.ns[getter[1]][a:b]
        arrays = []
        for frame, name, ragged, dtype, shape, nbytes in self.blocks:
            frames = [m[frame] for m in messages[a:b]]
            data: np.ndarray | list[np.ndarray]
            if nbytes >= _JOIN_BELOW:
                data = [np.frombuffer(f, dtype).reshape(shape) for f in frames]
            else:
                joined = np.frombuffer(b"".join(frames), dtype)
                if ragged:
                    data = joined.reshape((count * shape[0], *shape[1:]))
                else:
                    data = joined.reshape((count, *shape))
            arrays.append(ArrayBlock(frame, name, ragged, dtype, tuple(shape), data))
        for name, ragged, array in self.derived:
            every = np.broadcast_to(array, (count, *array.shape))
            rows_of = every.reshape((-1, *array.shape[1:])) if ragged else every
            arrays.append(ArrayBlock(-1, name, ragged, array.dtype, array.shape, rows_of))
        return AlikeRun(seq, source_ns, columns, arrays, decode)


def _as_bulk(d: tuple[str, np.ndarray] | BulkFrame) -> tuple[str, bool, np.ndarray]:
    if isinstance(d, BulkFrame):
        return d.name, d.ragged and d.array.ndim >= 1, d.array
    return d[0], False, d[1]


def _put(cols: dict, name: str, kind: str, pair: int, frame: str, path: Path, d0: Decoded) -> None:
    """The column a value makes, as _TrainColumns does: none for nil; a list's JSON text (its
    bytes are part of the shape, so its text is the sample's: numeric lists make a typed
    copy instead, `derived`, and no column)."""
    if kind == "nil":
        return
    if name in cols:  # two values of one name: rare, and not worth reasoning about
        raise Unlearnable(f"column {name} made twice")
    if kind == "blob":
        if name in d0.columns:
            cols[name] = ("const", d0.columns[name])
        return
    cols[name] = ("slot", pair, frame, path)


def _same(frame: FrameBytes, data: bytes) -> bool:
    """The frame holds these bytes (zmq.Frame and the like compare by identity: a view)."""
    return (frame if type(frame) is bytes else memoryview(frame)) == data


def _column(messages: Sequence[Sequence[FrameBytes]], i: int) -> list:
    return list(map(itemgetter(i), messages))


def _lengths(items: Sequence, n: int) -> np.ndarray:
    return np.fromiter(map(len, items), dtype=np.int64, count=n)


class TrainBatches:
    """The batch side of a KaraboCodec: the plan in use, learnt again where the layout
    changes, and a pause in learning after trains that cannot be one."""

    def __init__(self, decode: Callable[[Sequence[FrameBytes]], Decoded], time_keys: frozenset,
                 max_columns: int):  # fmt: skip
        self._decode = decode
        self._time_keys = time_keys
        self._max_columns = max_columns
        self.plan: Plan | None = None
        self._skip = 0  # trains to decode one by one before learning again
        self._failed = 0  # plans in a row that fitted no run

    def _learn(self, frames: Sequence[FrameBytes]) -> Decoded | None:
        """Decode one train (None: a reject) and learn a plan from it, if it can be one."""
        try:
            d0 = self._decode(frames)
        except MalformedMessage:
            return None
        if self._skip:
            self._skip -= 1
            return d0
        try:
            self.plan = Plan(frames, d0, self._time_keys, self._max_columns)
        except Exception:  # Unlearnable, or frames no plan can read (not buffers): one by one
            self.plan = None
            self._skip = _SKIP_AFTER_FAILED
        return d0

    def decode_alike(
        self, messages: Sequence[Sequence[FrameBytes]]
    ) -> list[tuple[int, int, AlikeRun | Decoded | None]]:
        out: list[tuple[int, int, Any]] = []
        i, n = 0, len(messages)
        while i < n:
            plan = self.plan
            if plan is None:
                out.append((i, i + 1, self._learn(messages[i])))
                i += 1
                continue
            rest = messages[i:]
            try:
                rows = plan.read(rest)
            except Exception:  # frames no plan can read (not buffers): one by one
                rows = None
            if rows is None:
                out.extend((k, k + 1, None) for k in range(i, n))
                break
            ok = rows.ok.tolist()
            k = i
            while k < n:
                if ok[k - i]:
                    j = k + 1
                    while j < n and ok[j - i]:
                        j += 1
                    if j - k >= _MIN_RUN:
                        decode = _decoder(self._decode, messages, k)
                        out.append((k, j, plan.run(rest, rows, k - i, j - i, decode)))
                        self._failed = 0
                    else:
                        out.extend((x, x + 1, None) for x in range(k, j))
                    k = j
                elif k + 1 < n and ok[k + 1 - i]:
                    out.append((k, k + 1, None))  # one odd train (a reject): the plan holds
                    k += 1
                else:
                    break  # two in a row: the layout changed
            if k < n:
                self._failed += 1
                if self._failed > 3:  # plans that fit nothing: a while one by one
                    self._failed, self._skip = 0, _SKIP_AFTER_FAILED
                self.plan = None
            i = k
        return out


def _decoder(decode: Callable, messages: Sequence, start: int) -> Callable[[int], Decoded]:
    return lambda k: decode(messages[start + k])
