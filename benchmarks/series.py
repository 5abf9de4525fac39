"""Time of the signal view's answers (GET .../signal) for a short and a long Open Ephys run:
with the overview levels kept in the run, a window at any zoom should cost the same in a
1-hour run as in a 1-minute one.

Both runs are written synthetically through the store writer (decoded Open Ephys messages, one
per channel per 1024-sample block at 30 kHz, a TTL event every 50 blocks; receive times follow
the sample clock), not in real time, into a temporary data folder. Each query is asked through
the Flask app (HTTP routing, JSON encoding included) `--repeat` times; the median and the
slowest are printed, with the bytes of the answer and the resolution served (samples per
point; 1: raw). With `--old`, the run page's older endpoint (`.../series`, which reads every
message's frame rows of the window) is timed once on the same whole-run window.
First, what writing the levels costs the recorder's writer thread per message.

    python benchmarks/series.py [--channels 4] [--minutes 1 60] [--repeat 5] [--old]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recorder import config  # noqa: E402
from tests.signalhelp import RATE  # noqa: E402
from tests.signalhelp import write_run as write_signal_run  # noqa: E402

BLOCK = 1024


def write_run(runs: Path, seconds: float, channels: int) -> tuple[str, float]:
    """A closed synthetic run of `seconds` of data (a sine per channel plus noise, a TTL event
    every 50 blocks, no spikes; written as the signal view's tests write theirs); (run id,
    seconds it took to write)."""
    noise = np.random.default_rng(1).normal(0, 5.0, (16, BLOCK, channels)).astype(np.float32)

    def sine(block: int, channel: int, n: int) -> np.ndarray:
        t = (block * n + np.arange(n)) / RATE
        return 100.0 * np.sin(2 * np.pi * (5.0 + channel) * t) + noise[block % 16, :n, channel]

    t0 = time.perf_counter()
    run_id, _ = write_signal_run(
        runs, blocks=int(seconds * RATE / BLOCK), channels=channels, n=BLOCK, ttl_every=50,
        spike_every=0, batch=1024, units=None, values=sine, keep=False,
    )  # fmt: skip
    return run_id, time.perf_counter() - t0


def overview_cost(channels: int, chunks: int = 40, rounds: int = 3) -> tuple[float, float]:
    """What the levels add to the writer thread: CPU time of OverviewWriter over 4 MiB chunks
    of float32 samples (what placed.py feeds it), per Open Ephys message (one channel's
    1024-sample block) and per MiB, the minimum of `rounds`."""
    import zarr

    from recorder.store import overviews

    rows = (4 << 20) // (channels * 4)
    data = np.random.default_rng(1).normal(0, 5, (rows * chunks, channels)).astype(np.float32)
    folder = tempfile.mkdtemp(prefix="overview-cost-")
    try:
        g = zarr.open_group(folder, mode="w", zarr_format=3)
        best = float("inf")
        for r in range(rounds):
            w = overviews.OverviewWriter(g, f"v{r}", channels, data.dtype)
            t0 = time.process_time()
            for k in range(chunks):
                w.feed(k * rows, data[k * rows : (k + 1) * rows])
            w.finish()
            best = min(best, time.process_time() - t0)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    messages = len(data) / BLOCK * channels
    return best / messages * 1e6, best * 1e3 / (data.nbytes / 2**20)


def timed(client, url: str, repeat: int) -> tuple[float, float, int, dict]:
    times = []
    body: dict = {}
    size = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = client.get(url)
        times.append(time.perf_counter() - t0)
        assert r.status_code == 200, (url, r.status_code, r.get_data(as_text=True)[:300])
        size = len(r.get_data())
        body = r.get_json()
    return statistics.median(times), max(times), size, body


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, default=4)
    ap.add_argument("--minutes", type=float, nargs="+", default=[1.0, 60.0])
    ap.add_argument("--points", type=int, default=1500)
    ap.add_argument("--query-channels", default="", help="e.g. 0,1,2,3 (default: the first 8)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--old", action="store_true", help="also time the older .../series")
    ap.add_argument("--dir", default=None, help="where the temporary data folder goes")
    args = ap.parse_args()

    for channels in (64, 384):
        per_message, per_mib = overview_cost(channels)
        print(f"levels while recording, {channels} channels: {per_message:.2f} us CPU per "
              f"message ({per_mib:.2f} ms per MiB of samples)")  # fmt: skip

    from recorder.web import create_app

    folder = Path(tempfile.mkdtemp(prefix="series-bench-", dir=args.dir))
    try:
        data = folder / "data"
        config.data_dir(data)
        app = create_app(data)
        secret, _ = app.extensions["recorder"].control.create_token("bench")
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
        print(f"Open Ephys, {args.channels} channels at 30 kHz, {args.points} points per answer, "
              f"median (slowest) of {args.repeat}")  # fmt: skip
        for minutes in args.minutes:
            seconds = minutes * 60
            run_id, took = write_run(config.runs_dir(data), seconds, args.channels)
            size = sum(f.stat().st_size for f in (config.runs_dir(data) / run_id).rglob("*"))
            print(f"\n{minutes:g}-minute run: written in {took:.1f} s, {size / 1e6:.0f} MB")
            base = f"/api/v1/runs/{run_id}/streams/oe/signal?points={args.points}"
            if args.query_channels:
                base += f"&channels={args.query_channels}"
            mid = seconds / 2
            windows = {
                "whole run": "",
                "10 s, middle": f"&start={mid}&end={mid + 10}",
                "1 s, middle": f"&start={mid}&end={mid + 1}",
                "40 ms, middle (raw)": f"&start={mid}&end={mid + 0.04}",
                "10 s, at the end": f"&start={seconds - 10}&end={seconds}",
            }
            for label, q in windows.items():
                med, worst, nbytes, body = timed(client, base + q, args.repeat)
                print(
                    f"  {label:22s} {med * 1e3:8.1f} ms ({worst * 1e3:7.1f})  "
                    f"{nbytes / 1e3:7.0f} kB  {body['bucket']:>6} samples/point, "
                    f"{len(body['events'])} events"
                )
            if args.old:
                url = f"/api/v1/runs/{run_id}/streams/oe/series?points={args.points}"
                med, worst, nbytes, _ = timed(client, url, 1)
                print(f"  {'old .../series, whole':22s} {med * 1e3:8.1f} ms ({worst * 1e3:7.1f})")
            shutil.rmtree(config.runs_dir(data) / run_id)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
