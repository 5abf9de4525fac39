"""The JSON copy of the control tables beside an SQLite catalog (recorder/db/backup.py): a
deleted catalog gets its rows back on the next start of any command, a copy is never replaced
by one from an empty new catalog, a damaged copy is refused in one line and kept, and the copy
of the job history stays bounded."""

from __future__ import annotations

import json
import time

import pytest

from recorder import config
from recorder.cli.serve import SERVE_TOKEN_NAME
from recorder.db import backup
from recorder.db.control import Control
from recorder.db.jobs import FINISHED, KIND_RECORD, PENDING, RUNNING
from recorder.db.tables import jobs
from recorder.errors import StoreError
from tests.helpers import run_cli

pytestmark = pytest.mark.reliability  # issue 10's reliability suite: pytest -m reliability


def _delete_catalog(data_dir) -> None:
    for suffix in ("", "-wal", "-shm"):
        (data_dir / f"catalog.sqlite{suffix}").unlink(missing_ok=True)


def _copy(data_dir):
    return data_dir / "catalog-control.json"


def test_a_deleted_catalog_comes_back_before_the_first_write(data_dir):
    url = config.catalog_url(None, data_dir)
    control = Control(url)
    secret, _ = control.create_token("keepme")
    control.create_source("beam", {"protocol": "raw", "endpoint": "tcp://127.0.0.1:5555"})
    control.close()
    _delete_catalog(data_dir)

    control = Control(url)  # what `recorder serve` does at every start
    try:
        control.revoke_tokens_named(SERVE_TOKEN_NAME)
        control.create_token(SERVE_TOKEN_NAME)
        assert control.verify_token(secret)["name"] == "keepme"
        assert [s["name"] for s in control.list_sources()] == ["beam"]
    finally:
        control.close()
    names = [r[1] for r in json.loads(_copy(data_dir).read_text())["tables"]["tokens"]["rows"]]
    assert sorted(names) == sorted(["keepme", SERVE_TOKEN_NAME])


@pytest.mark.timeout(120)
def test_token_create_after_deleting_the_catalog_keeps_the_old_token(data_dir):
    out = run_cli("token", "create", "--name", "keepme", "--data", data_dir)
    assert out.returncode == 0, out.stderr
    secret = out.stdout.strip().splitlines()[-1]
    _delete_catalog(data_dir)
    out = run_cli("token", "create", "--name", "new", "--data", data_dir)
    assert out.returncode == 0, out.stderr
    out = run_cli("reindex", "--data", data_dir)
    assert out.returncode == 0, out.stderr
    control = Control(config.catalog_url(None, data_dir))
    try:
        assert control.verify_token(secret) is not None
        assert sorted(t["name"] for t in control.list_tokens()) == ["keepme", "new"]
    finally:
        control.close()


def test_a_copy_with_rows_that_is_not_restored_is_moved_aside(data_dir):
    url = config.catalog_url(None, data_dir)
    control = Control(url)
    control.create_token("here")
    copy = _copy(data_dir)
    saved = copy.read_text()
    try:
        with control.engine.begin() as conn:  # a catalog that has rows: nothing restored
            assert backup.restore_fresh(conn, data_dir / "catalog.sqlite") is None
    finally:
        control.close()
    [prev] = data_dir.glob("catalog-control.json.prev-*")
    assert prev.read_text() == saved and not copy.exists()


_BAD_COPIES = {
    "truncated": lambda text: text[: len(text) // 2],
    "foreign": lambda text: json.dumps({"tables": {}}),
    "newer format": lambda text: json.dumps(json.loads(text) | {"format": 99}),
    "row longer than columns": lambda text: _edit(text, lambda t: t["tokens"]["rows"][0].append(1)),
    "missing NOT NULL column": lambda text: _edit(text, _drop_job_kind),
}


def _edit(text: str, change) -> str:
    saved = json.loads(text)
    change(saved["tables"])
    return json.dumps(saved)


def _drop_job_kind(tables: dict) -> None:
    jobs_copy = tables["jobs"]
    i = jobs_copy["columns"].index("kind")
    jobs_copy["columns"].pop(i)
    for row in jobs_copy["rows"]:
        row.pop(i)


@pytest.mark.parametrize("damage", sorted(_BAD_COPIES))
def test_a_bad_copy_is_refused_in_one_line_and_kept(data_dir, damage):
    url = config.catalog_url(None, data_dir)
    control = Control(url)
    control.create_token("lost")
    control.create_job(KIND_RECORD, {"sources": ["beam"]})
    control.close()
    _delete_catalog(data_dir)
    bad_text = _BAD_COPIES[damage](_copy(data_dir).read_text())
    _copy(data_dir).write_text(bad_text)

    with pytest.raises(StoreError, match=r"cannot restore .*; it is kept as .*\.bad-") as err:
        Control(url)
    assert "\n" not in str(err.value)
    [bad] = data_dir.glob("catalog-control.json.bad-*")
    control = Control(url)  # the new catalog opens, empty
    try:
        assert control.list_tokens() == []
        control.create_token("next")
    finally:
        control.close()
    assert bad.read_text() == bad_text  # not overwritten by the new catalog's copy


@pytest.mark.timeout(120)
def test_reindex_with_a_bad_copy_is_one_error_line(data_dir):
    out = run_cli("token", "create", "--name", "lost", "--data", data_dir)
    assert out.returncode == 0, out.stderr
    _copy(data_dir).write_text('{"format": 1, "tables": {"tok')
    (data_dir / "catalog.sqlite").write_bytes(b"\x00garbage" * 4096)
    out = run_cli("reindex", "--data", data_dir)
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
    [line] = [x for x in out.stderr.splitlines() if x.startswith("error:")]
    assert "cannot restore" in line and ".bad-" in line, out.stderr
    out = run_cli("reindex", "--data", data_dir)
    assert out.returncode == 0, out.stderr


def test_the_copy_keeps_active_jobs_and_the_latest_ended_ones(data_dir):
    control = Control(config.catalog_url(None, data_dir))
    now = time.time_ns()
    ended = backup.JOBS_ENDED_KEPT + 5

    def job(i: int, state: str) -> dict:
        done = state == FINISHED
        return {
            "id": f"j{i:05d}", "kind": KIND_RECORD, "params": {}, "desired": "running",
            "state": state, "created_ns": now + i, "updated_ns": now + i,
            "ended_ns": now + i if done else None, "stats": {"messages": i} if done else None,
        }  # fmt: skip

    try:
        with control.engine.begin() as conn:
            rows = [job(i, FINISHED) for i in range(ended)]
            conn.execute(jobs.insert(), [*rows, job(ended, PENDING), job(ended + 1, RUNNING)])
    finally:
        control.close()
    saved = json.loads(_copy(data_dir).read_text())["tables"]["jobs"]
    ids = {r[saved["columns"].index("id")] for r in saved["rows"]}
    assert len(ids) == backup.JOBS_ENDED_KEPT + 2
    assert {f"j{ended:05d}", f"j{ended + 1:05d}", f"j{ended - 1:05d}"} <= ids
    assert not {f"j{i:05d}" for i in range(5)} & ids  # the oldest ended ones are left out
