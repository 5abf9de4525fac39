"""Image streams (ADZMQ, pyMultiVideo) as areaDetector's NDFileHDF5 writes them with its
default XML layout, so scripts that read `/entry/data/data` and
`/entry/instrument/NDAttributes/NDArrayUniqueId` read an export as they read an IOC's file, and
NeXus readers (silx, nexpy) find the image stack as the entry's NXdata signal.

NDFileHDF5 writes one image shape and dtype per file; a recorded stream may change them. So
each (stream, image shape, dtype) gets an NXentry of its own with its frames in message order
and per-frame rows that line up with them: `/entry` when the export has one such block, else
`/entry_<stream>` and `/entry_<stream>@<n>` for the stream's n-th other shape (stream names
are letters, digits, `_ . -`: `@` keeps the two kinds of name apart). The file is
written block by block from the store (datasets are chunked and sized from a first pass over
the frame table), so memory does not grow with the run.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py  # type: ignore[import-untyped, unused-ignore]  # imported only for this target
import numpy as np

from recorder.export.base import ExportContext, Progress, StreamWindow, Tally
from recorder.export.hdf5_fields import FIELDS, INT_MISSING, RECORDER, Field, fields_of
from recorder.export.hdf5_frames import Key, batches, image_frames, image_segments, read_images
from recorder.store.reader import StreamReader

PROTOCOLS = tuple(FIELDS)
_CHUNK_BYTES = 1 << 20  # image chunks of about this many bytes (whole frames)
_COLUMN_CHUNK = 4096


@dataclass
class _Block:
    """One NXentry: the frames of one stream with one image shape and dtype."""

    window: StreamWindow
    key: Key
    frames: int
    name: str = ""
    group: Any = None
    data: Any = None
    columns: dict[tuple[str, str], Any] = field(default_factory=dict)
    written: int = 0


def _plan(ctx: ExportContext) -> list[_Block]:
    """A first pass over the frame table: which blocks there are and how many frames each."""
    blocks: list[_Block] = []
    for w in ctx.windows:
        mine: dict[Key, _Block] = {}
        for frames in image_frames(w.reader, w.lo, w.hi):
            for f in frames:
                b = mine.get(f.key)
                if b is None:
                    b = mine[f.key] = _Block(w, f.key, 0)
                    blocks.append(b)
                b.frames += 1
    if len(blocks) == 1:
        blocks[0].name = "entry"
    else:
        seen: dict[str, int] = {}
        for b in blocks:
            k = seen[b.window.name] = seen.get(b.window.name, -1) + 1
            b.name = f"entry_{b.window.name}" + (f"@{k}" if k else "")
    return blocks


def _text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def _provenance(f: Any, ctx: ExportContext, blocks: list[_Block]) -> None:
    """The run, streams, window and writer on the root, each as an attribute, and all of it as
    JSON in `provenance`."""
    prov = ctx.provenance
    a = f.attrs
    a["NX_class"] = "NXroot"
    a["creator"] = prov["exported_by"]
    a["file_time"] = prov["exported_at"]
    if blocks:
        a["default"] = blocks[0].name
    a["provenance"] = _text(prov)
    for key, value in prov.items():
        if value is None:
            continue  # start_s/end_s of an open window: in `provenance` as null
        if isinstance(value, bool):
            a[key] = np.bool_(value)
        elif isinstance(value, str | int | float):
            a[key] = value
        elif key == "streams":
            a[key] = np.array(value, dtype=object) if value else _text(value)
        else:
            a[key] = _text(value)
    a["entries"] = _text(
        {
            b.name: {"stream": b.window.name, "shape": list(b.key[0]), "dtype": b.key[1]}
            for b in blocks
        }
    )
    a["skipped_streams"] = _text(ctx.skipped)
    _session_and_events(f, ctx)


def _session_and_events(f: Any, ctx: ExportContext) -> None:
    """The session (root attributes `session_*`, all of it as JSON in `session`), the users'
    markers (`/markers`: recv_ns, time_s from the run's start, text, author) and the
    deliberate pauses (`/pauses`: start_ns, end_ns, messages), each group only when there is
    something to hold."""
    s = ctx.session
    if s is not None:
        a = f.attrs
        a["session"] = _text(s)
        a["session_id"], a["session_name"] = s["id"], s["name"]
        a["session_description"] = s["description"]
        a["experimenters"] = _text(s["experimenters"])
        a["subject"] = _text(s["subject"])
    t0 = ctx.run.started_ns
    markers = ctx.markers()
    if markers:
        g = _nx_group(f, "markers", "NXcollection")
        g.attrs["description"] = "markers users set during the recording (host receive times)"
        recv = np.array([m["recv_ns"] for m in markers], dtype=np.int64)
        g["recv_ns"] = recv
        g["time_s"] = (recv - t0) / 1e9
        g["time_s"].attrs["units"] = "s"
        g["time_s"].attrs["start"] = _iso(t0)
        text = h5py.string_dtype()
        g.create_dataset("text", data=[m["text"] for m in markers], dtype=text)
        g.create_dataset("author", data=[m.get("author", "") for m in markers], dtype=text)
    pauses = ctx.pauses()
    if pauses:
        g = _nx_group(f, "pauses", "NXcollection")
        g.attrs["description"] = (
            "deliberate pauses: messages received in [start_ns, end_ns) were not stored"
        )
        for key in ("start_ns", "end_ns", "messages"):
            g[key] = np.array([p[key] for p in pauses], dtype=np.int64)


def _image_chunks(shape: tuple[int, ...], itemsize: int, frames: int) -> Any:
    if not all(shape):
        return True  # an empty image: let h5py choose
    per = max(1, min(frames, _CHUNK_BYTES // max(1, int(np.prod(shape)) * itemsize)))
    return (per, *shape)


def _nx_group(parent: Any, name: str, nx_class: str) -> Any:
    g = parent.require_group(name)
    g.attrs["NX_class"] = nx_class
    return g


def _open_entry(f: Any, b: _Block, ctx: ExportContext) -> None:
    """The groups and the image dataset of the default layout, hard link included."""
    shape, dtype = b.key
    r = b.window.reader
    e = _nx_group(f, b.name, "NXentry")
    e.attrs["default"] = "data"
    e.attrs["stream"] = b.window.name
    e.attrs["protocol"] = r.protocol
    e.attrs["endpoint"] = r.endpoint
    e.attrs["messages"] = np.array([b.window.lo, b.window.hi], dtype=np.int64)
    e.attrs["frames"] = b.frames
    e["title"] = f"{ctx.run.name or ctx.run.run_id}: stream {b.window.name}"
    e["program_name"] = "zmq-recorder"
    e["program_name"].attrs["version"] = ctx.provenance["recorder_version"]
    e["experiment_identifier"] = ctx.run.run_id
    inst = _nx_group(e, "instrument", "NXinstrument")
    det = _nx_group(inst, "detector", "NXdetector")
    dt = np.dtype(dtype)
    data = det.create_dataset(
        "data",
        shape=(b.frames, *shape),
        maxshape=(None, *shape),
        dtype=dt,
        chunks=_image_chunks(shape, dt.itemsize, b.frames),
    )
    data.attrs["NX_class"] = "SDS"
    data.attrs["signal"] = np.int32(1)
    data.attrs["target"] = data.name
    if len(shape) == 2:
        data.attrs["interpretation"] = "image"
    _nx_group(det, "NDAttributes", "NXcollection")
    _nx_group(inst, "NDAttributes", "NXcollection")
    rec = _nx_group(inst, "zmq_recorder", "NXcollection")
    rec.attrs["description"] = "per-frame values the recorder kept: receive time, message index"
    nxdata = _nx_group(e, "data", "NXdata")
    nxdata.attrs["signal"] = "data"
    nxdata["data"] = data  # a hard link, as the layout's <hardlink>
    b.group, b.data = e, data


def _values(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind in "TUO":
        return np.array([str(v) for v in values], dtype=object)
    return values


def _column_dataset(b: _Block, fld: Field, sample: np.ndarray) -> Any:
    ds = b.columns.get((fld.group, fld.name))
    if ds is not None:
        return ds
    group = b.group[fld.group]
    dtype = h5py.string_dtype() if sample.dtype.kind == "O" else sample.dtype
    ds = group.create_dataset(
        fld.name,
        shape=(b.frames,),
        maxshape=(None,),
        dtype=dtype,
        chunks=(min(b.frames, _COLUMN_CHUNK),),
    )
    decoded = "ndattribute" in fld.attrs or "column" in fld.attrs
    if decoded and "missing" not in fld.attrs:
        if sample.dtype.kind == "i":
            ds.attrs["missing"] = INT_MISSING
        elif sample.dtype.kind == "O":
            ds.attrs["missing"] = ""
    for k, v in fld.attrs.items():
        ds.attrs[k] = v
    b.columns[(fld.group, fld.name)] = ds
    return ds


def _write_stream(
    w: StreamWindow, blocks: dict[Key, _Block], fields: list[Field], tally: Tally
) -> None:
    """Per frame table block: every field read once, images read a batch at a time."""
    for frames in image_frames(w.reader, w.lo, w.hi):
        m0, m1 = frames[0].message, frames[-1].message + 1
        columns = [_values(np.asarray(fld.read(m0, m1))) for fld in fields]
        for batch in batches(frames):
            images = read_images(w.reader, batch)
            msgs = np.array([f.message for f in batch], dtype=np.int64) - m0
            values = [col[msgs] for col in columns]
            by_key: dict[Key, list[int]] = {}
            for i, f in enumerate(batch):
                by_key.setdefault(f.key, []).append(i)
            for key, idx in by_key.items():
                b = blocks[key]
                at, n = b.written, len(idx)
                b.data[at : at + n] = np.stack([images[i] for i in idx])
                for fld, vals in zip(fields, values, strict=True):
                    _column_dataset(b, fld, vals)[at : at + n] = vals[idx]
                b.written += n
            tally.add(len(batch))


def _iso(ns: int) -> str:
    return _dt.datetime.fromtimestamp(ns / 1e9, _dt.UTC).isoformat()


def _close_entry(b: _Block) -> None:
    recv = b.group[RECORDER]["recv_ns"]
    b.group["start_time"] = _iso(int(recv[0]))
    b.group["end_time"] = _iso(int(recv[-1]))


class Hdf5Target:
    name = "hdf5"
    suffix = ".h5"
    description = (
        "image streams (ADZMQ, pyMultiVideo) as areaDetector NDFileHDF5 / NeXus HDF5: "
        "image stack, NDAttributes, uniqueId and timestamps"
    )

    def cannot_hold(self, stream: StreamReader) -> str | None:
        if stream.protocol not in PROTOCOLS:
            return (
                f"protocol {stream.protocol}: hdf5 holds image streams "
                f"({', '.join(PROTOCOLS)}); try --to mcap"
            )
        if not image_segments(stream):
            return "it has no uncompressed image (compressed NDArrays are kept only as bytes)"
        return None

    def write(self, ctx: ExportContext, out: Path, progress: Progress) -> None:
        blocks = _plan(ctx)
        tally = Tally(sum(b.frames for b in blocks), progress)
        with h5py.File(out, "w") as f:
            _provenance(f, ctx, blocks)
            for w in ctx.windows:
                mine = {b.key: b for b in blocks if b.window is w}
                if not mine:
                    continue
                for b in mine.values():
                    _open_entry(f, b, ctx)
                _write_stream(w, mine, fields_of(w.reader), tally)
                for b in mine.values():
                    _close_entry(b)


TARGET = Hdf5Target()

__all__ = ["PROTOCOLS", "TARGET", "Hdf5Target"]
