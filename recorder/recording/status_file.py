"""A recording's live figures for anyone to see, when no job row carries them.

A recording started by the manager publishes its stats in its job row; one started from the
command line (`recorder record`) has no job, so the dashboard and `GET /api/v1/recordings` did
not know it existed. It writes `<data>/recorders/<id>.json` instead, at most once a second (a
temporary name, then a rename: a reader sees one whole version), and removes it when it ends.
A file whose writer is gone (a killed recorder) is told apart by its age (`STALE_S`) and, on
the same host, by its pid.

File format (version 1): a JSON object `{v, id, host, pid, started_ns, updated_ns, name, tags,
sources: [{stream, protocol, endpoint}], stats}`, `stats` as a worker's job row has them
(contracts.RecordJobStats).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import time
from pathlib import Path
from typing import Any

STATUS_DIR = "recorders"
VERSION = 1
EVERY_S = 1.0
STALE_S = 10.0
ID_PREFIX = "cli-"


def status_dir(data: Path) -> Path:
    return Path(data) / STATUS_DIR


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


class StatusFile:
    """The status of one recording, published by its own process."""

    def __init__(self, data: Path, *, name: str, tags: list[str], sources: list[dict]):
        self.id = ID_PREFIX + secrets.token_hex(6)
        self.path = status_dir(data) / f"{self.id}.json"
        self.info = {
            "v": VERSION,
            "id": self.id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_ns": time.time_ns(),
            "name": name,
            "tags": list(tags),
            "sources": sources,
        }
        self._last = 0.0

    def due(self) -> bool:
        """Whether the next publish is due (at most one every EVERY_S)."""
        return time.monotonic() - self._last >= EVERY_S

    def publish(self, stats: dict) -> None:
        """Write the current figures. Never raises for the disk: the status is a courtesy, the
        recording is what matters."""
        self._last = time.monotonic()
        body = json.dumps({**self.info, "updated_ns": time.time_ns(), "stats": stats})
        tmp = self.path.with_suffix(".tmp")
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(body)
            os.replace(tmp, self.path)

    def remove(self) -> None:
        for p in (self.path, self.path.with_suffix(".tmp")):
            with contextlib.suppress(OSError):
                p.unlink()


def read_all(data: Path, *, stale_s: float = STALE_S) -> list[dict]:
    """The status of every recording that publishes one and is alive, newest first."""
    folder = status_dir(data)
    if not folder.is_dir():
        return []
    now = time.time_ns()
    host = socket.gethostname()
    out = []
    for path in folder.glob(f"{ID_PREFIX}*.json"):
        try:
            status = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # removed meanwhile, or not ours
        if not isinstance(status, dict) or status.get("v") != VERSION:
            continue
        if now - int(status.get("updated_ns") or 0) > stale_s * 1e9:
            continue
        if status.get("host") == host and not _alive(status.get("pid")):
            continue
        out.append(status)
    return sorted(out, key=lambda s: -int(s.get("started_ns") or 0))


def read_one(data: Path, status_id: str, *, stale_s: float = STALE_S) -> dict | None:
    for status in read_all(data, stale_s=stale_s):
        if status.get("id") == status_id:
            return status
    return None
