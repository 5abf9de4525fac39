"""tests/db runs against both catalogs the recorder supports: `catalog_url` is an SQLite file
in tmp_path, then a fresh database on the test PostgreSQL server (tests/pg.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    return request.getfixturevalue("pg_url")
