"""An EXDF run (a European XFEL run folder, or one of its .h5 files) as a recorder run with one
Karabo bridge stream, so it can be replayed over ZeroMQ to online-analysis clients.

Each train becomes the message `karabo-bridge-serve-files` would send for it (protocol 2.2,
framed by `recorder.protocols.karabo.encode_train`, which matches karabo_bridge's serializer
byte for byte): every source of the files, each with metadata `{source, timestamp.tid}`, the
train's values as extra_data's `trains()` gives them (one entry: the entry itself; several: the
entries stacked), arrays of Python objects (strings) left out as serve-files leaves them out.
The stream is recorded as a SUB that connected to the simulator's default endpoint, so a replay
publishes (PUB, bind) there, like serve-files `-z PUB`. Receive times are the trains'
INDEX/timestamp when every train has one, else trains 100 ms apart (EuXFEL's 10 Hz) from the
files' creation date. Read with h5py only, train by train: memory stays flat in run length.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recorder import __version__
from recorder.errors import ExportError
from recorder.export.exdf_layout import hdf5
from recorder.export.importing import ImportedStream, RunImport
from recorder.protocols import karabo

ENDPOINT = "tcp://127.0.0.1:4545"  # the Karabo simulator's default endpoint
STREAM = "main"
TRAIN_NS = 100_000_000  # EuXFEL delivers 10 trains a second
_DRAIN_BYTES = 32 << 20


@dataclass
class _Source:
    name: str
    control: bool
    keys: dict[str, str] = field(default_factory=dict)  # key -> dataset path
    index: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # group ->


class ExdfFile:
    """One EXDF file's trains, sources and indexes, opened with h5py."""

    def __init__(self, path: Path):
        h5py = hdf5()

        self.path = path
        self._datasets: dict[str, Any] = {}
        try:
            self.f = h5py.File(path, "r")
        except OSError as exc:
            raise ExportError(f"{path} is not an EXDF file: not HDF5 ({exc})") from None
        try:
            self._read()
        except ExportError:
            self.f.close()
            raise
        except (KeyError, ValueError, TypeError, OSError) as exc:
            self.f.close()
            raise ExportError(f"{path} is not an EXDF file: {exc}") from None

    def _read(self) -> None:
        h5py = hdf5()

        f = self.f
        if "INDEX/trainId" not in f:
            raise ExportError(f"{self.path} is not an EXDF file: it has no INDEX/trainId")
        listing = f.get("METADATA/dataSources/dataSourceId")
        if listing is None:
            listing = f.get("METADATA/dataSourceId")  # format 0.5
        if not isinstance(listing, h5py.Dataset):
            raise ExportError(f"{self.path} is not an EXDF file: METADATA lists no data sources")
        tids = np.asarray(f["INDEX/trainId"][:], dtype=np.uint64)
        self.n = len(tids)
        self.positions: dict[int, int] = {}  # train id -> its first row (0: padding)
        for i, t in enumerate(tids.tolist()):
            if t:
                self.positions.setdefault(t, i)
        stamps = f.get("INDEX/timestamp")
        self.timestamps = None if stamps is None else np.asarray(stamps[: self.n], np.uint64)
        self.created = None
        if "METADATA/creationDate" in f:
            text = f["METADATA/creationDate"][0]
            try:
                when = _dt.datetime.strptime(bytes(text).decode(), "%Y%m%dT%H%M%SZ")
                self.created = int(when.replace(tzinfo=_dt.UTC).timestamp() * 1e9)
            except (ValueError, TypeError):
                pass
        self.sources: dict[str, _Source] = {}
        for raw in listing[:]:
            if not raw:
                continue
            section, _, rest = (raw.decode() if isinstance(raw, bytes) else str(raw)).partition("/")
            if section == "CONTROL":
                self.sources.setdefault(rest, _Source(rest, True))
            elif section == "INSTRUMENT":
                device, _, chan_group = rest.partition(":")
                chan = chan_group.partition("/")[0]
                name = f"{device}:{chan}"
                self.sources.setdefault(name, _Source(name, False))
        for src in self.sources.values():
            self._keys(src)

    def _keys(self, src: _Source) -> None:
        h5py = hdf5()

        root = f"{'CONTROL' if src.control else 'INSTRUMENT'}/{src.name}"
        group = self.f.get(root)
        if not isinstance(group, h5py.Group):
            return

        def add(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                src.keys[name.replace("/", ".")] = f"{root}/{name}"

        group.visititems(add)
        groups = {""} if src.control else {k.partition(".")[0] for k in src.keys}
        for g in sorted(groups):
            where = f"INDEX/{src.name}/{g}" if g else f"INDEX/{src.name}"
            ix = self.f.get(where)
            if ix is None or "first" not in ix or "count" not in ix:
                continue  # keys without an index: extra_data cannot read them either
            src.index[g] = (
                np.asarray(ix["first"][: self.n], np.int64),
                np.asarray(ix["count"][: self.n], np.int64),
            )

    def train(self, pos: int, tid: int) -> dict[str, dict[str, Any]]:
        """What serve-files sends for the train at `pos`: extra_data's `trains()` values."""
        out: dict[str, dict[str, Any]] = {}
        for src in self.sources.values():
            values: dict[str, Any] = {"metadata": {"source": src.name, "timestamp.tid": tid}}
            for key, path in sorted(src.keys.items()):
                index = src.index.get("" if src.control else key.partition(".")[0])
                if index is None:
                    continue
                firsts, counts = index
                first, count = int(firsts[pos]), int(counts[pos])
                if count == 1 or (src.control and count):
                    values[key] = self._dataset(path)[first]
                elif count > 1:
                    values[key] = self._dataset(path)[first : first + count]
            _drop_object_arrays(values)
            out[src.name] = values
        return out

    def _dataset(self, path: str) -> Any:
        ds = self._datasets.get(path)
        if ds is None:
            ds = self._datasets[path] = self.f[path]
        return ds

    def close(self) -> None:
        self.f.close()


def _drop_object_arrays(values: dict[str, Any]) -> None:
    """As serve-files: arrays of Python objects (strings) are not sent, nor their timestamps."""
    for key in [k for k, v in values.items() if isinstance(v, np.ndarray) and v.dtype == object]:
        values.pop(key, None)
        if key.endswith(".value"):
            values.pop(key[: -len(".value")] + ".timestamp", None)


def _files(source: Path) -> list[Path]:
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix == ".h5" and p.is_file())
        if not files:
            raise ExportError(f"{source} is not an EXDF run folder: it holds no .h5 files")
        return files
    if not source.is_file():
        raise ExportError(f"{source} does not exist")
    return [source]


def _times(files: list[ExdfFile], tids: list[int]) -> tuple[list[int], str]:
    """Receive times: the trains' own timestamps when every train has one, else 10 Hz."""
    stamps = []
    for tid in tids:
        found = 0
        for f in files:
            pos = f.positions.get(tid)
            if pos is not None and f.timestamps is not None and pos < len(f.timestamps):
                found = int(f.timestamps[pos])
                if found:
                    break
        stamps.append(found)
    if stamps and all(stamps) and all(b >= a for a, b in itertools.pairwise(stamps)):
        return stamps, "INDEX/timestamp of each train"
    created = [f.created for f in files if f.created]
    start = min(created) if created else time.time_ns()
    how = "10 Hz from METADATA/creationDate" if created else "10 Hz from the import time"
    return [start + i * TRAIN_NS for i in range(len(tids))], how


def _plain(data: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """numpy scalars as Python values, as the bridge's serializer sends them."""
    return {
        src: {k: v.item() if isinstance(v, np.generic) else v for k, v in values.items()}
        for src, values in data.items()
    }


def trains(
    files: list[ExdfFile], tids: list[int]
) -> Iterator[tuple[int, dict[str, dict[str, Any]]]]:
    """(train id, train) in train id order across files (aggregators, sequence files)."""
    for tid in tids:
        data: dict[str, dict[str, Any]] = {}
        for f in files:
            pos = f.positions.get(tid)
            if pos is not None:
                data.update(f.train(pos, tid))
            else:  # as extra_data: every source is in every train, if only with metadata
                for src in f.sources:
                    data.setdefault(src, {"metadata": {"source": src, "timestamp.tid": tid}})
        yield tid, dict(sorted(data.items()))


def import_file(source: Path, runs_dir: Path, *, name: str = "") -> Path:
    """Import an EXDF run folder or file as a new run; return the run's folder."""
    source = Path(source)
    files: list[ExdfFile] = []
    try:
        for path in _files(source):
            files.append(ExdfFile(path))
        tids = sorted({t for f in files for t in f.positions})
        times, timing = _times(files, tids)
        meta = {
            "imported_from": str(source),
            "import_format": "exdf",
            "imported_by": f"zmq-recorder {__version__}",
            "files": [f.path.name for f in files],
            "recv_ns": timing,
        }
        started = times[0] if times else time.time_ns()
        with RunImport(runs_dir, started_ns=started, name=name or source.name, meta=meta) as imp:
            stream = imp.stream(ImportedStream(STREAM, karabo.NAME, ENDPOINT, "SUB", "connect", {}))
            pending = 0
            for (_tid, data), recv_ns in zip(trains(files, tids), times, strict=True):
                frames = karabo.encode_train(_plain(data))
                stream.append(recv_ns, frames)
                pending += sum(len(fr) for fr in frames)
                if pending >= _DRAIN_BYTES:
                    stream.drain()
                    pending = 0
            return imp.path
    finally:
        for f in files:
            f.close()
