"""`GET /api/v1/events`: server-sent events of job and run changes, so scripts stop polling.

The app keeps no state between requests (any number of gunicorn workers serve the same
catalog), so there is no event log to replay: each connection watches the catalog itself,
twice a second, and tells what changed between two looks. A connection lives a bounded time
(`timeout`, 25 s by default) and then ends with a `retry` hint, so it never holds a worker for
long, and an idle proxy never cuts it in the middle of an event. Each event's `id` is the
server time of the look that saw it; a client that reconnects with `Last-Event-ID` (browsers'
EventSource do this by themselves) is first told what the rows' own times show happened since:
jobs created or updated, runs started or closed. What leaves no time behind (a run deleted or
retagged while nobody listened) cannot be told after the fact: such a client gets a `resync`
event and reads the lists again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Annotated, Any

from flask import Response, request
from pydantic import Field

from recorder.db.catalog import Catalog
from recorder.db.control import Control
from recorder.db.jobs import FINAL_STATES
from recorder.errors import RunNotFound
from recorder.web import models as m
from recorder.web.api import api, state

#: How many of the newest runs each look compares (deletions anywhere show in the total).
WATCHED_RUNS = 200
#: How many of the newest jobs each look compares.
WATCHED_JOBS = 200
POLL_S = 0.5
RETRY_MS = 1000


class EventsQuery(m.Query):
    timeout: Annotated[float, Field(ge=0, le=60)] = Field(
        25.0, description="Seconds before the server ends the stream (reconnect to go on)."
    )
    kinds: Annotated[str, Field(max_length=20, pattern=r"^(job|run)(,(job|run))?$")] | None = Field(
        None, description="Only these kinds of event: `job`, `run` or `job,run` (all)."
    )


def _job_key(j: dict) -> tuple:
    return (j["state"], j["desired"], j["run_id"])


def _job_event(j: dict, change: str) -> dict:
    return {"id": j["id"], "kind": j["kind"], "state": j["state"], "desired": j["desired"],
            "run_id": j["run_id"], "error": j.get("error"), "change": change}  # fmt: skip


def _run_key(r: dict) -> tuple:
    return (r["status"], r["name"], tuple(r["tags"]), r["ended_ns"], r["messages"])


def _run_event(r: dict, change: str) -> dict:
    return {"run_id": r["run_id"], "status": r["status"], "name": r["name"], "change": change}


class Watcher:
    """Two looks at the catalog and what changed between them, as (kind, data) events."""

    def __init__(self, control: Control, catalog: Catalog):
        self.control = control
        self.catalog = catalog
        self.jobs: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.total = 0

    def look(self) -> tuple[dict[str, dict], dict[str, dict], int]:
        jobs = {j["id"]: dict(j) for j in self.control.list_jobs(limit=WATCHED_JOBS)}
        rows, total = self.catalog.search_runs(limit=WATCHED_RUNS)
        return jobs, {r["run_id"]: r for r in rows}, total

    def start(self) -> None:
        self.jobs, self.runs, self.total = self.look()

    def since(self, t_ns: int) -> list[tuple[str, dict]]:
        """What the rows' own times tell happened after `t_ns` (a reconnecting client)."""
        out: list[tuple[str, dict]] = []
        for j in sorted(self.jobs.values(), key=lambda j: j["created_ns"]):
            if j["created_ns"] > t_ns:
                out.append(("job", _job_event(j, "created")))
            if (j.get("ended_ns") or 0) > t_ns and j["state"] in FINAL_STATES:
                out.append(("job", _job_event(j, "finished")))
            elif j["created_ns"] <= t_ns and j["updated_ns"] > t_ns:
                out.append(("job", _job_event(j, "state")))
        for r in sorted(self.runs.values(), key=lambda r: r["started_ns"]):
            if r["started_ns"] > t_ns:
                out.append(("run", _run_event(r, "created")))
            if (r["ended_ns"] or 0) > t_ns:
                out.append(("run", _run_event(r, "closed")))
        out.append(("resync", {"reason": "deletions and edits while disconnected are not kept"}))
        return out

    def step(self) -> list[tuple[str, dict]]:
        jobs, runs, total = self.look()
        out: list[tuple[str, dict]] = []
        for jid, j in sorted(jobs.items(), key=lambda kv: kv[1]["created_ns"]):
            old = self.jobs.get(jid)
            if old is None:
                out.append(("job", _job_event(j, "created")))
            elif _job_key(old) != _job_key(j):
                final = j["state"] in FINAL_STATES and old["state"] not in FINAL_STATES
                out.append(("job", _job_event(j, "finished" if final else "state")))
        for rid, r in sorted(runs.items(), key=lambda kv: kv[1]["started_ns"]):
            old = self.runs.get(rid)
            if old is None:
                if self.runs and r["started_ns"] < min(x["started_ns"] for x in self.runs.values()):
                    continue  # an older run moved into the window as a newer one left it
                out.append(("run", _run_event(r, "created")))
            elif _run_key(old) != _run_key(r):
                closed = old["status"] != r["status"] and old["ended_ns"] is None and r["ended_ns"]
                out.append(("run", _run_event(r, "closed" if closed else "edited")))
        for rid in self.runs.keys() - runs.keys():
            if not self._exists(rid):
                out.append(("run", _run_event(self.runs[rid], "deleted")))
        if total < self.total and not any(e[1].get("change") == "deleted" for e in out):
            out.append(("run", {"run_id": None, "change": "deleted", "total": total}))
        self.jobs, self.runs, self.total = jobs, runs, total
        return out

    def _exists(self, run_id: str) -> bool:
        try:
            self.catalog.get_run(run_id)
        except RunNotFound:
            return False
        return True


def _frame(event: str, data: Any, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def stream(watcher: Watcher, *, timeout: float, last_id: int | None, kinds: set[str]):
    def gen() -> Iterator[str]:
        deadline = time.monotonic() + timeout
        watcher.start()
        now = time.time_ns()
        yield f"retry: {RETRY_MS}\n" + _frame("hello", {"timeout_s": timeout}, now)
        if last_id is not None:
            for kind, data in watcher.since(last_id):
                if kind in kinds or kind == "resync":
                    yield _frame(kind, data, now)
        beat = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
            events = [e for e in watcher.step() if e[0] in kinds]
            now = time.time_ns()
            for kind, data in events:
                yield _frame(kind, data, now)
            if events:
                beat = time.monotonic()
            elif time.monotonic() - beat > 10:  # a comment keeps proxies from timing out
                yield ": keep-alive\n\n"
                beat = time.monotonic()
        yield _frame("bye", {"reconnect": True}, time.time_ns())

    return gen()


@api.op("GET", "/events", tag="system", query=EventsQuery, media="text/event-stream")
def get_events(query: EventsQuery):
    """Server-sent events of job and run changes (text/event-stream).

    Events: `job` (`change`: created, state, finished), `run` (`change`: created, closed,
    edited, deleted), `hello` first, `bye` before the server ends the stream after `timeout`
    seconds, `resync` after a reconnect with `Last-Event-ID` (read the lists again). Each
    event's data is one JSON object."""
    st = state()
    raw = request.headers.get("Last-Event-ID", "")
    last_id = int(raw) if raw.isdigit() and len(raw) < 20 else None
    kinds = set((query.kinds or "job,run").split(","))
    watcher = Watcher(st.control, st.catalog)
    resp = Response(
        stream(watcher, timeout=query.timeout, last_id=last_id, kinds=kinds),
        mimetype="text/event-stream",
    )
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return resp
