"""Markers, pauses and the session copy that a run keeps (run attributes and annotations)."""

from __future__ import annotations

import pytest

from recorder.errors import UsageError
from recorder.store import annotate
from recorder.store.reader import RunReader
from recorder.store.run_writer import RunWriter
from recorder.store.sessions import SessionFiles, SessionNotFound, check_id

pytestmark = pytest.mark.timeout(60)


def test_markers_and_pauses_are_committed_when_added(tmp_path):
    run = RunWriter(tmp_path / "runs")
    run.add_marker("later", recv_ns=20)
    run.add_marker("first", recv_ns=10, author="cli")
    run.set_pauses([{"start_ns": 5, "end_ns": None, "messages": 3}])
    # readable before the run closes: a killed recorder keeps them
    reader = RunReader(run.path)
    assert [m["text"] for m in reader.markers()] == ["first", "later"]
    assert reader.markers()[0]["author"] == "cli"
    assert reader.pauses() == [{"start_ns": 5, "end_ns": None, "messages": 3}]
    run.close()
    assert RunReader(run.path).attrs["status"] == "complete"
    assert len(RunReader(run.path).markers()) == 2


def test_a_run_keeps_a_copy_of_its_session(tmp_path):
    files = SessionFiles(tmp_path)
    session = files.create({"name": "mouse 12", "subject": {"subject_id": "m12"}})
    with RunWriter(tmp_path / "runs", session=session) as run:
        pass
    assert RunReader(run.path).summary()["session"] == session
    annotate.set_session(run.path, None)
    assert RunReader(run.path).summary()["session"] is None


def test_session_edits_change_only_what_is_given(tmp_path):
    files = SessionFiles(tmp_path)
    session = files.create({"name": "beamtime", "experimenters": ["Ada"], "tags": ["cal"]})
    edited = files.update(session["id"], {"description": "shift 2"})
    assert edited["experimenters"] == ["Ada"] and edited["tags"] == ["cal"]
    assert edited["updated_ns"] > session["updated_ns"]
    assert files.get(session["id"])["description"] == "shift 2"
    closed = files.close(session["id"])
    assert closed["ended_ns"] is not None
    assert [s["id"] for s in files.all()] == [session["id"]]


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"name": ""},
        {"name": "x", "subject": ["m12"]},
        {"name": "x", "colour": "blue"},
        {"name": "x", "tags": ["../up"]},
        {"name": "x" * 300},
    ],
)
def test_bad_session_fields_are_refused(tmp_path, fields):
    with pytest.raises(UsageError):
        SessionFiles(tmp_path).create(fields)
    assert not (tmp_path / "sessions").exists() or not list((tmp_path / "sessions").iterdir())


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ses-1", "ses-20261202-031500-3FA2C1/..", ""])
def test_session_ids_never_name_a_file_unchecked(tmp_path, bad):
    with pytest.raises(SessionNotFound):
        check_id(bad)
    with pytest.raises(SessionNotFound):
        SessionFiles(tmp_path).get(bad)
