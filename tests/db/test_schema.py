"""Every table's schema is versioned: a fresh catalog is made by the migrations, a catalog made
before versions existed is stamped (never recreated) and keeps its rows, one whose run index was
made by `create_all` (before revision 0004) keeps it, the models match the migrations, and
several processes opening a fresh catalog at once all succeed; on SQLite and PostgreSQL alike
(`catalog_url`, tests/db/conftest.py)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from recorder.db import schema
from recorder.db.catalog import Catalog
from recorder.db.control import Control
from recorder.db.engine import make_engine
from recorder.db.tables import control_metadata, index_metadata
from recorder.errors import StoreError

# The control tables exactly as `create_all` made them before they were versioned (copied from
# recorder/db/control.py at that time): the shape of every catalog already out there.
legacy = sa.MetaData()

sources = sa.Table(
    "sources",
    legacy,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("created_ns", sa.BigInteger, nullable=False),
    sa.Column("updated_ns", sa.BigInteger, nullable=False),
)
jobs = sa.Table(
    "jobs",
    legacy,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(8), nullable=False),  # KIND_RECORD or KIND_REPLAY
    sa.Column("host", sa.String(256)),  # the host that must run it; NULL: any manager
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("desired", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("manager", sa.String(320)),  # id of the manager that claimed it
    sa.Column("pid", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("exit_code", sa.Integer),
    sa.Column("stats", sa.JSON),  # written by the worker
    sa.Column("proc", sa.JSON),  # written by the manager: cpu, memory of the worker process
    sa.Column("created_ns", sa.BigInteger, nullable=False),
    sa.Column("started_ns", sa.BigInteger),
    sa.Column("ended_ns", sa.BigInteger),
    sa.Column("updated_ns", sa.BigInteger, nullable=False),
    sa.Column("stop_requested_ns", sa.BigInteger),
    sa.Index("ix_jobs_state", "state"),
)
commands = sa.Table(
    "job_commands",
    legacy,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(32), nullable=False, index=True),
    sa.Column("op", sa.String(16), nullable=False),
    sa.Column("arg", sa.Float, nullable=False),
    sa.Column("created_ns", sa.BigInteger, nullable=False),
)
managers = sa.Table(
    "managers",
    legacy,
    sa.Column("id", sa.String(320), primary_key=True),
    sa.Column("host", sa.String(256), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("started_ns", sa.BigInteger, nullable=False),
    sa.Column("heartbeat_ns", sa.BigInteger, nullable=False),
)
tokens = sa.Table(
    "tokens",
    legacy,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_ns", sa.BigInteger, nullable=False),
    sa.Column("last_used_ns", sa.BigInteger),
)


#: The run index as `create_all` made it before revision 0004 (its shape never changed), and the
#: same without the sessions tables, as in a catalog older than revision 0003.
INDEX = ("runs", "streams", "tags", "notes", "sessions", "session_runs")
INDEX_BEFORE_SESSIONS = ("runs", "streams", "tags", "notes")


def _url(tmp_path, name: str = "catalog.sqlite") -> str:
    return f"sqlite:///{tmp_path / name}"


def _revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return schema.revision(conn)
    finally:
        engine.dispose()


def _legacy_catalog(url: str) -> None:
    engine = sa.create_engine(url)
    legacy.create_all(engine)
    _index_by_create_all(engine, INDEX_BEFORE_SESSIONS)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO sources VALUES ('cam', '{\"endpoint\": \"tcp://h:1\"}', 1, 2)"
        )
        conn.exec_driver_sql(
            "INSERT INTO jobs (id, kind, params, desired, state, created_ns, updated_ns) "
            "VALUES ('rec-1', 'record', '{}', 'stopped', 'finished', 1, 2)"
        )
        conn.exec_driver_sql("INSERT INTO tokens VALUES ('t1', 'ci', 'ab', 5, NULL)")
    engine.dispose()


def _index_by_create_all(engine: sa.Engine, names: tuple[str, ...]) -> None:
    """The run index tables as a recorder before revision 0004 made them, with a run in them."""
    index_metadata.create_all(engine, tables=[index_metadata.tables[n] for n in names])
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO runs (run_id, name, path, status, started_ns, messages, bytes, gaps, "
            "drops, rejects, protocols) VALUES ('r1', 'old', '/d/r1', 'complete', 5, 3, 30, "
            "0, 0, 0, 'raw')"
        )
        conn.exec_driver_sql(
            "INSERT INTO streams VALUES ('r1', 's', 'raw', 'tcp://h:1', 'SUB', 'connect', "
            "3, 30, 0, 0, 0)"
        )
        conn.exec_driver_sql("INSERT INTO tags VALUES ('r1', 'keep')")
        conn.exec_driver_sql(
            "INSERT INTO notes (run_id, created_ns, text) VALUES ('r1', 6, 'a note')"
        )
        if "sessions" in names:
            conn.exec_driver_sql(
                "INSERT INTO sessions VALUES ('ses1', 'mouse 12', '', '[]', '{}', NULL, 1, "
                "NULL, '[]', '[]', '{}', 1, 'mouse 12')"
            )
            conn.exec_driver_sql("INSERT INTO session_runs VALUES ('r1', 'ses1')")


def _assert_run_index_kept(catalog: Catalog, sessions: bool) -> None:
    run = catalog.get_run("r1")
    assert (run["name"], run["messages"], run["tags"]) == ("old", 3, ["keep"])
    assert catalog.search_runs(q="a note")[1] == 1
    assert catalog.session_of("r1") == ("ses1" if sessions else None)
    catalog.index_run(
        {"run_id": "r2", "name": "new", "path": "/d/r2", "status": "complete",
         "started_ns": 7, "streams": [], "tags": ["t"], "notes": [{"created_ns": 8, "text": "n"}]}
    )  # fmt: skip
    catalog.remove_run("r1")  # the cascade still holds
    assert catalog.run_ids() == ["r2"]


RUNS_LIST_INDEXES = {"ix_runs_started", "ix_runs_name", "ix_runs_bytes", "ix_runs_messages"}


def _row_at(url: str, revision: str, insert: str) -> None:
    """A catalog migrated to `revision` only, holding the row `insert` adds: what an older
    recorder left, for the next revisions to keep."""
    command.upgrade(schema.alembic_config(url), revision)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(insert))
    engine.dispose()


def _table_sql(url: str) -> dict[str, str]:
    """CREATE statements of the tables and indexes, as SQLite keeps them."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL")
        out = {name: " ".join(sql.split()) for name, sql in rows}
    engine.dispose()
    return {k: v for k, v in out.items() if k != "alembic_version"}


def test_head_is_the_newest_migration():
    scripts = ScriptDirectory.from_config(schema.alembic_config())
    assert scripts.get_current_head() == schema.HEAD


def test_a_fresh_catalog_gets_the_head_revision(catalog_url):
    url = catalog_url
    Catalog(url).close()
    assert _revision(url) == schema.HEAD
    engine = make_engine(url)
    names = set(sa.inspect(engine).get_table_names())
    engine.dispose()
    assert names == set(control_metadata.tables) | set(INDEX) | {"alembic_version"}


def test_an_unversioned_catalog_is_stamped_and_keeps_its_rows(catalog_url):
    url = catalog_url
    _legacy_catalog(url)
    sqlite = url.startswith("sqlite")
    before = _table_sql(url) if sqlite else {}
    catalog = Catalog(url)
    control = Control(catalog.engine)
    assert _revision(url) == schema.HEAD
    assert control.get_source("cam")["config"] == {"endpoint": "tcp://h:1"}
    assert control.get_job("rec-1")["state"] == "finished"
    assert [t["name"] for t in control.list_tokens()] == ["ci"]
    _assert_run_index_kept(catalog, sessions=False)
    catalog.close()
    if not sqlite:
        return
    after = _table_sql(url)
    # not recreated, not altered, but for what later revisions changed (0002: tokens.expires_ns,
    # 0003: job_commands.text, managers.info, 0005: jobs.lost_ns, each added as the table's
    # last column)
    added = {
        "tokens": " expires_ns BIGINT,",
        "job_commands": " text TEXT,",
        "managers": " info JSON,",
        "jobs": " lost_ns BIGINT,",
    }
    assert {k: after[k] for k in before if k not in added} == {
        k: v for k, v in before.items() if k not in added
    }
    for table, column in added.items():
        assert after[table].replace(column, "") == before[table]


@pytest.mark.parametrize("sessions", [False, True], ids=["before-0003", "0003"])
def test_a_run_index_made_by_create_all_is_kept_with_its_rows(catalog_url, sessions):
    """Revision 0004 takes over the run index tables of a catalog at revision 0003 (or 0002,
    before the sessions tables existed): it adds what is missing and keeps the rest."""
    command.upgrade(schema.alembic_config(catalog_url), "0003" if sessions else "0002")
    engine = sa.create_engine(catalog_url)
    _index_by_create_all(engine, INDEX if sessions else INDEX_BEFORE_SESSIONS)
    engine.dispose()
    catalog = Catalog(catalog_url)
    assert _revision(catalog_url) == schema.HEAD
    _assert_run_index_kept(catalog, sessions=sessions)
    catalog.close()


def test_revision_0005_adds_lost_ns_to_a_catalog_at_0004_and_keeps_its_jobs(catalog_url):
    """Several hosts: a catalog at 0004 with jobs in it gets `jobs.lost_ns` (NULL for every job
    there), and a job can be lost and repaired afterwards."""
    _row_at(
        catalog_url, "0004",
        "INSERT INTO jobs (id, kind, host, params, desired, state, manager, created_ns, "
        "updated_ns) VALUES ('rec-0004', 'record', 'hostA', '{}', 'running', 'running', "
        "'hostA/1/1', 1, 1)",
    )  # fmt: skip
    control = Control(catalog_url)
    assert _revision(catalog_url) == schema.HEAD
    job = control.get_job("rec-0004")
    assert (job["state"], job["host"], job["lost_ns"]) == ("running", "hostA", None)
    lost = control.fail_lost_jobs(time.time_ns(), besides="hostB")  # hostA never beat
    assert [j["id"] for j in lost] == ["rec-0004"]
    assert [j["id"] for j in control.lost_jobs("hostA")] == ["rec-0004"]
    control.close()
    command.downgrade(schema.alembic_config(catalog_url), "0004")  # and back, the row kept
    engine = sa.create_engine(catalog_url)
    with engine.connect() as conn:
        assert "lost_ns" not in {c["name"] for c in sa.inspect(conn).get_columns("jobs")}
        assert conn.execute(sa.text("SELECT state FROM jobs")).scalar() == "failed"
    engine.dispose()


def test_the_migrations_make_exactly_the_tables_create_all_made(tmp_path):
    legacy_url, migrated_url = _url(tmp_path, "legacy.sqlite"), _url(tmp_path, "migrated.sqlite")
    _legacy_catalog(legacy_url)
    command.upgrade(schema.alembic_config(migrated_url), schema.UNVERSIONED)
    want = _table_sql(legacy_url)
    # (the runs list's indexes came with revision 0006: create_all makes them now)
    control = {k: v for k, v in want.items() if k not in INDEX and k not in RUNS_LIST_INDEXES}
    got = _table_sql(migrated_url)
    assert {k: got.get(k) for k in control} == control  # tables and indexes, to the letter
    # and revision 0004 the run index that `create_all` made before it
    command.upgrade(schema.alembic_config(migrated_url), "0004")
    index = {k: v for k, v in want.items() if k in INDEX}
    got = _table_sql(migrated_url)
    assert {k: got.get(k) for k in index} == index
    command.upgrade(schema.alembic_config(migrated_url), "head")
    got = _table_sql(migrated_url)
    assert {k: got.get(k) for k in RUNS_LIST_INDEXES} == {k: want[k] for k in RUNS_LIST_INDEXES}


def test_the_models_match_the_migrations(catalog_url):
    """`alembic check`: autogenerate finds nothing to add for any table of tables.py."""
    url = catalog_url
    Control(url).close()
    engine = make_engine(url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"include_name": schema.include_name, "compare_type": True}
        )
        assert compare_metadata(ctx, list(schema.METADATA)) == []
        assert set(sa.inspect(conn).get_table_names()) - {"alembic_version"} == {
            *control_metadata.tables,
            *index_metadata.tables,
        }
    engine.dispose()
    command.check(schema.alembic_config(url))  # the same, as the `alembic check` command


def test_a_catalog_from_a_newer_recorder_is_refused(catalog_url):
    url = catalog_url
    Catalog(url).close()
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    engine.dispose()
    with pytest.raises(StoreError, match="9999"):
        Catalog(url)


def test_half_the_control_tables_without_a_version_is_refused(catalog_url):
    url = catalog_url
    engine = sa.create_engine(url)
    control_metadata.tables["sources"].create(engine)
    engine.dispose()
    with pytest.raises(StoreError, match="jobs"):
        Control(url)


OPEN = """
import sys, time
from pathlib import Path
from recorder.db.catalog import Catalog
from recorder.db.control import Control
Path(sys.argv[3]).touch()
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.002)
cat = Catalog(sys.argv[1])
Control(cat.engine).create_token("p")
"""


@pytest.mark.timeout(120)
def test_processes_opening_a_fresh_catalog_at_once_all_succeed(tmp_path, catalog_url):
    url, go = catalog_url, tmp_path / "go"
    ready = [tmp_path / f"ready{i}" for i in range(4)]
    procs = [
        subprocess.Popen([sys.executable, "-c", OPEN, url, str(go), str(r)], stderr=subprocess.PIPE)
        for r in ready
    ]
    deadline = time.monotonic() + 60
    while not all(r.exists() for r in ready):  # all imported, all waiting for `go`
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.01)
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=100)
        assert p.returncode == 0, err.decode()
    control = Control(url)
    assert len(control.list_tokens()) == 4
    control.close()
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").all() == [
            (schema.HEAD,)
        ]
    engine.dispose()


def test_revision_0006_indexes_the_runs_list_orders_of_a_catalog_at_0005(catalog_url):
    """The runs list's orders read off an index (a page of 10,000 runs is not a sort of all of
    them); the runs there are kept, and the indexes go again on downgrade."""
    _row_at(
        catalog_url, "0005",
        "INSERT INTO runs (run_id, name, path, status, started_ns, messages, bytes, gaps, "
        "drops, rejects, protocols) VALUES ('r-0005', 'kept', '/x', 'complete', 5, 1, 2, "
        "0, 0, 0, 'raw')",
    )  # fmt: skip
    catalog = Catalog(catalog_url)
    assert _revision(catalog_url) == schema.HEAD
    rows, total = catalog.search_runs(sort="-bytes")
    assert (total, rows[0]["name"]) == (1, "kept")
    catalog.close()
    engine = sa.create_engine(catalog_url)
    indexes = {i["name"]: i["column_names"] for i in sa.inspect(engine).get_indexes("runs")}
    engine.dispose()
    assert indexes["ix_runs_started"] == ["started_ns", "run_id"]
    assert {"ix_runs_name", "ix_runs_bytes", "ix_runs_messages"} <= set(indexes)
    command.downgrade(schema.alembic_config(catalog_url), "0005")
    engine = sa.create_engine(catalog_url)
    assert not {i["name"] for i in sa.inspect(engine).get_indexes("runs")} & set(indexes)
    engine.dispose()
