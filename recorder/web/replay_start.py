"""A replay request is answered once its sockets are bound, or binding failed.

The handler only writes a job row; a manager starts the worker, and the worker reports its
served endpoints with its first stats (state running or paused). Answering 201 before that
sent clients to endpoints that might fail to bind a moment later (a port in use) and left an
``--endpoint auto`` replay's ports unknown. So the handler waits, bounded, for the worker's word.
"""

from __future__ import annotations

import time
from typing import Any

from recorder.contracts import JobRow
from recorder.db.control import Control
from recorder.db.jobs import FAILED, FINAL_STATES, PAUSED, RUNNING
from recorder.web.http_errors import ApiError

BOUND_WAIT_S = 15.0
"""How long a replay request waits for the worker to bind; then it answers with the job as is."""
_POLL_S = 0.05


def bound(job: JobRow) -> bool:
    """The worker has opened every socket: it says so with its first stats."""
    return job["state"] in (RUNNING, PAUSED) and bool((job["stats"] or {}).get("streams"))


def await_bound(control: Control, job: JobRow, timeout: float = BOUND_WAIT_S) -> JobRow:
    """The job once bound, ended, or after `timeout`; at once when no manager is alive to
    start it. A replay that failed to start is an error (409) naming the reason."""
    deadline = time.monotonic() + timeout
    if not control.live_managers():
        return job
    while not (bound(job) or job["state"] in FINAL_STATES) and time.monotonic() < deadline:
        time.sleep(_POLL_S)
        job = control.get_job(job["id"])
    if job["state"] == FAILED:
        raise ApiError(
            409, "replay_failed", f"replay {job['id']} could not start: {job['error']}",
            details={"id": job["id"], "state": job["state"], "error": job["error"]},
        )  # fmt: skip
    return job


def created(job: JobRow) -> dict[str, Any]:
    """The answer to a replay request: where it serves, or why that is not known yet."""
    stats = job["stats"] or {}
    out: dict[str, Any] = {
        "id": job["id"],
        "run_id": job["run_id"],
        "state": job["state"],
        "bound": bound(job),
        "endpoints": {n: s["endpoint"] for n, s in (stats.get("streams") or {}).items()},
    }
    if not out["bound"] and job["state"] not in FINAL_STATES:
        out["note"] = (
            f"the replay has not bound its sockets yet (waited up to {BOUND_WAIT_S:g} s, or no "
            f"manager is running): GET /replays/{job['id']} shows its endpoints once it has"
        )
    return out
