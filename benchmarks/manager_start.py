"""Six recordings started back to back through the catalog, until all six are `running`.

A real manager (on a thread here, as `recorder serve` runs it) with real worker processes and a
real SQLite catalog; the jobs are created one after the other as the API creates them
(`planning.start_recording`), all recording one simulated raw PUB source. The figure is the
wall time from creating the first job to the moment all six rows say `running` (a worker says
so once its sockets are open and its run exists). Target: <= 2 s.

Before each round the manager has been idle until its spares are started and quiet (their
imports done), as on a rig; after it, the six are stopped and waited for. `--spares 1` is the
old default: the first job gets the spare, the other five wait for a fresh interpreter.

    python benchmarks/manager_start.py [--rounds 3] [--spares N] [--jobs 6]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import median  # noqa: E402
from recorder import config  # noqa: E402
from recorder.db.catalog import Catalog  # noqa: E402
from recorder.db.control import Control  # noqa: E402
from recorder.manager.manager import SPARES, Manager  # noqa: E402
from recorder.manager.planning import start_recording  # noqa: E402
from recorder.simulators import make_simulator  # noqa: E402


def wait_until(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.01)


def spares_quiet(m: Manager, want: int) -> bool:
    """All spares started and idle (no CPU over a short look: their imports are done)."""
    pids = m.spare_pids
    if len(pids) < want:
        return False
    try:
        procs = [psutil.Process(p) for p in pids]
        before = [sum(p.cpu_times()[:2]) for p in procs]
        time.sleep(0.3)
        after = [sum(p.cpu_times()[:2]) for p in procs]
    except psutil.NoSuchProcess:
        return False
    return all(b - a < 0.01 for a, b in zip(before, after, strict=True))


def one_round(control: Control, m: Manager, source: dict, jobs: int, spares: int) -> float:
    wait_until(lambda: spares_quiet(m, spares), 300, "the spares to be ready")
    t0 = time.perf_counter()
    ids = [start_recording(control, sources=[source])["id"] for _ in range(jobs)]
    pending = set(ids)
    while pending:
        pending = {i for i in pending if control.get_job(i)["state"] != "running"}
        failed = [i for i in ids if control.get_job(i)["state"] == "failed"]
        if failed:
            raise RuntimeError(f"job failed: {control.get_job(failed[0])['error']}")
        if time.perf_counter() - t0 > 120:
            raise RuntimeError("jobs did not start in 120 s")
        time.sleep(0.01)
    took = time.perf_counter() - t0
    for i in ids:
        control.set_desired(i, "stopped")
    wait_until(
        lambda: all(control.get_job(i)["state"] in ("stopped", "failed") for i in ids),
        120,
        "the jobs to stop",
    )
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--spares", type=int, default=SPARES)
    parser.add_argument("--jobs", type=int, default=6)
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="manager-start-bench-"))
    sim = make_simulator("raw", "tcp://127.0.0.1:*", rate=100)
    endpoint = sim.start()
    folder = config.data_dir(work)
    url = config.catalog_url(None, folder)
    cat = Catalog(url)
    control = Control(cat.engine)
    m = Manager(folder, url, spares=opts.spares, stop_grace_s=10, kill_grace_s=5)
    m.start()
    stop = threading.Event()
    serving = threading.Thread(target=m.serve, args=(stop,), daemon=True)
    serving.start()
    try:
        source = {"protocol": "raw", "endpoint": endpoint}
        times = [one_round(control, m, source, opts.jobs, opts.spares) for _ in range(opts.rounds)]
        load = ", ".join(f"{x:.1f}" for x in psutil.getloadavg())
        print(
            f"{opts.jobs} recordings started back to back, {opts.spares} spares, load {load}:\n"
            f"  all running after {median(times):.2f} s (median of {opts.rounds}; "
            f"target <= 2.0)   [{', '.join(f'{t:.2f}' for t in times)}]"
        )
    finally:
        stop.set()
        serving.join(60)
        cat.close()
        sim.stop(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
