"""A pending job is taken by exactly one manager: 200 jobs created at once from many threads
while two claimers in their own processes (as the managers of two hosts) race for every one."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from recorder.db.control import Control
from recorder.db.jobs import STARTING
from tests.db.claimhelp import race

JOBS = 200


@pytest.mark.timeout(240)
def test_every_job_is_claimed_exactly_once(catalog_url, tmp_path):
    control = Control(catalog_url)
    start = threading.Barrier(16)

    def create(i: int) -> str:
        if i < 16:
            start.wait(30)  # the first ones together, the rest as threads come free
        return control.create_job("record", {"n": i})["id"]

    def create_all() -> list[str]:
        with ThreadPoolExecutor(16) as pool:
            return list(pool.map(create, range(JOBS)))

    created, won = race(catalog_url, tmp_path, ["host0", "host1"], "id", 1, create_all)
    claims = [[job_id for job_id, _, _ in won[h]] for h in ("host0", "host1")]
    everything = claims[0] + claims[1]
    assert len(created) == len(set(created)) == JOBS
    assert sorted(everything) == sorted(created)  # each once: none twice, none left
    jobs = {j["id"]: j for j in control.list_jobs()}
    for i, mine in enumerate(claims):
        assert all(jobs[j]["manager"] == f"host{i}/1/1" for j in mine)
    assert {j["state"] for j in jobs.values()} == {STARTING}
    control.close()
