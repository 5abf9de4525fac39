"""Several hosts on one catalog, at the SQL level (SQLite and PostgreSQL): a manager claims
only its own host's jobs and those for any host, pinning the latter to itself; 200 jobs claimed
by two hosts' claimers at once, each with several threads, are each taken exactly once and never
by the wrong host; the started jobs of a host whose managers stopped beating are failed as lost
(and asked to stop), and a late report of their worker does not bring them back."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from recorder.db.control import Control
from recorder.db.jobs import DESIRED_STOPPED, FAILED, PENDING, RUNNING, STARTING
from tests.db.claimhelp import race

JOBS = 200
HOSTS = ("hostA", "hostB")


def test_a_manager_claims_its_own_hosts_jobs_and_any_hosts_never_anothers(catalog_url):
    control = Control(catalog_url)
    theirs = control.create_job("record", {}, host="hostB")["id"]
    mine = control.create_job("record", {}, host="hostA")["id"]
    anyone = control.create_job("record", {})["id"]
    got = [control.claim_next("hostA/1/1", "hostA") for _ in range(3)]
    assert [j["id"] if j else None for j in got] == [mine, anyone, None]  # oldest first
    assert all(j["host"] == "hostA" and j["state"] == STARTING for j in got if j)
    assert control.get_job(theirs)["state"] == PENDING
    assert not control.claim(theirs, "hostA/1/1", "hostA")  # by id: refused as well
    assert control.claim(theirs, "hostB/1/1", "hostB")
    control.close()


@pytest.mark.timeout(240)
def test_200_jobs_claimed_at_once_by_two_hosts_are_each_taken_once_by_a_right_host(
    catalog_url, tmp_path
):
    control = Control(catalog_url)
    threads = 2 if catalog_url.startswith("sqlite") else 4  # SQLite: one writer at a time

    def create(i: int) -> tuple[str, str | None]:
        host = (None, "hostA", "hostB")[i % 3]
        return control.create_job("record", {"n": i}, host=host)["id"], host

    def create_all() -> dict[str, str | None]:
        with ThreadPoolExecutor(16) as pool:  # 200 requests at once, as the API makes them
            return dict(pool.map(create, range(JOBS)))

    created, won = race(catalog_url, tmp_path, list(HOSTS), "next", threads, create_all)
    claims = [claim for h in HOSTS for claim in won[h]]
    ids = [c[0] for c in claims]
    assert len(created) == JOBS
    assert sorted(ids) == sorted(created)  # each once: none twice, none left
    for job_id, host, manager in claims:
        assert created[job_id] in (None, host)  # never another host's job
        assert manager.split("/")[0] == host
    rows = {j["id"]: j for j in control.list_jobs()}
    assert {j["state"] for j in rows.values()} == {STARTING}
    assert all(rows[job_id]["host"] == host for job_id, host, _ in claims)
    control.close()


def _beat(control: Control, manager_id: str, host: str, age_s: float) -> None:
    control.heartbeat(manager_id, pid=1, data="/d", started_ns=1, host=host)
    from recorder.db.tables import managers

    with control.engine.begin() as conn:
        conn.execute(
            managers.update()
            .where(managers.c.id == manager_id)
            .values(heartbeat_ns=time.time_ns() - int(age_s * 1e9))
        )


def test_the_started_jobs_of_a_host_that_stopped_beating_are_failed_as_lost(catalog_url):
    control = Control(catalog_url)
    _beat(control, "hostA/1/1", "hostA", age_s=30)  # killed half a minute ago
    _beat(control, "hostB/1/1", "hostB", age_s=0)
    jobs = {}
    for name, host in [("a", "hostA"), ("a_pending", "hostA"), ("b", "hostB"), ("c", "hostC")]:
        jobs[name] = control.create_job("record", {}, host=host)["id"]
    assert control.claim(jobs["a"], "hostA/1/1", "hostA")
    control.update_job(jobs["a"], state=RUNNING, pid=4242)
    assert control.claim(jobs["b"], "hostB/1/1", "hostB")
    assert control.claim(jobs["c"], "hostC/1/1", "hostC")  # hostC: never beat, is it own host

    since = time.time_ns() - 10_000_000_000
    lost = control.fail_lost_jobs(since, besides="hostC")
    assert [j["id"] for j in lost] == [jobs["a"]]
    a = control.get_job(jobs["a"])
    assert (a["state"], a["desired"]) == (FAILED, DESIRED_STOPPED)
    assert a["error"].startswith("host lost: the manager of 'hostA' stopped beating")
    assert a["lost_ns"] and a["stop_requested_ns"]
    assert control.get_job(jobs["a_pending"])["state"] == PENDING  # waits for its host
    assert control.get_job(jobs["b"])["state"] == STARTING  # its host is alive
    assert control.get_job(jobs["c"])["state"] == STARTING  # the caller's own host
    assert control.fail_lost_jobs(since, besides="hostC") == []  # once

    control.update_job(jobs["a"], state=RUNNING, stats={"messages": 1})  # the worker, late
    assert control.get_job(jobs["a"])["state"] == FAILED
    assert [j["id"] for j in control.lost_jobs("hostA")] == [jobs["a"]]
    control.update_job(jobs["a"], lost_ns=None)  # what its manager does once it repaired it
    assert control.lost_jobs("hostA") == []
    control.close()


def test_heartbeats_carry_the_host_name_and_its_disk(catalog_url):
    control = Control(catalog_url)
    info = {"disk": {"total_bytes": 100, "free_bytes": 40}}
    control.heartbeat("rig-2/7/1", pid=7, data="/data", started_ns=1, host="rig-2", info=info)
    control.heartbeat("rig-2/7/1", pid=7, data="/data", started_ns=1, host="rig-2", info=info)
    [row] = control.all_managers()
    assert (row["host"], row["info"]) == ("rig-2", info)
    control.close()
