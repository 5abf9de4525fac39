"""Only a catalog SQLite calls corrupt is damaged: a locked or unreadable one is an error to
report, never a reason for `reindex` to move a healthy catalog aside."""

from __future__ import annotations

import sqlite3

import pytest

from recorder import config
from recorder.db.catalog import Catalog, damage
from recorder.db.control import Control
from recorder.errors import StoreError
from tests.helpers import run_cli

pytestmark = pytest.mark.reliability  # issue 10's reliability suite: pytest -m reliability


def _locked(data_dir) -> sqlite3.Connection:
    """A sound catalog, held by another connection's exclusive lock."""
    Control(config.catalog_url(None, data_dir)).close()
    db = data_dir / "catalog.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    return holder


def test_a_garbage_file_is_damage_and_opening_it_says_how_to_mend_it(data_dir):
    (data_dir / "catalog.sqlite").write_bytes(b"\x00garbage" * 4096)
    url = config.catalog_url(None, data_dir)
    assert "not a database" in damage(url)
    with pytest.raises(StoreError, match="recorder reindex"):
        Catalog(url)


def test_a_locked_catalog_is_no_damage(data_dir):
    holder = _locked(data_dir)
    try:
        with pytest.raises(StoreError, match="locked"):
            damage(config.catalog_url(None, data_dir), timeout=0.1)
    finally:
        holder.close()
    assert damage(config.catalog_url(None, data_dir)) is None


@pytest.mark.timeout(90)
def test_reindex_leaves_a_locked_catalog_in_place(data_dir):
    holder = _locked(data_dir)
    try:
        out = run_cli("reindex", "--data", data_dir)
    finally:
        holder.close()
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.startswith("error:") and "locked" in out.stderr, out.stderr
    assert not list(data_dir.glob("catalog.sqlite.corrupt-*"))


@pytest.mark.timeout(60)
def test_other_commands_on_a_damaged_catalog_point_to_reindex(data_dir):
    (data_dir / "catalog.sqlite").write_bytes(b"\x00garbage" * 4096)
    out = run_cli("token", "list", "--data", data_dir)
    assert out.returncode != 0 and "recorder reindex" in out.stderr, out.stderr
