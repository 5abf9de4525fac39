"""The JSON API under /api/v1: thin handlers over the catalog, the control tables and the stores.

Handlers never open a stream socket and never start a worker: starting, stopping, pausing and
seeking are rows written to the control tables, which the manager and the workers act on within
a fraction of a second. Every request passes the same-origin rule and token check first
(auth.py); every failure leaves through the one error envelope (errors.py).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from flask import Blueprint, Response, current_app, g, jsonify, request

from recorder import __version__
from recorder.contracts import JobRow
from recorder.db.catalog import Catalog
from recorder.db.control import Control
from recorder.db.jobs import (
    ACTIVE_STATES,
    DESIRED_PAUSED,
    DESIRED_RUNNING,
    DESIRED_STOPPED,
    KIND_RECORD,
    KIND_REPLAY,
    RUNNING,
)
from recorder.endpoint_policy import EndpointPolicy, EndpointRefused
from recorder.errors import Conflict, NotFound, UsageError
from recorder.manager.planning import normalize_source, start_recording, start_replay
from recorder.store import layout
from recorder.store.reader import RunReader, StreamReader
from recorder.web import cli_recordings, imaging, inspector, previews, replay_start
from recorder.web import models as m
from recorder.web import runs as run_ops
from recorder.web.auth import authenticate, check_same_origin
from recorder.web.http_errors import ApiError, envelope
from recorder.web.routing import Api

PREFIX = "/api/v1"
bp = Blueprint("api", __name__, url_prefix=PREFIX)
api = Api(bp)


@dataclass
class AppState:
    data: Path
    runs_dir: Path
    catalog: Catalog
    control: Control
    policy: EndpointPolicy
    """What endpoints requests may bind or connect (the operator's settings, config.py)."""
    session_idle_s: float = 12 * 3600
    """A browser session ends this long after its last use ..."""
    session_max_s: float = 7 * 86400
    """... and this long after sign-in at the latest."""


def state() -> AppState:
    return current_app.extensions["recorder"]


@bp.before_request
def _guard():
    check_same_origin(request)
    if request.endpoint == "api.get_openapi":
        return  # the API's description is public: clients and the docs page read it first
    g.token = authenticate(state().control, request)


@bp.errorhandler(EndpointRefused)
def _endpoint_refused(exc: EndpointRefused):
    return envelope(403, "endpoint_refused", str(exc), {"endpoint": exc.endpoint, "rule": exc.rule})


def _checked(kind: str, name: str, *, missing=NotFound) -> str:
    """Names in paths become folder or row names: anything else is simply not there."""
    try:
        return layout.check_name(kind, name)
    except Exception:
        raise missing(f"no {kind} {name!r}") from None


# -- system ------------------------------------------------------------------------------------


@api.op("GET", "/status", tag="system", response=m.StatusOut)
def get_status():
    """Manager, workers, data folder, disk space and time left at the current write rate."""
    st = state()
    live = st.control.live_managers()
    active = st.control.list_jobs(active=True)
    disk = shutil.disk_usage(st.data)
    rate = sum(
        float((j["stats"] or {}).get("rate_bytes_s") or 0)
        for j in [*active, *cli_recordings.listed(st.data)]
        if j["kind"] == KIND_RECORD and j["state"] == RUNNING
    )

    def info(mgr: dict) -> dict:
        return {
            "alive": True,
            "id": mgr["id"],
            "host": mgr["host"],
            "pid": mgr["pid"],
            "heartbeat_age_s": max(0.0, (time.time_ns() - mgr["heartbeat_ns"]) / 1e9),
        }

    return {
        "version": __version__,
        "manager": info(live[0]) if live else {"alive": False},
        "managers": [info(x) for x in live],
        "workers": [
            {
                "id": j["id"],
                "kind": j["kind"],
                "state": j["state"],
                "run_id": j["run_id"],
                "pid": j["pid"],
            }
            for j in active
        ],
        "data": str(st.data),
        "disk": {
            "total_bytes": disk.total,
            "free_bytes": disk.free,
            "write_rate_bytes_s": rate,
            "time_left_s": disk.free / rate if rate > 0 else None,
        },
    }


@api.op("GET", "/openapi.json", tag="system")
def get_openapi():
    """This API as an OpenAPI 3.1 document, generated from the models that validate requests.

    Readable without a token; `servers` names this server as the client reached it."""
    doc = api.openapi(title="zmq-recorder", version=__version__, prefix=PREFIX)
    doc["servers"] = [{"url": request.url_root.rstrip("/"), "description": "this server"}]
    doc["paths"][PREFIX + "/openapi.json"]["get"]["security"] = []
    return jsonify(doc)


# -- tokens ------------------------------------------------------------------------------------


def _token_out(row: dict) -> dict:
    out = {k: row.get(k) for k in ("id", "name", "created_ns", "last_used_ns", "expires_ns")}
    out["current"] = row["id"] == g.token["id"]
    return out


@api.op("GET", "/tokens", tag="tokens", response=m.TokenList)
def list_tokens():
    """API tokens: names, when created, last used and when they expire (never the tokens)."""
    return {"tokens": [_token_out(r) for r in state().control.list_tokens()]}


@api.op("POST", "/tokens", tag="tokens", body=m.TokenCreate, response=m.TokenCreated, status=201)
def create_token(body: m.TokenCreate):
    """Create a token; the response holds the token itself, shown only this once."""
    secret, row = state().control.create_token(body.name, expires_s=body.expires_s)
    return {**_token_out(row), "token": secret}


@api.op("DELETE", "/tokens/<token_id>", tag="tokens", status=204)
def revoke_token(token_id: str):
    """Revoke a token, and end the browser sessions signed in with it."""
    state().control.revoke_token(_checked("token", token_id))


# -- sources -----------------------------------------------------------------------------------


def _source_out(row: dict) -> dict:
    return {
        **row["config"],
        "name": row["name"],
        "created_ns": row["created_ns"],
        "updated_ns": row["updated_ns"],
    }


@api.op("GET", "/sources", tag="sources", response=m.SourceList)
def list_sources():
    """Saved stream configurations."""
    return {"sources": [_source_out(r) for r in state().control.list_sources()]}


@api.op("POST", "/sources", tag="sources", body=m.SourceCreate, response=m.SourceOut,
        status=201, errors=(409,))  # fmt: skip
def create_source(body: m.SourceCreate):
    """Save a stream configuration under a new name."""
    config = normalize_source(body.model_dump(exclude={"name"}), state().policy)
    return _source_out(state().control.create_source(body.name, config))


@api.op("GET", "/sources/<name>", tag="sources", response=m.SourceOut)
def get_source(name: str):
    """One saved stream configuration."""
    return _source_out(state().control.get_source(_checked("source", name)))


@api.op("PUT", "/sources/<name>", tag="sources", body=m.SourceConfig, response=m.SourceOut,
        also=(201,))  # fmt: skip
def put_source(name: str, body: m.SourceConfig):
    """Create or replace a saved stream configuration."""
    name = _checked("source", name, missing=UsageError)
    config = normalize_source(body.model_dump(), state().policy)
    row, created = state().control.put_source(name, config)
    return _source_out(row), 201 if created else 200


@api.op("DELETE", "/sources/<name>", tag="sources", status=204)
def delete_source(name: str):
    """Forget a saved stream configuration (recordings already made keep their copy)."""
    state().control.delete_source(_checked("source", name))


# -- recordings --------------------------------------------------------------------------------

#: Live counters shown at the top level of a recording, with their value before the first report.
_RECORD_STATS: dict[str, Any] = {
    "messages": 0, "bytes": 0, "rate_bytes_s": 0.0, "rate_messages_s": 0.0, "gaps": 0, "drops": 0,
    "queue_bytes": 0, "last_error": None, "runs": [], "triggers": 0, "armed_bytes": 0,
}  # fmt: skip


def _job_out(job: JobRow) -> dict[str, Any]:
    out = {k: v for k, v in job.items() if k not in ("manager", "stop_requested_ns")}
    out["kind"] = job["kind"]
    return out


def _recording_out(job: JobRow) -> dict[str, Any]:
    stats = job["stats"] or {}
    out = {**_job_out(job), **{k: stats.get(k, v) for k, v in _RECORD_STATS.items()}}
    out["recording_state"] = stats.get("state")  # the job's own `state` is running, stopped...
    return out


@api.op("POST", "/recordings", tag="recordings", body=m.RecordingCreate,
        response=m.RecordingCreated, status=201)  # fmt: skip
def create_recording(body: m.RecordingCreate):
    """Start recording saved (by name) or inline sources into a new run.

    With `trigger` the recording is armed: it makes a run per trigger (`run_id` is null until
    then); with `split` it makes a new run every duration or size; with `session` its runs
    belong to that open session (404 if there is none, 409 if it was closed)."""
    job = start_recording(
        state().control,
        sources=[s if isinstance(s, str) else s.model_dump() for s in body.sources],
        name=body.name,
        tags=body.tags,
        duration_s=body.duration_s,
        count=body.count,
        flush_interval_s=body.flush_interval_s,
        compression=body.compression,
        trigger=None if body.trigger is None else body.trigger.model_dump(exclude_none=True),
        split=body.split.model_dump(exclude_none=True)
        if isinstance(body.split, m.SplitIn)
        else body.split,
        session=body.session,
        data=state().data,
        policy=state().policy,
        host=body.host,
    )
    return {"id": job["id"], "run_id": job["run_id"], "state": job["state"]}


@api.op("GET", "/recordings", tag="recordings", response=m.RecordingList)
def list_recordings():
    """Recordings, newest first (the last 200), after the live ones started from the command
    line (`params.cli`: they take no controls over HTTP)."""
    jobs = [
        *cli_recordings.listed(state().data),
        *state().control.list_jobs(kind=KIND_RECORD, limit=200),
    ]
    return {"recordings": [_recording_out(cast(JobRow, j)) for j in jobs]}


@api.op("GET", "/recordings/<job_id>", tag="recordings", response=m.RecordingOut)
def get_recording(job_id: str):
    """One recording with live counters (refreshed at least every second)."""
    cli = cli_recordings.one(state().data, job_id)
    if cli is not None:
        return _recording_out(cast(JobRow, cli))
    return _recording_out(state().control.get_job(job_id, KIND_RECORD))


@api.op("POST", "/recordings/<job_id>/stop", tag="recordings", response=m.RecordingOut)
def stop_recording(job_id: str):
    """Stop a recording; the run is flushed and closed. Stopping twice is harmless."""
    control = state().control
    control.get_job(job_id, KIND_RECORD)
    return _recording_out(control.set_desired(job_id, DESIRED_STOPPED))


# -- replays -----------------------------------------------------------------------------------

_REPLAY_STATS = {"position_s": 0.0, "duration_s": 0.0, "messages": 0, "bytes": 0, "clients": 0,
                 "speed": None, "loop": 0, "last_error": None, "pauses": 0,
                 "skip_pauses": False}  # fmt: skip


def _replay_out(job: JobRow) -> dict[str, Any]:
    stats = job["stats"] or {}
    out = {**_job_out(job), **{k: stats.get(k, v) for k, v in _REPLAY_STATS.items()}}
    out["endpoints"] = {n: s["endpoint"] for n, s in (stats.get("streams") or {}).items()}
    return out


@api.op("POST", "/replays", tag="replays", body=m.ReplayCreate, response=m.ReplayCreated,
        status=201, errors=(404, 409))  # fmt: skip
def create_replay(body: m.ReplayCreate):
    """Serve a stored run over ZMQ with the original protocol and bytes.

    Answered once the replay's sockets are bound (with their endpoints), or with 409 when
    binding failed; after 15 s without word from the worker, with the job as it is."""
    st = state()
    job = start_replay(st.control, st.runs_dir, **body.model_dump(), policy=st.policy)
    return replay_start.created(replay_start.await_bound(st.control, job))


@api.op("GET", "/replays", tag="replays", response=m.ReplayList)
def list_replays():
    """Replays, newest first (the last 200)."""
    jobs = state().control.list_jobs(kind=KIND_REPLAY, limit=200)
    return {"replays": [_replay_out(j) for j in jobs]}


@api.op("GET", "/replays/<job_id>", tag="replays", response=m.ReplayOut)
def get_replay(job_id: str):
    """One replay: state, position, connected clients."""
    return _replay_out(state().control.get_job(job_id, KIND_REPLAY))


def _active_replay(job_id: str) -> JobRow:
    job = state().control.get_job(job_id, KIND_REPLAY)
    if job["state"] not in ACTIVE_STATES or job["desired"] == DESIRED_STOPPED:
        raise Conflict(f"replay {job_id} is {job['state']}")
    return job


@api.op("POST", "/replays/<job_id>/pause", tag="replays", response=m.ReplayOut, errors=(409,))
def pause_replay(job_id: str):
    """Pause between messages; the sockets stay open."""
    _active_replay(job_id)
    return _replay_out(state().control.set_desired(job_id, DESIRED_PAUSED))


@api.op("POST", "/replays/<job_id>/resume", tag="replays", response=m.ReplayOut, errors=(409,))
def resume_replay(job_id: str):
    """Resume a paused replay."""
    _active_replay(job_id)
    return _replay_out(state().control.set_desired(job_id, DESIRED_RUNNING))


@api.op("POST", "/replays/<job_id>/stop", tag="replays", response=m.ReplayOut)
def stop_replay(job_id: str):
    """Stop a replay and close its sockets. Stopping twice is harmless."""
    control = state().control
    control.get_job(job_id, KIND_REPLAY)
    return _replay_out(control.set_desired(job_id, DESIRED_STOPPED))


def _replay_command(job_id: str, command: str, value):
    """Queue a runtime command for the replay's worker (it polls every ~0.1 s)."""
    _active_replay(job_id)
    state().control.add_command(job_id, command, value)
    return _replay_out(state().control.get_job(job_id))


@api.op("POST", "/replays/<job_id>/seek", tag="replays", body=m.Seek, response=m.ReplayOut,
        errors=(409,))  # fmt: skip
def seek_replay(job_id: str, body: m.Seek):
    """Continue from `t_s` seconds into the run (400 past its end, once the worker has told
    the replay's duration; a followed run grows, so any time is taken)."""
    job = _active_replay(job_id)
    duration = float((job["stats"] or {}).get("duration_s") or 0)
    if duration > 0 and not job["params"].get("follow") and body.t_s > duration:
        raise UsageError(f"cannot seek to {body.t_s:g} s: the replay is {duration:.3f} s long")
    return _replay_command(job_id, "seek", body.t_s)


@api.op("POST", "/replays/<job_id>/speed", tag="replays", body=m.Speed, response=m.ReplayOut,
        errors=(409,))  # fmt: skip
def speed_replay(job_id: str, body: m.Speed):
    """Change the timing factor (1: as recorded)."""
    return _replay_command(job_id, "speed", body.speed)


@api.op("POST", "/replays/<job_id>/step", tag="replays", body=m.Step, response=m.ReplayOut,
        errors=(409,))  # fmt: skip
def step_replay(job_id: str, body: m.Step):
    """While paused: send the next `n` messages."""
    return _replay_command(job_id, "step", body.n)


# -- runs --------------------------------------------------------------------------------------


@api.op("GET", "/runs", tag="runs", query=m.RunsQuery, response=m.RunList)
def list_runs(query: m.RunsQuery):
    """Search runs, newest first."""
    items, total = run_ops.search_runs(
        state().catalog, runs_dir=state().runs_dir, **query.model_dump()
    )
    return {"runs": items, "total": total, "limit": query.limit, "offset": query.offset}


@api.op("GET", "/runs/<run_id>", tag="runs", response=m.RunOut)
def get_run(run_id: str):
    """A run with its streams, tags, notes and active jobs."""
    st = state()
    return run_ops.run_detail(st.runs_dir, st.control, run_id)


@api.op("PATCH", "/runs/<run_id>", tag="runs", body=m.RunPatch, response=m.RunOut)
def patch_run(run_id: str, body: m.RunPatch):
    """Rename a run, add a note, or replace its notes (deprecated: use /runs/{run_id}/notes)."""
    st = state()
    run_ops.patch_run(
        st.runs_dir,
        st.catalog,
        run_id,
        name=body.name,
        note=body.note,
        notes_=None if body.notes is None else [n.model_dump() for n in body.notes],
        author=str((g.get("token") or {}).get("name") or "") or None,
    )
    return run_ops.run_detail(st.runs_dir, st.control, run_id)


@api.op("POST", "/runs/<run_id>/tags", tag="runs", body=m.TagIn, response=m.Tags)
def add_tag(run_id: str, body: m.TagIn):
    """Tag a run with `{"tag"}` or several tags at once with `{"tags": [...]}` (tagging a live
    recording is fine)."""
    st = state()
    tags = run_ops.change_tags(st.runs_dir, st.catalog, run_id, add=body.all())
    return {"run_id": run_id, "tags": tags}


@api.op("DELETE", "/runs/<run_id>/tags/<tag>", tag="runs", response=m.Tags)
def remove_tag(run_id: str, tag: str):
    """Remove a tag from a run (removing an absent tag is harmless)."""
    st = state()
    tag = _checked("tag", tag)
    tags = run_ops.change_tags(st.runs_dir, st.catalog, run_id, remove=tag)
    return {"run_id": run_id, "tags": tags}


@api.op("DELETE", "/runs/<run_id>", tag="runs", query=m.DeleteQuery, status=204, errors=(409,))
def delete_run(run_id: str, query: m.DeleteQuery):
    """Delete a run's data for good. Explicit: `?confirm=<run id>` must repeat the id."""
    st = state()
    run_ops.run_path(st.runs_dir, run_id)
    if query.confirm != run_id:
        raise ApiError(400, "confirmation_required", f"deleting is explicit: add ?confirm={run_id}")
    run_ops.delete_run(st.runs_dir, st.catalog, st.control, run_id)


def _stream(run_id: str, stream: str) -> tuple[RunReader, StreamReader]:
    path = run_ops.run_path(state().runs_dir, run_id)
    reader = RunReader(path)
    return reader, reader.stream(_checked("stream", stream))


@api.op("GET", "/runs/<run_id>/streams/<stream>/frames/<int:i>.png", tag="previews",
        query=m.FrameImageQuery, media="image/png")  # fmt: skip
def get_frame(run_id: str, stream: str, i: int, query: m.FrameImageQuery):
    """Image of message `i` by the asked contrast and colour map, scaled to fit `size` pixels
    (or at full resolution)."""
    _, s = _stream(run_id, stream)
    look = imaging.Look(query.contrast, query.lo, query.hi, query.plo, query.phi, query.cmap)
    size = None if query.full else query.size
    png = imaging.frame_png(s, i, array=query.array, size=size, look=look)
    resp = Response(png, mimetype="image/png")
    resp.headers["Cache-Control"] = "private, max-age=3600"
    return resp


@api.op("GET", "/runs/<run_id>/streams/<stream>/frames/<int:i>", tag="previews",
        query=m.FrameDetailsQuery, response=m.FrameDetails)  # fmt: skip
def get_frame_details(run_id: str, stream: str, i: int, query: m.FrameDetailsQuery):
    """Frame `i`'s number, time, unique id, attributes, images and pixel statistics."""
    reader, s = _stream(run_id, stream)
    return imaging.frame_details(reader, s, i, array=query.array)


@api.op("GET", "/runs/<run_id>/streams/<stream>/columns", tag="previews",
        response=m.ColumnList)  # fmt: skip
def get_columns(run_id: str, stream: str):
    """The stream's per-message columns and their types (numeric ones plot as series)."""
    _, s = _stream(run_id, stream)
    return inspector.column_list(s)


@api.op("GET", "/runs/<run_id>/streams/<stream>/series", tag="previews", query=m.SeriesQuery,
        response=m.Series)  # fmt: skip
def get_series(run_id: str, stream: str, query: m.SeriesQuery):
    """min/max-decimated waveform (or per-message column) for plotting."""
    reader, s = _stream(run_id, stream)
    return previews.series(reader, s, **query.model_dump())


@api.op("GET", "/runs/<run_id>/streams/<stream>/messages", tag="previews",
        query=m.InspectQuery, response=m.InspectPage)  # fmt: skip
def get_messages(run_id: str, stream: str, query: m.InspectQuery):
    """Messages with their header frames decoded for display (never unpickled)."""
    reader, s = _stream(run_id, stream)
    return inspector.inspect(reader, s, **query.model_dump())
