"""The manager with real worker processes: jobs start and stop, a worker that dies is marked
failed with its exit reason and its run stays readable, one manager per data folder, and a
restarted manager adopts the workers of the previous one."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import psutil
import pytest

from recorder import config
from recorder.db.catalog import Catalog
from recorder.db.control import Control
from recorder.manager.manager import SPARES, Manager, ManagerRunning
from recorder.manager.planning import start_recording
from recorder.simulators import make_simulator
from recorder.store.reader import RunReader
from tests.helpers import CLI, running_manager, wait_for
from tests.recordhelp import running


@pytest.fixture
def folder(data_dir):
    config.data_dir(data_dir)
    return data_dir


@pytest.fixture
def control(folder):
    cat = Catalog(config.catalog_url(None, folder))
    yield Control(cat.engine)
    cat.close()


@pytest.fixture
def source():
    sim = make_simulator("adzmq", "tcp://127.0.0.1:* PUB", rate=200)
    endpoint = sim.bind()
    with running(sim):
        yield {"protocol": "adzmq", "endpoint": endpoint}


@pytest.fixture
def manager(folder):
    with running_manager(folder) as m:
        yield m


def wait_job(control: Control, job_id: str, pred, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = control.get_job(job_id)
        if pred(job):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; job is {job}")
        time.sleep(0.02)


@pytest.mark.timeout(60)
def test_a_killed_worker_is_failed_with_the_reason_and_its_run_stays_readable(
    control, manager, source, folder
):
    job = start_recording(control, sources=[source], flush_interval_s=0.05)
    running_job = wait_job(
        control,
        job["id"],
        lambda j: j["state"] == "running" and (j["stats"] or {}).get("messages", 0) > 20,
    )
    run_path = folder / "runs" / job["run_id"]
    deadline = time.monotonic() + 10
    while RunReader(run_path).stream("main").n_messages == 0:  # a flush has committed data
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(running_job["pid"], signal.SIGKILL)
    failed = wait_job(control, job["id"], lambda j: j["state"] == "failed")
    assert "SIGKILL" in failed["error"] and failed["exit_code"] == -signal.SIGKILL
    with RunReader(run_path) as reader:  # repaired by the manager, readable as far as flushed
        assert reader.status == "interrupted"
        assert reader.stream("main").n_messages > 0
        assert len(list(reader.messages())) == reader.stream("main").n_messages
    assert (
        Catalog(config.catalog_url(None, folder)).get_run(job["run_id"])["status"] == "interrupted"
    )
    assert (folder / "workers" / f"{job['id']}.log").exists()  # kept for the post-mortem


@pytest.mark.timeout(60)
def test_jobs_start_and_stop_and_publish_stats(control, manager, source):
    job = start_recording(control, sources=[source, {**source, "stream": "second"}])
    live = wait_job(control, job["id"], lambda j: (j["stats"] or {}).get("messages", 0) > 10)
    assert {s["stream"] for s in live["stats"]["streams"]} == {"s0", "second"}
    first = live["stats"]["updated_ns"]
    wait_job(control, job["id"], lambda j: j["stats"]["updated_ns"] > first)  # kept fresh
    assert wait_job(control, job["id"], lambda j: j["proc"] is not None)["proc"]["rss_bytes"] > 0
    control.set_desired(job["id"], "stopped")
    done = wait_job(control, job["id"], lambda j: j["state"] == "stopped")
    assert done["error"] is None
    # The worker says `stopped` itself; the manager adds the exit code once it has exited.
    assert wait_job(control, job["id"], lambda j: j["exit_code"] is not None)["exit_code"] == 0


@pytest.mark.timeout(240)
def test_six_recordings_started_together_each_get_a_waiting_spare_and_all_run(
    control, folder, source
):
    assert SPARES >= 6
    with running_manager(folder, spares=SPARES) as manager:
        _six_recordings_on_spares(control, manager, source)


def _six_recordings_on_spares(control, manager, source) -> None:
    wait_for(lambda: len(manager.spare_pids) == SPARES, 120, "the spares to be started")
    spares = set(manager.spare_pids)
    jobs = [start_recording(control, sources=[source]) for _ in range(6)]
    live = [wait_job(control, j["id"], lambda j: j["state"] == "running", 120) for j in jobs]
    assert {j["pid"] for j in live} <= spares  # none waited for a fresh interpreter
    for j in jobs:
        control.set_desired(j["id"], "stopped")
    for j in jobs:
        assert wait_job(control, j["id"], lambda j: j["state"] == "stopped", 60)["error"] is None


def test_one_manager_per_data_folder(folder, manager):
    with pytest.raises(ManagerRunning, match="already running"):
        Manager(folder, config.catalog_url(None, folder)).start()
    out = subprocess.run([*CLI, "manager", "--data", str(folder)], capture_output=True,
                         text=True, timeout=60, check=False)  # fmt: skip
    assert out.returncode == 2 and "already running" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.timeout(90)
def test_a_restarted_manager_adopts_running_workers(control, folder, source):
    proc = subprocess.Popen([*CLI, "manager", "--data", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        job = start_recording(control, sources=[source])
        live = wait_job(control, job["id"], lambda j: j["state"] == "running", timeout=40)
    finally:
        proc.kill()  # the manager dies without a word; its worker lives on (own session)
        proc.wait(10)
    worker = psutil.Process(live["pid"])
    m = Manager(folder, config.catalog_url(None, folder), stop_grace_s=5.0)
    stop = threading.Event()
    t = threading.Thread(target=m.serve, args=(stop,), daemon=True)
    try:
        m.start()
        t.start()
        assert list(m.procs) == [job["id"]]
        control.set_desired(job["id"], "stopped")
        done = wait_job(control, job["id"], lambda j: j["state"] == "stopped")
        assert done["error"] is None
        with RunReader(folder / "runs" / job["run_id"]) as reader:
            assert reader.status == "complete"
    finally:
        stop.set()
        if t.is_alive():
            t.join(30)
        else:
            m.shutdown()
        if worker.is_running():  # not adopted after all: never leave it behind
            worker.kill()


@pytest.mark.timeout(60)
def test_jobs_left_by_a_dead_manager_without_a_worker_are_failed(control, folder):
    job = start_recording(control, sources=[{"endpoint": "tcp://127.0.0.1:1"}])
    control.claim(job["id"], f"{os.uname().nodename}/999999/1")
    control.update_job(job["id"], state="running", pid=None)
    m = Manager(folder, config.catalog_url(None, folder))
    m.start()
    m.shutdown()
    failed = control.get_job(job["id"])
    assert failed["state"] == "failed" and "worker lost" in failed["error"]


def test_a_job_stopped_before_it_starts_never_runs(control, folder):
    job = start_recording(control, sources=[{"endpoint": "tcp://127.0.0.1:1"}])
    control.set_desired(job["id"], "stopped")
    m = Manager(folder, config.catalog_url(None, folder), spares=0)
    m.start()
    m.tick()
    assert m.procs == {}
    m.shutdown()
    assert control.get_job(job["id"])["state"] == "stopped"
    assert not (folder / "runs" / job["run_id"]).exists()
