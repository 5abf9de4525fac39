"""Where each value of a recorded Karabo train goes in an EXDF file, decided before writing.

EXDF keeps one index per source (control) or per source and key group (instrument): every key
of a group has the same number of entries per train. A bridge train does not say how many
entries a value is, so the whole window is surveyed first (values decoded, bulk arrays only
looked at, memory flat: a few counters and a running hash per key) and then each group is laid
out once: one entry per train (a value's whole shape, as extra_data's `trains()` gives it back),
or, when the first axis of every key of a group changes from train to train in step (pulses),
entries along that axis. What does not fit (shapes that change otherwise, values of mixed
types, keys that are also groups of other keys) is left out and listed with the reason.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recorder.analysis.karabo import split_name
from recorder.errors import MalformedMessage
from recorder.protocols import karabo
from recorder.store.reader import Message, StreamReader

STR = "str"  # text values: HDF5 variable-length UTF-8
BYTES = "bytes"  # byte strings: HDF5 variable-length bytes
_INT64 = (-(2**63), 2**63 - 1)


def hdf5() -> Any:
    """h5py, imported when an EXDF file is written or read (it ships no type hints)."""
    return importlib.import_module("h5py")


def _flat(values: dict, prefix: str = "") -> dict[str, Any]:
    """Nested maps (protocol 1.0) as extra_data's dotted keys, without the source metadata."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if not isinstance(key, str) or (not prefix and key == "metadata"):
            continue
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def train_dict(frames: Sequence[memoryview | bytes]) -> dict[str, dict[str, Any]]:
    """One recorded train as ``{source: {key: value}}``; arrays are views of the frames."""
    values = karabo.train_values(frames)
    out = {src: _flat(vals) for src, vals in values.items()}
    if len(frames) == 1:
        arrays = list(karabo.v1_arrays(frames[0]).items())
    else:
        arrays = [(b.name, b.array) for b in karabo.KaraboCodec().decode(frames).bulk]
    for name, array in arrays:
        src, key = split_name(name, out)
        out.setdefault(src, {})[key] = array
    return out


def as_value(value: Any) -> tuple[np.ndarray, str] | None:
    """A train value as an array and its kind (a numpy dtype string, STR or BYTES); None for
    what HDF5 rows cannot hold (maps, None, ragged lists, object arrays)."""
    if isinstance(value, np.ndarray):
        kind = value.dtype.kind
        if kind in "biufc" or kind == "S":
            return value, value.dtype.str
        if kind == "U":
            return value.astype(object), STR
        return None
    if isinstance(value, bool | np.bool_):
        return np.asarray(value, dtype=np.bool_), "|b1"
    if isinstance(value, np.generic):
        return as_value(np.asarray(value))
    if isinstance(value, int):
        if _INT64[0] <= value <= _INT64[1]:
            return np.asarray(value, dtype=np.int64), "<i8"
        if 0 <= value < 2**64:
            return np.asarray(value, dtype=np.uint64), "<u8"
        return None
    if isinstance(value, float):
        return np.asarray(value, dtype=np.float64), "<f8"
    if isinstance(value, str):
        return np.asarray(value, dtype=object), STR
    if isinstance(value, bytes):
        return np.asarray(value, dtype=object), BYTES
    if isinstance(value, list | tuple):
        if value and all(isinstance(v, str) for v in value):
            return np.asarray(value, dtype=object), STR
        if value and all(isinstance(v, bytes) for v in value):
            return np.asarray(value, dtype=object), BYTES
        try:
            arr = np.asarray(value)
        except (ValueError, OverflowError, TypeError):
            return None
        if arr.dtype.kind in "biuf":
            return arr, arr.dtype.str
        return None
    return None


def is_instrument(source: str) -> bool:
    """EuXFEL names pipeline (instrument) data `DEVICE:channel`; the channel has no `/`."""
    device, colon, channel = source.partition(":")
    return bool(device and colon and channel and "/" not in channel)


def group_of(source: str, key: str) -> str:
    """The index group of a key: '' for control sources, else the key's first part."""
    return key.partition(".")[0] if is_instrument(source) else ""


@dataclass
class KeySurvey:
    kinds: set[str] = field(default_factory=set)
    shape: tuple[int, ...] | None = None
    same_shape: bool = True
    same_tail: bool = True
    present: int = 0
    steps: Any = field(default_factory=hashlib.sha1)  # (train, first axis) of every entry

    def add(self, train: int, arr: np.ndarray, kind: str) -> None:
        self.kinds.add(kind)
        shape = tuple(arr.shape)
        if self.shape is None:
            self.shape = shape
        elif shape != self.shape:
            self.same_shape = False
            if shape[1:] != self.shape[1:] or not shape:
                self.same_tail = False
        self.present += 1
        self.steps.update(np.array([train, shape[0] if shape else -1], np.int64).tobytes())


@dataclass
class Survey:
    """What a window of a stream holds: trains to export and every key's kinds and shapes."""

    trains: int = 0
    skipped: int = 0  # no train id, or not after the previous one
    timed: int = 0  # trains with a source timestamp
    keys: dict[str, dict[str, KeySurvey]] = field(default_factory=dict)  # source -> key
    groups: dict[tuple[str, str], int] = field(default_factory=dict)  # trains with the group


@dataclass(frozen=True)
class KeyPlan:
    source: str
    key: str
    kind: str  # numpy dtype string, STR or BYTES
    row: tuple[int, ...]  # shape of one entry
    ragged: bool  # entries along the value's first axis

    @property
    def control(self) -> bool:
        return not is_instrument(self.source)

    @property
    def path(self) -> str:
        return "/".join(self.key.split("."))

    def dtype(self) -> Any:
        h5py = hdf5()

        if self.kind == STR:
            return h5py.string_dtype("utf-8")
        if self.kind == BYTES:
            return h5py.special_dtype(vlen=bytes)
        return np.dtype(self.kind)

    def fill(self) -> np.ndarray:
        """A row for a train that lacked the key (control: EXDF has a row per train)."""
        if self.kind in (STR, BYTES):
            return np.full(self.row, "" if self.kind == STR else b"", dtype=object)
        return np.zeros(self.row, dtype=np.dtype(self.kind))


@dataclass
class Layout:
    keys: dict[str, dict[str, KeyPlan]] = field(default_factory=dict)  # source -> key -> plan
    ragged: dict[tuple[str, str], bool] = field(default_factory=dict)  # (source, group)
    left_out: dict[str, str] = field(default_factory=dict)  # "source key" -> why

    def groups(self, source: str) -> list[str]:
        return sorted({group_of(source, k) for k in self.keys.get(source, {})} or {""})


class Trains:
    """The window's trains in order, each once: messages without a train id, rejected ones
    and trains whose id is not after the previous one are skipped (EXDF train ids rise)."""

    def __init__(self, reader: StreamReader, lo: int, hi: int):
        self.reader, self.lo, self.hi = reader, lo, hi

    def __iter__(self) -> Iterator[tuple[Message | None, dict[str, dict[str, Any]] | None]]:
        last = 0
        for msg in self.reader.messages(self.lo, self.hi):
            if msg.rejected or msg.seq <= last:
                yield None, None
                continue
            try:
                data = train_dict(msg.frames)
            except MalformedMessage:  # recorded by a lenient codec version: skip it
                yield None, None
                continue
            last = msg.seq
            yield msg, data


def survey(trains: Iterator[tuple[Message | None, dict | None]], on_message) -> Survey:
    out = Survey()
    for msg, data in trains:
        on_message()
        if msg is None or data is None:
            out.skipped += 1
            continue
        n = out.trains
        out.trains += 1
        out.timed += msg.source_ns >= 0
        for src, values in data.items():
            keys = out.keys.setdefault(src, {})
            groups: set[str] = set()
            for key, value in values.items():
                got = as_value(value)
                ks = keys.setdefault(key, KeySurvey())
                if got is None:
                    ks.kinds.add("?")
                    continue
                ks.add(n, *got)
                groups.add(group_of(src, key))
            if not is_instrument(src):
                groups = {""}
            for g in groups:
                out.groups[(src, g)] = out.groups.get((src, g), 0) + 1
    return out


def _kind(kinds: set[str]) -> str | None:
    if "?" in kinds or not kinds:
        return None
    if kinds <= {STR} or kinds <= {BYTES}:
        return next(iter(kinds))
    if STR in kinds or BYTES in kinds:
        return None
    dtypes = {np.dtype(k) for k in kinds}
    if len(dtypes) == 1:
        return next(iter(kinds))
    try:
        return np.result_type(*dtypes).str
    except TypeError:
        return None


def _in_step(ks: KeySurvey, step: bytes, present: int) -> bool:
    return bool(ks.shape) and ks.same_tail and ks.present == present and ks.steps.digest() == step


def _pulse_step(src: str, surveys: list[KeySurvey], present: int) -> bytes | None:
    """The per-train entry counts (as a digest) when a pipeline group holds entries along the
    first axis: some key's first axis changes between trains, and every such key changes in
    step, in every train the group is in. None: one entry per train."""
    if not is_instrument(src):
        return None
    varying = [ks for ks in surveys if not ks.same_shape]
    if not varying:
        return None
    step = varying[0].steps.digest()
    return step if all(_in_step(ks, step, present) for ks in varying) else None


def plan(s: Survey) -> Layout:
    out = Layout()
    for src, keys in s.keys.items():
        groups = {".".join(k.split(".")[:n]) for k in keys for n in range(1, k.count(".") + 1)}
        chosen: dict[str, tuple[str, KeySurvey]] = {}
        for key, ks in keys.items():
            why = None
            kind = _kind(ks.kinds)
            if kind is None:
                why = "values of mixed or unsupported types (maps, None, uneven lists)"
            elif "/" in key or "" in key.split("."):
                why = "the key has no HDF5 path (a '/' or an empty part in its name)"
            elif key in groups:
                why = "the key is also the group of other keys"
            elif is_instrument(src) and "." not in key:
                why = "instrument keys need a group (a dotted name, e.g. data.x)"
            if why:
                out.left_out[f"{src} {key}"] = why
            else:
                chosen[key] = (kind, ks)  # type: ignore[assignment]
        by_group: dict[str, list[str]] = {}
        for key in chosen:
            by_group.setdefault(group_of(src, key), []).append(key)
        plans: dict[str, KeyPlan] = {}
        for group, members in by_group.items():
            step = _pulse_step(src, [chosen[k][1] for k in members], s.groups[(src, group)])
            out.ragged[(src, group)] = step is not None
            for key in members:
                kind, ks = chosen[key]
                assert ks.shape is not None
                if step is not None and not _in_step(ks, step, s.groups[(src, group)]):
                    out.left_out[f"{src} {key}"] = (
                        "one entry per train in a group whose other keys have entries along "
                        "their first axis (pulses)"
                    )
                    continue
                if step is None and not ks.same_shape:
                    out.left_out[f"{src} {key}"] = (
                        "its shape changes between trains and not in step with the other "
                        "keys of its group"
                    )
                    continue
                row = ks.shape[1:] if step is not None else ks.shape
                plans[key] = KeyPlan(src, key, kind, row, step is not None)
        out.keys[src] = plans
    return out
