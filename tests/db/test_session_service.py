"""The session service every front end shares: each edit reaches the file, the copies in the
session's runs and the catalog; templates from the data folder or RECORDER_SESSION_TEMPLATES."""

from __future__ import annotations

import json

import pytest

from recorder import config
from recorder.db.catalog import Catalog
from recorder.db.session_service import SessionService, load_templates
from recorder.errors import StoreError, UsageError
from recorder.store.reader import RunReader
from recorder.store.run_writer import RunWriter


@pytest.fixture
def svc(data):
    cat = Catalog(config.catalog_url(None, data))
    yield SessionService(data, cat)
    cat.close()


def a_run(data, session=None):
    with RunWriter(config.runs_dir(data), session=session) as w:
        pass
    return w.path


def test_an_edit_reaches_file_copies_and_catalog(svc, data):
    s = svc.create({"name": "mouse 12", "subject": {"subject_id": "m12"}})
    inside, outside = a_run(data), a_run(data)
    svc.catalog.index_path(outside)
    svc.move_run(inside, s["id"])  # a run the catalog did not know yet: indexed on the way
    assert svc.catalog.session_of(inside.name) == s["id"]

    edited = svc.update(s["id"], {"subject": {"subject_id": "m12", "sex": "F"}, "tags": ["v1"]})
    assert edited["name"] == "mouse 12" and edited["updated_ns"] > s["updated_ns"]
    assert svc.files.get(s["id"]) == edited
    assert RunReader(inside).summary()["session"] == edited
    assert RunReader(outside).summary()["session"] is None
    assert svc.catalog.get_session(s["id"]) == edited

    closed = svc.close(s["id"])
    assert RunReader(inside).summary()["session"]["ended_ns"] == closed["ended_ns"] is not None
    detail = svc.detail(s["id"])
    assert [r["run_id"] for r in detail["runs"]] == [inside.name]
    assert detail["totals"]["runs"] == 1


def test_a_failed_template_check_changes_nothing(svc, data):
    (data / "session_templates.json").write_text(json.dumps({"mouse": {"subject": ["sex"]}}))
    s = svc.create({"name": "m", "template": "mouse", "subject": {"sex": "F"}})
    run = a_run(data, s)
    svc.catalog.index_path(run)
    with pytest.raises(UsageError, match="sex"):
        svc.update(s["id"], {"subject": {"sex": " "}})
    assert svc.files.get(s["id"]) == s
    assert RunReader(run).summary()["session"] == s
    assert svc.catalog.get_session(s["id"]) == s


def test_templates_from_the_environment_and_broken_files(data, tmp_path, monkeypatch):
    assert load_templates(data) == {}
    elsewhere = tmp_path / "lab.json"
    elsewhere.write_text(json.dumps({"sample": {"subject": ["sample_id"]}}))
    monkeypatch.setenv("RECORDER_SESSION_TEMPLATES", str(elsewhere))
    assert load_templates(data) == {"sample": ["sample_id"]}
    for broken in ("{", "[]", '{"mouse": ["sex"]}', '{"mouse": {"subject": [1]}}'):
        elsewhere.write_text(broken)
        with pytest.raises(StoreError, match=r"lab\.json"):
            load_templates(data)
