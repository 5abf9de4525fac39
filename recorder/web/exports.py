"""Exports over HTTP: `POST /runs/<id>/exports` plans a job (refused at once when it cannot
work), the host's manager runs it in a worker that publishes its progress, and the finished file
is downloaded from `/exports/<job>/download`.

Files live in `<data>/exports/<job id>/` under a name the planner made from the run id and the
target (never one from the request). A folder export (EXDF) downloads as a zip built while it
streams, as a run does.
"""

from __future__ import annotations

import shutil
from typing import Any

from flask import Response, send_file, stream_with_context

from recorder.contracts import JobRow
from recorder.db.jobs import DESIRED_STOPPED, FINAL_STATES, FINISHED, KIND_EXPORT
from recorder.errors import Conflict, NotFound
from recorder.manager.planning import export_dir, start_export
from recorder.web import models as m
from recorder.web.api import PREFIX, api, state
from recorder.web.download import zip_pieces
from recorder.web.runs import run_path

_MEDIA = {"nwb": "application/x-hdf5", "hdf5": "application/x-hdf5", "exdf": "application/zip"}


def export_out(job: JobRow) -> dict[str, Any]:
    p, stats = job["params"], job["stats"] or {}
    finished = job["state"] == FINISHED
    keys = ("id", "state", "desired", "run_id", "error", "created_ns", "started_ns", "ended_ns",
            "updated_ns", "params")  # fmt: skip
    return {
        **{k: job[k] for k in keys},  # type: ignore[literal-required]
        "kind": KIND_EXPORT,
        "target": p["target"],
        "session": p.get("session"),
        "file": p["file"],
        "progress": 1.0 if finished else float(stats.get("progress") or 0.0),
        "streams": stats.get("streams") or p.get("planned_streams") or [],
        "skipped": stats.get("skipped", p.get("skipped") or {}),
        "messages": stats.get("messages"),
        "bytes": stats.get("bytes"),
        "partial": stats.get("partial"),
        "download": f"{PREFIX}/exports/{job['id']}/download" if finished else None,
    }


def run_exports(run_id: str) -> list[dict[str, Any]]:
    """A run's exports, newest first (the run page shows them too)."""
    jobs = state().control.list_jobs(kind=KIND_EXPORT, run_id=run_id, limit=200)
    return [export_out(j) for j in jobs]


@api.op("POST", "/runs/<run_id>/exports", tag="exports", body=m.ExportCreate,
        response=m.ExportCreated, status=201)  # fmt: skip
def create_export(run_id: str, body: m.ExportCreate):
    """Export a run (or a window, some streams) to nwb, exdf, hdf5 or mcap, as a job.

    Refused at once (400, 404) when the run, a stream, the window or the target will not do:
    a stream the target cannot hold says which and why."""
    st = state()
    run_path(st.runs_dir, run_id)
    job = start_export(
        st.control, st.runs_dir, run_id=run_id, target=body.target, streams=body.streams,
        start_s=body.start, end_s=body.end,
    )  # fmt: skip
    return {"id": job["id"], "run_id": job["run_id"], "state": job["state"]}


@api.op("GET", "/runs/<run_id>/exports", tag="exports", response=m.ExportList)
def list_run_exports(run_id: str):
    """The exports of a run, newest first."""
    run_path(state().runs_dir, run_id)
    return {"exports": run_exports(run_id)}


@api.op("GET", "/exports", tag="exports", response=m.ExportList)
def list_exports():
    """Exports of every run, newest first (the last 200)."""
    jobs = state().control.list_jobs(kind=KIND_EXPORT, limit=200)
    return {"exports": [export_out(j) for j in jobs]}


@api.op("GET", "/exports/<job_id>", tag="exports", response=m.ExportOut)
def get_export(job_id: str):
    """One export: state, progress (0..1) and, once finished, what was written."""
    return export_out(state().control.get_job(job_id, KIND_EXPORT))


@api.op("GET", "/exports/<job_id>/download", tag="exports", media="application/octet-stream",
        errors=(409,))  # fmt: skip
def download_export(job_id: str):
    """The exported file; a folder (exdf) as a zip, streamed while it is built."""
    st = state()
    job = st.control.get_job(job_id, KIND_EXPORT)
    if job["state"] != FINISHED:
        raise Conflict(f"export {job_id} is {job['state']}: nothing to download")
    name = job["params"]["file"]
    path = export_dir(st.data, job_id) / name
    if path.is_dir():
        resp = Response(stream_with_context(zip_pieces(path, name)), mimetype="application/zip")
        resp.headers["Content-Disposition"] = f'attachment; filename="{name}.zip"'
        return resp
    if not path.is_file():
        raise NotFound(f"the file of export {job_id} is gone")
    media = _MEDIA.get(job["params"]["target"], "application/octet-stream")
    return send_file(path, mimetype=media, as_attachment=True, download_name=name)


@api.op("DELETE", "/exports/<job_id>", tag="exports", status=204)
def delete_export(job_id: str):
    """Remove an export's file and forget it. One still running is stopped instead (the worker
    removes its partial file); it then shows as `stopped` until deleted again."""
    st = state()
    job = st.control.get_job(job_id, KIND_EXPORT)
    if job["state"] not in FINAL_STATES:
        job = st.control.set_desired(job_id, DESIRED_STOPPED)
    if job["state"] in FINAL_STATES:
        shutil.rmtree(export_dir(st.data, job_id), ignore_errors=True)
        st.control.delete_job(job_id)
