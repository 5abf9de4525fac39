"""`recorder replay --speed 1` timing error for a 1 kHz stream.

A run of N messages recorded exactly 1 ms apart (1 KiB each) is replayed at speed 1 to a PULL
receiver in a separate process. Two figures per sender, both against the schedule
`first send + (recorded time - first recorded time) / speed`:

- send error: when the message was handed to zmq (time taken in the sending process right
  before `send`; for the replayer by wrapping its `send_frames`) - what the pacer controls;
- arrival error: when the receiver process got it (CLOCK_MONOTONIC is shared by processes),
  so it includes the loopback transport and the receiver's own wake-up.

The baseline is a plain pyzmq sender pacing itself with `time.sleep` until each due time, in
the same run, rounds alternating. Target: replay send-error p99 and p99.9 no worse than
the baseline's.

    python benchmarks/replay_timing.py [--count 5000] [--rounds 3] [--speed 1]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import recorder.replay.replayer as replayer_module
from recorder.replay import Replayer
from recorder.store.run_writer import RunWriter

PERIOD_NS = 1_000_000  # 1 kHz


def receiver(endpoint_q, result_q, rounds: int, count: int) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    endpoint_q.put(f"tcp://127.0.0.1:{port}")
    for _ in range(rounds):
        arrivals = np.empty(count, dtype=np.int64)
        for i in range(count):
            sock.recv_multipart()
            arrivals[i] = time.monotonic_ns()
        result_q.put(arrivals)
    sock.close()
    ctx.term()


def write_run(runs: Path, count: int) -> tuple[Path, np.ndarray]:
    payload = bytes(1024)
    with RunWriter(runs, name="timing") as run:
        w = run.add_stream(
            "main", protocol="raw", endpoint="tcp://127.0.0.1:5999", socket_type="PULL",
            role="bind",
        )  # fmt: skip
        recorded = run.started_ns + 100_000_000 + np.arange(count, dtype=np.int64) * PERIOD_NS
        for i, t in enumerate(recorded):
            w.append(int(t), [i.to_bytes(8, "little"), payload])
    return run.path, recorded


def replay_round(path: Path, endpoint: str, speed: float, count: int) -> np.ndarray:
    sends: list[int] = []
    real_send = replayer_module.send_frames

    def timed_send(sock, frames, flags=0):
        sends.append(time.monotonic_ns())
        return real_send(sock, frames, flags)

    replayer_module.send_frames = timed_send
    try:
        rp = Replayer(path, speed=speed, endpoints={"": endpoint})
        rp.start()
        assert rp.wait(count / 1000 / speed + 60) and rp.error is None, rp.error
        rp.close()
    finally:
        replayer_module.send_frames = real_send
    assert len(sends) == count
    return np.array(sends, dtype=np.int64)


def sleep_round(ctx, endpoint: str, recorded: np.ndarray, speed: float) -> np.ndarray:
    """The naive baseline: time.sleep until each message is due, then send."""
    sock = ctx.socket(zmq.PUSH)
    sock.connect(endpoint)
    payload = bytes(1024)
    sends = np.empty(len(recorded), dtype=np.int64)
    t0 = time.monotonic_ns()
    for i, t in enumerate(recorded):
        due = t0 + (t - recorded[0]) / speed
        left = (due - time.monotonic_ns()) / 1e9
        if left > 0:
            time.sleep(left)
        sends[i] = time.monotonic_ns()
        sock.send_multipart([i.to_bytes(8, "little"), payload])
    sock.close(linger=-1)
    return sends


def errors_us(times: np.ndarray, sends: np.ndarray, recorded: np.ndarray, speed: float):
    scheduled = sends[0] + (recorded - recorded[0]) / speed
    return (times - scheduled) / 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--speed", type=float, default=1.0)
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="replaytiming-"))
    spawn = mp.get_context("spawn")
    endpoint_q, result_q = spawn.Queue(), spawn.Queue()
    proc = spawn.Process(
        target=receiver, args=(endpoint_q, result_q, 2 * args.rounds, args.count), daemon=True
    )
    proc.start()
    ctx = zmq.Context()
    stats: dict[str, dict[str, list]] = {
        "replay": {"send": [], "arrival": []},
        "sleep": {"send": [], "arrival": []},
    }
    try:
        path, recorded = write_run(workdir, args.count)
        endpoint = endpoint_q.get(timeout=60)
        for r in range(args.rounds):
            for name in ("replay", "sleep") if r % 2 == 0 else ("sleep", "replay"):
                if name == "replay":
                    sends = replay_round(path, endpoint, args.speed, args.count)
                else:
                    sends = sleep_round(ctx, endpoint, recorded, args.speed)
                arrivals = result_q.get(timeout=120)
                stats[name]["send"].append(errors_us(sends, sends, recorded, args.speed))
                stats[name]["arrival"].append(errors_us(arrivals, sends, recorded, args.speed))
    finally:
        proc.join(30)
        ctx.term()
        shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"\n{args.count} messages at {1e9 / PERIOD_NS:.0f} Hz recorded, replayed at speed "
        f"{args.speed:g}, {args.rounds} rounds each; error = actual - scheduled, in us"
    )
    print(f"{'sender':<8} {'measured at':<12} {'p50':>8} {'p99':>8} {'p99.9':>8} {'max':>9} "
          f"{'early max':>10}")  # fmt: skip
    figures: dict[tuple[str, str], tuple[float, float]] = {}
    for name, kinds in stats.items():
        for kind, rounds in kinds.items():
            e = np.concatenate(rounds)
            p50, p99, p999 = np.percentile(e, [50, 99, 99.9])
            figures[name, kind] = (p99, p999)
            print(
                f"{name:<8} {kind:<12} {p50:>8.1f} {p99:>8.1f} {p999:>8.1f} {e.max():>9.1f} "
                f"{-min(0.0, e.min()):>10.1f}"
            )
    per_round = [float(np.percentile(e, 99)) for e in stats["replay"]["send"]]
    print("replay send-error p99 per round (us):", ", ".join(f"{v:.1f}" for v in per_round))
    replay, sleep = figures["replay", "send"], figures["sleep", "send"]
    ok = replay[0] <= sleep[0] and replay[1] <= sleep[1]
    print(
        "\ntarget (replay send-error p99 and p99.9 no worse than the time.sleep sender's, "
        f"{replay[0]:.0f}/{replay[1]:.0f} vs {sleep[0]:.0f}/{sleep[1]:.0f} us):",
        "met" if ok else "NOT met",
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
