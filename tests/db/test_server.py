"""What a server database (PostgreSQL) adds: the connections of a live Catalog and Control
survive a restart of the server, a call while it is down is a StoreError at once (never a hang,
never a driver error), and text that PostgreSQL refuses but SQLite stores is written anyway."""

from __future__ import annotations

import time

import pytest

from recorder.db.catalog import Catalog
from recorder.db.control import Control
from recorder.db.engine import NUL_STANDIN, make_engine, shown_url
from recorder.errors import StoreError, UsageError


def _summary(run_id: str, **kw) -> dict:
    return {
        "run_id": run_id, "name": "", "path": f"/data/runs/{run_id}", "status": "complete",
        "started_ns": 1, "ended_ns": 2, "messages": 1, "bytes": 1, "streams": [],
        "tags": [], "notes": [],
    } | kw  # fmt: skip


@pytest.mark.timeout(60)
def test_a_live_catalog_and_control_go_on_after_the_server_restarts(pg_server, pg_url):
    catalog = Catalog(pg_url)
    control = Control(catalog.engine)
    catalog.index_run(_summary("r1"))
    control.create_token("before")
    with catalog.engine.connect():  # a second pooled connection, idle through the restart
        pass
    pg_server.restart()
    assert catalog.has_run("r1")  # the pooled connections were cut: replaced, not handed out
    control.create_token("after")
    assert [t["name"] for t in control.list_tokens()] == ["before", "after"]
    catalog.close()


@pytest.mark.timeout(60)
def test_a_call_while_the_server_is_down_is_a_store_error_and_the_next_one_works(pg_server, pg_url):
    control = Control(pg_url)
    control.put_source("cam", {"endpoint": "tcp://h:1"})
    pg_server.stop()
    try:
        t0 = time.monotonic()
        with pytest.raises(StoreError, match="catalog: OperationalError"):
            control.list_sources()
        assert time.monotonic() - t0 < 10
    finally:
        pg_server.start()
    assert [s["name"] for s in control.list_sources()] == ["cam"]
    control.close()


def test_text_postgresql_refuses_is_written_anyway(catalog_url):
    """A NUL character (PostgreSQL refuses it in text) is stored as U+FFFD and found by a
    search with the NUL; a run name longer than its index column is cut in the index."""
    catalog = Catalog(catalog_url)
    control = Control(catalog.engine)
    notes = [{"created_ns": 1, "text": "odd\x00byte"}]
    catalog.index_run(_summary("r1", name="n" * 300, notes=notes, error="bad\x00"))
    run = catalog.get_run("r1")
    assert run["name"] == "n" * 256 or run["name"] == "n" * 300  # SQLite keeps it whole
    assert run["error"] in ("bad\x00", f"bad{NUL_STANDIN}")
    assert catalog.search_runs(q="odd\x00byte")[1] == 1
    job = control.create_job("record", {"name": "a\x00b"})
    assert control.finish_job(job["id"], "failed", error="worker said \x00")
    assert control.get_job(job["id"])["params"] == {"name": "a\x00b"}  # JSON escapes it
    with pytest.raises(UsageError, match="128"):
        control.create_token("t" * 129)
    catalog.close()


def test_pool_settings_and_a_masked_password(monkeypatch):
    url = "postgresql+psycopg://rec:secret@127.0.0.1:1/recorder"
    engine = make_engine(url)
    assert engine.pool.size() == 8 and engine.pool._pre_ping  # type: ignore[attr-defined]
    monkeypatch.setenv("RECORDER_DB_POOL_SIZE", "3")
    assert make_engine(url).pool.size() == 3
    monkeypatch.setenv("RECORDER_DB_POOL_SIZE", "many")
    with pytest.raises(StoreError, match="RECORDER_DB_POOL_SIZE"):
        make_engine(url)
    assert "secret" not in shown_url(url) and "rec:***@" in shown_url(url)
    with pytest.raises(StoreError) as err:
        make_engine("postgresql+nosuchdriver://rec:secret@h/db")
    assert "secret" not in str(err.value)


@pytest.mark.timeout(120)
def test_rows_replaced_by_many_at_once_never_collide(catalog_url):
    """Re-indexing one run, re-tagging it, saving one source and beating one heartbeat from
    eight threads at once: on PostgreSQL, delete-then-insert from two transactions at once
    would fail on the primary key; they take turns (engine.serialize)."""
    from concurrent.futures import ThreadPoolExecutor

    catalog = Catalog(catalog_url)
    control = Control(catalog.engine)
    session = {
        "id": "ses1", "name": "s", "description": "", "experimenters": [], "subject": {},
        "template": None, "started_ns": 1, "ended_ns": None, "tags": [], "notes": [],
        "meta": {}, "updated_ns": 1,
    }  # fmt: skip
    catalog.index_run(_summary("r1"))

    def churn(i: int) -> None:
        catalog.index_run(_summary("r1", tags=[f"t{i % 3}"], session=session | {"updated_ns": i}))
        catalog.set_tags("r1", ["a", f"b{i}"])
        control.put_source("cam", {"endpoint": f"tcp://h:{i}"})
        control.heartbeat("m1", pid=i, data="/d", started_ns=1)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(churn, range(80)))
    assert catalog.has_run("r1") and catalog.session_of("r1") == "ses1"
    assert [s["name"] for s in control.list_sources()] == ["cam"]
    catalog.close()
