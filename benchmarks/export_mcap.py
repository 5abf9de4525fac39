"""`recorder export --to mcap` throughput against the mcap library writing the same frames.

Two runs are written straight through the store (as a recording stores them): a typed image
run (ADZMQ, 512x1024 uint16 images with NDAttributes: frames go to a typed array) and an Open
Ephys run (8 channels of 256 float32 samples per message, TTL and spike events). Each round,
two writers make an MCAP file of the run, alternating which goes first:

- baseline: the mcap library alone, given every message's frames from memory (read before
  the clock starts), one record per message, the same chunk size and compression;
- ours: `export_run(..., "mcap")`: reading the run block by block, the raw-frames channels,
  and the Foxglove views (images as base64 RawImage JSON, columns as JSON);
- raw: the same export without the Foxglove views (reading the run and the framing only).

Prints MB/s of wire bytes (all frames of every message), messages/s, file size, medians of
the rounds, and the ratio to the baseline.

    python benchmarks/export_mcap.py [--rounds 3] [--images 200] [--ephys 40000]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median, prefault

from recorder.export.base import ExportRequest, export_run, no_progress, plan
from recorder.export.mcap import CHUNK_BYTES, McapTarget
from recorder.protocols import codec_for
from recorder.simulators import AdzmqSimulator, OpenEphysSimulator
from recorder.store.reader import RunReader
from recorder.store.run_writer import RunWriter


def write_run(runs: Path, protocol: str, message: Callable[[int], list[bytes]], n: int) -> Path:
    """The run a recording of `n` messages 1 ms apart would be, written through the store."""
    codec = codec_for(protocol)
    with RunWriter(runs, name=f"bench {protocol}") as run:
        w = run.add_stream(
            "main", protocol=protocol, endpoint="tcp://127.0.0.1:5999", socket_type="SUB",
            role="connect",
        )  # fmt: skip
        for i in range(n):
            frames = message(i)
            w.append(run.started_ns + i * 1_000_000, frames, codec.decode(frames))
    return run.path


def frames_of(path: Path) -> list[tuple[int, list[bytes]]]:
    with RunReader(path) as run:
        return [(m.recv_ns, [bytes(f) for f in m.frames]) for m in run.messages()]


def mcap_alone(messages: list[tuple[int, list[bytes]]], out: Path) -> None:
    # imported here, after zarr: lz4 (which mcap imports) would otherwise find this folder's
    # compression.py first and import it half-way through its own import
    from mcap.writer import CompressionType, Writer

    with open(out, "wb") as f:
        w = Writer(f, chunk_size=CHUNK_BYTES, compression=CompressionType.ZSTD)
        w.start(profile="", library="baseline")
        channel = w.register_channel("/main", "zmq-multipart", 0)
        for t, frames in messages:
            w.add_message(channel, log_time=t, data=b"".join(frames), publish_time=t)
        w.finish()


def ours(run: Path, out: Path) -> None:
    export_run(ExportRequest(run, "mcap", out))


def ours_raw_only(run: Path, out: Path) -> None:
    """The export without its Foxglove views: what reading the run and framing cost."""
    target = McapTarget(views=False)
    with RunReader(run) as reader:
        target.write(plan(reader, target, ExportRequest(run, "mcap", out)), out, no_progress)


def bench(name: str, run: Path, rounds: int, workdir: Path) -> float:
    messages = frames_of(run)
    wire = sum(len(f) for _, frames in messages for f in frames)
    writers: dict[str, Callable[[Path], None]] = {
        "mcap": lambda out: mcap_alone(messages, out),
        "ours": lambda out: ours(run, out),
        "raw": lambda out: ours_raw_only(run, out),
    }
    times: dict[str, list[float]] = {k: [] for k in writers}
    sizes: dict[str, int] = {}
    for r in range(rounds):
        for who in list(writers) if r % 2 == 0 else list(reversed(writers)):  # alternate
            out = workdir / f"{who}.mcap"
            out.unlink(missing_ok=True)
            prefault(0.5)
            t0 = time.perf_counter()
            writers[who](out)
            times[who].append(time.perf_counter() - t0)
            sizes[who] = out.stat().st_size
            out.unlink()
    base = median(times["mcap"])
    print(f"\n{name}: {len(messages)} messages, {wire / 1e6:.1f} MB on the wire, {rounds} rounds")
    print(f"{'writer':<6} {'MB/s':>8} {'msg/s':>10} {'file MB':>8} {'s (rounds)':>26} {'ratio':>6}")
    for who, ts in times.items():
        t = median(ts)
        each = " ".join(f"{x:.2f}" for x in ts)
        print(
            f"{who:<6} {wire / t / 1e6:>8.0f} {len(messages) / t:>10.0f} "
            f"{sizes[who] / 1e6:>8.1f} {each:>26} {base / t:>6.2f}"
        )
    return base / median(times["ours"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--images", type=int, default=200, help="ADZMQ images of 1 MiB")
    ap.add_argument("--ephys", type=int, default=40000, help="Open Ephys messages")
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="mcapbench-"))
    ratios = {}
    try:
        camera = AdzmqSimulator(height=512, width=1024, dtype="uint16", ndattr=True)
        ephys = OpenEphysSimulator()
        runs = {
            "adzmq images": write_run(workdir / "runs", "adzmq", camera.message, args.images),
            "open ephys": write_run(workdir / "runs", "openephys", ephys.message, args.ephys),
        }
        for name, run in runs.items():
            ratios[name] = bench(name, run, args.rounds, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        "\nours / mcap alone (throughput ratio, median):",
        ", ".join(f"{n} {r:.2f}" for n, r in ratios.items()),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
