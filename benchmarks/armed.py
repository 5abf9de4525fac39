"""CPU and memory of an armed recorder (pre-trigger buffer) on a fast stream of large images,
against a plain pyzmq receiver that discards everything, taken in the same run.

A sender process PUSHes N messages ([8-byte counter, 1 MiB image]) paced at --rate MB/s (or as
fast as the machine gives, which is printed). Each receiver runs in a fresh process, one after
the other: the baseline (pyzmq recv without copying, discarded) and the recorder armed with a
pre-trigger buffer of --pre seconds bounded by --limit bytes (so the buffer fills and drops its
oldest). Prints CPU seconds per GB received, peak RSS, the rate reached, and the buffer's figures.

    python benchmarks/armed.py [--count 3000] [--size-mib 1] [--rate 500] [--limit 2GiB]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import time
from pathlib import Path

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))


def sender(endpoint_q: mp.Queue, count: int, size: int, rate_mb: float, receivers: int) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.sndhwm = 16
    sock.bind("tcp://127.0.0.1:*")
    endpoint_q.put(sock.getsockopt_string(zmq.LAST_ENDPOINT))
    ack = ctx.socket(zmq.PULL)
    ack.bind("tcp://127.0.0.1:*")
    endpoint_q.put(ack.getsockopt_string(zmq.LAST_ENDPOINT))
    image = os.urandom(size)
    interval = size / (rate_mb * 1e6) if rate_mb > 0 else 0.0
    for _ in range(receivers):
        ack.recv()  # the next receiver is connected
        t0 = time.monotonic()
        for i in range(count):
            delay = t0 + i * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sock.send_multipart([i.to_bytes(8, "little"), image], copy=False)
        ack.recv()  # it has everything
    sock.close(linger=-1)
    ack.close()


def _usage() -> tuple[float, int]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss * 1024


def baseline(endpoint: str, ack_at: str, count: int, out: mp.Queue) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    sock.rcvhwm = 16
    sock.connect(endpoint)
    ack = ctx.socket(zmq.PUSH)
    ack.connect(ack_at)
    cpu0, _ = _usage()
    ack.send(b"ready")
    nbytes = 0
    first = None
    for _ in range(count):
        frames = sock.recv_multipart(copy=False)
        first = first or time.monotonic()
        nbytes += sum(len(f) for f in frames)
    wall = time.monotonic() - (first or time.monotonic())
    cpu1, rss = _usage()
    ack.send(b"done")
    out.put({"name": "pyzmq recv, discarded", "cpu": cpu1 - cpu0, "rss": rss, "bytes": nbytes,
             "wall": wall})  # fmt: skip
    sock.close()
    ack.close()


def armed(endpoint: str, ack_at: str, count: int, out: mp.Queue, pre: float, limit: int) -> None:
    import tempfile

    from recorder.recording.plans import TriggerPlan
    from recorder.recording.recording import Recording, SourceSpec

    runs = Path(tempfile.mkdtemp()) / "runs"
    spec = SourceSpec(endpoint, socket_type="PULL", protocol="raw")
    plan = TriggerPlan(pre_s=pre, post_s=1.0, max_bytes=limit)
    rec = Recording(runs, [spec], count=count, trigger=plan)
    ctx = zmq.Context()
    ack = ctx.socket(zmq.PUSH)
    ack.connect(ack_at)
    rec.start()
    cpu0, _ = _usage()
    ack.send(b"ready")
    peak_buffer = 0
    first = None
    while not rec.done:
        stats = rec.stats()
        if first is None and stats["messages"]:
            first = time.monotonic()
        peak_buffer = max(peak_buffer, stats["armed_bytes"])
        time.sleep(0.01)
    wall = time.monotonic() - (first or time.monotonic())
    stats = rec.stats()
    cpu1, rss = _usage()
    ack.send(b"done")
    rec.finish()
    out.put({"name": f"armed, {pre:g} s / {limit / 2**30:g} GiB buffer", "cpu": cpu1 - cpu0,
             "rss": rss, "bytes": stats["bytes"], "wall": wall, "peak_buffer": peak_buffer,
             "dropped": stats["armed_dropped"], "drops": stats["drops"],
             "runs": len(rec.runs)})  # fmt: skip
    ack.close()
    ctx.term()


def main() -> None:
    from recorder.recording.plans import parse_size

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--size-mib", type=float, default=1.0)
    ap.add_argument("--rate", type=float, default=500.0, help="MB/s to send at (0: flat out)")
    ap.add_argument("--pre", type=float, default=60.0, help="pre-trigger seconds")
    ap.add_argument("--limit", default="2GiB", help="pre-trigger buffer bytes")
    args = ap.parse_args()
    size, limit = int(args.size_mib * (1 << 20)), parse_size(args.limit)
    mpc = mp.get_context("spawn")
    q, out = mpc.Queue(), mpc.Queue()
    send = mpc.Process(target=sender, args=(q, args.count, size, args.rate, 2))
    send.start()
    endpoint, ack_at = q.get(), q.get()
    results = []
    for target, extra in ((baseline, ()), (armed, (args.pre, limit))):
        p = mpc.Process(target=target, args=(endpoint, ack_at, args.count, out, *extra))
        p.start()
        results.append(out.get(timeout=600))
        p.join()
    send.join()
    print(f"{args.count} messages of {size / 2**20:g} MiB, sent at {args.rate:g} MB/s asked")
    for r in results:
        gb = r["bytes"] / 1e9
        line = (
            f"  {r['name']:<32} {r['bytes'] / 1e6 / r['wall']:7.0f} MB/s reached  "
            f"{r['cpu'] / gb:6.2f} CPU s/GB  peak RSS {r['rss'] / 2**20:7.0f} MiB"
        )
        if "peak_buffer" in r:
            line += (
                f"  buffer peak {r['peak_buffer'] / 2**20:.0f} MiB (limit "
                f"{limit / 2**20:.0f}), {r['dropped']} dropped, {r['drops']} queue drops, "
                f"{r['runs']} runs"
            )
        print(line)


if __name__ == "__main__":
    main()
