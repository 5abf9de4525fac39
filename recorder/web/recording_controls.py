"""A running recording's controls over HTTP: trigger, pause, resume, split and markers.

Each is a row in the job's command queue (db/jobs.py) that the recording's worker
takes within a tenth of a second; the answer is the recording as it is now (its next report shows
the effect). A control that cannot apply is refused with 409 before anything is queued: the
recording has ended or is stopping, a trigger on a recording that is not armed, a split of one
that is (its runs begin and end with triggers), any control on a preview (it records nothing).
A marker is stamped when the request arrives and signed with the name of the token (or the
browser session's token) that asked.
"""

from __future__ import annotations

import json
import time

from flask import g

from recorder.contracts import JobRow
from recorder.db.jobs import ACTIVE_STATES, DESIRED_STOPPED, KIND_RECORD
from recorder.errors import Conflict
from recorder.web import models as m
from recorder.web.api import _recording_out, api, state


def _controllable(job_id: str, *, armed: bool | None = None) -> JobRow:
    """The recording, if it takes a control now; `armed`: only (True) or never (False) when
    it was started with a trigger."""
    job = state().control.get_job(job_id, KIND_RECORD)
    if job["state"] not in ACTIVE_STATES or job["desired"] == DESIRED_STOPPED:
        raise Conflict(f"recording {job_id} is {job['state']}: it takes no controls")
    params = job["params"]
    if params.get("preview"):
        raise Conflict(f"recording {job_id} is a preview: it records nothing")
    if armed and not params.get("trigger"):
        raise Conflict(f"recording {job_id} is not armed: start it with a trigger section")
    if armed is False and params.get("trigger"):
        raise Conflict(f"recording {job_id} is armed: it makes a run per trigger, not by splits")
    return job


def _command(job_id: str, op: str, *, armed: bool | None = None, text: str | None = None) -> dict:
    _controllable(job_id, armed=armed)
    control = state().control
    control.add_command(job_id, op, text=text)
    return _recording_out(control.get_job(job_id))


def author() -> str:
    """Who a marker is from: the name of the token the request authenticated with (a browser
    session's token too), else its id."""
    token = g.get("token") or {}
    return str(token.get("name") or token.get("id") or "")


@api.op("POST", "/recordings/<job_id>/trigger", tag="recordings", response=m.RecordingOut,
        errors=(409,))  # fmt: skip
def trigger_recording(job_id: str):
    """Trigger an armed recording now: its buffer and what follows become a run (a trigger
    while a triggered run records extends it)."""
    return _command(job_id, "trigger", armed=True)


@api.op("POST", "/recordings/<job_id>/pause", tag="recordings", response=m.RecordingOut,
        errors=(409,))  # fmt: skip
def pause_recording(job_id: str):
    """Pause: messages are received and counted but not stored; the pause is recorded."""
    return _command(job_id, "pause")


@api.op("POST", "/recordings/<job_id>/resume", tag="recordings", response=m.RecordingOut,
        errors=(409,))  # fmt: skip
def resume_recording(job_id: str):
    """Resume a paused recording."""
    return _command(job_id, "resume")


@api.op("POST", "/recordings/<job_id>/split", tag="recordings", response=m.RecordingOut,
        errors=(409,))  # fmt: skip
def split_recording(job_id: str):
    """End the current run and go on in a new one, without losing a message in between
    (409 for an armed recording: its runs begin and end with triggers)."""
    return _command(job_id, "split", armed=False)


@api.op("POST", "/recordings/<job_id>/markers", tag="recordings", body=m.MarkerIn,
        response=m.RecordingOut, errors=(409,))  # fmt: skip
def add_marker(job_id: str, body: m.MarkerIn):
    """Mark this moment in the current run with a text (signed with the token's name); in an
    armed recording it goes with the buffer into the next triggered run."""
    text = json.dumps({"text": body.text, "author": author(), "at_ns": time.time_ns()})
    return _command(job_id, "marker", text=text)
