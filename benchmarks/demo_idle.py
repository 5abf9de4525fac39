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
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
RECORDER = [sys.executable, "-m", "recorder"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_cpu(root: psutil.Process) -> float:
    """CPU seconds (user + system) of a process and its children alive now."""
    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def tree_percent(root: psutil.Process, seconds: float) -> tuple[float, int]:
    """CPU % of the tree over `seconds` (children that start or end meanwhile are counted
    from when they are seen), and the number of processes."""
    procs = {p.pid: p for p in [root, *root.children(recursive=True)]}
    before = {}
    for pid, p in procs.items():
        try:
            t = p.cpu_times()
            before[pid] = t.user + t.system
        except psutil.NoSuchProcess:
            pass
    t0 = time.perf_counter()
    time.sleep(seconds)
    used = 0.0
    for pid, p in procs.items():
        try:
            t = p.cpu_times()
            used += t.user + t.system - before.get(pid, 0.0)
        except psutil.NoSuchProcess:
            pass
    return 100 * used / (time.perf_counter() - t0), len(procs)


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
        c0, t0 = time.process_time(), time.perf_counter()
        time.sleep(seconds)
        return 100 * (time.process_time() - c0) / (time.perf_counter() - t0)
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
        pct, _ = tree_percent(psutil.Process(proc.pid), seconds)
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
        return tree_percent(psutil.Process(proc.pid), seconds)
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
