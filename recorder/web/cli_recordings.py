"""Recordings started from the command line, shown beside the manager's jobs.

`recorder record` has no job row; it publishes its live figures in a status file
(recording/status_file.py), and these become job rows the API shows as recordings: `running`,
`params.cli` true with the host and pid, and the same top-level counters. They take no controls
over HTTP (their controls are the terminal's: Ctrl-C, stdin commands, signals).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recorder.recording import status_file


def as_job(status: dict) -> dict[str, Any]:
    """The status as a job row (the API's `_recording_out` makes it a recording)."""
    stats = status.get("stats") or {}
    runs = list(stats.get("runs") or [])
    return {
        "id": status["id"],
        "kind": "record",
        "state": "running",
        "desired": "running",
        "run_id": runs[-1] if runs else None,
        "error": None,
        "pid": status.get("pid"),
        "exit_code": None,
        "created_ns": status.get("started_ns") or 0,
        "started_ns": status.get("started_ns"),
        "ended_ns": None,
        "updated_ns": status.get("updated_ns") or 0,
        "params": {
            "name": status.get("name") or "",
            "tags": status.get("tags") or [],
            "sources": status.get("sources") or [],
            "cli": True,
            "host": status.get("host"),
        },
        "stats": stats,
        "proc": None,
    }


def listed(data: Path) -> list[dict[str, Any]]:
    """Every live command-line recording of the data folder, newest first, as job rows."""
    return [as_job(s) for s in status_file.read_all(data)]


def one(data: Path, job_id: str) -> dict[str, Any] | None:
    if not job_id.startswith(status_file.ID_PREFIX):
        return None
    status = status_file.read_one(data, job_id)
    return None if status is None else as_job(status)
