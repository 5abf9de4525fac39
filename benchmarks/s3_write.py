"""Recording to an object store: a local spool uploaded as chunks become final, against writing
straight into the bucket through zarr's store API, against a plain local-disk recording.

The same pre-generated ADZMQ images (areaDetector NDPluginZMQ messages, decoded as the writer
thread decodes them) are written three ways, in batches of 32 with a flush every 4 batches,
as a recording's writer thread does:

* local disk: RunWriter into a folder on the local disk (the floor);
* spool + upload: `--data s3://...`, as the recorder does it (store/spool.py): the writer
  writes the spool on local disk, an uploader thread sends each finished chunk file;
  "writer" is when the last flush returned (what the recording waits for), "in bucket" when
  the run is closed and every object is uploaded;
* direct: a StreamWriter on a zarr group over zarr.storage.ObjectStore (obstore's S3Store):
  every chunk and every flush's metadata is a PUT made by the writer thread itself.

The S3 server is moto in server mode in its own process on this machine (so the numbers are
an S3 API over loopback HTTP, not a real network and not a real object store's disks).
MB/s counts message bytes; msg/s messages. Best of --rounds.

    python benchmarks/s3_write.py [--count 400] [--size 256] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BATCH, FLUSH_EVERY = 32, 4
SENT: list[int] = []  # bytes uploaded per spooled run (partial chunks go more than once)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, url
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.1)


def _items(count: int, size: int) -> tuple[list, int]:
    from recorder.protocols import codec_for
    from recorder.protocols.base import decode_or_reject
    from recorder.simulators import make_simulator

    sim = make_simulator("adzmq", height=size, width=size, dtype="uint16")
    codec = codec_for("adzmq")
    messages = [sim.message(i) for i in range(count)]
    now = time.time_ns()
    items = [decode_or_reject(codec, now + i, m, None) for i, m in enumerate(messages)]
    return items, sum(len(f) for m in messages for f in m)


def _feed(stream, items) -> None:
    for k, i in enumerate(range(0, len(items), BATCH)):
        stream.append_batch(items[i : i + BATCH])
        if k % FLUSH_EVERY == FLUSH_EVERY - 1:
            stream.flush()
    stream.flush()


def _stream_of(run):
    return run.add_stream(
        "cam", protocol="adzmq", endpoint="tcp://h:1", socket_type="SUB", role="connect"
    )


def via_runwriter(runs_dir: Path, items) -> tuple[float, float]:
    """(seconds until the last flush returned, seconds until closed (and uploaded))."""
    from recorder.store.run_writer import RunWriter

    t0 = time.perf_counter()
    run = RunWriter(runs_dir)
    _feed(_stream_of(run), items)
    t1 = time.perf_counter()
    run.close()
    if run._upload is not None:
        SENT.append(run._upload.bytes_sent)
    return t1 - t0, time.perf_counter() - t0


def direct(data_url: str, items) -> tuple[float, float]:
    import zarr

    from recorder.store import location, objects
    from recorder.store.run_writer import new_run_id
    from recorder.store.stream_writer import StreamWriter

    loc = location.parse(data_url)
    t0 = time.perf_counter()
    store = objects.run_object_store(loc, new_run_id(), read_only=False)
    root = zarr.open_group(store, mode="w-", zarr_format=3)
    group = root.create_group("streams").create_group("cam")
    s = StreamWriter(
        group,
        {
            "protocol": "adzmq",
            "endpoint": "tcp://h:1",
            "socket_type": "SUB",
            "role": "connect",
            "options": {},
            "compression": None,
        },
    )
    _feed(s, items)
    t1 = time.perf_counter()
    s.close()
    return t1 - t0, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=400)
    ap.add_argument("--size", type=int, default=256, help="image side (uint16 pixels)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import boto3

    proc, url = start_moto()
    tmp = Path(tempfile.mkdtemp())
    try:
        os.environ.update(
            AWS_ENDPOINT_URL=url,
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_REGION="us-east-1",
            RECORDER_STATE=str(tmp / "state"),
        )
        boto3.client("s3", endpoint_url=url).create_bucket(Bucket="bench-runs")
        from recorder import config

        data_url = "s3://bench-runs/bench"
        spool_runs = config.runs_dir(config.data_dir(data_url))
        local_runs = config.runs_dir(config.data_dir(tmp / "local"))
        items, nbytes = _items(args.count, args.size)
        print(
            f"{args.count} ADZMQ images {args.size}x{args.size} uint16, "
            f"{nbytes / 1e6:.1f} MB; S3: moto server at {url} (another process)"
        )
        ways = {
            "local disk": lambda: via_runwriter(local_runs, items),
            "spool + upload": lambda: via_runwriter(spool_runs, items),
            "direct (zarr ObjectStore)": lambda: direct(data_url, items),
        }
        for label, way in ways.items():
            best = [min(x) for x in zip(*(way() for _ in range(args.rounds)), strict=True)]
            writer_s, total_s = best
            print(
                f"  {label:26s} writer {nbytes / writer_s / 1e6:7.1f} MB/s "
                f"{args.count / writer_s:8.0f} msg/s | in place {nbytes / total_s / 1e6:7.1f} "
                f"MB/s {args.count / total_s:8.0f} msg/s"
            )
        if SENT:
            print(
                f"  uploaded per spooled run: {min(SENT) / 1e6:.1f} MB"
                f" (run data {nbytes / 1e6:.1f} MB)"
            )
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
