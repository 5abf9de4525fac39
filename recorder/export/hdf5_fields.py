"""Which per-frame values of an image stream go where in an NDFileHDF5 entry.

areaDetector's default layout puts every NDAttribute under `instrument/NDAttributes/<name>`
(ColorMode under `instrument/detector/NDAttributes`), together with the virtual attributes of
every NDArray (NDArrayUniqueId, NDArrayTimeStamp, NDArrayEpicsTSSec/nSec). The recorder's own
per-message values (receive time, message index, raw seq and source time) and decoded columns
that are not NDAttributes go to `instrument/zmq_recorder`. A field is computed for a span of
messages and then indexed by the frames of a batch, so a column is read once per batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recorder.protocols.adzmq import FLOAT_SUFFIX
from recorder.store import layout
from recorder.store.reader import DECODED_PREFIX, StreamReader

NDATTR = "instrument/NDAttributes"
DETECTOR_NDATTR = "instrument/detector/NDAttributes"
RECORDER = "instrument/zmq_recorder"
DETECTOR_ATTRS = ("ColorMode",)
"""NDAttributes the default layout puts beside the detector data rather than with the rest."""
INT_MISSING = int(np.iinfo(np.int64).min)

Read = Callable[[int, int], np.ndarray]
"""Values of messages [m0, m1)."""


@dataclass
class Field:
    """One dataset of every entry of a stream: `group`/`name` in the entry, values of a span
    of messages from `read`, HDF5 attributes `attrs`."""

    group: str
    name: str
    read: Read
    attrs: dict[str, Any] = field(default_factory=dict)


def _safe(name: str) -> str:
    """An HDF5 link name for `name` (no `/`, not `.` or `..`); the real one is an attribute."""
    out = name.replace("/", "_")
    return "_" if out in ("", ".", "..") else out


def _column(reader: StreamReader, name: str) -> Read:
    return lambda m0, m1: reader.column(name, m0, m1)


def _widened(reader: StreamReader, ints: str, floats: str) -> Read:
    """An NDAttribute stored as int64 until a value had a fraction, then as float64 in
    `<name>.float64` (see adzmq.FLOAT_SUFFIX): one float64 dataset of both."""

    def read(m0: int, m1: int) -> np.ndarray:
        i = reader.column(ints, m0, m1)
        f = reader.column(floats, m0, m1).astype(np.float64)
        as_float = np.where(i == INT_MISSING, np.nan, i.astype(np.float64))
        return np.where(np.isnan(f), as_float, f)

    return read


def _epics(reader: StreamReader, part: str) -> Read:
    """secPastEpoch or nsec of the NDArray time (source_ns counts from 1990, EPICS's epoch)."""

    def read(m0: int, m1: int) -> np.ndarray:
        src = reader.column("source_ns", m0, m1).astype(np.int64)
        have = src != -1
        sec, nsec = np.divmod(np.where(have, src, 0), 1_000_000_000)
        return np.where(have, sec if part == "sec" else nsec, 0).astype(np.uint32)

    return read


def _seconds(reader: StreamReader) -> Read:
    def read(m0: int, m1: int) -> np.ndarray:
        src = reader.column("source_ns", m0, m1).astype(np.int64)
        return np.where(src == -1, np.nan, src / 1e9)

    return read


def _nan(m0: int, m1: int) -> np.ndarray:
    return np.full(m1 - m0, np.nan)


def _recorder_fields(reader: StreamReader) -> list[Field]:
    meaning = reader.attrs.get("meaning") or {}
    return [
        Field(RECORDER, "recv_ns", _column(reader, "recv_ns"),
              {"units": "ns", "long_name": "host receive time, ns since 1970-01-01 UTC"}),
        Field(RECORDER, "message", lambda m0, m1: np.arange(m0, m1, dtype=np.int64),
              {"long_name": "index of the message in the recorded stream"}),
        Field(RECORDER, "seq", _column(reader, "seq"),
              {"long_name": meaning.get("seq") or "sequence number", "missing": -1}),
        Field(RECORDER, "source_ns", _column(reader, "source_ns"),
              {"units": "ns", "long_name": meaning.get("source_time") or "source time",
               "missing": -1}),
    ]  # fmt: skip


def _decoded(reader: StreamReader) -> list[str]:
    """Decoded column names as `column()` takes them (prefixed where a message column has
    the same name)."""
    return [n for n in reader.column_names() if n not in layout.MESSAGE_COLUMNS]


def _real(name: str) -> str:
    return name.removeprefix(DECODED_PREFIX)


def adzmq_fields(reader: StreamReader) -> list[Field]:
    names = _decoded(reader)
    real = {_real(n): n for n in names}
    out = [
        Field(NDATTR, "NDArrayUniqueId", _column(reader, "seq"),
              {"long_name": "NDArray uniqueId (the header's frame)"}),
        Field(NDATTR, "NDArrayTimeStamp",
              _column(reader, real["timeStamp"]) if "timeStamp" in real else _nan,
              {"units": "s", "long_name": "NDArray timeStamp, seconds since 1990-01-01 UTC "
               "(EPICS epoch); NaN where the header had none"}),
        Field(NDATTR, "NDArrayEpicsTSSec", _epics(reader, "sec"),
              {"units": "s", "long_name": "seconds past 1990-01-01 UTC, split from the "
               "header's timeStamp (NDPluginZMQ sends no epicsTS); 0 where it had none"}),
        Field(NDATTR, "NDArrayEpicsTSnSec", _epics(reader, "nsec"),
              {"units": "ns", "long_name": "nanoseconds of NDArrayEpicsTSSec"}),
    ]  # fmt: skip
    used = {"timeStamp"}
    for name, col in real.items():
        if name in used or not name.startswith("ndattr.") or name.endswith(FLOAT_SUFFIX):
            continue
        attr = name.removeprefix("ndattr.")
        group = DETECTOR_NDATTR if attr in DETECTOR_ATTRS else NDATTR
        widened = real.get(name + FLOAT_SUFFIX)
        if widened is not None:
            read = _widened(reader, col, widened)
            used.add(name + FLOAT_SUFFIX)
        else:
            read = _column(reader, col)
        out.append(Field(group, _safe(attr), read, {"ndattribute": attr}))
        used.add(name)
    for name, col in real.items():
        if name in used:
            continue
        if name.startswith("ndattr.") and name.endswith(FLOAT_SUFFIX):  # only fractional values
            attr = name.removeprefix("ndattr.").removesuffix(FLOAT_SUFFIX)
            out.append(Field(NDATTR, _safe(attr), _column(reader, col), {"ndattribute": attr}))
        else:
            out.append(Field(RECORDER, _safe(name), _column(reader, col), {"column": name}))
    return out + _recorder_fields(reader)


def pymultivideo_fields(reader: StreamReader) -> list[Field]:
    out = [
        Field(NDATTR, "NDArrayTimeStamp", _seconds(reader),
              {"units": "s", "long_name": "the frame's meta timestamp in seconds (the camera's "
               "own clock, not a wall clock); NaN where it had none"}),
        Field(NDATTR, "timestamp", _column(reader, "source_ns"),
              {"units": "ns", "long_name": "the frame's meta timestamp as sent (camera clock)"}),
    ]  # fmt: skip
    for col in _decoded(reader):
        name = _real(col)
        out.append(Field(NDATTR, _safe(name), _column(reader, col), {"ndattribute": name}))
    return out + _recorder_fields(reader)


FIELDS: dict[str, Callable[[StreamReader], list[Field]]] = {
    "adzmq": adzmq_fields,
    "pymultivideo": pymultivideo_fields,
}


def fields_of(reader: StreamReader) -> list[Field]:
    """Every field of the stream, each at a unique name in its group."""
    taken: dict[str, set[str]] = {}
    out = []
    for f in FIELDS[reader.protocol](reader):
        names = taken.setdefault(f.group, set())
        name, n = f.name, 1
        while name in names:
            name, n = f"{f.name}_{n}", n + 1
        names.add(name)
        f.name = name
        out.append(f)
    return out
