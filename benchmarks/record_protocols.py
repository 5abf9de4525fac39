"""Recording rate per wire protocol against the raw pyzmq-to-file baseline, in the same run.

For each protocol a separate sender process pre-generates N messages with the protocol's own
simulator (`message(i)`: the exact frames the live system sends) and PUSHes them raw, as fast
as it can, to one receiver after another (PUSH -> PULL, so nothing is lost on the wire). Each
round the receivers take the same stream, alternating so machine noise hits them alike:

* baseline: plain pyzmq recv + file.write (record_throughput.baseline, the same code);
* recorder: our Recording with the protocol's codec (typed arrays, columns, gap counting);
* raw: our Recording storing the same frames verbatim, to show what the codec itself costs;
* raw-rx (Open Ephys only): the same, received by a receive process as the typed recorder's
  stream is, so the two differ only by the typed work in the recorder's process (decoding,
  placing, the overview): the most that work could give back if it cost nothing.

Each is timed from its first message to everything fsynced. Prints messages/s, MB/s, the ratio
to the baseline, loss and rejects (a faithful stream must give none), and where the CPU went,
in microseconds a message: the receiving process (the recorder's own, or the baseline's), its
receive process where it has one (Open Ephys), and the sender; on 2 cores their sum bounds the
rate as much as any one of them.

    python benchmarks/record_protocols.py [--rounds 3] [--scale 1.0] [--only adzmq,karabo]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fsync_tree, median, prefault
from record_throughput import Ack, baseline

from recorder.recording.recording import Recording, SourceSpec
from recorder.store.reader import RunReader


@dataclass
class Case:
    protocol: str
    what: str
    count: int
    options: dict = field(default_factory=dict)


CASES = [
    Case("adzmq", "1 MiB uint16 images (512x1024)", 500, {"height": 512, "width": 1024}),
    Case("pymultivideo", "640x480 uint8 frames", 1500, {"height": 480, "width": 640}),
    Case("karabo", "small detector trains (2.2)", 20000, {"detector": "small", "n_sources": 1}),
    Case(
        "openephys",
        "64 ch x 1024 samples blocks",
        40000,
        {"n_channels": 64, "n_samples": 1024},
    ),
    Case(
        "openephys",
        "384 ch x 1024 samples blocks (one Neuropixels probe)",
        40000,
        {"n_channels": 384, "n_samples": 1024},
    ),
]


def sender(q: mp.Queue, protocol: str, options: dict, count: int, receivers: int) -> None:
    """Pre-generates `count` messages, binds PUSH and serves each receiver the same stream."""
    from recorder.simulators import make_simulator

    sim = make_simulator(protocol, **options)
    messages = [sim.message(i) for i in range(count)]
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.sndhwm = 1000
    sock.bind("tcp://127.0.0.1:*")
    ack = ctx.socket(zmq.PULL)
    ack.bind("tcp://127.0.0.1:*")
    q.put(sock.getsockopt_string(zmq.LAST_ENDPOINT))
    q.put(ack.getsockopt_string(zmq.LAST_ENDPOINT))
    big = max(map(len, messages[0])) >= 65536
    for _ in range(receivers):
        ack.recv()  # the next receiver is connected and ready
        for frames in messages:
            sock.send_multipart(frames, copy=not big)
        ack.recv()  # it has everything: let the next one connect
    sock.close(linger=-1)
    ack.close()
    ctx.term()


def recording(protocol: str, receiver: str = "auto"):
    """A receiver like record_throughput.recorder, with a protocol (and counting rejects)."""

    def receive(ctx, endpoint, ack, count, out_dir: Path) -> tuple[float, int, int, int]:
        # heartbeat=False: the sender is not an Open Ephys GUI, nothing answers on port + 1
        spec = SourceSpec(
            endpoint, socket_type="PULL", protocol=protocol, heartbeat=False, receiver=receiver
        )
        rec = Recording(out_dir, [spec], count=count)
        rec.start()
        ack.send()
        rec.wait(poll=0.005)
        rec.finish()
        end = time.perf_counter()
        fsync_tree(rec.run.path)
        done = time.perf_counter()
        with RunReader(rec.run.path) as run:
            s = run.summary()
        first_ns = s["streams"][0]["first_recv_ns"]
        # first receive (wall clock in the store) to now, on the perf_counter timeline
        elapsed = (done - end) + (time.time_ns() - (done - end) * 1e9 - first_ns) / 1e9
        ack.send()
        return elapsed, s["messages"] - s["drops"], s["bytes"], s["rejects"]

    return receive


def _baseline(ctx, endpoint, ack, count, out_dir: Path) -> tuple[float, int, int, int]:
    return (*baseline(ctx, endpoint, ack, count, out_dir), 0)


def bench(case: Case, rounds: int, workdir: Path) -> dict[str, list]:
    receivers = {
        "baseline": _baseline,
        "recorder": recording(case.protocol),
        "raw": recording("raw"),
    }
    if case.protocol == "openephys":  # the one protocol received in a process by default
        receivers["raw-rx"] = recording("raw", receiver="process")
    order = list(receivers)
    ctx = zmq.Context()
    spawn = mp.get_context("spawn")
    q = spawn.Queue()
    proc = spawn.Process(
        target=sender,
        args=(q, case.protocol, case.options, case.count, rounds * len(order)),
        daemon=True,
    )
    proc.start()
    endpoint, ack_endpoint = q.get(timeout=600), q.get(timeout=60)
    ack = Ack(ctx, ack_endpoint)
    results: dict[str, list] = {name: [] for name in order}
    me, sending = psutil.Process(), psutil.Process(proc.pid)
    try:
        for r in range(rounds):
            for name in order if r % 2 == 0 else order[::-1]:
                out = Path(tempfile.mkdtemp(dir=workdir))
                prefault()
                before = _cpu(me, sending)
                got = receivers[name](ctx, endpoint, ack, case.count, out)
                used = [b - a for a, b in zip(before, _cpu(me, sending), strict=True)]
                results[name].append((*got, used))
                shutil.rmtree(out)
        proc.join(120)
    finally:
        ack.close()
        if proc.is_alive():
            proc.kill()
        ctx.term()
    return results


def _cpu(me: psutil.Process, sending: psutil.Process) -> tuple[float, float, float]:
    """CPU seconds so far (user + system) of this process, of its children that have ended
    (a recording's receive process, once the recording reaped it) and of the sender."""
    t, s = me.cpu_times(), sending.cpu_times()
    return t.user + t.system, t.children_user + t.children_system, s.user + s.system


HEADER = (
    f"{'protocol':<13} {'receiver':<9} {'msg/s':>10} {'MB/s':>8} {'ratio':>6} "
    f"{'loss':>5} {'rejects':>7}  CPU us/msg: {'here':>5} {'rx':>5} {'send':>5}"
)


def report(case: Case, results: dict[str, list]) -> dict:
    base = median([nb / t for t, _, nb, _, _ in results["baseline"]])
    out = {}
    for name, runs in results.items():
        mbs = median([nb / t for t, _, nb, _, _ in runs])
        msgs = median([got / t for t, got, _, _, _ in runs])
        loss = max(case.count - got for _, got, _, _, _ in runs)
        rejects = max(r[3] for r in runs)
        cpu = [median([r[4][i] / case.count * 1e6 for r in runs]) for i in range(3)]
        out[name] = {"msg/s": msgs, "MB/s": mbs / 1e6, "ratio": mbs / base, "loss": loss,
                     "rejects": rejects, "cpu_us": cpu}  # fmt: skip
        print(
            f"{case.protocol:<13} {name:<9} {msgs:>10.0f} {mbs / 1e6:>8.1f} "
            f"{mbs / base:>6.2f} {loss:>5} {rejects:>7}              "
            f"{cpu[0]:>5.1f} {cpu[1]:>5.1f} {cpu[2]:>5.1f}",
            flush=True,
        )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every message count")
    ap.add_argument("--only", default="", help="comma-separated protocols (default: all)")
    ap.add_argument("--workdir", type=Path, default=None, help="where to write (default: tmp)")
    args = ap.parse_args()
    only = {p for p in args.only.split(",") if p}
    cases = [c for c in CASES if not only or c.protocol in only]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="recbench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"{args.rounds} rounds, medians; ratio = MB/s / baseline MB/s of the same stream\n")
    for c in cases:
        c.count = max(10, int(c.count * args.scale))
        print(f"  {c.protocol}: {c.count} messages, {c.what}")
    print("\n" + HEADER)
    faithful = True
    try:
        for case in cases:
            out = report(case, bench(case, args.rounds, workdir))
            faithful &= all(r["loss"] == 0 and r["rejects"] == 0 for r in out.values())
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print("\nzero loss and zero rejects:", "yes" if faithful else "NO")
    return 0 if faithful else 1


if __name__ == "__main__":
    sys.exit(main())
