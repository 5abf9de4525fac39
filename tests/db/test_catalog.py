"""The run index answers the API's search (filters, sort, paging) and the control tables' query
classes share one engine; a database failure surfaces as StoreError, never a driver error."""

from __future__ import annotations

import pytest

from recorder.db.catalog import Catalog
from recorder.db.control import Control
from recorder.errors import NotFound, RunNotFound, StoreError

S = 1_000_000_000
STREAM = {"name": "s", "endpoint": "tcp://h:1", "socket_type": "SUB", "role": "connect",
          "messages": 10, "bytes": 100, "gaps": 0, "drops": 0, "rejects": 0}  # fmt: skip


def _summary(run_id: str, started_s: int, *, name="", protocol="raw", tags=(), notes=(), **kw):
    return {
        "run_id": run_id,
        "name": name,
        "path": f"/data/runs/{run_id}",
        "status": kw.get("status", "complete"),
        "started_ns": started_s * S,
        "ended_ns": (started_s + kw.get("duration_s", 1)) * S,
        "messages": kw.get("messages", 10),
        "bytes": kw.get("bytes", 100),
        "streams": [STREAM | {"protocol": protocol}],
        "tags": list(tags),
        "notes": [{"created_ns": started_s * S, "text": t} for t in notes],
    }


@pytest.fixture
def catalog(catalog_url):
    cat = Catalog(catalog_url)
    for summary in (
        _summary("r1", 100, name="calibration", tags=["calib"], bytes=500),
        _summary("r2", 200, name="beam 50%", protocol="adzmq", notes=["odd_spike here"]),
        _summary("r3", 300, name="night", tags=["calib", "keep"], status="failed", duration_s=9),
    ):
        cat.index_run(summary)
    yield cat
    cat.close()


def _ids(result) -> list[str]:
    rows, _total = result
    return [r["run_id"] for r in rows]


def test_search_filters_combine(catalog):
    assert catalog.search_runs() == (catalog.list_runs(), 3)
    assert _ids(catalog.search_runs(tag="calib")) == ["r3", "r1"]
    assert _ids(catalog.search_runs(protocol="adzmq")) == ["r2"]
    assert _ids(catalog.search_runs(status="failed", tag="calib")) == ["r3"]
    assert _ids(catalog.search_runs(since_ns=150 * S, until_ns=300 * S)) == ["r2"]
    assert _ids(catalog.search_runs(until_ns=-(2**80))) == []  # any date fits the column


def test_search_text_is_a_literal_case_insensitive_substring(catalog):
    assert _ids(catalog.search_runs(q="CALIB")) == ["r3", "r1"]  # name or tag
    assert _ids(catalog.search_runs(q="50%")) == ["r2"]
    assert _ids(catalog.search_runs(q="%")) == ["r2"]  # not a wildcard
    assert _ids(catalog.search_runs(q="d_s")) == ["r2"]  # in a note; `_` is literal
    assert _ids(catalog.search_runs(q="r")) == ["r3", "r2", "r1"]  # in the id


def test_search_sorts_and_pages(catalog):
    assert _ids(catalog.search_runs(sort="started")) == ["r1", "r2", "r3"]
    assert _ids(catalog.search_runs(sort="-bytes")) == ["r1", "r3", "r2"]  # ties: newest first
    assert _ids(catalog.search_runs(sort="-duration")) == ["r3", "r2", "r1"]
    assert _ids(catalog.search_runs(sort="name")) == ["r2", "r1", "r3"]
    rows, total = catalog.search_runs(limit=1, offset=1)
    assert [r["run_id"] for r in rows] == ["r2"] and total == 3
    assert rows[0]["tags"] == []


def test_tags_notes_and_removal(catalog):
    catalog.set_tags("r2", ["b", "a", "a"])
    assert catalog.get_run("r2")["tags"] == ["a", "b"]
    catalog.set_notes("r2", [])
    assert _ids(catalog.search_runs(q="spike")) == []
    assert catalog.has_run("r2")
    catalog.remove_run("r2")
    assert not catalog.has_run("r2") and sorted(catalog.run_ids()) == ["r1", "r3"]
    with pytest.raises(RunNotFound):
        catalog.get_run("r2")


def test_control_shares_the_catalogs_engine(catalog):
    control = Control(catalog.engine)
    control.put_source("cam", {"endpoint": "tcp://h:1"})
    job = control.create_job("record", {"sources": ["cam"]}, run_id="r9")
    assert control.claim(job["id"], "m1") and not control.claim(job["id"], "m2")
    with pytest.raises(NotFound):
        control.get_job("rec-missing")
    control.close()  # not its engine: the catalog still works
    assert catalog.has_run("r1")


def test_database_failures_are_store_errors(catalog):
    control = Control(catalog.engine)
    with catalog.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE sources")
        conn.exec_driver_sql("DROP TABLE tags")
    missing = "no such table|does not exist"  # SQLite's words, PostgreSQL's
    with pytest.raises(StoreError, match=missing):
        control.list_sources()
    with pytest.raises(StoreError, match=missing):
        catalog.search_runs()
    with pytest.raises(StoreError, match="cannot use catalog"):
        Catalog("nosuchdialect://x")


def test_the_session_index_counts_and_searches_alike_on_every_database(catalog):
    session = {
        "id": "ses1", "name": "Mouse 12", "description": "tuesday 50%", "experimenters": ["Ann"],
        "subject": {"id": "m12"}, "template": None, "started_ns": 1, "ended_ns": None,
        "tags": ["rig2"], "notes": [], "meta": {"k": [1, 2]}, "updated_ns": 1,
    }  # fmt: skip
    catalog.index_session(session)
    catalog.link_run("r1", "ses1")
    catalog.link_run("r3", "ses1")
    rows, total = catalog.list_sessions(q="MOUSE")
    assert total == 1 and rows[0]["meta"] == {"k": [1, 2]}
    assert (rows[0]["runs"], rows[0]["bytes"]) == (2, 600)  # a SUM is numeric on PostgreSQL
    assert type(rows[0]["bytes"]) is int
    assert catalog.list_sessions(q="50%")[1] == 1 and catalog.list_sessions(q="5_%")[1] == 0
    assert catalog.list_sessions(open_only=True)[1] == 1
    assert catalog.session_run_ids("ses1") == ["r1", "r3"]
    assert catalog.sessions_of(["r1", "r2"]) == {"r1": "ses1"}
    catalog.remove_session("ses1")
    assert catalog.session_ids() == [] and catalog.session_of("r1") is None
