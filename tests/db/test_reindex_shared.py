"""`recorder reindex` on a catalog that several hosts share (PostgreSQL) rebuilds the runs of
its own data folder and removes only those of its runs that are gone: the runs of other hosts'
folders, which it cannot see, stay in the catalog."""

from __future__ import annotations

import pytest

from recorder import config
from recorder.db.catalog import Catalog
from tests.helpers import run_cli


def _summary(run_id: str, path) -> dict:
    return {"run_id": run_id, "name": "", "path": str(path), "status": "complete",
            "started_ns": 1, "ended_ns": 2, "streams": [], "tags": [], "notes": []}  # fmt: skip


@pytest.mark.timeout(120)
def test_reindex_keeps_the_runs_of_other_folders(pg_url, data, tmp_path):
    catalog = Catalog(pg_url)
    catalog.index_run(_summary("theirs", tmp_path / "other-host" / "runs" / "theirs"))
    catalog.index_run(_summary("mine-gone", config.runs_dir(data) / "mine-gone"))
    out = run_cli("reindex", "--data", data, "--catalog", pg_url)
    assert out.returncode == 0, out.stderr
    assert "removed 1 missing" in out.stdout
    assert catalog.run_ids() == ["theirs"]
    catalog.close()
