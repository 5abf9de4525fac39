"""What per-stream compression costs in write speed and saves on disk, on detector-like data.

Each case is a stream as its protocol's codec decodes it (the decoding is done before timing):
- `counting`: 512 x 1024 uint16 frames of a photon-counting detector (EIGER-like): Poisson
  photons at 0.02 per pixel, mostly zeros, and a few dozen bright Bragg peaks (ADZMQ).
- `integrating`: 512 x 1024 uint16 raw frames of an integrating detector (Jungfrau/AGIPD-like):
  a per-pixel dark offset near 2000 ADU, read noise of 4 ADU, Poisson photons of 40 ADU each
  at 0.05 per pixel and bright peaks: what a detector sends before calibration (ADZMQ).
- `ephys-f32`: Open Ephys continuous blocks, one channel per message (1024 float32 samples):
  int16 ADC counts of noise and slow waves times bit_volts 0.195, as the GUI sends them.
- `ephys-i16`: (1024 samples x 384 channels) int16 blocks of the same kind of signal, stored as
  typed arrays (a probe's raw block, as a .dat file holds it).

Each round records every case once with every compression, in alternating order, into a fresh
run: append_batch (16 messages per batch), a flush every 16 MiB as the recorder's clock would,
close, fsync. Prints per case and compression the median write speed in MB of payload per s, the
speed as a fraction of `none` measured in the same rounds, bytes on disk (file sizes), and disk
per payload byte and per `none`'s disk.

    python benchmarks/compression.py [--rounds 3] [--mib 24] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fsync_tree, median

from recorder import protocols
from recorder.protocols import adzmq, openephys
from recorder.protocols.base import BulkFrame, Decoded
from recorder.store import layout
from recorder.store.run_writer import RunWriter

BATCH = 16  # messages per append_batch, as the recorder's writer thread takes them
FLUSH_BYTES = 16 << 20  # a flush per this much payload (the recorder flushes on a clock)
HEIGHT, WIDTH = 512, 1024  # one Jungfrau module; an EIGER 1M half-module
BIT_VOLTS = 0.195  # Intan headstages: µV per ADC count, what Open Ephys multiplies by

Item = tuple[int, list[bytes], Decoded, None]


# -- data ------------------------------------------------------------------------------------


def _peaks(rng: np.random.Generator, n: int, height: float) -> np.ndarray:
    """A few dozen Gaussian spots (Bragg peaks) of about `height` at random places."""
    img = np.zeros((HEIGHT, WIDTH), np.float32)
    yy, xx = np.mgrid[-4:5, -4:5]
    for _ in range(n):
        y, x = rng.integers(4, HEIGHT - 5), rng.integers(4, WIDTH - 5)
        sigma = rng.uniform(0.8, 1.8)
        spot = height * rng.uniform(0.2, 1.0) * np.exp(-(yy**2 + xx**2) / (2 * sigma**2))
        img[y - 4 : y + 5, x - 4 : x + 5] += spot
    return img


def counting_frames(n: int, seed: int = 1) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    for _ in range(n):
        photons = rng.poisson(0.02, (HEIGHT, WIDTH)).astype(np.float32)
        photons += rng.poisson(_peaks(rng, 40, 800.0))
        yield np.minimum(photons, 65535).astype(np.uint16)


def integrating_frames(n: int, seed: int = 2) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    dark = rng.normal(2000.0, 150.0, (HEIGHT, WIDTH)).astype(np.float32)  # per-pixel offset
    for _ in range(n):
        photons = rng.poisson(0.05, (HEIGHT, WIDTH)).astype(np.float32)
        photons += rng.poisson(_peaks(rng, 40, 200.0))
        adu = dark + rng.normal(0.0, 4.0, dark.shape).astype(np.float32) + 40.0 * photons
        yield np.clip(np.rint(adu), 0, 16383).astype(np.uint16)  # 14-bit ADC, gain bits 0


def ephys_counts(n_samples: int, n_channels: int, block: int, seed: int = 3) -> np.ndarray:
    """int16 ADC counts (samples, channels): white noise of ~10 µV plus slow waves."""
    rng = np.random.default_rng((seed, block))
    t = (block * n_samples + np.arange(n_samples))[:, None] / 30_000.0
    freq = 4.0 + np.arange(n_channels)[None, :] % 8
    wave = 150.0 * np.sin(2 * np.pi * freq * t)  # 30 µV theta-like waves, in counts
    noise = rng.normal(0.0, 50.0, (n_samples, n_channels))
    return np.rint(wave + noise).astype(np.int16)


def image_items(frames: Iterator[np.ndarray]) -> list[Item]:
    codec = protocols.get("adzmq").codec()
    out = []
    for i, img in enumerate(frames):
        wire = adzmq.encode_array(img, i, time.time(), {"Temperature": 25.0 + i % 3})
        out.append((time.time_ns(), wire, codec.decode(wire), None))
    return out


def ephys_f32_items(n_bytes: int) -> list[Item]:
    codec = protocols.get("openephys").codec()
    n_samples, n_channels = 1024, 64
    blocks = max(1, n_bytes // (n_samples * n_channels * 4))
    out = []
    for block in range(blocks):
        counts = ephys_counts(n_samples, n_channels, block)
        volts = counts.astype(np.float32) * np.float32(BIT_VOLTS)
        for ch in range(n_channels):
            wire = openephys.encode_data(
                volts[:, ch], message_num=len(out) + 1, stream="example_data",
                channel_num=ch, sample_num=block * n_samples, sample_rate=30_000.0,
                timestamp_ms=block * n_samples // 30,
            )  # fmt: skip
            out.append((time.time_ns(), wire, codec.decode(wire), None))
    return out


def ephys_i16_items(n_bytes: int) -> list[Item]:
    n_samples, n_channels = 1024, 384
    out = []
    for block in range(max(1, n_bytes // (n_samples * n_channels * 2))):
        data = ephys_counts(n_samples, n_channels, block).tobytes()
        arr = np.frombuffer(data, np.int16).reshape(n_samples, n_channels)
        dims = ("sample", "channel")
        bulk = BulkFrame(0, "continuous", arr, units="uV", scale=BIT_VOLTS, dims=dims)
        out.append((time.time_ns(), [data], Decoded(seq=block, bulk=[bulk]), None))
    return out


def cases(mib: int) -> dict[str, tuple[str, Callable[[], list[Item]]]]:
    """name -> (protocol, how to make its items); frames are 1 MiB, so mib frames each."""
    n_bytes = mib << 20
    return {
        "counting": ("adzmq", lambda: image_items(counting_frames(mib))),
        "integrating": ("adzmq", lambda: image_items(integrating_frames(mib))),
        "ephys-f32": ("openephys", lambda: ephys_f32_items(n_bytes)),
        "ephys-i16": ("raw", lambda: ephys_i16_items(n_bytes)),
    }


# -- one recording ---------------------------------------------------------------------------


def disk_bytes(path: Path) -> int:
    return sum(
        os.stat(os.path.join(root, n)).st_size for root, _, names in os.walk(path) for n in names
    )


def record(workdir: Path, protocol: str, items: list[Item], compression: str) -> tuple[float, int]:
    """(seconds from the first append to everything fsynced, bytes of the run on disk)."""
    run = RunWriter(workdir, name="compression-bench")
    stream = run.add_stream(
        "s", protocol=protocol, endpoint="tcp://127.0.0.1:1", socket_type="SUB",
        role="connect", compression=compression,
    )  # fmt: skip
    since_flush = 0
    t0 = time.perf_counter()
    for b in range(0, len(items), BATCH):
        batch = items[b : b + BATCH]
        stream.append_batch(batch)
        since_flush += sum(len(f) for _, frames, _, _ in batch for f in frames)
        if since_flush >= FLUSH_BYTES:
            stream.flush()
            since_flush = 0
    run.close()
    fsync_tree(run.path)
    elapsed = time.perf_counter() - t0
    size = disk_bytes(run.path)
    shutil.rmtree(run.path)
    return elapsed, size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mib", type=int, default=24, help="payload per case and run (MiB)")
    ap.add_argument("--case", action="append", help="only this case (repeatable)")
    ap.add_argument("--workdir", type=Path, default=None, help="where to write (default: tmp)")
    args = ap.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="compbench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    order = list(layout.COMPRESSIONS)
    t_start = time.perf_counter()
    print(f"{'data':<12} {'compression':<11} {'MB/s':>8} {'speed/none':>10} {'disk MB':>9} "
          f"{'disk/payload':>12} {'disk/none':>9}")  # fmt: skip
    try:
        for name, (protocol, make) in cases(args.mib).items():
            if args.case and name not in args.case:
                continue
            items = make()
            payload = sum(len(f) for _, frames, _, _ in items for f in frames)
            times: dict[str, list[float]] = {c: [] for c in order}
            sizes: dict[str, list[int]] = {c: [] for c in order}
            for r in range(args.rounds):
                for c in order if r % 2 == 0 else order[::-1]:
                    elapsed, size = record(workdir, protocol, items, c)
                    times[c].append(elapsed)
                    sizes[c].append(size)
            base_speed = median([payload / t for t in times["none"]])
            base_disk = median(sizes["none"])
            for c in order:
                speed = median([payload / t for t in times[c]])
                disk = median(sizes[c])
                print(
                    f"{name:<12} {c:<11} {speed / 1e6:>8.1f} {speed / base_speed:>10.2f} "
                    f"{disk / 1e6:>9.1f} {disk / payload:>12.3f} {disk / base_disk:>9.3f}"
                )
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{args.rounds} rounds of {args.mib} MiB per case in "
          f"{time.perf_counter() - t_start:.0f} s; disk: file sizes of the run")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
