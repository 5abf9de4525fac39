"""One stream of a run for analysis: its table, its Dataset and its messages.

Every protocol's stream is a `Stream`; protocols whose users have tools of their own get a
subclass shaped like those tools (`openephys`, `images`, `karabo`), chosen by `stream_for`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from recorder.analysis import arrays
from recorder.analysis import columns as _columns
from recorder.store.reader import Message, StreamReader

if TYPE_CHECKING:
    import pandas
    import xarray


class Stream:
    """A recorded stream: ``table()`` (pandas), ``to_xarray()`` (lazy xarray), ``messages()``
    (the exact bytes); ``reader`` is the store's StreamReader underneath."""

    def __init__(self, reader: StreamReader):
        self.reader = reader

    @property
    def name(self) -> str:
        return self.reader.name

    @property
    def protocol(self) -> str:
        return self.reader.protocol

    def __len__(self) -> int:
        return self.reader.n_messages

    @property
    def columns(self) -> list[str]:
        """Names of the per-message columns (``table()`` has these, plus ``recv_time``)."""
        return _columns.column_names(self.reader)

    @property
    def array_names(self) -> list[str]:
        return self.reader.array_names()

    def column(self, name: str) -> np.ndarray:
        """One per-message column as stored (sentinels included); ``table()`` masks them."""
        return self.reader.column(name)

    def table(self, columns: list[str] | None = None) -> pandas.DataFrame:
        """Per-message columns (all, or those named) as a pandas DataFrame, missing values as
        NA / NaN."""
        return _columns.table(self.reader, columns)

    def to_xarray(self) -> xarray.Dataset:
        """The stream as a lazy (dask) xarray.Dataset; docs/analysis.md shows its layout."""
        from recorder.analysis.xarrays import to_xarray

        return to_xarray(self.reader)

    def array(self, name: str) -> Any:
        """Every row of array `name` as one lazy dask array (rows in message order), when its
        segments share a shape; else a ValueError that names the shapes."""
        import dask.array as da

        family = arrays.families(self.reader).get(name)
        if family is None:
            raise KeyError(f"stream {self.name} has no array {name!r}: {self.array_names}")
        groups = family.row_shapes()
        if len(groups) > 1:
            shapes = sorted({tuple(s.shape) for s in family.segments})
            raise ValueError(f"array {name!r} changes shape ({shapes}): use to_xarray()")
        parts = [family.dask(k) for k in range(len(family.segments))]
        return parts[0] if len(parts) == 1 else da.concatenate(parts, axis=0)

    def messages(self, start: int = 0, stop: int | None = None) -> Iterator[Message]:
        """Messages [start, stop) with their frames byte for byte (`RunReader` messages)."""
        return self.reader.messages(start, stop)

    def __repr__(self) -> str:
        arrays_ = ", ".join(self.array_names) or "no arrays"
        kind = type(self).__name__
        return f"<{kind} {self.name} ({self.protocol}): {len(self)} messages, {arrays_}>"


def stream_for(reader: StreamReader) -> Stream:
    """The Stream class that fits the stream's protocol."""
    from recorder.analysis.images import ImageStream
    from recorder.analysis.karabo import KaraboStream
    from recorder.analysis.openephys import OpenEphysStream

    kinds: dict[str, type[Stream]] = {
        "openephys": OpenEphysStream,
        "adzmq": ImageStream,
        "pymultivideo": ImageStream,
        "karabo": KaraboStream,
    }
    return kinds.get(reader.protocol, Stream)(reader)
