"""A stream's decoded scalar columns (NDAttributes, Karabo scalars, Open Ephys header fields)
as one JSON message per stream message, for Foxglove's Plot and Raw Messages panels.

Values come from the stored columns, read a block of messages at a time (the codec decoded
them once, when the run was recorded; decoding every message again would be most of an
export's time). A value the message did not carry (the column's missing value) is left out.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from recorder.analysis.columns import missing_of
from recorder.errors import StoreError
from recorder.store import layout
from recorder.store.reader import StreamReader

BLOCK = 4096
"""Messages per read of every column (the store's column chunk)."""
RESERVED = ("timestamp", "seq")
"""Fields every columns message has before the stream's own columns."""
_FIELD_RE = re.compile(r"[^A-Za-z0-9_]+")
TIME_SCHEMA = {
    "type": "object",
    "title": "time",
    "properties": {
        "sec": {"type": "integer", "minimum": 0},
        "nsec": {"type": "integer", "minimum": 0, "maximum": 999_999_999},
    },
}


def field_names(columns: list[str]) -> dict[str, str]:
    """Column name -> JSON field name Foxglove's message paths can address (`/cam/columns.
    ndattr_Exposure`): letters, digits and `_` only; a clash gets `_2`, `_3` ..."""
    taken = set(RESERVED)
    out = {}
    for name in columns:
        base = _FIELD_RE.sub("_", name).strip("_") or "column"
        if base[0].isdigit():
            base = "_" + base
        field, n = base, 1
        while field in taken:
            n += 1
            field = f"{base}_{n}"
        taken.add(field)
        out[name] = field
    return out


def _json_type(dtype: np.dtype) -> list[str]:
    if dtype.kind in ("i", "u"):
        return ["integer", "null"]
    if dtype.kind == "f":
        return ["number", "null"]
    if dtype.kind == "b":
        return ["boolean", "null"]
    return ["string", "null"]


def _present(values: np.ndarray, missing: Any) -> list[Any]:
    """The values as Python objects, None where the message had none (or JSON has none:
    NaN and infinities)."""
    out = values.tolist()
    if values.dtype.kind == "f":
        keep = np.isfinite(values)
    elif missing is None:  # bools: every value is one
        return out
    else:
        keep = values != missing
    return [v if k else None for v, k in zip(out, keep.tolist(), strict=True)]


class ColumnBlocks:
    """The columns of messages [lo, hi) of one stream, read BLOCK messages at a time as the
    export asks for them in order."""

    def __init__(self, reader: StreamReader, lo: int, hi: int):
        self.reader, self.lo, self.hi = reader, lo, hi
        self.names = [layout.valid_text(n) for n in (reader.attrs.get("columns") or {})]
        self.fields = field_names(self.names)
        self.dtypes: dict[str, np.dtype] = {}
        for name in self.names:
            try:
                self.dtypes[name] = reader.column(name, 0, 0).dtype
            except StoreError:
                continue  # listed but not readable: left out
        self.names = [n for n in self.names if n in self.dtypes]
        self._missing = {n: missing_of(reader, n, d) for n, d in self.dtypes.items()}
        self._start = self._stop = 0
        self._values: list[list[Any]] = []

    def schema(self) -> dict[str, Any]:
        props: dict[str, Any] = {
            "timestamp": {**TIME_SCHEMA, "description": "receive time"},
            "seq": {"type": ["integer", "null"], "description": "sequence number"},
        }
        for name in self.names:
            props[self.fields[name]] = {"type": _json_type(self.dtypes[name]), "description": name}
        return {
            "title": f"zmq_recorder.columns.{self.reader.name}",
            "description": f"decoded columns of stream {self.reader.name}",
            "type": "object",
            "properties": props,
        }

    def body(self, index: int, recv_ns: int, seq: int) -> dict[str, Any] | None:
        """The JSON object of message `index`; None when it carried no column value."""
        if not self._start <= index < self._stop:
            self._read(index)
        k = index - self._start
        body: dict[str, Any] = {}
        for name, values in zip(self.names, self._values, strict=True):
            value = values[k]
            if value is not None:
                body[self.fields[name]] = value
        if not body:
            return None
        sec, nsec = divmod(max(0, recv_ns), 1_000_000_000)
        return {"timestamp": {"sec": sec, "nsec": nsec}, "seq": seq if seq >= 0 else None, **body}

    def _read(self, index: int) -> None:
        self._start, self._stop = index, min(self.hi, index + BLOCK)
        self._values = [
            _present(self.reader.column(n, self._start, self._stop), self._missing[n])
            for n in self.names
        ]
