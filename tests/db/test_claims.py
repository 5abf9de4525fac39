"""A pending job is taken by exactly one manager: 200 jobs created at once from many threads
while two claimers in their own processes (as the managers of two hosts) race for every one."""

from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from recorder.db.control import Control
from recorder.db.jobs import STARTING
from tests.helpers import wait_for

JOBS = 200

CLAIMER = """
import sys, time
from pathlib import Path
from recorder.db.control import Control
from recorder.db.jobs import PENDING
url, me, out, done = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
control = Control(url)
won = []
out.with_suffix(".ready").touch()
while True:
    finished = done.exists()  # read first: every job was created before it appeared
    pending = [j["id"] for j in control.list_jobs(active=True) if j["state"] == PENDING]
    won += [j for j in pending if control.claim(j, me)]
    if finished and not pending:
        break
    time.sleep(0.001)
out.write_text("\\n".join(won))
"""


@pytest.mark.timeout(240)
def test_every_job_is_claimed_exactly_once(catalog_url, tmp_path):
    control = Control(catalog_url)
    done = tmp_path / "done"
    outs = [tmp_path / f"claims-{i}.txt" for i in range(2)]
    claimers = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, catalog_url, f"host{i}/1/1", str(out), str(done)],
            stderr=subprocess.PIPE,
        )
        for i, out in enumerate(outs)
    ]
    try:
        wait_for(
            lambda: (
                all(o.with_suffix(".ready").exists() for o in outs)
                or any(p.poll() is not None for p in claimers)
            ),
            60,
            "the claimers to start",
        )
        start = threading.Barrier(16)

        def create(i: int) -> str:
            if i < 16:
                start.wait(30)  # the first ones together, the rest as threads come free
            return control.create_job("record", {"n": i})["id"]

        with ThreadPoolExecutor(16) as pool:
            created = list(pool.map(create, range(JOBS)))
        done.touch()
        for p in claimers:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err.decode()
    finally:
        for p in claimers:
            if p.poll() is None:
                p.kill()
                p.wait()
    claims = [o.read_text().split() for o in outs]
    everything = claims[0] + claims[1]
    assert len(created) == len(set(created)) == JOBS
    assert sorted(everything) == sorted(created)  # each once: none twice, none left
    jobs = {j["id"]: j for j in control.list_jobs()}
    for i, mine in enumerate(claims):
        assert all(jobs[j]["manager"] == f"host{i}/1/1" for j in mine)
    assert {j["state"] for j in jobs.values()} == {STARTING}
    control.close()
