"""The live view over HTTP: the latest message of each stream of a running recording (or of a
preview), read from the files its worker publishes (recording/live.py) and rendered here.

The web app never opens a stream socket. Workers publish at most 4 messages a second per stream;
this side renders at most `RENDER_S` apart per stream and view (a cache answers the rest), so a
page polling fast or many pages at once cost no more than one.

A preview of a saved source is a record job with `params.preview = true`, armed with no rules
and no pre-trigger time: it never makes a run. `POST /sources/{name}/preview` starts one (or
returns the one running), `DELETE` stops it, and its worker stops it by itself once nobody has
read its live view for `preview_idle_s` (every GET of a live endpoint marks the job read; the
check runs in the worker, so a closed browser stops its preview even if the web app is never
asked again). The idle time comes from the app's `RECORDER_PREVIEW_IDLE_S` setting (config or
environment), 30 s by default.
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from flask import Response, current_app
from pydantic import Field

from recorder.contracts import JobRow
from recorder.db.jobs import ACTIVE_STATES, DESIRED_STOPPED, FINAL_STATES, KIND_RECORD
from recorder.errors import Conflict, NotFound, StreamNotFound
from recorder.manager.planning import plan_recording
from recorder.recording import live
from recorder.store import layout
from recorder.web import models as m
from recorder.web.api import PREFIX, api, state
from recorder.web.previews import describe_bytes, jsonable, picture_png

RENDER_S = 0.25  # one render per stream and view at most this often
PREVIEW_IDLE_S = 30.0
POINTS_DEFAULT = 1000
_MAX_COLUMNS = 500
_MAX_CHANNELS = 64  # a (channels, samples) block with more rows is an image
_HEX = 32


# -- models ------------------------------------------------------------------------------------


class LiveQuery(m.Query):
    points: int = Field(
        POINTS_DEFAULT, ge=10, le=10_000, description="Most points per waveform channel."
    )


class LiveImageQuery(m.Query):
    array: Annotated[str, Field(max_length=256)] | None = Field(
        None, description="Which typed array of the message (default: the first image)."
    )
    size: int = Field(512, ge=16, le=4096, description="Largest side in pixels.")


class LiveStream(m.Response):
    stream: str
    protocol: str | None = None
    recv_ns: int | None = Field(None, description="Receive time of the latest message.")
    age_s: float | None = Field(None, description="Seconds since it was received.")
    size: int | None = Field(None, description="Bytes of all its frames.")
    summary: dict[str, Any] | None = None


class LiveList(m.Response):
    id: str
    state: str
    preview: bool
    streams: list[LiveStream]


class LiveMessageOut(m.Response):
    stream: str
    state: str = Field(description="The recording's state (running, stopped, ...).")
    live: bool = Field(
        description="Whether a message is shown: false while the stream has sent nothing yet "
        "and once the recording ended (`state` says which); the message fields are then null."
    )
    reason: str | None = Field(
        default=None, description="Why no message is shown, when `live` is false."
    )
    protocol: str | None = None
    recv_ns: int | None = None
    age_s: float | None = None
    size: int | None = None
    truncated: bool = False
    kind: str | None = None
    seq: int | None = None
    frames: list[dict[str, Any]] = []
    columns: dict[str, Any] = {}
    arrays: list[dict[str, Any]] = []
    image: str | None = Field(
        default=None, description="URL of the latest frame as PNG, if an image."
    )
    waveform: dict[str, Any] | None = None
    train: dict[str, Any] | None = None
    reject_reason: str | None = None


class PreviewOut(m.Response):
    id: str
    state: str
    source: str
    idle_s: float
    live: str = Field(description="URL of the preview's live view.")


# -- the cache ---------------------------------------------------------------------------------


class _Renders:
    """What was rendered from which file: a new render only when the file changed and the last
    one is `RENDER_S` old. Bounded in entries; one per process (gunicorn workers each keep
    theirs, which only multiplies the bound by the worker count)."""

    def __init__(self, entries: int = 256):
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple, tuple[tuple, float, Any]] = OrderedDict()
        self.entries = entries
        self.renders = 0

    def get(self, key: tuple, path: Path, make: Callable[[], Any]) -> Any:
        try:
            st = path.stat()
            sig: tuple = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            sig = ()
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and sig and (hit[0] == sig or now - hit[1] < RENDER_S):
                self._items.move_to_end(key)
                return hit[2]
        value = make()  # outside the lock: a slow render does not hold up other streams
        self.renders += 1
        if sig:
            with self._lock:
                self._items[key] = (sig, now, value)
                self._items.move_to_end(key)
                while len(self._items) > self.entries:
                    self._items.popitem(last=False)
        return value


RENDERS = _Renders()


# -- jobs and files ----------------------------------------------------------------------------


def _job(job_id: str) -> JobRow:
    live.job_folder(state().data, job_id)  # checks the id's form before any query
    return state().control.get_job(job_id, KIND_RECORD)


def _streams_of(job: JobRow) -> list[str]:
    return [str(c.get("stream")) for c in (job["params"].get("sources") or [])]


def _file(job: JobRow, stream: str) -> Path:
    if stream not in _streams_of(job):
        raise StreamNotFound(f"recording {job['id']} has no stream {stream!r}")
    folder = live.job_folder(state().data, job["id"])
    if job["state"] in FINAL_STATES:
        # its worker removes the folder as it ends; one killed outright cannot
        shutil.rmtree(folder, ignore_errors=True)
        raise live.NoLiveMessage(f"recording {job['id']} has ended ({job['state']}): no live view")
    live.mark_read(folder)
    return live.stream_file(folder, stream)


def _image_url(job_id: str, stream: str) -> str:
    return f"{PREFIX}/recordings/{job_id}/live/{stream}/image.png"


# -- what a message shows ----------------------------------------------------------------------


def _is_waveform(bf) -> bool:
    """Sample blocks: placed channels (Open Ephys), 1-D arrays, (channels, samples) blocks."""
    a = bf.array
    if a.dtype.kind not in "iufb" or a.size < 2:
        return False
    if a.ndim == 1:
        return True
    return a.ndim == 2 and a.shape[0] <= _MAX_CHANNELS and a.shape[1] >= 4 * a.shape[0]


def _is_image(bf) -> bool:
    return bf.array.ndim >= 2 and not _is_waveform(bf) and bf.array.size > 0


def _decimate(values: np.ndarray, points: int) -> tuple[list[float], list[float | None]]:
    """Sample indices and values, at most `points`: min and max of equal buckets, in order."""
    v = values.astype(np.float64)
    n = len(v)
    if n <= points:
        return [float(i) for i in range(n)], [_num(x) for x in v]
    buckets = max(1, points // 2)
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    xs: list[float] = []
    ys: list[float | None] = []
    for a, b in itertools.pairwise(edges):
        if b <= a:
            continue
        part = v[a:b]
        finite = np.isfinite(part).any()
        ends = {int(np.nanargmin(part)), int(np.nanargmax(part))} if finite else {0}
        for i in sorted(ends):
            xs.append(float(a + i))
            ys.append(_num(part[i]))
    return xs, ys


def _num(x) -> float | None:
    f = float(x)
    return f if math.isfinite(f) else None


def _waveform(decoded, points: int) -> dict | None:
    """The message's sample blocks, one series per channel, decimated: an Open Ephys data
    message holds one channel's block (legacy ones all channels), a spike its waveforms."""
    channels: list[str] = []
    series: list[list[float | None]] = []
    x: list[float] = []
    first: int | None = None
    for bf in decoded.bulk:
        if not _is_waveform(bf):
            continue
        a = np.asarray(bf.array)
        rows = [a] if a.ndim == 1 else list(a)
        for k, row in enumerate(rows):
            if len(channels) >= _MAX_CHANNELS:
                break
            if a.ndim == 1:
                label = bf.channel_name or (f"ch{bf.column}" if bf.column is not None else bf.name)
            else:
                label = f"{bf.name}[{k}]"
            xs, ys = _decimate(row, points)
            if len(xs) > len(x):
                x = xs
            channels.append(label)
            series.append(ys)
        if first is None and bf.row is not None:
            first = int(bf.row)
    if not channels:
        return None
    width = len(x)
    series = [s + [None] * (width - len(s)) for s in series]
    return {"first_sample": first, "x": x, "channels": channels, "values": series}


def _channel_waveform(msg: live.LiveMessage, points: int) -> dict | None:
    """A stream whose messages hold one channel's block (Open Ephys): the latest block of each
    channel the worker kept (at most `live.MAX_CHANNELS`), one series per channel, decimated;
    `channels_total` counts every channel seen, shown or not. Blocks of channels may be of
    different times (`first_samples`): each is its channel's latest."""
    rows: list[tuple[tuple[str, int], str, int | None, np.ndarray]] = []
    for decoded in live.decoded_blocks(msg):
        for bf in decoded.bulk:
            if bf.column is None or bf.array.ndim != 1 or not _is_waveform(bf):
                continue
            where = str(decoded.columns.get("stream") or "")
            label = bf.channel_name or f"ch{bf.column}"
            rows.append(((where, int(bf.column)), label, bf.row, np.asarray(bf.array)))
    if not rows:
        return None
    rows.sort(key=lambda r: r[0])
    several = len({key[0] for key, *_ in rows}) > 1  # Open Ephys streams: name them too
    x: list[float] = []
    series: list[list[float | None]] = []
    for _, _, _, values in rows:
        xs, ys = _decimate(values, points)
        x = xs if len(xs) > len(x) else x
        series.append(ys)
    width = len(x)
    firsts = [None if row is None else int(row) for _, _, row, _ in rows]
    return {
        "first_sample": firsts[0],
        "first_samples": firsts,
        "x": x,
        "channels": [f"{key[0]}/{label}" if several else label for key, label, _, _ in rows],
        "values": [v + [None] * (width - len(v)) for v in series],
        "channels_total": max(msg.channels or 0, len(rows)),
    }


def _array_info(bf) -> dict:
    info: dict[str, Any] = {
        "name": bf.name,
        "shape": list(bf.array.shape),
        "dtype": str(bf.array.dtype),
        "frame": bf.frame,
    }
    if bf.column is not None:
        info.update(row=bf.row, column=bf.column, channel_name=bf.channel_name)
    if bf.units:
        info["units"] = bf.units
    return info


def _columns(decoded) -> dict:
    items = list(decoded.columns.items())[:_MAX_COLUMNS]
    return {str(k): jsonable(v) for k, v in items}


def _train(decoded) -> dict:
    """A Karabo train: its id, sources, and every key with its shape and dtype (scalars with
    their value)."""
    cols = decoded.columns
    sources = [s for s in str(cols.get("sources") or "").split(",") if s]
    keys: list[dict[str, Any]] = []
    for bf in decoded.bulk:
        keys.append({"key": bf.name, "shape": list(bf.array.shape), "dtype": str(bf.array.dtype)})
    for d in decoded.derived:
        name, arr = (d.name, d.array) if hasattr(d, "array") else d
        arr = np.asarray(arr)
        keys.append({"key": name, "shape": list(arr.shape), "dtype": str(arr.dtype)})
    for k, v in list(cols.items())[:_MAX_COLUMNS]:
        if ":" in str(k):
            keys.append({"key": k, "shape": [], "dtype": type(v).__name__, "value": jsonable(v)})
    return {"train_id": cols.get("train_id"), "sources": sources, "keys": keys}


def _frames(msg: live.LiveMessage, decoded) -> list[dict]:
    bulk = {bf.frame: bf for bf in (decoded.bulk if decoded else []) if bf.frame >= 0}
    out = []
    for i, (size, kept) in enumerate(zip(msg.sizes, msg.kept, strict=True)):
        raw = msg.frames[i] if i < len(msg.frames) else b""
        info: dict[str, Any] = {"index": i, "size": size, "hex": raw[:_HEX].hex()}
        if kept != size:
            info["kept"] = kept
        if i in bulk:
            info.update(kind="array", array=bulk[i].name, dtype=str(bulk[i].array.dtype))
            info["shape"] = list(bulk[i].array.shape)
        elif kept == size:
            info.update(describe_bytes(raw))
        out.append(info)
    return out


def _not_live(job: JobRow, stream: str, reason: str) -> dict:
    """A stream with no message to show (none yet, or the recording ended): its job's state."""
    # the model's defaults are the empty message fields
    return LiveMessageOut(stream=stream, state=job["state"], live=False, reason=reason).model_dump()


def describe(job_id: str, msg: live.LiveMessage, points: int) -> dict:
    decoded, reason = live.decode(msg)
    out: dict[str, Any] = {
        "stream": msg.stream,
        "live": True,
        "reason": None,
        "protocol": msg.protocol,
        "recv_ns": msg.recv_ns,
        "size": msg.size,
        "truncated": msg.truncated,
        "kind": decoded.kind if decoded else None,
        "seq": decoded.seq if decoded and decoded.seq >= 0 else None,
        "frames": _frames(msg, decoded),
        "columns": _columns(decoded) if decoded else {},
        "arrays": [_array_info(bf) for bf in decoded.bulk] if decoded else [],
        "image": None,
        "waveform": None,
        "train": None,
        "reject_reason": reason,
    }
    if msg.extra:
        out["columns"].update({str(k): jsonable(v) for k, v in msg.extra.items()})
    if decoded is not None:
        if any(_is_image(bf) for bf in decoded.bulk):
            out["image"] = _image_url(job_id, msg.stream)
        if live.holds_trains(msg):  # a train's arrays are many things: its keys show them
            out["train"] = _train(decoded)
        else:
            out["waveform"] = _waveform(decoded, points)
    if msg.blocks:  # one channel a message: every channel's latest
        out["waveform"] = _channel_waveform(msg, points) or out["waveform"]
    return out


def _described(job: JobRow, stream: str, points: int = POINTS_DEFAULT) -> dict:
    path = _file(job, stream)

    def make() -> dict:
        return describe(job["id"], live.read_message(path), points)

    out = dict(RENDERS.get((str(path), "json", points), path, make))
    out["age_s"] = max(0.0, (time.time_ns() - out["recv_ns"]) / 1e9)
    out["state"] = job["state"]
    return out


# -- endpoints ---------------------------------------------------------------------------------


@api.op("GET", "/recordings/<job_id>/live", tag="live", response=LiveList)
def get_live(job_id: str):
    """Every stream's latest message, without recording to disk: when, how big, what it is."""
    job = _job(job_id)
    streams = []
    for name in _streams_of(job):
        item: dict[str, Any] = {"stream": name, "protocol": None, "recv_ns": None,
                                "age_s": None, "size": None, "summary": None}  # fmt: skip
        try:
            d = _described(job, name)
        except (NotFound, Conflict):
            streams.append(item)
            continue
        item.update(
            protocol=d["protocol"],
            recv_ns=d["recv_ns"],
            age_s=d["age_s"],
            size=d["size"],
            summary={
                "kind": d["kind"],
                "seq": d["seq"],
                "frames": len(d["frames"]),
                "image": d["image"],
                "waveform": d["waveform"] is not None,
                "train_id": (d["train"] or {}).get("train_id"),
            },
        )
        streams.append(item)
    return {
        "id": job["id"],
        "state": job["state"],
        "preview": bool(job["params"].get("preview")),
        "streams": streams,
    }


@api.op("GET", "/recordings/<job_id>/live/<stream>", tag="live", query=LiveQuery,
        response=LiveMessageOut)  # fmt: skip
def get_live_stream(job_id: str, stream: str, query: LiveQuery):
    """A stream's latest message decoded: waveform window, image link, Karabo train, header.

    `live` is false (with the recording's `state` and null message fields) while the stream
    has sent nothing yet and once the recording ended, so a page polling it learns that the
    recording ended instead of failing on it."""
    job = _job(job_id)
    try:
        return _described(job, stream, query.points)
    except live.NoLiveMessage as exc:
        return _not_live(job, stream, str(exc))


@api.op("GET", "/recordings/<job_id>/live/<stream>/image.png", tag="live",
        query=LiveImageQuery, media="image/png", errors=(409,))  # fmt: skip
def get_live_image(job_id: str, stream: str, query: LiveImageQuery):
    """The latest message's image, contrast-stretched and scaled to fit `size` pixels."""
    job = _job(job_id)
    path = _file(job, stream)

    def make() -> bytes:
        msg = live.read_message(path)
        decoded, reason = live.decode(msg)
        for bf in decoded.bulk if decoded else []:
            if _is_image(bf) and (query.array is None or bf.name == query.array):
                return picture_png(np.asarray(bf.array), query.size)
        which = f"image {query.array!r}" if query.array else "image"
        why = f" ({reason})" if reason else ""
        raise NotFound(f"the latest message of {stream} has no {which}{why}")

    png = RENDERS.get((str(path), "png", query.array, query.size), path, make)
    resp = Response(png, mimetype="image/png")
    resp.headers["Cache-Control"] = "no-store"
    return resp


# -- previews of saved sources -----------------------------------------------------------------


def preview_idle_s() -> float:
    value = current_app.config.get("RECORDER_PREVIEW_IDLE_S")
    if value is None:
        value = os.environ.get("RECORDER_PREVIEW_IDLE_S") or PREVIEW_IDLE_S
    return float(value)


def _previews_of(source: str) -> list[JobRow]:
    jobs = state().control.list_jobs(kind=KIND_RECORD, active=True, limit=500)
    return [
        j
        for j in jobs
        if j["params"].get("preview")
        and j["desired"] != DESIRED_STOPPED
        and j["state"] in ACTIVE_STATES
        and [c.get("source") for c in j["params"].get("sources") or []] == [source]
    ]


def _preview_out(job: JobRow, source: str) -> dict:
    return {
        "id": job["id"],
        "state": job["state"],
        "source": source,
        "idle_s": float(job["params"].get("preview_idle_s") or PREVIEW_IDLE_S),
        "live": f"{PREFIX}/recordings/{job['id']}/live",
    }


def _source_name(name: str) -> str:
    try:
        name = layout.check_name("source", name)
    except Exception:
        raise NotFound(f"no source {name!r}") from None
    state().control.get_source(name)  # 404 when it is not saved
    return name


@api.op("POST", "/sources/<name>/preview", tag="live", response=PreviewOut, status=201,
        also=(200,))  # fmt: skip
def start_preview(name: str):
    """Preview a saved source: its live view without recording (never makes a run).

    Returns the preview already running for the source (200) or starts one (201). It stops by
    itself once its live view has not been read for `idle_s` seconds."""
    name = _source_name(name)
    running = _previews_of(name)
    if running:
        live.mark_read(live.job_folder(state().data, running[0]["id"]))
        return _preview_out(running[0], name), 200
    st = state()
    params = plan_recording(
        st.control, sources=[name], name=f"preview of {name}", policy=st.policy, preview=True
    )
    params["preview_idle_s"] = preview_idle_s()
    job = st.control.create_job(KIND_RECORD, params)
    return _preview_out(job, name), 201


@api.op("DELETE", "/sources/<name>/preview", tag="live", status=204)
def stop_preview(name: str):
    """Stop the preview of a saved source (stopping one that is not running is harmless)."""
    name = _source_name(name)
    for job in _previews_of(name):
        state().control.set_desired(job["id"], DESIRED_STOPPED)
