"""The PostgreSQL server goes away while a worker records: the recording goes on to disk,
the job's counters reach the catalog again once the server is back, and a recording that ends
while the server is away waits for it to write its final state and index (worker.patiently)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from recorder import config
from recorder.db.catalog import Catalog
from recorder.db.control import Control
from recorder.db.jobs import KIND_RECORD, RUNNING, STOPPED
from recorder.manager.planning import plan_recording
from recorder.simulators import make_simulator
from recorder.store import layout
from recorder.store.reader import RunReader
from tests.helpers import running_manager, wait_for
from tests.recordhelp import running

RUN = "outage-run"


def _manager(data, url):
    return running_manager(data, spares=0, url=url, join_s=60)


def _size(folder) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _disk_status(path) -> str | None:
    try:
        with RunReader(path) as reader:
            return reader.summary()["status"]
    except Exception:  # being written: try again
        return None


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_recording_goes_on_through_a_database_outage(pg_server, pg_url, data):
    catalog = Catalog(pg_url)
    control = Control(catalog.engine)
    sim = make_simulator("adzmq", "tcp://127.0.0.1:* PUB", rate=200)
    endpoint = sim.bind()
    with running(sim), _manager(data, pg_url) as manager:
        params = plan_recording(control, sources=[{"endpoint": endpoint, "protocol": "adzmq"}])
        job_id = control.create_job(KIND_RECORD, params, run_id=RUN)["id"]

        def counted() -> int:
            job = control.get_job(job_id)
            return (job["stats"] or {}).get("messages", 0) if job["state"] == RUNNING else 0

        wait_for(lambda: counted() > 20, 90, "the recording to run")
        path = config.runs_dir(data) / RUN
        worker = manager.procs[job_id]

        # 1. the server goes away mid-recording: the run keeps growing on disk
        before = counted()
        pg_server.stop()
        try:
            size = _size(path)
            wait_for(lambda: _size(path) > size + 20_000, 60, "the run to grow on disk")
        finally:
            pg_server.start()
        back_ns = time.time_ns()
        # ... and once it is back, the worker's counters reach the catalog again
        wait_for(lambda: control.get_job(job_id)["stats"]["updated_ns"] > back_ns, 60, "new stats")
        assert counted() > before
        wait_for(lambda: catalog.get_run(RUN)["messages"] > before, 30, "the run's counters")

        # 2. the server goes away again and the recording ends meanwhile (SIGTERM, as the
        # manager's shutdown sends): the worker closes the run and waits for the catalog
        pg_server.stop()
        try:
            os.kill(worker.pid, signal.SIGTERM)
            wait_for(lambda: _disk_status(path) == layout.STATUS_COMPLETE, 60, "the run to close")
            wait_for(lambda: "trying again" in worker.log.read_text(), 30, "a retry")
            assert worker.poll()[0] is False, "the worker gave up on the catalog"
        finally:
            pg_server.start()
        job = wait_for(
            lambda: (j := control.get_job(job_id))["state"] == STOPPED and j, 60, "the job's end"
        )
        with RunReader(path) as reader:
            on_disk = reader.summary()
    run = catalog.get_run(RUN)
    assert run["status"] == layout.STATUS_COMPLETE
    assert run["messages"] == on_disk["messages"] == job["stats"]["messages"]
    assert on_disk["gaps"] == 0 and on_disk["drops"] == 0  # nothing lost through the outages
    catalog.close()
