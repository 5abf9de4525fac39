"""Per-message columns with their missing values made real.

On disk a missing value is a sentinel (seq and source_ns -1, an int column int64 min, a string
column "", a float column NaN) because zarr arrays have no mask. Analysis tools understand
missing values of their own kind: pandas NA in nullable dtypes, NaN. This module knows which
sentinel each column uses and turns it into those.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from recorder.errors import StoreError
from recorder.store import layout, nodes
from recorder.store.reader import DECODED_PREFIX, StreamReader

if TYPE_CHECKING:
    import dask.array
    import pandas

INT_MISSING = int(np.iinfo(np.int64).min)
#: Message columns with a sentinel (docs/format.md): -1 means "the protocol has none".
MESSAGE_MISSING = {"seq": -1, "source_ns": -1}
#: Columns of the frame table's bookkeeping: how bytes are stored, not what the source said.
INTERNAL = ("first_frame",)
_CHUNK = layout.COLUMN_CHUNK


def column_names(reader: StreamReader) -> list[str]:
    """The columns a user sees: message columns (minus bookkeeping) and decoded columns."""
    return [n for n in reader.column_names() if n not in INTERNAL]


def missing_of(reader: StreamReader, name: str, dtype: np.dtype) -> Any:
    """The sentinel of column `name` (None: it has none): the column's own `missing`
    attribute when the writer left one, else what the writer uses for the dtype."""
    if name in layout.MESSAGE_COLUMNS:
        return MESSAGE_MISSING.get(name)
    key = (reader.attrs.get("columns") or {}).get(name.removeprefix(DECODED_PREFIX))
    if key is None:
        key = (reader.attrs.get("columns") or {}).get(name)
    if key is not None:
        try:
            missing = nodes.array(reader.group, f"columns/{key}").attrs.get("missing")
        except StoreError:
            missing = None
        if missing is not None:
            return float("nan") if missing == "NaN" else missing
    if dtype.kind == "i":
        return INT_MISSING
    if dtype.kind == "f":
        return float("nan")
    if dtype.kind in "UTO":
        return ""
    return None  # bools: False is a value, nothing marks a missing one


def as_strings(values: np.ndarray) -> np.ndarray:
    """zarr 3 reads strings as numpy's StringDType: object arrays are what xarray and pandas
    take everywhere."""
    return values.astype(object) if values.dtype.kind in "TU" else values


class _ColumnSource:
    """A column as an array-like dask can slice: every read goes through the reader, which
    knows the committed rows and each format's layout."""

    def __init__(self, reader: StreamReader, name: str, dtype: np.dtype):
        self.reader, self.name, self.dtype = reader, name, dtype
        self.shape = (reader.n_messages,)
        self.ndim = 1

    def __getitem__(self, key: Any) -> np.ndarray:
        (rows,) = key if isinstance(key, tuple) else (key,)
        start, stop, step = rows.indices(self.shape[0])
        return self.reader.column(self.name, start, stop)[::step]


def column_dtype(reader: StreamReader, name: str) -> np.dtype:
    return reader.column(name, 0, 1).dtype


def lazy_column(reader: StreamReader, name: str) -> dask.array.Array | np.ndarray:
    """A numeric column as a lazy dask array; a string column read now (as objects)."""
    import dask.array as da

    dtype = column_dtype(reader, name)
    if dtype.kind not in "biuf":
        return as_strings(reader.column(name))
    source = _ColumnSource(reader, name, dtype)
    return da.from_array(source, chunks=(_CHUNK,), asarray=True, lock=False, name=False)


def with_missing(values: np.ndarray, missing: Any) -> pandas.api.extensions.ExtensionArray | Any:
    """`values` as a pandas array in which the sentinel is NA (NaN for floats)."""
    import pandas as pd

    kind = values.dtype.kind
    if kind in "TUO":
        out = pd.array(as_strings(values), dtype="string")
        if missing is not None:
            out[np.asarray(out == missing, dtype=bool)] = pd.NA
        return out
    if kind == "b":
        return pd.array(values, dtype="boolean")
    if kind == "f":
        return values  # NaN is already what pandas and numpy treat as missing
    arr = pd.array(values, dtype=f"{'U' if kind == 'u' else ''}Int{values.dtype.itemsize * 8}")
    if missing is not None:
        arr[values == missing] = pd.NA
    return arr


def source_epoch(reader: StreamReader) -> str | None:
    """The date `source_ns` counts from (format 2's `meaning`: ``1970-01-01`` Unix,
    ``1990-01-01`` EPICS), or None when it is no wall clock or the run does not say."""
    meaning = dict(reader.attrs).get("meaning") or {}
    epoch = meaning.get("source_epoch") if isinstance(meaning, dict) else None
    return epoch if isinstance(epoch, str) and epoch else None


def source_times(values: np.ndarray, epoch: str) -> Any:
    """`source_ns` (ns since `epoch`) as UTC times; -1 (none) becomes NaT."""
    import pandas as pd

    ns = pd.array(values, dtype="Int64")
    ns[values == MESSAGE_MISSING["source_ns"]] = pd.NA
    return pd.Timestamp(epoch, tz="UTC") + pd.to_timedelta(ns, unit="ns")


def table(reader: StreamReader, columns: list[str] | None = None) -> pandas.DataFrame:
    """Per-message columns as a DataFrame with real missing values (see the module doc).

    `recv_time` (UTC) is added next to `recv_ns`, and `source_time` next to `source_ns` when
    the run says which epoch the source's clock counts from; the index is the message number.
    """
    import pandas as pd

    names = column_names(reader) if columns is None else list(columns)
    epoch = source_epoch(reader)
    data: dict[str, Any] = {}
    for name in names:
        values = reader.column(name)
        data[name] = with_missing(values, missing_of(reader, name, values.dtype))
        if name == "recv_ns":
            data["recv_time"] = pd.to_datetime(values, unit="ns", utc=True)
        elif name == "source_ns" and epoch is not None:
            data["source_time"] = source_times(values, epoch)
    index = pd.RangeIndex(reader.n_messages, name="message")
    return pd.DataFrame(data, index=index)
