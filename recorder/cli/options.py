"""Options and set-up every CLI command shares: where the data folder and the catalog are."""

from __future__ import annotations

from pathlib import Path

import click

from recorder import config
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
        help=f"Data folder (env {config.DATA_ENV}; default ./{config.DEFAULT_DATA}).",
    )(f)


def open_data(data: str | None, catalog: str | None) -> tuple[Path, Catalog]:
    folder = config.data_dir(data)
    return folder, Catalog(config.catalog_url(catalog, folder))
