"""What `recorder serve --demo` costs at rest: CPU while nothing records or replays.

Three figures, each CPU time over a window divided by its wall time (100 % = one core):

- simulators: every protocol's demo simulator (as `serve --demo` starts them, with the
  request/reply client), alone in this process, no subscriber;
- simulate: one `recorder simulate openephys --rate 2000` (the issue's example), its process;
- serve: the whole `recorder serve --demo` process tree (serve with the manager thread and the
  simulators, the web server and its workers, the manager's spare workers), after it has
  settled (the spares have done their imports).

    python benchmarks/demo_idle.py [--seconds 30] [--settle 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import ENV, RECORDER, free_port, tree_percent  # noqa: E402


def simulators_alone(seconds: float) -> float:
    from recorder import protocols
    from recorder.manager.demo import _ReqClient
    from recorder.simulators import make_simulator

    sims, clients = [], []
    for d in protocols.descriptors():
        if d.demo is None or d.simulator is None:
            continue
        sim = make_simulator(d.name, "tcp://127.0.0.1:*", **d.demo.options)
        bound = sim.start()
        sims.append(sim)
        if d.proxy:  # as serve --demo: a client asks the simulated service directly here
            client = _ReqClient(bound, sim)
            client.start()
            clients.append(client)
    try:
        time.sleep(1.0)
        pct, _ = tree_percent(os.getpid(), seconds)
        return pct
    finally:
        for c in clients:
            c.stop.set()
        for sim in sims:
            sim.stop(5)


def one_simulate(seconds: float) -> float:
    port = free_port()
    proc = subprocess.Popen(
        [*RECORDER, "simulate", "openephys", "--rate", "2000", "--bind", f"tcp://127.0.0.1:{port}"],
        env=ENV,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        proc.stderr.readline()  # "simulating ... on ...": imports done, bound
        time.sleep(1.0)
        pct, _ = tree_percent(proc.pid, seconds)
        return pct
    finally:
        proc.terminate()
        proc.wait(30)


def serve_demo(seconds: float, settle: float) -> tuple[float, int]:
    work = Path(tempfile.mkdtemp(prefix="demo-idle-bench-"))
    port = free_port()
    args = [*RECORDER, "serve", "--demo", "--port", str(port), "--data", str(work)]
    proc = subprocess.Popen(args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        if not proc.stdout.readline():  # the sign-in link: serving
            raise RuntimeError("serve --demo did not start")
        time.sleep(settle)  # the manager starts its spares one a second; they import
        return tree_percent(proc.pid, seconds)
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--settle", type=float, default=20.0)
    opts = parser.parse_args()
    load = ", ".join(f"{x:.1f}" for x in psutil.getloadavg())
    print(f"at rest, CPU over {opts.seconds:g} s (100 % = one core; load {load}):")
    print(f"  demo simulators alone         {simulators_alone(opts.seconds):5.1f} %")
    print(f"  simulate openephys --rate 2000 {one_simulate(opts.seconds):5.1f} %")
    pct, n = serve_demo(opts.seconds, opts.settle)
    print(f"  serve --demo, whole tree      {pct:5.1f} %  ({n} processes)")


if __name__ == "__main__":
    main()
