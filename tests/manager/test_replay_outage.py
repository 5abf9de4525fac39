"""A replay that ends while the PostgreSQL catalog is away (stopped by SIGTERM, as the manager's
shutdown sends) waits for it to record its end, like a recording (worker.patiently): the job
is `stopped` once the server is back, not left `running` by a worker that gave up."""

from __future__ import annotations

import os
import signal

import pytest

from recorder import config
from recorder.db.control import Control
from recorder.db.jobs import RUNNING, STOPPED
from recorder.manager.planning import start_replay
from tests.helpers import free_port, running_manager, wait_for
from tests.web.webhelp import recorded_run


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_replay_that_ends_during_a_database_outage_records_its_end_when_it_returns(
    pg_server, pg_url, data
):
    run_id = recorded_run(data, "adzmq", 20)
    control = Control(pg_url)
    with running_manager(data, spares=0, url=pg_url, join_s=60) as manager:
        job = start_replay(
            control, config.runs_dir(data), run_id=run_id, rate=20.0, loop=100,
            endpoints={"main": f"tcp://127.0.0.1:{free_port()}"},
        )  # fmt: skip
        job_id = job["id"]
        wait_for(lambda: control.get_job(job_id)["state"] == RUNNING, 90, "the replay to run")
        worker = manager.procs[job_id]
        pg_server.stop()
        try:
            os.kill(worker.pid, signal.SIGTERM)
            wait_for(lambda: "trying again" in worker.log.read_text(), 60, "a retry")
            assert worker.poll()[0] is False, "the worker gave up on the catalog"
        finally:
            pg_server.start()
        done = wait_for(
            lambda: (j := control.get_job(job_id))["state"] not in (RUNNING,) and j, 60,
            "the job's end",
        )  # fmt: skip
        assert done["state"] == STOPPED, done["error"]
    control.close()
