"""Karabo bridge streams shaped like ``extra_data`` (EuXFEL's reader of run files).

Names and return shapes follow extra_data's DataCollection: ``all_sources``, ``train_ids``,
``keys_for_source``, ``select(source_glob, key_glob)``, ``stream[source, key]`` (a KeyData
with ``ndarray()``, ``xarray()``, ``series()``, ``train_ids``), ``get_array``, ``trains()``
yielding ``(train_id, {source: {key: value, "metadata": {...}}})`` and ``train_from_id``.
Typed arrays and per-train scalars are read from their columns; ``trains()`` decodes the
recorded messages themselves, so it gives every value the bridge sent (lists, strings, each
source's own metadata and timestamps).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from recorder.analysis import arrays
from recorder.analysis.stream import Stream
from recorder.store.reader import StreamReader

if TYPE_CHECKING:
    import pandas
    import xarray

Selection = list[tuple[str, str]]
"""(source glob, key glob) pairs; a train value is selected when any pair matches it."""


def _selection(seln: Any, key_glob: str) -> Selection:
    if isinstance(seln, str):
        return [(seln, key_glob)]
    if isinstance(seln, dict):
        out: Selection = []
        for src, keys in seln.items():
            out.extend((src, k) for k in (keys or {"*"}))
        return out
    if isinstance(seln, Iterable):
        return [(str(s), str(k)) for s, k in seln]
    raise TypeError(f"cannot select by {type(seln).__name__}")


def _flat(values: dict, prefix: str = "") -> dict[str, Any]:
    """Nested maps (protocol 1.0) as extra_data's dotted keys; ``metadata`` stays a map."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if not prefix and key == "metadata":
            continue
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def split_name(name: str, sources: Iterable[str]) -> tuple[str, str]:
    """``<source>:<key>`` into its parts; a source name may hold ':' itself (``SRC:output``),
    so the longest known source that fits wins."""
    best = max((s for s in sources if name.startswith(s + ":")), key=len, default=None)
    if best is None:
        src, _, key = name.rpartition(":")
        return src, key
    return best, name[len(best) + 1 :]


def train_data(frames: list[memoryview]) -> dict[str, dict[str, Any]]:
    """One recorded train as ``{source: {key: value, "metadata": {...}}}``, decoded from its
    bytes as karabo_bridge's Client would."""
    from recorder.protocols import karabo

    raw = [bytes(f) for f in frames]
    values = karabo.train_values(raw)
    data: dict[str, dict[str, Any]] = {}
    for src, vals in values.items():
        data[src] = {"metadata": vals.get("metadata", {}), **_flat(vals)}
    if len(raw) == 1:
        found = list(karabo.v1_arrays(raw[0]).items())
    else:
        found = [(b.name, b.array) for b in karabo.KaraboCodec().decode(raw).bulk]
    for name, array in found:
        src, key = split_name(name, data)
        data.setdefault(src, {"metadata": {}})[key] = np.array(array)
    return data


class KeyData:
    """One key of one source across trains, like extra_data's KeyData."""

    def __init__(self, stream: KaraboStream, source: str, key: str, name: str):
        self.stream, self.source, self.key, self.name = stream, source, key, name
        self.family = arrays.families(stream.reader).get(name)

    @cached_property
    def _array(self) -> tuple[Any, np.ndarray]:
        """The key's typed rows (dask) and the message of each row, in train order.

        One shape all along: one row per train. Else (a first axis that varies between
        trains, stored ragged or as a segment per shape): each train's entries follow each
        other, as extra_data gives pulse-resolved data.
        """
        family = self.family
        assert family is not None
        if len(family.row_shapes()) == 1 and not family.ragged:
            rows = np.concatenate(family.messages) if family.messages else np.zeros(0, np.int64)
            return self.stream.array(self.name), rows
        try:
            return family.entries()
        except ValueError as exc:
            raise ValueError(f"{self.source} {self.key}: {exc}") from None

    @cached_property
    def _rows(self) -> np.ndarray:
        """Message index of every value, in train order."""
        if self.family is not None:
            return self._array[1]
        present = self.stream._messages_with(self.source)
        return np.flatnonzero(present)

    def train_id_coordinates(self) -> np.ndarray:
        """The train id of every entry (several per train for ragged data, e.g. pulses)."""
        seq = self.stream.reader.column("seq")
        return seq[self._rows.astype(np.int64)].astype(np.uint64)

    @property
    def train_ids(self) -> list[int]:
        """The trains that have this key, in order."""
        return [int(t) for t in dict.fromkeys(self.train_id_coordinates().tolist())]

    def dask_array(self) -> Any:
        import dask.array as da

        if self.family is None:
            return da.from_array(self.ndarray())
        return self._array[0]

    def ndarray(self) -> np.ndarray:
        """All values, trains along the first axis (rows of all trains for ragged data)."""
        if self.family is not None:
            return np.asarray(self._array[0].compute())
        values = self.stream.reader.column(self.name)
        values = values[self._rows.astype(np.int64)]
        return values.astype(object) if values.dtype.kind in "TU" else values

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.dask_array().shape) if self.family is not None else (len(self._rows),)

    @property
    def dtype(self) -> np.dtype:
        return self.dask_array().dtype if self.family is not None else self.ndarray().dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def xarray(self) -> xarray.DataArray:
        """The values with a ``trainId`` coordinate (extra_data names it so)."""
        import xarray as xr

        values = self.ndarray()
        dims = ["trainId", *(f"dim_{d}" for d in range(values.ndim - 1))]
        return xr.DataArray(
            values,
            dims=dims,
            coords={"trainId": self.train_id_coordinates()},
            name=f"{self.source}.{self.key}",
        )

    def series(self) -> pandas.Series:
        """A scalar key as a pandas Series indexed by ``trainId``."""
        import pandas as pd

        index = pd.Index(self.train_id_coordinates(), name="trainId")
        return pd.Series(self.ndarray(), index=index, name=f"{self.source}.{self.key}")

    def __repr__(self) -> str:
        return f"<KeyData {self.source} {self.key}: {len(self._rows)} entries>"


class KaraboStream(Stream):
    """A Karabo bridge stream, its trains and sources as extra_data shows a run."""

    def __init__(self, reader: StreamReader, selection: Selection | None = None):
        super().__init__(reader)
        self.selection = selection

    def _wanted(self, source: str, key: str | None = None) -> bool:
        if self.selection is None:
            return True
        return any(
            fnmatch.fnmatchcase(source, s) and (key is None or fnmatch.fnmatchcase(key, k))
            for s, k in self.selection
        )

    @cached_property
    def _sources_per_message(self) -> list[frozenset[str]]:
        if "sources" not in self.reader.column_names():
            return [frozenset()] * len(self)
        return [frozenset(str(v).split(",")) - {""} for v in self.reader.column("sources")]

    def _messages_with(self, source: str) -> np.ndarray:
        return np.array([source in s for s in self._sources_per_message], dtype=bool)

    @cached_property
    def _all_sources(self) -> frozenset[str]:
        return frozenset().union(*self._sources_per_message)

    @property
    def all_sources(self) -> frozenset[str]:
        if self.selection is None:
            return self._all_sources
        return frozenset(
            src
            for src in self._all_sources
            for s, k in self.selection
            if fnmatch.fnmatchcase(src, s)
            and (k == "*" or any(fnmatch.fnmatchcase(key, k) for key in self._keys.get(src, {})))
        )

    @property
    def train_ids(self) -> list[int]:
        return [int(t) for t in self.reader.column("seq") if t >= 0]

    @cached_property
    def _keys(self) -> dict[str, dict[str, str]]:
        """Per source: key -> stored name (array family or column)."""
        out: dict[str, dict[str, str]] = {}
        names = [*self.reader.column_names(), *self.reader.array_names()]  # arrays win
        for name in names:
            if ":" not in name or name.startswith("columns/"):
                continue
            src, key = split_name(name, self._all_sources)
            if src in self._all_sources:
                out.setdefault(src, {})[key] = name
        return out

    def keys_for_source(self, source: str) -> set[str]:
        """The keys of `source` that have a typed array or column (lists and other values
        are in ``trains()``). Like extra_data, without the source's metadata (format 2 keeps
        it as ``metadata.*`` columns, which ``stream[source, "metadata.timestamp.tid"]``
        reads)."""
        return {
            k
            for k in self._keys.get(source, {})
            if not k.startswith("metadata.") and self._wanted(source, k)
        }

    def select(self, seln_or_source_glob: Any, key_glob: str = "*") -> KaraboStream:
        """The same stream limited to matching sources and keys (globs, a list of
        (source, key) pairs or a {source: keys} map), as extra_data's ``select``."""
        return KaraboStream(self.reader, _selection(seln_or_source_glob, key_glob))

    def __getitem__(self, item: tuple[str, str]) -> KeyData:
        source, key = item
        keys = self._keys.get(source)
        if keys is None:
            raise KeyError(f"no source {source!r} in stream {self.name}")
        for k in (key, f"{key}.value"):  # extra_data: "beamPosition.ixPos" means its .value
            if k in keys:
                return KeyData(self, source, k, keys[k])
        raise KeyError(f"source {source!r} has no key {key!r} with a column or array")

    def get_array(self, source: str, key: str) -> xarray.DataArray:
        return self[source, key].xarray()

    def _pick(self, data: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The selected part of a train: a source stays when a key of it is selected (or its
        whole set of keys, ``*``), as extra_data's ``select`` keeps it."""
        if self.selection is None:
            return data
        out = {}
        for src, values in data.items():
            keys = {k: v for k, v in values.items() if k != "metadata" and self._wanted(src, k)}
            if keys or any(fnmatch.fnmatchcase(src, s) and k == "*" for s, k in self.selection):
                out[src] = {"metadata": values.get("metadata", {}), **keys}
        return out

    def trains(self, require_all: bool = False) -> Iterator[tuple[int, dict[str, dict]]]:
        """``(train_id, {source: {key: value}})`` for every recorded train, in order; with
        `require_all` only trains that hold every selected source."""
        wanted = self.all_sources
        for msg in self.reader.messages():
            if msg.rejected:
                continue
            data = self._pick(train_data(msg.frames))
            if require_all and not wanted <= set(data):
                continue
            yield msg.seq, data

    def train_from_index(self, index: int) -> tuple[int, dict[str, dict]]:
        msg = next(self.reader.messages(index, index + 1))
        return msg.seq, self._pick(train_data(msg.frames))

    def train_from_id(self, train_id: int) -> tuple[int, dict[str, dict]]:
        seq = self.reader.column("seq")
        hits = np.flatnonzero(seq == int(train_id))
        if not len(hits):
            raise KeyError(f"train {train_id} is not in stream {self.name}")
        return self.train_from_index(int(hits[0]))
