"""Managers racing for jobs: claimer processes (as the managers of other hosts) take pending
jobs while the test creates them, and report which they won. tests/db/test_claims.py races
`claim` by id, tests/db/test_host_claims.py `claim_next` per host."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tests.helpers import wait_for

T = TypeVar("T")

# argv: url, host, out, done, threads, how ("id": list the pending jobs and claim each by id,
# as manager id host/1/1; "next": claim_next(host/i/1, host) in each thread). Writes one line
# per job won: "id host manager".
CLAIMER = """
import sys, threading, time
from pathlib import Path
from recorder.db.control import Control
from recorder.db.jobs import PENDING
url, host, out, done, threads, how = sys.argv[1:7]
out, done = Path(out), Path(done)
control = Control(url)
won, lock = [], threading.Lock()
out.with_suffix(".ready").touch()

def by_id(me):
    while True:
        finished = done.exists()  # read first: every job was created before it appeared
        pending = [j["id"] for j in control.list_jobs(active=True) if j["state"] == PENDING]
        got = [j for j in pending if control.claim(j, me)]
        with lock:
            won.extend(f"{j} {host} {me}" for j in got)
        if finished and not pending:
            return
        time.sleep(0.001)

def by_next(me):
    while True:
        finished = done.exists()  # read first: every job was created before it appeared
        job = control.claim_next(me, host)
        if job is not None:
            with lock:
                won.append(f"{job['id']} {job['host']} {job['manager']}")
        elif finished:
            return
        else:
            time.sleep(0.005)

claim = by_id if how == "id" else by_next
ts = [threading.Thread(target=claim, args=(f"{host}/{i}/1",)) for i in range(1, int(threads) + 1)]
[t.start() for t in ts]
[t.join() for t in ts]
out.write_text("\\n".join(won))
"""


def race(
    url: str, folder: Path, hosts: list[str], how: str, threads: int, create: Callable[[], T]
) -> tuple[T, dict[str, list[list[str]]]]:
    """One claimer process per host racing while `create()` makes the jobs; returns what
    `create` returned and, per host, the jobs its claimer won as [id, host, manager]."""
    done = folder / "done"
    outs = {h: folder / f"claims-{h}.txt" for h in hosts}
    claimers = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, url, h, str(out), str(done), str(threads), how],
            stderr=subprocess.PIPE,
        )
        for h, out in outs.items()
    ]
    try:
        wait_for(
            lambda: (
                all(o.with_suffix(".ready").exists() for o in outs.values())
                or any(p.poll() is not None for p in claimers)
            ),
            60,
            "the claimers to start",
        )
        created = create()
        done.touch()
        for p in claimers:
            _, err = p.communicate(timeout=180)
            assert p.returncode == 0, err.decode()
    finally:
        for p in claimers:
            if p.poll() is None:
                p.kill()
                p.wait()
    return created, {h: [ln.split() for ln in o.read_text().splitlines()] for h, o in outs.items()}
