"""`recorder session ...` as a user runs it, and `recorder reindex` bringing sessions back from
their files, or from the copies their runs keep when the files are gone too."""

from __future__ import annotations

import json

import pytest

from recorder import config
from recorder.store.reader import RunReader
from recorder.store.run_writer import RunWriter
from recorder.store.sessions import SessionFiles
from tests.helpers import cli_json, run_cli


def ok(*args) -> str:
    out = run_cli(*args)
    assert out.returncode == 0, out.stderr
    return out.stdout


def a_run(data, session=None, name="made") -> str:
    """A small closed run in the data folder, recorded in `session` (a SessionAttrs) if given."""
    with RunWriter(config.runs_dir(data), name=name, session=session) as w:
        s = w.add_stream("main", protocol="raw", endpoint="tcp://127.0.0.1:5999",
                         socket_type="PULL", role="connect")  # fmt: skip
        for i in range(3):
            s.append(w.started_ns + i * 1_000_000, [b"%d" % i])
    return w.run_id


@pytest.mark.timeout(120)
def test_new_edit_show_close_and_moving_runs(data):
    sid = ok("session", "new", "mouse 12", "--description", "V1 imaging", "--experimenter", "Ada",
             "--experimenter", "Bo", "--subject", "subject_id=m12", "--subject", "species=Mus",
             "--tag", "imaging", "--meta", "rig=3", "--meta", "laser=on", "--data", data,
             ).strip()  # fmt: skip
    assert sid.startswith("ses-")
    stored = json.loads((data / "sessions" / f"{sid}.json").read_text())
    assert stored["experimenters"] == ["Ada", "Bo"]
    assert stored["subject"] == {"subject_id": "m12", "species": "Mus"}
    assert stored["meta"] == {"rig": 3, "laser": "on"}

    r1, r2 = a_run(data), a_run(data)
    out = ok("session", "add-run", sid[:12], r1[:-1], r2, "--data", data)  # prefixes do
    assert f"{r1}: in session {sid}" in out
    shown = cli_json("session", "show", sid, "--data", data)
    assert [r["run_id"] for r in shown["runs"]] == [r1, r2]
    assert shown["totals"]["runs"] == 2 and shown["totals"]["messages"] == 6
    assert RunReader(config.runs_dir(data) / r1).summary()["session"]["id"] == sid

    ok("session", "edit", sid, "--name", "mouse 12 day 2", "--subject", "subject_id=m12",
       "--data", data)  # fmt: skip
    assert RunReader(config.runs_dir(data) / r2).summary()["session"]["name"] == "mouse 12 day 2"
    text = ok("session", "show", sid, "--data", data)
    assert "mouse 12 day 2" in text and "V1 imaging" in text and r1 in text

    ok("session", "remove-run", r1, "--data", data)
    assert RunReader(config.runs_dir(data) / r1).summary()["session"] is None
    [listed] = cli_json("session", "ls", "--data", data)
    assert listed["id"] == sid and listed["runs"] == 1
    assert cli_json("session", "ls", "--open", "--data", data) == [listed]
    assert "closed" in ok("session", "close", sid, "--data", data)
    assert cli_json("session", "ls", "--open", "--data", data) == []
    assert sid in ok("session", "ls", "--data", data)


@pytest.mark.timeout(60)
def test_bad_input_is_one_line_and_writes_nothing(data):
    (data / "session_templates.json").write_text(
        json.dumps({"mouse": {"subject": ["subject_id", "species", "sex", "age"]}})
    )
    out = run_cli("session", "new", "m", "--template", "mouse", "--subject", "subject_id=m1",
                  "--data", data)  # fmt: skip
    assert out.returncode == 2 and "species, sex, age" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (data / "sessions").exists() or not list((data / "sessions").iterdir())
    for args in (["show", "../../etc/passwd"], ["close", "ses-nope"], ["show", "ses-2026"]):
        out = run_cli("session", *args, "--data", data)
        assert out.returncode == 2 and "no session" in out.stderr, out.stderr
    out = run_cli("session", "new", "x", "--subject", "nokey", "--data", data)
    assert out.returncode == 2 and "KEY=VALUE" in out.stderr
    out = run_cli("session", "add-run", "ses-20260101-000000-000000", "nope", "--data", data)
    assert out.returncode == 2


@pytest.mark.timeout(120)
@pytest.mark.parametrize("lose_file", [False, True], ids=["catalog lost", "file lost too"])
def test_reindex_brings_sessions_back(data, lose_file):
    files = SessionFiles(data)
    sid = ok("session", "new", "beamtime", "--experimenter", "Ada", "--subject", "sample=Si",
             "--data", data).strip()  # fmt: skip
    ok("session", "edit", sid, "--description", "shift 2", "--data", data)
    session = files.get(sid)
    r1, r2 = a_run(data, session), a_run(data, session)
    loose = a_run(data)
    empty = ok("session", "new", "never used", "--data", data).strip()

    (data / "catalog.sqlite").unlink()
    if lose_file:
        files.path(sid).unlink()
    out = ok("reindex", "--data", data)
    assert "indexed 3 runs" in out
    assert ("1 restored" if lose_file else "0 restored") in out, out
    assert "indexed 2 sessions" in out, out

    shown = cli_json("session", "show", sid, "--data", data)
    assert shown["name"] == "beamtime" and shown["description"] == "shift 2"
    assert shown["experimenters"] == ["Ada"] and shown["subject"] == {"sample": "Si"}
    assert [r["run_id"] for r in shown["runs"]] == [r1, r2]
    assert loose not in {r["run_id"] for r in shown["runs"]}
    assert files.get(sid) == session  # the file is back as it was
    assert {s["id"] for s in cli_json("session", "ls", "--data", data)} == {sid, empty}


@pytest.mark.timeout(60)
def test_reindex_removes_sessions_nothing_knows_any_more(data):
    sid = ok("session", "new", "gone", "--data", data).strip()
    SessionFiles(data).path(sid).unlink()
    assert "removed 1 missing" in ok("reindex", "--data", data).splitlines()[-1]
    assert cli_json("session", "ls", "--data", data) == []
