"""One session seen whole: the data of its page (its runs on one timeline with their streams,
markers, notes and pauses; totals over its runs) and its exports over HTTP
(`POST /sessions/{id}/exports`: every run to one folder, a job like a run's export).

The session's attributes come from its file (the truth), else from the catalog's copy; its runs
from the catalog (oldest first), each read through the store's reader for what the catalog does
not keep (markers, pauses, per-stream times).
"""

from __future__ import annotations

from typing import Any

from recorder.contracts import Marker, Pause, RunSummary, SessionAttrs
from recorder.db.jobs import KIND_EXPORT
from recorder.errors import RecorderError
from recorder.manager.planning import start_session_export
from recorder.store.reader import RunReader
from recorder.store.sessions import SessionFiles, SessionNotFound, check_id
from recorder.web import models as m
from recorder.web.api import api, state
from recorder.web.exports import export_out

MAX_PAGE_RUNS = 500  # runs drawn on a session's page (the newest are left out beyond)


def session_attrs(session_id: str) -> SessionAttrs:
    st = state()
    try:
        return SessionFiles(st.data).get(check_id(session_id))
    except SessionNotFound:
        return st.catalog.get_session(session_id)  # SessionNotFound (404) if unknown there too


def _s(ns: int | None, t0: int) -> float | None:
    return None if ns is None else round((ns - t0) / 1e9, 6)


def _run_item(
    summary: RunSummary, markers: list[Marker], pauses: list[Pause], t0: int
) -> dict[str, Any]:
    start, end = summary["started_ns"], summary["ended_ns"] or summary["started_ns"]

    def inside(ns: int) -> int:  # a note written after the run is drawn at its end
        return min(max(ns, start), end)

    return {
        "run_id": summary["run_id"],
        "name": summary["name"],
        "status": summary["status"],
        "start_s": _s(start, t0),
        "end_s": _s(end, t0),
        "duration_s": summary["duration_s"],
        "messages": summary["messages"],
        "bytes": summary["bytes"],
        "gaps": summary["gaps"],
        "drops": summary["drops"],
        "streams": [
            {
                "name": s["name"],
                "protocol": s["protocol"],
                "messages": s["messages"],
                "start_s": _s(s["first_recv_ns"], t0),
                "end_s": _s(s["last_recv_ns"], t0),
            }
            for s in summary["streams"]
        ],
        "markers": [
            {"t_s": _s(mk["recv_ns"], t0), "text": mk["text"], "author": mk.get("author", "")}
            for mk in markers
        ],
        "notes": [
            {"t_s": _s(inside(n.get("created_ns") or end), t0), "text": n["text"]}
            for n in summary["notes"]
        ],
        "pauses": [
            {"start_s": _s(p["start_ns"], t0), "end_s": _s(p["end_ns"] or end, t0)} for p in pauses
        ],
    }


def page_data(session_id: str) -> dict[str, Any]:
    """What the session page shows: the session, its runs (oldest first) placed on one clock
    (seconds from the first run's start), totals, and the session's exports."""
    st = state()
    session = session_attrs(session_id)
    run_ids = st.catalog.session_run_ids(session["id"])
    shown, problems = [], []
    for run_id in run_ids[:MAX_PAGE_RUNS]:
        try:
            with RunReader(st.runs_dir / run_id) as run:
                shown.append((run.summary(), run.markers(), run.pauses()))
        except RecorderError as exc:  # a run deleted or damaged since it was indexed
            problems.append(f"{run_id}: {exc}")
    t0 = min((s["started_ns"] for s, _, _ in shown), default=session["started_ns"])
    runs = [_run_item(s, mk, p, t0) for s, mk, p in shown]
    ends = [s["ended_ns"] or s["started_ns"] for s, _, _ in shown]
    totals = {
        "runs": len(run_ids),
        "duration_s": sum(r["duration_s"] for r in runs),
        "span_s": (max(ends) - t0) / 1e9 if ends else 0.0,
        "messages": sum(r["messages"] for r in runs),
        "bytes": sum(r["bytes"] for r in runs),
        "gaps": sum(r["gaps"] for r in runs),
        "drops": sum(r["drops"] for r in runs),
        "markers": sum(len(r["markers"]) for r in runs),
    }
    timeline = {"t0_ns": t0, "span_s": totals["span_s"], "runs": runs}
    return {
        "session": session,
        "runs": runs,
        "totals": totals,
        "timeline": timeline,
        "problems": problems,
        "more_runs": max(0, len(run_ids) - MAX_PAGE_RUNS),
        "exports": session_exports(session["id"]),
    }


def session_exports(session_id: str) -> list[dict[str, Any]]:
    """The session's whole-session exports, newest first."""
    jobs = state().control.list_jobs(kind=KIND_EXPORT, limit=200)
    return [export_out(j) for j in jobs if (j["params"] or {}).get("session") == session_id]


@api.op("POST", "/sessions/<session_id>/exports", tag="exports", body=m.SessionExportCreate,
        response=m.ExportCreated, status=201)  # fmt: skip
def create_session_export(session_id: str, body: m.SessionExportCreate):
    """Export every run of a session to nwb, exdf, hdf5 or mcap: one folder (downloaded as a
    zip), one file per run named by its id and name, each with the session's metadata.

    Refused at once: an unknown session 404; one without runs, or with no run the target
    can hold, 400 (the message says why). Runs the target cannot hold are left out and listed
    in `skipped` (run id: why)."""
    st = state()
    session = session_attrs(session_id)
    job = start_session_export(st.control, st.runs_dir, session["id"], body.target)
    return {"id": job["id"], "run_id": job["run_id"], "state": job["state"]}


@api.op("GET", "/sessions/<session_id>/exports", tag="exports", response=m.ExportList)
def list_session_exports(session_id: str):
    """The whole-session exports of a session, newest first."""
    session = session_attrs(session_id)
    return {"exports": session_exports(session["id"])}
