"""Finding a run's folder in a data folder by its id: the one way every front end resolves RUN."""

from __future__ import annotations

from pathlib import Path

from recorder.errors import RunNotFound, UsageError
from recorder.store import layout


def resolve_run(runs_dir: Path, run: str, *, prefix: bool = True) -> Path:
    """The folder of run `run` in `runs_dir`, or RunNotFound.

    With `prefix` (the CLI) a unique start of the id is enough, and a run folder that is a
    symlink is followed: the user at the shell can read it anyway. Without it (the web API,
    jobs and workers, which act for remote callers) only the exact id of a real folder counts:
    a checked name that is no symlink cannot lead outside the runs folder.
    """
    try:
        layout.check_name("run id", run)
    except UsageError:
        raise RunNotFound(f"no run {run!r}") from None
    exact = runs_dir / run
    if not prefix:
        if exact.is_symlink() or not (exact / "zarr.json").is_file():
            raise RunNotFound(f"no run {run!r}")
        return exact
    if (exact / "zarr.json").is_file():
        return exact
    from recorder.store.recover import run_dirs  # zarr: only when the id is not exact

    matches = [p for p in run_dirs(runs_dir) if p.name.startswith(run)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise UsageError(f"run {run!r} is ambiguous: {', '.join(p.name for p in matches[:5])}")
    raise RunNotFound(f"no run {run!r} in {runs_dir}")
