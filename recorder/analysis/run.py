"""`open_run`: a recorded run for people who analyse it, by id or by path.

A `Run` wraps the store's RunReader (so it reads every format the reader reads) and adds what
analysis tools expect: streams as pandas tables and lazy xarray Datasets, the whole run as an
xarray DataTree, and per protocol the shapes of each system's own tools.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recorder import config
from recorder.analysis.stream import Stream, stream_for
from recorder.errors import StoreError, UsageError
from recorder.store import location
from recorder.store.find import resolve_run
from recorder.store.layout import RUNS_DIR
from recorder.store.reader import Message, RunReader

if TYPE_CHECKING:
    import xarray

    from recorder.analysis.karabo import KaraboStream, KeyData


def run_path(run: str | os.PathLike, data: str | os.PathLike | None = None) -> Path | str:
    """The folder of `run`: a run folder given as a path, else a run id (or a unique start of
    one) in the data folder's runs (`data`, else $RECORDER_DATA, else ./recorder-data). A run
    URL (``s3://bucket/prefix/runs/RUN_ID``) is read straight from the object store."""
    if location.is_url(run):
        return str(run)
    path = Path(run).expanduser()
    if (path / "zarr.json").is_file():
        return path
    text = os.fspath(run)
    if os.sep in text or (os.altsep and os.altsep in text):
        return path  # a path that holds no run: RunReader says so
    folder = config.data_dir(data, create=False)
    return resolve_run(config.runs_dir(folder), text)


def open_run(run: str | os.PathLike, data: str | os.PathLike | None = None) -> Run:
    """Open a recorded run for reading: ``open_run("20261201-1200")`` or a run folder's path.

    `data` is the data folder holding ``runs/`` (default: $RECORDER_DATA or
    ``./recorder-data``). Raises RunNotFound, or UsageError for an ambiguous prefix.
    """
    return Run(RunReader(run_path(run, data)))


def run_urls(data: str) -> list[str]:
    """The URLs of every run in an object store (``s3://bucket/prefix``), oldest first: one
    listing of the bucket, no run opened (docs/scaling.md hands them to dask workers)."""
    import obstore

    loc = location.parse(data)
    store = location.s3_store(loc, RUNS_DIR)
    try:
        found = obstore.list_with_delimiter(store)["common_prefixes"]
    except Exception as exc:  # obstore's own classes
        raise StoreError(location.describe(exc, loc)) from None
    ids = sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in found)
    return [loc.run_url(run_id) for run_id in ids]


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def _when(ns: int | None) -> str:
    if ns is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ns / 1e9)) + f".{ns % 10**9 // 10**6:03d}"


class Run:
    """A recorded run: ``streams`` (name -> Stream), ``messages()``, ``to_datatree()``; with
    one Karabo stream, also extra_data's ``select``/``trains``/``train_from_id``."""

    def __init__(self, reader: RunReader):
        self.reader = reader
        self.streams: dict[str, Stream] = {
            name: stream_for(s) for name, s in reader.streams.items()
        }

    @property
    def run_id(self) -> str:
        return self.reader.run_id

    @property
    def path(self) -> Path:
        return self.reader.path

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.reader.attrs)

    def summary(self) -> dict[str, Any]:
        """What ``recorder info --json`` shows."""
        return dict(self.reader.summary())

    def __getitem__(self, item: str | tuple[str, str]) -> Stream | KeyData:
        """``run["camera"]``: a stream; ``run[source, key]``: Karabo data as extra_data's
        ``run[source, key]``."""
        if isinstance(item, tuple):
            return self._karabo()[item]
        try:
            return self.streams[item]
        except KeyError:
            raise KeyError(
                f"run {self.run_id} has no stream {item!r}: {list(self.streams)}"
            ) from None

    def messages(
        self,
        streams: Iterable[str] | None = None,
        start: float | None = None,
        stop: float | None = None,
    ) -> Iterator[Message]:
        """Every message of the chosen streams in receive-time order, frames byte for byte;
        `start`/`stop` in seconds from the run's start."""
        return self.reader.messages(streams, start, stop)

    def to_datatree(self) -> xarray.DataTree:
        """The run as an xarray DataTree: run attributes at the root, one node per stream
        (each `Stream.to_xarray()`)."""
        import xarray as xr

        from recorder.analysis.xarrays import json_text

        root = {
            k: (json_text(v) if isinstance(v, dict | list) else ("" if v is None else v))
            for k, v in self.reader.attrs.items()
        }
        nodes: dict[str, Any] = {"/": xr.Dataset(attrs=root)}
        for name, stream in self.streams.items():
            nodes[f"/{name}"] = stream.to_xarray()
        return xr.DataTree.from_dict(nodes)

    # ---------------------------------------------------------------- Karabo, as extra_data

    def _karabo(self) -> KaraboStream:
        from recorder.analysis.karabo import KaraboStream

        found = [s for s in self.streams.values() if isinstance(s, KaraboStream)]
        if len(found) != 1:
            names = ", ".join(s.name for s in found) or "none"
            raise UsageError(
                f"run {self.run_id} has {len(found)} Karabo streams ({names}): "
                "use run.streams[name] for one of them"
            )
        return found[0]

    @property
    def all_sources(self) -> frozenset[str]:
        return self._karabo().all_sources

    @property
    def train_ids(self) -> list[int]:
        return self._karabo().train_ids

    def keys_for_source(self, source: str) -> set[str]:
        return self._karabo().keys_for_source(source)

    def select(self, seln_or_source_glob: Any, key_glob: str = "*") -> KaraboStream:
        return self._karabo().select(seln_or_source_glob, key_glob)

    def trains(self, require_all: bool = False) -> Iterator[tuple[int, dict[str, dict]]]:
        return self._karabo().trains(require_all=require_all)

    def train_from_id(self, train_id: int) -> tuple[int, dict[str, dict]]:
        return self._karabo().train_from_id(train_id)

    def get_array(self, source: str, key: str) -> xarray.DataArray:
        return self._karabo().get_array(source, key)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reader.close()

    # ---------------------------------------------------------------- showing it

    def __repr__(self) -> str:
        s = self.reader.summary()
        first = [x["first_recv_ns"] for x in s["streams"] if x["first_recv_ns"] is not None]
        last = [x["last_recv_ns"] for x in s["streams"] if x["last_recv_ns"] is not None]
        begin, end = (min(first) if first else None), (max(last) if last else None)
        span = f"{(end - begin) / 1e9:.3f} s" if begin is not None and end is not None else "empty"
        name = f" {s['name']!r}" if s["name"] else ""
        lines = [
            f"<Run {s['run_id']}{name} {s['status']}, format {s['format_version']}: "
            f"{_size(s['bytes'])} in {len(s['streams'])} streams>",
            f"  time span: {_when(begin)} .. {_when(end)} UTC ({span})",
        ]
        width = max((len(x["name"]) for x in s["streams"]), default=0)
        for x in s["streams"]:
            arrays = ", ".join(x["arrays"])
            if len(arrays) > 60:  # Karabo streams have dozens of long names
                arrays = f"{x['arrays'][0]} and {len(x['arrays']) - 1} more"
            lines.append(
                f"  {x['name']:<{width}}  {x['protocol']:<12} {x['messages']:>8} messages "
                f"{_size(x['bytes']):>10}" + (f"  arrays: {arrays}" if arrays else "")
            )
        return "\n".join(lines)
