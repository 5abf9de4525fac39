"""Peak RSS while replaying a run far larger than what the reader keeps in memory.

Records a run of N x 1 MiB frames with the real recorder (a sender process PUSHes, the
recorder PULLs; default 3 GiB, about 100x the reader's 32 MiB window and 10x the 300 MiB a
chunk cache might hold). Then replays it twice, each time in a fresh process, at
--max-speed to a PULL receiver in another process, while a thread samples the replaying
process's RSS with psutil every 5 ms: once only its first third (--end), once whole. Prints
baseline (replayer opened, nothing read), peak, the peak per tenth of the replay, and how
much higher the whole run's peak is than the third's: flat means memory does not grow with
the run's length.

    python benchmarks/replay_memory.py [--gib 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recorder.recording.recording import Recording, SourceSpec
from recorder.replay import Replayer
from recorder.store import reader as reader_module
from recorder.store.reader import RunReader

MIB = 1 << 20


def sender(endpoint: str, count: int) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.connect(endpoint)
    payload = os.urandom(MIB)
    for i in range(count):
        sock.send_multipart([i.to_bytes(8, "little"), payload], copy=False)
    sock.close(linger=-1)
    ctx.term()


def drain(endpoint_q, done_q, count: int) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    endpoint_q.put(f"tcp://127.0.0.1:{port}")
    nbytes = 0
    for _ in range(count):
        nbytes += sum(len(f) for f in sock.recv_multipart(copy=False))
    done_q.put(nbytes)
    sock.close()
    ctx.term()


def record_big(runs: Path, count: int, result_q) -> None:
    """In its own process, so the replaying process starts clean. The recorder binds PULL
    and a sender process connects: the replay will connect PUSH to a receiver bound in the
    sender's place."""
    t0 = time.perf_counter()
    spec = SourceSpec(endpoint="tcp://127.0.0.1:*", socket_type="PULL", bind=True)
    rec = Recording(runs, [spec], count=count)
    rec.start()
    proc = mp.get_context("spawn").Process(
        target=sender, args=(rec.streams[0].bound_endpoint, count), daemon=True
    )
    proc.start()
    rec.wait(poll=0.05)
    status = rec.finish()
    proc.join(60)
    assert status == "complete", rec.error
    s = rec.stats()
    print(f"recorded {s['messages']} messages, {s['bytes'] / 2**30:.2f} GiB in "
          f"{time.perf_counter() - t0:.1f} s (drops {s['drops']})")  # fmt: skip
    result_q.put(str(rec.run.path))


class RssSampler(threading.Thread):
    def __init__(self, progress):
        super().__init__(daemon=True)
        self.proc = psutil.Process()
        self.progress = progress
        self.samples: list[tuple[float, int]] = []  # (progress 0..1, rss)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((self.progress(), self.proc.memory_info().rss))
            time.sleep(0.005)


def replay_measured(path: str, count: int, end_s: float | None, result_q) -> None:
    """In a fresh process (no allocator state from earlier work): replay `count` messages
    (the run up to `end_s`) at max speed to a PULL in another process, sampling this
    process's RSS. Puts (baseline, [(progress, rss)], bytes, seconds)."""
    spawn = mp.get_context("spawn")
    q, done_q = spawn.Queue(), spawn.Queue()
    proc = spawn.Process(target=drain, args=(q, done_q, count), daemon=True)
    proc.start()
    endpoint = q.get(timeout=60)
    rp = Replayer(Path(path), max_speed=True, end=end_s, endpoints={"": endpoint})
    assert (rp.plans["main"].socket_type, rp.plans["main"].bind) == ("PUSH", False)
    baseline = psutil.Process().memory_info().rss
    sampler = RssSampler(lambda: rp.sent / count)
    sampler.start()
    t0 = time.perf_counter()
    rp.start()
    nbytes = done_q.get(timeout=600)
    elapsed = time.perf_counter() - t0
    assert rp.wait(60) and rp.error is None, rp.error
    assert rp.status()["messages"] == count
    sampler.stop.set()
    sampler.join()
    rp.close()
    proc.join(30)
    result_q.put((baseline, sampler.samples, nbytes, elapsed))


def run_end_s(path: Path, index: int) -> float:
    """--end (seconds from the run's start) that stops right before message `index`."""
    with RunReader(path) as run:
        stream = run.stream("main")
        return (int(stream.column("recv_ns", index, index + 1)[0]) - run.started_ns) / 1e9


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gib", type=float, default=3.0)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    count = int(args.gib * 1024)
    workdir = Path(tempfile.mkdtemp(prefix="replaymem-", dir=args.workdir))
    spawn = mp.get_context("spawn")
    results = {}
    try:
        q = spawn.Queue()
        rec_proc = spawn.Process(target=record_big, args=(workdir, count, q))
        rec_proc.start()
        path = Path(q.get(timeout=1200))
        rec_proc.join(60)
        run_bytes = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        third = count // 3
        for label, n, end_s in (("1/3 of the run", third, run_end_s(path, third)),
                                ("whole run", count, None)):  # fmt: skip
            proc = spawn.Process(target=replay_measured, args=(str(path), n, end_s, q))
            proc.start()
            results[label] = q.get(timeout=1200)
            proc.join(60)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\nrun on disk {run_bytes / 2**30:.2f} GiB of 1 MiB frames; the reader keeps "
          f"{reader_module._WINDOW_BYTES / MIB:.0f} MiB windows; each replay in a fresh process "
          "at --max-speed to a PULL in another process")  # fmt: skip
    peaks = {}
    for label, (baseline, samples, nbytes, elapsed) in results.items():
        rss = [r for _, r in samples]
        peaks[label] = max(rss) - baseline
        deciles = []
        for d in range(10):
            inside = [r for prog, r in samples if d / 10 <= prog < (d + 1) / 10]
            deciles.append(f"{max(inside) / MIB:.0f}" if inside else "-")
        print(f"\n{label}: {nbytes / 2**30:.2f} GiB in {elapsed:.1f} s "
              f"({nbytes / elapsed / 1e6:.0f} MB/s), {len(rss)} RSS samples")  # fmt: skip
        print(f"  RSS baseline {baseline / MIB:.0f} MiB, peak {max(rss) / MIB:.0f} MiB "
              f"(+{peaks[label] / MIB:.0f} MiB)")  # fmt: skip
        print("  peak RSS (MiB) per tenth of the replay:", " ".join(deciles))
    growth = (peaks["whole run"] - peaks["1/3 of the run"]) / MIB
    print(f"\npeak above baseline: whole run vs 1/3 of it: {growth:+.0f} MiB "
          f"for {2 * third} MiB more replayed")  # fmt: skip
    ok = peaks["whole run"] < run_bytes / 4 and growth < 128
    print("target (peak - baseline < 1/4 of the run, < 128 MiB more for 3x the length):",
          "met" if ok else "NOT met")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
