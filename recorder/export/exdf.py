"""Karabo bridge streams as a European XFEL run folder (EXDF HDF5), which
`extra_data.RunDirectory` opens: one file `RAW-R0001-DA<nn>-S00000.h5` per exported stream.

Each file has what extra_data reads (docs/export/exdf.md): METADATA (format version 1.0, the
data sources, dates), INDEX/trainId, timestamp and flag per train, INDEX/<source>[/<group>]
first/count per train, CONTROL/<source>/<key path> (one row per train) and RUN/<source>/...
(the first value) for control sources, INSTRUMENT/<source>/<key path> (the entries of each
train) for pipeline sources (`DEVICE:channel`). The window is read twice, message by message:
once to lay out the keys (exdf_layout), once to write rows in blocks into resizable datasets,
so memory stays flat in run length.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from recorder import protocols
from recorder.export.base import ExportContext, Progress, StreamWindow, Tally
from recorder.export.exdf_layout import (
    BYTES,
    STR,
    KeyPlan,
    Layout,
    Survey,
    Trains,
    as_value,
    group_of,
    hdf5,
    is_instrument,
    plan,
    survey,
)
from recorder.store.reader import StreamReader

FORMAT_VERSION = "1.0"
_BLOCK_BYTES = 32 << 20  # rows kept before they are written
_BLOCK_TRAINS = 4096
_CHUNK_BYTES = 1 << 20


def file_name(k: int) -> str:
    """EuXFEL's name of the k-th aggregator's first sequence file of run 1."""
    return f"RAW-R0001-DA{k:02d}-S00000.h5"


class _Rows:
    """A dataset that grows along its first axis; rows are kept and written in blocks."""

    def __init__(self, group: Any, name: str, dtype: Any, row: tuple[int, ...], ragged: bool):
        row_bytes = max(1, int(np.prod(row)) * (np.dtype(dtype).itemsize or 16))
        rows = max(1, min(4096, _CHUNK_BYTES // row_bytes))
        self.ds = group.create_dataset(
            name,
            shape=(0, *row),
            maxshape=(None, *(d or None for d in row)),
            chunks=(rows, *(max(1, d) for d in row)),
            dtype=dtype,
        )
        self.cast = object if dtype is object or np.dtype(dtype).kind == "O" else dtype
        self.ragged = ragged
        self.pending: list[np.ndarray] = []

    def add(self, value: Any) -> int:
        """Keep a row (or a train's entries); return its size in bytes."""
        arr = np.asarray(value, dtype=self.cast)
        self.pending.append(arr)
        return arr.nbytes

    def flush(self) -> None:
        if not self.pending:
            return
        data = np.concatenate(self.pending) if self.ragged else np.stack(self.pending)
        self.pending = []
        n, start = len(data), self.ds.shape[0]
        if n:
            self.ds.resize(start + n, axis=0)
            self.ds[start:] = data


_LISTED = 200  # keys left out named in the attributes (an HDF5 attribute stays under 64 KiB)


def _capped(left_out: dict[str, str]) -> dict[str, str]:
    if len(left_out) <= _LISTED:
        return left_out
    out = dict(list(left_out.items())[:_LISTED])
    out["..."] = f"{len(left_out) - _LISTED} more keys left out"
    return out


def _stamp(ns: int) -> bytes:
    return _dt.datetime.fromtimestamp(ns / 1e9, _dt.UTC).strftime("%Y%m%dT%H%M%SZ").encode()


class _FileWriter:
    def __init__(self, path: Path, layout: Layout, s: Survey):
        h5py = hdf5()

        self.h5py = h5py
        self.f = h5py.File(path, "w")
        self.layout = layout
        self.use_source_time = s.trains > 0 and s.timed == s.trains
        index = self.f.require_group("INDEX")
        self.train_id = _Rows(index, "trainId", np.uint64, (), False)
        self.timestamp = _Rows(index, "timestamp", np.uint64, (), False)
        self.timestamp.ds.attrs["source"] = (
            "the sources' own train timestamps (ns since 1970)"
            if self.use_source_time
            else "host receive time of each train (ns since 1970): the bridge sent no time"
        )
        self.flag = _Rows(index, "flag", np.int32, (), False)
        self.indexes: dict[tuple[str, str], tuple[_Rows, _Rows, list[int]]] = {}
        self.rows: dict[tuple[str, str], _Rows] = {}
        self.members: dict[tuple[str, str], list[KeyPlan]] = {}
        self.sources: list[str] = []
        for src in sorted(layout.keys):
            plans = layout.keys[src]
            if is_instrument(src) and not plans:
                continue  # nothing of it fits: its keys are listed as left out
            self.sources.append(src)
            section = "INSTRUMENT" if is_instrument(src) else "CONTROL"
            self.f.require_group(f"{section}/{src}")
            if section == "CONTROL":
                self.f.require_group(f"RUN/{src}")
            for group in layout.groups(src):
                where = f"INDEX/{src}/{group}" if group else f"INDEX/{src}"
                g = self.f.require_group(where)
                first = _Rows(g, "first", np.uint64, (), False)
                count = _Rows(g, "count", np.uint64, (), False)
                self.indexes[(src, group)] = (first, count, [0])
                self.members[(src, group)] = [
                    p for p in plans.values() if group_of(src, p.key) == group
                ]
            for key, p in plans.items():
                self.rows[(src, key)] = _Rows(
                    self.f, f"{section}/{src}/{p.path}", p.dtype(), p.row, p.ragged
                )
        self.run_done: set[tuple[str, str]] = set()
        self.pending_trains = self.pending_bytes = 0

    def _all_rows(self) -> list[_Rows]:
        out = [self.train_id, self.timestamp, self.flag, *self.rows.values()]
        for first, count, _ in self.indexes.values():
            out += [first, count]
        return out

    def _run_value(self, p: KeyPlan, arr: np.ndarray) -> None:
        """RUN holds a control key's value at the start of the run: its first value."""
        self.run_done.add((p.source, p.key))
        self.f.create_dataset(
            f"RUN/{p.source}/{p.path}",
            data=np.asarray(arr, dtype=object if p.kind in (STR, BYTES) else p.kind)[None],
            dtype=p.dtype(),
            maxshape=(None, *(d or None for d in p.row)),
        )

    def train(self, tid: int, ns: int, data: dict[str, dict[str, Any]]) -> None:
        self.train_id.add(tid)
        self.timestamp.add(max(ns, 0))
        self.flag.add(1)
        for (src, group), (first, count, counter) in self.indexes.items():
            values = data.get(src)
            members = self.members[(src, group)]
            got = {}
            if values is not None:
                for p in members:
                    if p.key in values and (v := as_value(values[p.key])) is not None:
                        got[p.key] = v[0]
            present = values is not None and (not is_instrument(src) or bool(got))
            n = 0
            if present:
                ragged = self.layout.ragged.get((src, group), False)
                n = len(next(iter(got.values()))) if ragged and got else 1
                for p in members:
                    arr = got.get(p.key)
                    self.pending_bytes += self.rows[(src, p.key)].add(
                        p.fill() if arr is None else arr
                    )
                    if arr is not None and p.control and (src, p.key) not in self.run_done:
                        self._run_value(p, arr)
            first.add(counter[0])
            count.add(n)
            counter[0] += n
        self.pending_trains += 1
        if self.pending_trains >= _BLOCK_TRAINS or self.pending_bytes >= _BLOCK_BYTES:
            self.flush()

    def flush(self) -> None:
        for rows in self._all_rows():
            rows.flush()
        self.pending_trains = self.pending_bytes = 0

    def metadata(self, ctx: ExportContext, window: StreamWindow, s: Survey) -> None:
        h5py = self.h5py
        meta = self.f.require_group("METADATA")
        ids = []
        for src in self.sources:
            if is_instrument(src):
                ids += [f"INSTRUMENT/{src}/{g}" for g in self.layout.groups(src)]
            else:
                ids.append(f"CONTROL/{src}")
        vlen = h5py.special_dtype(vlen=bytes)
        sources = meta.require_group("dataSources")
        for name, values in (
            ("dataSourceId", ids),
            ("root", [i.split("/", 1)[0] for i in ids]),
            ("deviceId", [i.split("/", 1)[1] for i in ids]),
        ):
            sources.create_dataset(
                name, data=[v.encode() for v in values], dtype=vlen, maxshape=(None,)
            )
        now = _dt.datetime.now(_dt.UTC).timestamp() * 1e9
        prov = ctx.provenance
        for name, value in (
            ("dataFormatVersion", FORMAT_VERSION.encode()),
            ("creationDate", _stamp(ctx.run.started_ns)),
            ("updateDate", _stamp(int(now))),
            ("daqLibrary", prov["exported_by"].encode()),
            ("karaboFramework", b"unknown (recorded from the Karabo bridge)"),
            ("runType", f"zmq-recorder run {ctx.run.run_id}".encode()),
            ("sample", ctx.run.name.encode()),
        ):
            meta.create_dataset(name, data=[value], dtype=vlen)
        for name, number in (("proposalNumber", 0), ("runNumber", 1), ("sequenceNumber", 0)):
            meta.create_dataset(name, data=[number], dtype=np.uint32)
        attrs = self.f.attrs
        attrs["writer"] = prov["exported_by"]
        attrs["provenance"] = json.dumps(
            {
                **prov,
                "stream": window.name,
                "trains": s.trains,
                "messages_skipped": s.skipped,
                "not_exported": _capped(self.layout.left_out),
            }
        )
        for key in ("run_id", "run_name", "recorder_version", "exported_at", "partial"):
            attrs[key] = prov[key]
        attrs["stream"] = window.name
        attrs["messages"] = [window.lo, window.hi]
        attrs["window_s"] = [
            np.nan if ctx.start is None else ctx.start,
            np.nan if ctx.end is None else ctx.end,
        ]
        attrs["not_exported"] = json.dumps(_capped(self.layout.left_out))
        if ctx.session is not None:  # the session's attributes (markers are not exported)
            attrs["session"] = json.dumps(ctx.session)
            attrs["session_id"], attrs["session_name"] = ctx.session["id"], ctx.session["name"]

    def close(self) -> None:
        self.f.close()


def export_stream(
    ctx: ExportContext, window: StreamWindow, path: Path, tally: Tally
) -> tuple[Survey, Layout]:
    """One stream's window as one EXDF file: survey the trains, lay them out, write them."""
    trains = Trains(window.reader, window.lo, window.hi)
    s = survey(iter(trains), tally.add)
    layout = plan(s)
    writer = _FileWriter(path, layout, s)
    try:
        for msg, data in trains:
            tally.add()
            if msg is None or data is None:
                continue
            ns = msg.source_ns if writer.use_source_time else msg.recv_ns
            writer.train(msg.seq, ns, data)
        writer.flush()
        writer.metadata(ctx, window, s)
    finally:
        writer.close()
    return s, layout


class ExdfTarget:
    name = "exdf"
    suffix = ""
    description = "Karabo bridge trains as a European XFEL run folder (EXDF HDF5) for extra_data"

    def cannot_hold(self, stream: StreamReader) -> str | None:
        if protocols.lookup(stream.protocol).trains:
            return None
        return f"protocol {stream.protocol}: EXDF holds Karabo bridge trains (protocol karabo)"

    def write(self, ctx: ExportContext, out: Path, progress: Progress) -> None:
        out.mkdir()
        tally = Tally(2 * sum(w.count for w in ctx.windows), progress)
        for k, window in enumerate(ctx.windows, 1):
            export_stream(ctx, window, out / file_name(k), tally)


TARGET = ExdfTarget()
