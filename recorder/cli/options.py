"""Options and set-up every CLI command shares: where the data folder and the catalog are.

The catalog (SQLAlchemy, Alembic) is imported only by the functions that open it, so that
`recorder --help` and the commands that never touch it start fast (tests/cli/test_startup.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from recorder import config
from recorder.errors import RecorderError

if TYPE_CHECKING:
    from recorder.db.catalog import Catalog


def data_options(f):
    f = click.option(
        "--catalog",
        metavar="URL",
        help=f"SQLAlchemy URL of the catalog (env {config.CATALOG_ENV}; "
        "default: catalog.sqlite in the data folder).",
    )(f)
    return click.option(
        "--data",
        "data",
        metavar="DIR",
        help=f"Data folder, or s3://bucket/prefix (docs/storage.md) (env {config.DATA_ENV}; "
        f"default ./{config.DEFAULT_DATA}).",
    )(f)


def open_data(data: str | None, catalog: str | None) -> tuple[Path, Catalog]:
    folder = config.data_dir(data)
    return folder, open_catalog(catalog, folder)


def open_catalog(catalog: str | None, folder: Path) -> Catalog:
    """The catalog of a data folder, its schema brought up to date."""
    from recorder.db.catalog import Catalog

    return Catalog(config.catalog_url(catalog, folder))


def read_data(data: str | None, catalog: str | None) -> tuple[Path, Catalog | None, str]:
    """For commands that only read: the existing data folder (never created) and its catalog,
    or None and why not when it cannot be opened (read-only folder, full disk, damaged file);
    the caller then reads the run stores, which are the truth. A missing SQLite catalog is not
    created (no reason given: a folder nobody indexed yet). A server catalog that cannot be
    reached is an error: it indexes the runs of every host, which this folder does not hold."""
    from recorder.db.catalog import Catalog
    from recorder.db.engine import sqlite_file

    folder = config.data_dir(data, create=False)
    url = config.catalog_url(catalog, folder)
    db = sqlite_file(url)
    if db is not None and not db.exists():
        return folder, None, ""
    try:
        return folder, Catalog(url), ""
    except RecorderError as exc:
        if db is None:  # a server catalog (PostgreSQL) lists other hosts' runs: no stand-in here
            raise
        return folder, None, str(exc)
