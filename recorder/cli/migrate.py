"""`recorder migrate`: rewrite a run of an older format version as the current one.

The work is recorder/store/migrate.py's; here are only the refusals said plainly, the exit code
(1 when the migration failed and left the run as it was, 2 for bad input, as every command) and
the catalog entry brought up to date afterwards. Imports stay inside the command: `--help` must
not load zarr (tests/cli/test_startup.py).
"""

from __future__ import annotations

import click

from recorder import config
from recorder.cli.options import data_options, open_catalog
from recorder.errors import RecorderError, StoreError

EXIT_FAILED = 1  # as recorder.cli.main.EXIT_FAILED (which imports this module)


@click.command()
@click.argument("run")
@click.option(
    "--no-backup", is_flag=True,
    help="Delete the old run once the new one is verified (default: keep it in runs/.migrate/).",
)  # fmt: skip
@click.option(
    "--force", is_flag=True, help="Rewrite the run even if it is in the current format already."
)
@data_options
def migrate(run, no_backup, force, data, catalog):
    """Rewrite RUN in the current run format, keeping every message byte for byte."""
    from recorder.store import layout
    from recorder.store import migrate as store
    from recorder.store.find import resolve_run

    folder = config.data_dir(data, create=False)
    path = resolve_run(config.runs_dir(folder), run)
    attrs = store.run_attrs(path)
    version = attrs.get("format_version")
    if store.is_current(attrs) and not force:
        click.echo(f"{path.name}: format {version} is the current format already: nothing to do")
        return 0
    try:
        store.migrate_run(path, backup=not no_backup, force=force)
    except StoreError as exc:
        click.echo(f"error: {' '.join(str(exc).split())}", err=True)
        return EXIT_FAILED
    kept = store.backup_path(path, int(version or 0))
    click.echo(
        f"{path.name}: format {version} -> {layout.FORMAT_VERSION}, every message verified"
        + ("" if no_backup else f"; the old run is kept at {kept}")
    )
    try:
        cat = open_catalog(catalog, folder)
        try:
            cat.index_path(path)
        finally:
            cat.close()
    except RecorderError as exc:
        click.echo(f"warning: {exc} (run `recorder reindex` later)", err=True)
    return 0
