"""How long one flush of a stream takes, by number of columns and of past array shapes.

A flush must cost what changed since the last one, not what the stream ever held: a stream
with thousands of scalar keys (Karabo) or an image whose shape changes every frame (ADZMQ)
must not stall the writer. Each case appends a few messages between flushes and reports the
median flush time and how many files the flush wrote.

    python benchmarks/flush_cost.py [--flushes 10] [--per-flush 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from recorder.protocols.base import BulkFrame, Decoded
from recorder.store.run_writer import RunWriter


def _files(path: Path) -> dict[str, int]:
    return {
        os.path.join(root, n): os.stat(os.path.join(root, n)).st_mtime_ns
        for root, _, names in os.walk(path)
        for n in names
    }


def _case(columns: int, shapes: int, flushes: int, per_flush: int) -> tuple[float, float, int]:
    """(median flush s, max flush s, files written by the last flush)."""
    folder = Path(tempfile.mkdtemp(prefix="flush-cost-"))
    try:
        run = RunWriter(folder, name="bench")
        s = run.add_stream(
            "s", protocol="raw", endpoint="tcp://h:1", socket_type="SUB", role="connect"
        )
        index = 0

        def message(shape):
            values = {f"key{k:05d}": float(index + k) for k in range(columns)}
            bulk = []
            frames = [b"header"]
            if shape is not None:
                img = np.zeros(shape, np.uint16)
                frames.append(img.tobytes())
                bulk = [BulkFrame(1, "image", np.frombuffer(frames[1], np.uint16).reshape(shape))]
            return frames, Decoded(seq=index, columns=values, bulk=bulk)

        for k in range(shapes):  # history: one segment per past shape
            frames, dec = message((4, 5 + k))
            s.append(time.time_ns(), frames, dec)
            index += 1
        s.flush()
        times, written = [], 0
        for _ in range(flushes):
            for _ in range(per_flush):
                frames, dec = message((4, 4) if shapes else None)
                s.append(time.time_ns(), frames, dec)
                index += 1
            before = _files(s.group.store_path.store.root / Path(s.group.path))
            t0 = time.perf_counter()
            s.flush()
            times.append(time.perf_counter() - t0)
            after = _files(s.group.store_path.store.root / Path(s.group.path))
            written = sum(1 for p, m in after.items() if before.get(p) != m)
        run.close()
        return statistics.median(times), max(times), written
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--flushes", type=int, default=10)
    p.add_argument("--per-flush", type=int, default=10, help="messages appended between flushes")
    args = p.parse_args()
    print(f"{'columns':>8} {'past shapes':>12} {'median flush':>13} {'max flush':>10} {'files':>6}")
    for columns, shapes in ((1, 0), (256, 0), (4096, 0), (1, 600)):
        med, worst, files = _case(columns, shapes, args.flushes, args.per_flush)
        print(f"{columns:>8} {shapes:>12} {med * 1e3:>11.1f}ms {worst * 1e3:>8.1f}ms {files:>6}")


if __name__ == "__main__":
    main()
