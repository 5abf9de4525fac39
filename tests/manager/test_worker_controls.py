"""A recording worker follows its job's commands: trigger, pause, resume, split and markers
given through the job table land in the run(s) it makes; each run is indexed as it begins and
the job's run id follows the run being written. A real manager, real worker processes, a real
simulator stream."""

from __future__ import annotations

import pytest

from recorder import config
from recorder.db.catalog import Catalog
from recorder.db.control import Control
from recorder.db.jobs import FAILED, KIND_RECORD
from recorder.store.reader import RunReader
from tests.helpers import running_manager, wait_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def tables(data):
    cat = Catalog(config.catalog_url(None, data))
    yield Control(cat.engine), cat
    cat.close()


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
