"""`recorder replay --max-speed` of 1 MiB frames against a raw pyzmq sender, in the same run.

A receiver in a separate process binds PULL and takes N messages per round, timing from its
first message to its last. Each round one sender connects PUSH to it and sends the same N
messages ([8-byte counter, 1 MiB payload]): the baseline sends them from memory (zero-copy,
as fast as pyzmq goes, with the send queue the replayer would use), the replayer reads them
from a stored run (raw protocol: frames in the heap, straddling its shards; adzmq: 512x1024
uint16 images in a typed array) and sends them at --max-speed.

The machine is shared and noisy, so: a warm-up round of each first (not counted), then rounds
in alternating order (pyzmq first in even rounds, replay first in odd ones); per round the
MB/s of both and their ratio, then medians. The verdict is the median of the per-round ratios
(each replay round against the pyzmq round next to it, so slow drifts of the load cancel).
CPU per MiB of each sender's process (its Python threads and zmq's I/O thread, process_time
over the round) is printed too: it is steadier than wall-clock rates when the cores are busy.
So is how long the sender's zmq I/O thread was runnable but waiting for a core (Linux
schedstat): the replay's rounds are slower mostly by that wait, not by the sender's own CPU.
The load average is printed before and after. Target: replay >= 0.9 x raw pyzmq.

    python benchmarks/replay_throughput.py [--count 1000] [--rounds 7] [--protocol both]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import io_thread_waits, median, prefault, waited_since

from recorder.protocols import adzmq, codec_for
from recorder.replay import Replayer
from recorder.replay.replayer import _QUEUE_BYTES
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


def queue_messages(mean_bytes: int) -> int:
    """The send queue the replayer gives a stream of messages this large (replayer.py)."""
    return int(min(1000, max(16, _QUEUE_BYTES // max(1, mean_bytes))))


def raw_sender(ctx, endpoint: str, messages: list[list[bytes]], hwm: int) -> zmq.Socket:
    sock = ctx.socket(zmq.PUSH)
    sock.sndhwm = hwm
    sock.connect(endpoint)
    for m in messages:
        sock.send_multipart(m, copy=len(m[-1]) < 65536)
    return sock


Round = tuple[float, int, float, float]
"""(seconds first to last message, bytes, sender CPU s, s its zmq I/O thread waited for a core)"""


def bench(protocol: str, count: int, rounds: int, workdir: Path) -> dict[str, list[Round]]:
    messages = make_messages(count, protocol)
    path = write_run(workdir, messages, protocol)
    expect = sum(len(f) for m in messages for f in m)
    hwm = queue_messages(expect // count)
    spawn = mp.get_context("spawn")
    endpoint_q, result_q = spawn.Queue(), spawn.Queue()
    proc = spawn.Process(
        target=receiver, args=(endpoint_q, result_q, 2 * (rounds + 1), count), daemon=True
    )
    proc.start()
    endpoint = endpoint_q.get(timeout=60)
    ctx = zmq.Context()
    results: dict[str, list[Round]] = {"pyzmq": [], "replay": []}
    for r in range(-1, rounds):  # round -1: warm-up
        for name in ("pyzmq", "replay") if r % 2 == 0 else ("replay", "pyzmq"):
            prefault(1.0)
            cpu, waits = time.process_time(), io_thread_waits()
            if name == "pyzmq":
                sock = raw_sender(ctx, endpoint, messages, hwm)
                elapsed, nbytes = result_q.get(timeout=300)
                waited = waited_since(waits)
                sock.close(linger=-1)
            else:
                rp = Replayer(path, max_speed=True, endpoints={"": endpoint})
                rp.start()
                elapsed, nbytes = result_q.get(timeout=300)
                waited = waited_since(waits)  # before the close: its I/O thread ends with it
                assert rp.wait(60) and rp.error is None, rp.error
                assert rp.status()["messages"] == count
                rp.close()
            cpu = time.process_time() - cpu
            assert nbytes == expect, f"{name}: {nbytes} bytes arrived, {expect} sent"
            if r >= 0:
                results[name].append((elapsed, nbytes, cpu, waited))
    proc.join(30)
    ctx.term()
    return results


def report(protocol: str, count: int, results: dict[str, list[Round]]) -> float:
    rates = {n: [r[1] / r[0] for r in runs] for n, runs in results.items()}
    cpu = {n: [r[2] / (r[1] / (1 << 20)) * 1e6 for r in runs] for n, runs in results.items()}
    wait = {n: [r[3] * 1e3 for r in runs] for n, runs in results.items()}
    ratios = [a / b for a, b in zip(rates["replay"], rates["pyzmq"], strict=True)]
    print(f"\n{protocol}: {count} messages of 1 MiB, {len(ratios)} rounds each (after a warm-up)")
    print(
        f"{'round':<7} {'pyzmq MB/s':>11} {'replay MB/s':>12} {'ratio':>7} {'CPU us/MiB':>22}"
        f" {'I/O thread waited ms':>21}"
    )

    def row(label: str, a: float, b: float, ratio: float, c: tuple, w: tuple) -> None:
        print(
            f"{label:<7} {a:>11.0f} {b:>12.0f} {ratio:>7.2f} {f'{c[0]:.0f} / {c[1]:.0f}':>22}"
            f" {f'{w[0]:.0f} / {w[1]:.0f}':>21}"
        )

    for i, ratio in enumerate(ratios):
        a, b = rates["pyzmq"][i] / 1e6, rates["replay"][i] / 1e6
        row(
            str(i),
            a,
            b,
            ratio,
            (cpu["pyzmq"][i], cpu["replay"][i]),
            (wait["pyzmq"][i], wait["replay"][i]),
        )
    a, b = median(rates["pyzmq"]) / 1e6, median(rates["replay"]) / 1e6
    row(
        "median",
        a,
        b,
        median(ratios),
        (median(cpu["pyzmq"]), median(cpu["replay"])),
        (median(wait["pyzmq"]), median(wait["replay"])),
    )
    return median(ratios)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--protocol", choices=["raw", "adzmq", "both"], default="both")
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="replaybench-"))
    ratios = {}
    print("load average before: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    try:
        for protocol in ("raw", "adzmq") if args.protocol == "both" else (args.protocol,):
            results = bench(protocol, args.count, args.rounds, workdir)
            ratios[protocol] = report(protocol, args.count, results)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("load average after: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    ok = all(r >= 0.9 for r in ratios.values())
    print(
        "\ntarget (replay >= 0.9 x raw pyzmq, median of per-round ratios):",
        ", ".join(f"{p} {r:.2f}" for p, r in ratios.items()),
        "met" if ok else "NOT met",
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
