"""`recorder replay --max-speed` of 1 MiB frames against a raw pyzmq sender, in the same run.

A receiver in a separate process binds PULL and takes N messages per round, timing from its
first message to its last. Each round one sender connects PUSH to it and sends the same N
messages ([8-byte counter, 1 MiB payload]): the baseline sends them from memory (zero-copy,
as fast as pyzmq goes), the replayer reads them from a stored run (raw protocol: frames in
the heap; adzmq: 512x1024 uint16 images in a typed array) and sends them at --max-speed.
Senders alternate round by round. Prints MB/s and the ratio to the baseline (target >= 0.9).

    python benchmarks/replay_throughput.py [--count 1000] [--rounds 3]
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
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median, prefault

from recorder.protocols import adzmq, codec_for
from recorder.replay import Replayer
from recorder.store.run_writer import RunWriter

SHAPE = (512, 1024)  # uint16: 1 MiB


def receiver(endpoint_q, result_q, rounds: int, count: int) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    endpoint_q.put(f"tcp://127.0.0.1:{port}")
    for _ in range(rounds):
        first = sock.recv_multipart(copy=False)
        t0 = time.perf_counter()
        nbytes = sum(len(f) for f in first)
        for _ in range(count - 1):
            nbytes += sum(len(f) for f in sock.recv_multipart(copy=False))
        result_q.put((time.perf_counter() - t0, nbytes))
    sock.close()
    ctx.term()


def make_messages(count: int, protocol: str) -> list[list[bytes]]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 4096, SHAPE, dtype=np.uint16)
    out = []
    for i in range(count):
        image = base + np.uint16(i % 7)
        if protocol == "adzmq":
            out.append(adzmq.encode_array(image, i + 1, 1e9 + i / 1000, {}, "psi"))
        else:
            out.append([i.to_bytes(8, "little"), image.tobytes()])
    return out


def write_run(runs: Path, messages: list[list[bytes]], protocol: str) -> Path:
    """The run the recorder would have made (PULL bound where the receiver now binds, so the
    replay connects PUSH to it), written straight through the store."""
    codec = codec_for(protocol)
    with RunWriter(runs, name=f"bench {protocol}") as run:
        w = run.add_stream(
            "main", protocol=protocol, endpoint="tcp://127.0.0.1:5999", socket_type="PULL",
            role="bind",
        )  # fmt: skip
        t0 = run.started_ns
        for i, frames in enumerate(messages):
            w.append(t0 + i * 1_000_000, frames, codec.decode(frames))
    return run.path


def raw_sender(ctx, endpoint: str, messages: list[list[bytes]]) -> None:
    sock = ctx.socket(zmq.PUSH)
    sock.sndhwm = 1000  # as the replayer's
    sock.connect(endpoint)
    for m in messages:
        sock.send_multipart(m, copy=len(m[-1]) < 65536)
    return sock


def bench(protocol: str, count: int, rounds: int, workdir: Path) -> dict[str, list]:
    messages = make_messages(count, protocol)
    path = write_run(workdir, messages, protocol)
    endpoint_q, result_q = mp.get_context("spawn").Queue(), mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(
        target=receiver, args=(endpoint_q, result_q, 2 * rounds, count), daemon=True
    )
    proc.start()
    endpoint = endpoint_q.get(timeout=60)
    ctx = zmq.Context()
    results: dict[str, list] = {"pyzmq": [], "replay": []}
    for r in range(rounds):
        for name in ("pyzmq", "replay") if r % 2 == 0 else ("replay", "pyzmq"):
            prefault(1.0)
            if name == "pyzmq":
                sock = raw_sender(ctx, endpoint, messages)
                elapsed, nbytes = result_q.get(timeout=300)
                sock.close(linger=-1)
            else:
                rp = Replayer(path, max_speed=True, endpoints={"": endpoint})
                rp.start()
                elapsed, nbytes = result_q.get(timeout=300)
                assert rp.wait(60) and rp.error is None, rp.error
                assert rp.status()["messages"] == count
                rp.close()
            results[name].append((elapsed, nbytes))
    proc.join(30)
    ctx.term()
    return results


def report(protocol: str, count: int, results: dict[str, list]) -> float:
    rates = {n: [nb / t for t, nb in runs] for n, runs in results.items()}
    base = median(rates["pyzmq"])
    print(f"\n{protocol}: {count} messages of 1 MiB, {len(rates['pyzmq'])} rounds each")
    print(f"{'sender':<8} {'MB/s (median)':>14} {'rounds':>30} {'ratio':>7}")
    for name, values in rates.items():
        each = " ".join(f"{v / 1e6:.0f}" for v in values)
        print(f"{name:<8} {median(values) / 1e6:>14.0f} {each:>30} {median(values) / base:>7.2f}")
    return median(rates["replay"]) / base


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--protocol", choices=["raw", "adzmq", "both"], default="both")
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="replaybench-"))
    ratios = {}
    try:
        for protocol in ("raw", "adzmq") if args.protocol == "both" else (args.protocol,):
            results = bench(protocol, args.count, args.rounds, workdir)
            ratios[protocol] = report(protocol, args.count, results)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    ok = all(r >= 0.9 for r in ratios.values())
    print(
        "\ntarget (replay >= 0.9 x raw pyzmq):",
        ", ".join(f"{p} {r:.2f}" for p, r in ratios.items()),
        "met" if ok else "NOT met",
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
