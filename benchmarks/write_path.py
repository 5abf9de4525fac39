"""CPU per message of the recorder's writer thread, without sockets: decode + store.

The same pre-generated Open Ephys messages (one per channel per block, as the ZMQ Interface
sends them) are stored three ways into runs on /dev/shm (so the disk does not blur it), in
batches as the receive thread hands them over:

* raw: the frames verbatim (the raw protocol's codec), the floor;
* one by one: each message decoded on its own (decode_or_reject) and appended (append_batch),
  the general path every protocol takes;
* in runs: decode_batch, which decodes runs of one header layout together (PlacedRun) and
  stores them with append_run.

Process CPU time, the minimum of several rounds (robust to a busy machine), in microseconds
per message; lower is better.

    python benchmarks/write_path.py [--channels 64] [--count 10000] [--rounds 5]
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
                        if isinstance(part, list):
                            s.append_batch(part)
                        else:
                            s.append_run(*part)
                else:
                    s.append_batch([decode_or_reject(codec, r, f, x) for r, f, x in batch])
            s.flush()
            return time.process_time() - t0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    sim = make_simulator("openephys", n_channels=args.channels, n_samples=1024)
    messages = [sim.message(i) for i in range(args.count)]
    batches = [
        [(time.time_ns(), f, None) for f in messages[i : i + BATCH]]
        for i in range(0, args.count, BATCH)
    ]
    print(f"Open Ephys, {args.channels} channels x 1024 samples, {args.count} messages")
    results = {}
    for label, protocol, together in (
        ("raw", "raw", False),
        ("one by one", "openephys", False),
        ("in runs", "openephys", True),
    ):
        best = min(once(batches, protocol, together) for _ in range(args.rounds))
        results[label] = best / args.count * 1e6
        print(f"  {label:12s} {results[label]:7.2f} us/message")
    print(
        f"in runs vs one by one: {results['one by one'] / results['in runs']:.2f}x faster; "
        f"vs raw: {results['in runs'] / results['raw']:.2f}x the cost"
    )


if __name__ == "__main__":
    main()
