"""`recorder export` and `recorder import`: runs out to the files other ecosystems read (NWB,
EXDF, NeXus-like HDF5, MCAP) and such files back in as runs that replay.

The export itself (stream choice, window, whole file or none) is recorder/export/base.py; this
is only the command line around it: names, progress on stderr, one result line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from recorder import config
from recorder.cli.options import data_options
from recorder.cli.text import human_bytes
from recorder.export.targets import TARGET_NAMES


class ExportProgress:
    """A live percentage on a terminal; on a pipe or file a line every 5 s, and only for an
    export that takes longer than that (a short one prints just its result)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.started = time.monotonic()
        self.last = self.started
        self.shown = False

    def __call__(self, done: float) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < (0.2 if self.tty else 5.0):
            return
        self.last, self.shown = now, True
        line = f"exporting  {done * 100:5.1f} %  {now - self.started:.0f} s"
        if self.tty:
            click.echo(f"\r{line}\x1b[K", nl=False, err=True)
        else:
            click.echo(line, err=True)

    def close(self) -> None:
        if self.enabled and self.tty and self.shown:
            click.echo("\r\x1b[K", nl=False, err=True)


def result_line(result: dict) -> str:
    streams = ", ".join(result["streams"])
    line = (
        f"{result['out']}: {result['target']}, {len(result['streams'])} stream"
        f"{'s' if len(result['streams']) != 1 else ''} ({streams}), "
        f"{result['messages']} messages, {human_bytes(result['bytes'])}"
    )
    if result["partial"]:
        line += "; run still recording: exported what was committed"
    return line


@click.command("export")
@click.argument("run", required=False)
@click.option(
    "--session", metavar="ID",
    help="Export every run of this session (instead of RUN) into one folder, one file per run.",
)  # fmt: skip
@click.option(
    "--to", "target", type=click.Choice(TARGET_NAMES), required=True,
    help="File format: nwb (Open Ephys), exdf (Karabo, EuXFEL HDF5), hdf5 (images, "
    "NeXus-like), mcap (every stream; Foxglove).",
)  # fmt: skip
@click.option(
    "--stream", "streams", multiple=True, metavar="NAME",
    help="Export only this stream (repeatable; default: every stream the target can hold).",
)  # fmt: skip
@click.option("--start", type=float, metavar="SECONDS", help="From this far into the run.")
@click.option("--end", type=float, metavar="SECONDS", help="Up to this far into the run.")
@click.option(
    "--out", type=click.Path(dir_okay=True, path_type=Path), metavar="PATH",
    help="Where to write (default: ./<run id><suffix>, with -<start>-<end> when windowed).",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="The result as JSON (docs/export.md).")
@click.option("--quiet", "-q", is_flag=True, help="No progress line.")
@data_options
def export(run, session, target, streams, start, end, out, as_json, quiet, data, catalog):
    """Export RUN (or a window of it) to a file another ecosystem reads; or with --session
    every run of a session into one folder.

    The file appears only when complete; on any failure (a full disk) the partial file is
    removed. A run still recording is exported as far as it is committed.
    """
    from recorder.export.base import ExportRequest, export_run
    from recorder.export.targets import export_name, target_named
    from recorder.store.find import resolve_run

    if session is not None:
        if run is not None:
            raise click.UsageError("give RUN or --session ID, not both")
        if streams or start is not None or end is not None:
            raise click.UsageError("--session exports whole runs: no --stream, --start, --end")
        return _export_session(session, target, out, as_json, quiet, data, catalog)
    if run is None:
        raise click.UsageError("give RUN or --session ID")
    for value, flag in ((start, "--start"), (end, "--end")):
        if value is not None and value < 0:
            raise click.BadParameter("must be 0 or more", param_hint=flag)
    folder = config.data_dir(data, create=False)
    path = resolve_run(config.runs_dir(folder), run)
    if out is None:
        out = Path.cwd() / export_name(path.name, target_named(target).suffix, start, end)
    progress = ExportProgress(enabled=not quiet and not as_json)
    request = ExportRequest(
        run_path=path, target=target, out=Path(out).absolute(), streams=tuple(streams),
        start=start, end=end,
    )  # fmt: skip
    try:
        result = export_run(request, progress).as_dict()
    finally:
        progress.close()
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return 0
    for name, why in result["skipped"].items():
        click.echo(f"skipped stream {name}: {why}", err=True)
    click.echo(result_line(result))
    return 0


def _export_session(session_id, target, out, as_json, quiet, data, catalog) -> int:
    from recorder.cli.options import open_catalog
    from recorder.export.session import export_session, session_folder_name
    from recorder.manager.planning import session_run_ids
    from recorder.store.sessions import SessionFiles, check_id

    folder = config.data_dir(data, create=False)
    session = SessionFiles(folder).get(check_id(session_id))
    cat = open_catalog(catalog, folder)
    try:
        run_ids = session_run_ids(cat, session_id)
    finally:
        cat.close()
    runs_dir = config.runs_dir(folder)
    if out is None:
        out = Path.cwd() / session_folder_name(session_id, target)
    progress = ExportProgress(enabled=not quiet and not as_json)
    try:
        result = export_session(
            session, [runs_dir / r for r in run_ids], target, Path(out).absolute(), progress
        ).as_dict()
    finally:
        progress.close()
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return 0
    for run_id, why in result["skipped_runs"].items():
        click.echo(f"skipped run {run_id}: {why}", err=True)
    for one in result["runs"]:
        click.echo(result_line(one))
    click.echo(
        f"{result['out']}: session {session_id}, {len(result['runs'])} run"
        f"{'s' if len(result['runs']) != 1 else ''}, {human_bytes(result['bytes'])}"
    )
    return 0


@click.command("import")
@click.argument("file", type=click.Path(exists=True, path_type=Path))
@click.option("--name", default="", help="Human name of the new run.")
@data_options
def import_(file, name, data, catalog):
    """Import FILE (.mcap, or an EXDF run: a folder of .h5 files or one) as a new run that
    replays over ZMQ; prints the new run's id."""
    from recorder.cli.options import open_catalog
    from recorder.export.targets import import_file

    folder = config.data_dir(data)
    path = import_file(file, config.runs_dir(folder), name=name)
    cat = open_catalog(catalog, folder)
    try:
        cat.index_path(path)
    finally:
        cat.close()
    click.echo(path.name)
    return 0


COMMANDS = (export, import_)
