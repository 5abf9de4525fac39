"""A recording worker follows its job's commands: trigger, pause, resume, split and markers
given through the job table land in the run(s) it makes; each run is indexed as it begins and
the job's run id follows the run being written. A real manager, real worker processes, a real
simulator stream."""

from __future__ import annotations

import json
import os
import signal

import pytest

from recorder import config
from recorder.db.catalog import Catalog
from recorder.db.control import Control
from recorder.db.jobs import FAILED, KIND_RECORD
from recorder.errors import RunNotFound
from recorder.manager.planning import plan_recording, start_recording
from recorder.simulators import make_simulator
from recorder.store import layout
from recorder.store.reader import RunReader
from recorder.store.sessions import SessionFiles
from tests.helpers import running_manager, wait_for
from tests.recordhelp import running

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def sim():
    """A raw PUB stream, 200 messages a second."""
    s = make_simulator("raw", "tcp://127.0.0.1:*", rate=200)
    endpoint = s.bind()
    with running(s):
        yield endpoint


@pytest.fixture
def tables(data):
    cat = Catalog(config.catalog_url(None, data))
    yield Control(cat.engine), cat
    cat.close()


def _job(control, job_id, pred, what, timeout=30):
    def check():
        job = control.get_job(job_id)
        assert job["state"] != FAILED, job["error"]
        return job if pred(job, job["stats"] or {}) else None

    return wait_for(check, timeout, what, interval=0.05)


def _status(catalog, run_id):
    try:
        return catalog.get_run(run_id)["status"]
    except RunNotFound:
        return None


def _marker(control, job_id, text):
    control.add_command(job_id, "marker", text=json.dumps({"text": text, "author": "tests"}))


# the triggered run stays open this long: the pause, the resume and the "after" marker must all
# land in it (6 s was not always enough on a busy CI machine: the marker went to the armed job)
POST_S = 20


def test_commands_land_in_the_runs_and_the_job_follows_them(data, sim, tables):
    control, catalog = tables
    runs_dir = config.runs_dir(data)
    source = {"protocol": "raw", "endpoint": sim}
    with running_manager(data):
        job = start_recording(
            control, sources=[source], name="armed", trigger={"pre_s": 0.5, "post_s": POST_S},
            flush_interval_s=0.2,
        )  # fmt: skip
        job_id = job["id"]
        assert job["run_id"] is None
        _job(control, job_id, lambda j, s: s.get("state") == "armed" and s["armed_bytes"] > 0,
             "armed with a buffer")  # fmt: skip
        assert control.get_job(job_id)["run_id"] is None and not list(runs_dir.glob("*"))

        _marker(control, job_id, "before")
        control.add_command(job_id, "trigger")
        _marker(control, job_id, "during")
        first = _job(control, job_id, lambda j, s: j["run_id"] and s.get("state") == "recording",
                     "the trigger's run")["run_id"]  # fmt: skip
        assert _status(catalog, first) == "recording"  # indexed as it began

        control.add_command(job_id, "pause")
        paused = _job(control, job_id, lambda j, s: s.get("state") == "paused", "paused")
        seen = paused["stats"]["messages"]
        _job(control, job_id, lambda j, s: s["messages"] > seen + 20, "messages while paused")
        control.add_command(job_id, "resume")
        _job(control, job_id, lambda j, s: s.get("state") != "paused", "resumed")
        _marker(control, job_id, "after")
        control.add_command(job_id, "split")  # armed: refused, said in the warnings
        _job(control, job_id, lambda j, s: any(w.startswith("split:") for w in s["warnings"]),
             "the refused split said")  # fmt: skip

        # After the post-trigger time it is armed again; the next trigger makes the next run.
        _job(control, job_id, lambda j, s: s.get("state") == "armed", "armed again", POST_S + 30)
        _job(control, job_id, lambda j, s: _status(catalog, first) == "complete", "run closed")
        control.add_command(job_id, "trigger")
        second = _job(control, job_id, lambda j, s: len(s.get("runs", [])) == 2, "a second run")
        assert second["stats"]["runs"][0] == first
        second_id = second["stats"]["runs"][1]
        _job(control, job_id, lambda j, s: j["run_id"] == second_id, "the job's run id to follow")

        control.set_desired(job_id, "stopped")
        done = _job(control, job_id, lambda j, s: j["state"] == "stopped", "stopped")

    assert done["run_id"] == second_id and done["stats"]["runs"] == [first, second_id]
    assert done["stats"]["triggers"] == 2
    with RunReader(runs_dir / first) as run:
        assert [m["text"] for m in run.markers()] == ["before", "during", "after"]
        assert {m.get("author") for m in run.markers()} == {"tests"}
        (pause,) = run.pauses()
        assert pause["end_ns"] is not None and pause["messages"] > 20
        assert run.attrs["trigger"]["rule"] == "manual"
        assert run.attrs["status"] == layout.STATUS_COMPLETE
        assert run.stream("main").n_messages > 0
    with RunReader(runs_dir / second_id) as run:
        assert run.markers() == [] and run.attrs["status"] == layout.STATUS_COMPLETE
    # Both indexed with their final counts, in one session.
    for rid in (first, second_id):
        assert catalog.get_run(rid)["status"] == layout.STATUS_COMPLETE
        assert catalog.get_run(rid)["messages"] > 0
    assert catalog.session_of(first) and catalog.session_of(first) == catalog.session_of(second_id)


def test_a_preview_never_makes_a_run(data, sim, tables):
    control, _ = tables
    params = plan_recording(control, sources=[{"protocol": "raw", "endpoint": sim}], preview=True)
    job_id = control.create_job(KIND_RECORD, params)["id"]
    with running_manager(data):
        _job(control, job_id, lambda j, s: s.get("state") == "armed" and s["messages"] > 10,
             "the preview receiving")  # fmt: skip
        control.set_desired(job_id, "stopped")
        done = _job(control, job_id, lambda j, s: j["state"] == "stopped", "stopped")
    assert done["run_id"] is None and done["stats"]["runs"] == [] and done["error"] is None
    assert not list(config.runs_dir(data).glob("*"))


def test_a_recording_stopped_before_a_manager_took_it_names_no_run(data, sim, tables):
    """Stop pressed while the job waits for a manager: it ends stopped with no run, and its
    planned run id is cleared, so the dashboard and API clients are not sent to a run that was
    never made."""
    control, _ = tables
    job = start_recording(control, sources=[{"protocol": "raw", "endpoint": sim}])
    assert job["run_id"]
    control.set_desired(job["id"], "stopped")
    with running_manager(data):
        done = _job(control, job["id"], lambda j, s: j["state"] == "stopped", "stopped")
    assert done["run_id"] is None and done["error"] is None
    assert not list(config.runs_dir(data).glob("*"))


def test_a_recording_stopped_as_its_worker_begins_names_no_run(data, sim, tables):
    """The same stop seen by the worker itself (taken by a manager, stopped before the worker
    opened anything): no run, no run id."""
    from recorder.manager import worker

    control, catalog = tables
    job = start_recording(control, sources=[{"protocol": "raw", "endpoint": sim}])
    control.update_job(job["id"], state="starting")
    control.set_desired(job["id"], "stopped")
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:  # the worker takes SIGTERM/SIGINT for itself: pytest's own handlers come back after
        runs = config.runs_dir(data)
        code = worker.run_record(control.get_job(job["id"]), control, catalog, runs)
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    done = control.get_job(job["id"])
    assert code == 0 and done["state"] == "stopped" and done["run_id"] is None
    assert not list(config.runs_dir(data).glob("*"))


def test_a_split_recording_in_a_session_and_a_worker_that_dies(data, sim, tables):
    control, catalog = tables
    runs_dir = config.runs_dir(data)
    source = {"protocol": "raw", "endpoint": sim}
    with running_manager(data):
        session = SessionFiles(data).create({"name": "rig 2"})["id"]
        job_id = start_recording(
            control, sources=[source], split="1h", flush_interval_s=0.1, session=session, data=data
        )["id"]
        first = _job(control, job_id, lambda j, s: s.get("messages", 0) > 10, "recording")
        control.add_command(job_id, "split")
        moved = _job(control, job_id, lambda j, s: j["run_id"] != first["run_id"], "a new run")
        # The first run is closed and indexed as complete before the worker dies.
        _job(control, job_id, lambda j, s: _status(catalog, first["run_id"]) == "complete",
             "the first run closed")  # fmt: skip
        os.kill(moved["pid"], signal.SIGKILL)
        wait_for(lambda: control.get_job(job_id)["state"] == FAILED, 30, "the job failed")
        wait_for(
            lambda: _status(catalog, moved["run_id"]) == layout.STATUS_INTERRUPTED,
            30,
            "the current run repaired",
        )
    with RunReader(runs_dir / first["run_id"]) as run:
        assert run.attrs["status"] == layout.STATUS_COMPLETE
    # Both runs belong to the session the recording was started in.
    assert catalog.session_of(first["run_id"]) == catalog.session_of(moved["run_id"]) == session


def test_a_lost_recording_has_its_last_two_runs_repaired(data, tables):
    """A split or triggered recording closes the previous run just after the next one begins:
    a worker lost in between leaves two open runs, and both are repaired."""
    import subprocess
    import sys

    from recorder.db.managers import hostname

    control, _ = tables
    runs_dir = config.runs_dir(data)
    made = subprocess.run(
        [sys.executable, "-c", (
            "import os, sys\n"
            "from recorder.store.run_writer import RunWriter\n"
            "runs = [RunWriter(sys.argv[1]) for _ in range(3)]\n"
            "for r in runs: r.add_stream('main', protocol='raw', endpoint='tcp://127.0.0.1:1',"
            " socket_type='SUB', role='connect'); r.flush()\n"
            "runs[0].close()\n"
            "print(' '.join(r.run_id for r in runs), flush=True)\n"
            "os._exit(0)\n"
        ), str(runs_dir)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    closed, left, current = made.stdout.split()
    job = control.create_job(KIND_RECORD, {"sources": []}, run_id=current)
    control.update_job(
        job["id"], state="running", manager=f"{hostname()}/gone", pid=None,
        stats={"runs": [closed, left, current]},
    )  # fmt: skip
    with running_manager(data):
        wait_for(lambda: control.get_job(job["id"])["state"] == FAILED, 30, "the job failed")
    for rid, status in ((closed, "complete"), (left, "interrupted"), (current, "interrupted")):
        with RunReader(runs_dir / rid) as run:
            assert run.attrs["status"] == status, rid
