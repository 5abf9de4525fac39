"""Disk use of a run against the payload it holds (issue 11: <= 1.1 x payload + 256 KiB per stream).

Cases, each decoded by the real codec and written through the real writer:
- `short`: 10 messages of each simulator (ADZMQ, Karabo, Open Ephys, pyMultiVideo);
- `karabo-varying`: Karabo bridge 2.2 trains made by the real `karabo_bridge` serializer, the
  detector's frame count varying per train (1-64 frames of 256 x 256 uint16), as
  `karabo-bridge-serve-files` sends a run whose pulse count varies;
- `adzmq-shapes`: an ADZMQ stream whose image height changes every frame (an ROI being tuned),
  and one whose height and width both change every frame;
- `images`: a long image run (default 256 MiB; `--image-mib 1024` for the 1 GiB of the issue);
- each with `--compression` (default: all three).

Disk use is the bytes of the run's files (`apparent`) and, as `du` counts them, the blocks its
files and folders take (`du`): zarr keeps one small metadata file per array and group, which
on a 4 KiB-block file system costs more than the bytes in them.

    python benchmarks/disk_use.py [--image-mib 256] [--compression none,zstd,blosc-zstd]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from recorder import protocols
from recorder.simulators import (
    AdzmqSimulator,
    KaraboSimulator,
    OpenEphysSimulator,
    PyMultiVideoSimulator,
)
from recorder.store.run_writer import RunWriter


def apparent(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def du(path: Path) -> int:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0]) * 1024


def write(folder: Path, streams: dict, compression: str) -> tuple[Path, int, float]:
    """streams: name -> (protocol, iterable of frames). (run path, payload bytes, seconds)."""
    payload = 0
    t0 = time.perf_counter()
    with RunWriter(folder, name="disk") as run:
        for name, (proto, messages) in streams.items():
            codec = protocols.lookup(proto).codec()
            s = run.add_stream(
                name,
                protocol=proto,
                endpoint="tcp://h:1",
                socket_type="SUB",
                role="connect",
                compression=compression,
            )
            batch = []
            for i, frames in enumerate(messages):
                payload += sum(len(f) for f in frames)
                batch.append((i, frames, codec.decode(frames), None))
                if len(batch) == 64:
                    s.append_batch(batch)
                    batch = []
            s.append_batch(batch)
    return run.path, payload, time.perf_counter() - t0


def short():
    sims = {
        "cam": ("adzmq", AdzmqSimulator(height=64, width=64)),
        "kb": ("karabo", KaraboSimulator(detector="small")),
        "oe": ("openephys", OpenEphysSimulator()),
        "pmv": ("pymultivideo", PyMultiVideoSimulator()),
    }
    return {n: (p, [sim.message(i) for i in range(10)]) for n, (p, sim) in sims.items()}


def karabo_varying(trains: int = 120):
    from karabo_bridge.serializer import serialize

    rng = np.random.default_rng(0)

    def messages():
        for t in range(trains):
            n = int(rng.integers(1, 65))
            data = {
                "SPB_DET_AGIPD1M-1/DET/0CH0:xtdf": {
                    "image.data": rng.integers(0, 4000, (n, 256, 256), dtype=np.uint16),
                    "image.pulseId": np.arange(n, dtype=np.uint64),
                    "header.pulseCount": n,
                },
                "SA1_XTD2_XGM/DOOCS/MAIN:output": {
                    "data.intensityTD": rng.random(1000).astype(np.float32),
                },
            }
            meta = {
                src: {"source": src, "timestamp.tid": 10_000_000 + t, "timestamp": 1.7e9 + t}
                for src in data
            }
            yield [bytes(f) for f in serialize(data, meta, protocol_version="2.2")]

    return {"kb": ("karabo", messages())}


def adzmq_shapes(frames: int = 200):
    from recorder.protocols import adzmq

    rng = np.random.default_rng(0)

    def height_only():
        for i in range(frames):
            img = rng.integers(0, 4000, (100 + i % 50, 256), dtype=np.uint16)
            yield adzmq.encode_array(img, i + 1, 1.0 + i, {}, adzmq.VARIANTS[0])

    def both():
        for i in range(frames):
            img = rng.integers(0, 4000, (100 + i % 50, 200 + i % 37), dtype=np.uint16)
            yield adzmq.encode_array(img, i + 1, 1.0 + i, {}, adzmq.VARIANTS[0])

    return {"roi-height": ("adzmq", height_only()), "roi-both": ("adzmq", both())}


def images(mib: int):
    sim = AdzmqSimulator(height=512, width=1024)  # 1 MiB uint16 frames
    return {"cam": ("adzmq", (sim.message(i) for i in range(mib)))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-mib", type=int, default=256)
    ap.add_argument("--compression", default="none,zstd,blosc-zstd")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    cases = {
        "short": short,
        "karabo-varying": karabo_varying,
        "adzmq-shapes": adzmq_shapes,
        "images": lambda: images(args.image_mib),
    }
    print(
        f"{'case':16} {'compression':11} {'streams':>7} {'payload MB':>10} {'apparent MB':>11} "
        f"{'du MB':>7} {'budget MB':>9} {'apparent/budget':>15}"
    )
    for comp in args.compression.split(","):
        for name, make in cases.items():
            folder = Path(tempfile.mkdtemp(prefix="disk-use-", dir=args.workdir))
            try:
                streams = make()
                path, payload, _ = write(folder, streams, comp)
                budget = 1.1 * payload + len(streams) * (256 << 10)
                a, d = apparent(path), du(path)
                print(
                    f"{name:16} {comp:11} {len(streams):7d} {payload / 1e6:10.2f} "
                    f"{a / 1e6:11.2f} {d / 1e6:7.2f} {budget / 1e6:9.2f} {a / budget:15.2f}"
                )
            finally:
                shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
