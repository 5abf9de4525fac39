"""A whole session out to one folder: every run of the session exported to the target, one file
per run named by its id and name, each carrying the session's metadata (docs/export.md).

The session's attributes come from its file (fresher than the runs' copies), so an NWB file of
any of its runs says who recorded which subject and why. Runs the target cannot hold (a camera
run in an NWB export) are left out with the reason, as streams are within a run; a session of
which no run fits is an error. The folder appears only when every file is written: it is built
under a temporary name beside the destination and renamed, and removed on any failure.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from recorder.contracts import SessionAttrs
from recorder.errors import ExportError
from recorder.export.base import (
    ExportRequest,
    Progress,
    _remove,
    export_run,
    no_progress,
    plan,
)
from recorder.export.targets import target_named
from recorder.store.reader import RunReader

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_NAME_CHARS = 48  # of the run's name in its file name


def run_file_name(run_id: str, run_name: str, suffix: str) -> str:
    """`<run id>[_<name>]<suffix>`: the name made safe for any file system and kept short."""
    safe = _UNSAFE.sub("_", run_name).strip("._-")[:_NAME_CHARS]
    return f"{run_id}_{safe}{suffix}" if safe else f"{run_id}{suffix}"


def session_folder_name(session_id: str, target: str) -> str:
    return f"{session_id}-{target}"


@dataclass
class SessionExportResult:
    out: Path
    target: str
    session_id: str
    runs: list[dict] = field(default_factory=list)  # each run's ExportResult.as_dict()
    skipped_runs: dict[str, str] = field(default_factory=dict)  # run id -> why left out

    def as_dict(self) -> dict:
        return {
            "out": str(self.out),
            "target": self.target,
            "session_id": self.session_id,
            "runs": self.runs,
            "skipped_runs": self.skipped_runs,
            "files": [Path(r["out"]).name for r in self.runs],
            "messages": sum(r["messages"] for r in self.runs),
            "bytes": sum(r["bytes"] for r in self.runs),
            "partial": any(r["partial"] for r in self.runs),
        }


def plan_session(
    run_paths: Sequence[Path], target: str
) -> tuple[list[tuple[Path, str]], dict[str, str]]:
    """Which runs the target can hold, each with its file name, and why the others cannot."""
    chosen = target_named(target)
    files: list[tuple[Path, str]] = []
    skipped: dict[str, str] = {}
    for path in run_paths:
        with RunReader(path) as run:
            try:
                plan(run, chosen, ExportRequest(run_path=path, target=target, out=path))
            except ExportError as exc:
                skipped[run.run_id] = str(exc)
                continue
            name = run.annotations().get("name") or run.name
            files.append((path, run_file_name(run.run_id, name, chosen.suffix)))
    return files, skipped


def export_session(
    session: SessionAttrs,
    run_paths: Sequence[Path],
    target: str,
    out: Path,
    progress: Progress = no_progress,
) -> SessionExportResult:
    """Export every run of `session` (`run_paths`, oldest first) into the folder `out`."""
    out = Path(out)
    if out.exists():
        raise ExportError(f"{out} exists already; choose another --out or remove it")
    if not out.parent.is_dir():
        raise ExportError(f"cannot write {out}: folder {out.parent} does not exist")
    files, skipped = plan_session(run_paths, target)
    if not files:
        reasons = "; ".join(f"{r}: {w}" for r, w in skipped.items()) or "it has no runs"
        raise ExportError(f"session {session['id']} has no run {target} can hold ({reasons})")
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}-{time.monotonic_ns()}")
    result = SessionExportResult(out=out, target=target, session_id=session["id"])
    result.skipped_runs = skipped
    try:
        tmp.mkdir()
        for k, (path, name) in enumerate(files):

            def part(done: float, k: int = k) -> None:
                progress(min(0.99, (k + done) / len(files)))

            request = ExportRequest(run_path=path, target=target, out=tmp / name, session=session)
            one = export_run(request, part).as_dict()
            one["out"] = str(out / name)
            result.runs.append(one)
        os.replace(tmp, out)
    except BaseException:
        _remove(tmp)
        raise
    progress(1.0)
    return result


__all__ = [
    "SessionExportResult",
    "export_session",
    "plan_session",
    "run_file_name",
    "session_folder_name",
]
