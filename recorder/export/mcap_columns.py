"""A stream's decoded scalar columns (NDAttributes, Karabo scalars, Open Ephys header fields)
as one JSON message per stream message, for Foxglove's Plot and Raw Messages panels.

Values come from the stored columns, read a block of messages at a time (the codec decoded
them once, when the run was recorded; decoding every message again would be most of an
export's time). A value the message did not carry (the column's missing value) is left out.
"""

from __future__ import annotations

import json
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


def _fragments(field: str, values: np.ndarray, missing: Any) -> list[str | None]:
    """`"field":value` as JSON text per message, None where the message had no value (or JSON
    has none: NaN and infinities). Made per block, so a message costs a join, not a dumps."""
    out = values.tolist()
    kind = values.dtype.kind
    if kind == "f":
        keep = np.isfinite(values).tolist()
        texts: list[str] = [repr(v) for v in out]  # what json.dumps writes for a float
    elif kind in "iu":
        keep = (values != missing).tolist()
        texts = [str(v) for v in out]
    elif kind == "b":  # False is also the missing value: every value is written
        keep = [True] * len(out)
        texts = ["true" if v else "false" for v in out]
    else:
        keep = (values != missing).tolist()
        seen: dict[str, str] = {}
        texts = [seen.get(v) or seen.setdefault(v, json.dumps(str(v))) for v in out]
    key = f'"{field}":'
    return [key + t if k else None for t, k in zip(texts, keep, strict=True)]


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
        self._fragments: list[list[str | None]] = []

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

    def message(self, index: int, recv_ns: int, seq: int) -> bytes | None:
        """The JSON object of message `index`; None when it carried no column value."""
        if not self._start <= index < self._stop:
            self._read(index)
        k = index - self._start
        parts = [f for column in self._fragments if (f := column[k]) is not None]
        if not parts:
            return None
        sec, nsec = divmod(max(0, recv_ns), 1_000_000_000)
        head = f'{{"timestamp":{{"sec":{sec},"nsec":{nsec}}},"seq":{seq if seq >= 0 else "null"},'
        return (head + ",".join(parts) + "}").encode()

    def _read(self, index: int) -> None:
        self._start, self._stop = index, min(self.hi, index + BLOCK)
        self._fragments = [
            _fragments(
                self.fields[n], self.reader.column(n, self._start, self._stop), self._missing[n]
            )
            for n in self.names
        ]
