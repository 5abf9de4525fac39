"""A damaged catalog: `recorder reindex` moves it aside and rebuilds it, and what the stores do
not hold (sources, tokens, job history) comes back from the JSON copy kept beside it."""

from __future__ import annotations

import pytest

from recorder import config
from recorder.db.control import Control
from recorder.db.jobs import FAILED, FINISHED, KIND_RECORD
from tests.helpers import cli_json, run_cli

pytestmark = pytest.mark.reliability  # issue 10's reliability suite: pytest -m reliability


@pytest.mark.timeout(120)
def test_reindex_replaces_a_damaged_catalog_and_restores_control_rows(data_dir):
    out = run_cli("demo", "--seconds", "0.3", "--data", data_dir)
    assert out.returncode == 0, out.stderr
    [run] = cli_json("ls", "--data", data_dir)
    out = run_cli("token", "create", "--name", "lab", "--data", data_dir)
    assert out.returncode == 0, out.stderr
    secret = out.stdout.strip().splitlines()[-1]
    control = Control(config.catalog_url(None, data_dir))
    control.create_source("beam", {"protocol": "raw", "endpoint": "tcp://127.0.0.1:5555"})
    done = control.create_job(KIND_RECORD, {"sources": ["beam"]})
    control.finish_job(done["id"], FINISHED)
    pending = control.create_job(KIND_RECORD, {"sources": ["beam"]})
    control.close()

    (data_dir / "catalog.sqlite").write_bytes(b"\x00garbage" * 4096)
    before = run_cli("ls", "--data", data_dir)  # still lists, from the stores
    assert before.returncode == 0 and run["run_id"] in before.stdout, before.stderr

    out = run_cli("reindex", "--data", data_dir)
    assert out.returncode == 0, out.stderr
    assert "indexed 1 runs" in out.stdout
    assert "damaged" in out.stderr and "restored" in out.stderr, out.stderr
    assert len(list(data_dir.glob("catalog.sqlite.corrupt-*"))) == 1

    [again] = cli_json("ls", "--data", data_dir)
    assert again["run_id"] == run["run_id"] and again["tags"] == ["demo"]
    control = Control(config.catalog_url(None, data_dir))
    try:
        assert [s["name"] for s in control.list_sources()] == ["beam"]
        assert control.verify_token(secret) is not None  # the token still signs in
        assert [t["name"] for t in control.list_tokens()] == ["lab"]
        assert control.get_job(done["id"])["state"] == FINISHED
        assert control.get_job(pending["id"])["state"] == FAILED  # never started late
    finally:
        control.close()
    # a sound catalog is left alone
    out = run_cli("reindex", "--data", data_dir)
    assert out.returncode == 0 and "damaged" not in out.stderr and "restored" not in out.stderr
