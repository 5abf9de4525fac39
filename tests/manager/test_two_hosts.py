"""Two recorder hosts on one catalog, each with its own manager and data folder (manager A a
real `recorder manager --host hostA` process, manager B on a thread here): recordings land on
the host they name, and when host A dies (its manager and its worker SIGKILLed) manager B fails
A's job as lost; A's next manager repairs the run (cut back to its last flush, `interrupted`)
and indexes it. On PostgreSQL and on one SQLite file."""

from __future__ import annotations

import contextlib
import os
import signal
import threading

import psutil
import pytest

from recorder import config
from recorder.db.catalog import Catalog
from recorder.db.control import Control
from recorder.db.jobs import FAILED, RUNNING, STOPPED
from recorder.manager.manager import Manager
from recorder.manager.planning import start_recording
from recorder.simulators import make_simulator
from recorder.store import layout
from recorder.store.reader import RunReader
from tests.helpers import end_process, run_cli, start_cli, wait_for
from tests.recordhelp import running


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.sqlite'}"
    return request.getfixturevalue("pg_url")


def _folder(tmp_path, name):
    return config.data_dir(tmp_path / name).resolve()


def _manager_a(folder, url):
    return start_cli("manager", "--host", "hostA", "--spares", "0", "--data", folder,
                     "--catalog", url)  # fmt: skip


@contextlib.contextmanager
def _manager_b(folder, url):
    m = Manager(folder, url, host="hostB", spares=0, lost_after_s=4.0, stop_grace_s=5.0,
                kill_grace_s=3.0)  # fmt: skip
    m.start()
    stop = threading.Event()
    t = threading.Thread(target=m.serve, args=(stop,), name="manager-b", daemon=True)
    t.start()
    try:
        yield m
    finally:
        stop.set()
        t.join(30)
    assert not t.is_alive()


def _alive_host(control: Control, host: str) -> bool:
    return any(m["host"] == host for m in control.live_managers())


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_two_hosts_place_their_recordings_and_fail_and_repair_a_dead_hosts_jobs(
    shared_url, tmp_path
):
    url = shared_url
    dir_a, dir_b = _folder(tmp_path, "a"), _folder(tmp_path, "b")
    control = Control(url)
    sim = make_simulator("adzmq", "tcp://127.0.0.1:* PUB", rate=100)
    endpoint = sim.bind()
    source = {"endpoint": endpoint, "protocol": "adzmq"}
    proc_a = _manager_a(dir_a, url)
    worker_pid = None
    try:
        with running(sim), _manager_b(dir_b, url):
            wait_for(lambda: _alive_host(control, "hostA"), 60, "manager A to beat")
            on_a = start_recording(control, sources=[source], host="hostA")
            on_b = start_recording(control, sources=[source], host="hostB")

            def counting(job_id):
                job = control.get_job(job_id)
                return job["state"] == RUNNING and (job["stats"] or {}).get("messages", 0) > 5

            for job in (on_a, on_b):
                wait_for(lambda j=job: counting(j["id"]), 90, f"{job['id']} to record")
            a, b = control.get_job(on_a["id"]), control.get_job(on_b["id"])
            assert (a["host"], a["manager"].split("/")[0]) == ("hostA", "hostA")
            assert (b["host"], b["manager"].split("/")[0]) == ("hostB", "hostB")
            runs_a, runs_b = config.runs_dir(dir_a), config.runs_dir(dir_b)
            assert (runs_a / a["run_id"]).is_dir() and not (runs_b / a["run_id"]).exists()
            assert (runs_b / b["run_id"]).is_dir() and not (runs_a / b["run_id"]).exists()

            control.set_desired(b["id"], "stopped")
            wait_for(lambda: control.get_job(b["id"])["state"] == STOPPED, 60, "B to stop")

            # host A dies: its manager and its worker, at once
            worker_pid = a["pid"]
            proc_a.send_signal(signal.SIGKILL)
            proc_a.wait(30)
            os.kill(worker_pid, signal.SIGKILL)
            wait_for(lambda: not psutil.pid_exists(worker_pid) or
                     psutil.Process(worker_pid).status() == psutil.STATUS_ZOMBIE, 30,
                     "A's worker to die")  # fmt: skip
            lost = wait_for(
                lambda: (j := control.get_job(a["id"]))["state"] == FAILED and j, 60,
                "manager B to fail host A's job",
            )  # fmt: skip
            assert lost["error"].startswith("host lost: the manager of 'hostA'")
            assert lost["lost_ns"]
            assert control.get_job(b["id"])["state"] == STOPPED  # B's own: untouched

        # host A comes back: its manager repairs and indexes the run it left open
        with RunReader(runs_a / a["run_id"]) as reader:
            assert reader.attrs["status"] == layout.STATUS_RECORDING  # abandoned as it was
        proc_a = _manager_a(dir_a, url)
        wait_for(lambda: control.get_job(a["id"])["lost_ns"] is None, 60, "A to repair its run")
        with RunReader(runs_a / a["run_id"]) as reader:
            assert reader.attrs["status"] == layout.STATUS_INTERRUPTED
        catalog = Catalog(url)
        assert catalog.get_run(a["run_id"])["status"] == layout.STATUS_INTERRUPTED
        catalog.close()
        assert control.get_job(a["id"])["state"] == FAILED  # the verdict stays
    finally:
        end_process(proc_a)
        control.close()


def test_a_host_name_that_cannot_be_one_is_refused_at_start(tmp_path):
    r = run_cli("manager", "--host", "rig/1", "--spares", "0", "--data", tmp_path / "d")
    assert r.returncode == 2
    assert "host name 'rig/1'" in r.stderr
