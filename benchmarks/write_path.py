"""CPU per message of the recorder's writer thread, without sockets: decode + store.

The same pre-generated messages of a protocol's simulator (the exact frames the live system
sends; Open Ephys: one per channel per block, as the ZMQ Interface sends them) are stored three
ways into runs on /dev/shm (so the disk does not blur it), in batches as the receive thread
hands them over:

* raw: the frames verbatim (the raw protocol's codec), the floor;
* one by one: each message decoded on its own (decode_or_reject) and appended a message at a
  time (StreamWriter._append_each), the general path;
* batched: decode_batch and append_batch/append_run as the recorder does (Open Ephys: runs of
  one header layout decoded together, PlacedRun; Karabo: trains of one layout decoded in
  columns, AlikeRun; every protocol: messages of one layout stored a typed array at a time).

Process CPU time, the minimum of several rounds (robust to a busy machine), in microseconds
per message; lower is better.

    python benchmarks/write_path.py [--protocol openephys] [--channels 64] [--count 10000]
    python benchmarks/write_path.py --protocol all
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from recorder.protocols import codec_for
from recorder.protocols.base import decode_batch, decode_or_reject
from recorder.simulators import make_simulator
from recorder.store.run_writer import RunWriter

BATCH = 256
CASES = {  # protocol -> (simulator options, messages)
    "openephys": ({"n_samples": 1024}, 10000),
    "karabo": ({"detector": "small", "n_sources": 1}, 3000),
    "adzmq": ({"height": 512, "width": 1024}, 200),
    "pymultivideo": ({"height": 480, "width": 640}, 500),
}


def once(batches: list, protocol: str, together: bool) -> float:
    codec = codec_for(protocol)
    folder = Path(tempfile.mkdtemp(dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    try:
        with RunWriter(folder) as run:
            s = run.add_stream(
                "s", protocol=protocol, endpoint="tcp://h:1", socket_type="SUB", role="connect"
            )
            t0 = time.process_time()
            for batch in batches:
                if together:
                    for part in decode_batch(codec, batch):
                        s.append_part(part)
                else:
                    s._append_each([decode_or_reject(codec, r, f, x) for r, f, x in batch])
            s.flush()
            return time.process_time() - t0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def bench(protocol: str, options: dict, count: int, rounds: int) -> None:
    sim = make_simulator(protocol, **options)
    messages = [sim.message(i) for i in range(count)]
    batches = [
        [(time.time_ns(), f, None) for f in messages[i : i + BATCH]] for i in range(0, count, BATCH)
    ]
    mb = sum(sum(map(len, m)) for m in messages) / 1e6
    print(f"{protocol}, {options}, {count} messages ({mb / count * 1e3:.1f} kB each)")
    results = {}
    for label, codec, together in (
        ("raw", "raw", True),
        ("one by one", protocol, False),
        ("batched", protocol, True),
    ):
        best = min(once(batches, codec, together) for _ in range(rounds))
        results[label] = best / count * 1e6
        print(f"  {label:12s} {results[label]:8.2f} us/message {mb / best:8.0f} MB/s")
    print(
        f"  batched vs one by one: {results['one by one'] / results['batched']:.2f}x faster; "
        f"vs raw: {results['batched'] / results['raw']:.2f}x the cost",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocol", default="openephys", help=f"{', '.join(CASES)} or all")
    ap.add_argument("--channels", type=int, default=64, help="Open Ephys channels")
    ap.add_argument("--count", type=int, default=None, help="messages (default: per protocol)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    for protocol in CASES if args.protocol == "all" else [args.protocol]:
        options, count = CASES[protocol]
        if protocol == "openephys":
            options = {**options, "n_channels": args.channels}
        bench(protocol, options, args.count or count, args.rounds)


if __name__ == "__main__":
    main()
