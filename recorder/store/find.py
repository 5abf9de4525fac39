"""Finding runs in a data folder by id (or unique id prefix), for every command that takes RUN."""

from __future__ import annotations

from pathlib import Path

from recorder.errors import RunNotFound, UsageError
from recorder.store import layout
from recorder.store.recover import run_dirs


def resolve_run(runs_dir: Path, run: str) -> Path:
    try:
        layout.check_name("run id", run)
    except UsageError:
        raise RunNotFound(f"no run {run!r}") from None
    exact = runs_dir / run
    if (exact / "zarr.json").is_file():
        return exact
    matches = [p for p in run_dirs(runs_dir) if p.name.startswith(run)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise UsageError(f"run {run!r} is ambiguous: {', '.join(p.name for p in matches[:5])}")
    raise RunNotFound(f"no run {run!r} in {runs_dir}")
