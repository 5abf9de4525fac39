"""Synthetic Open Ephys runs written through the store writer (no sockets, not real time), for
the signal view's tests and benchmarks/series.py: continuous blocks, a TTL event and a spike
now and then, receive times that follow the sample clock."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from recorder.protocols import codec_for
from recorder.protocols import openephys as oe
from recorder.protocols.base import decode_batch
from recorder.store.run_writer import RunWriter

RATE = 30000.0
START_NS = 1_700_000_000_000_000_000


def block_values(block: int, channel: int, n: int) -> np.ndarray:
    """Deterministic samples: a ramp that differs per channel and block, with a spike of
    +-1000 somewhere in every 7th block (min/max must find it)."""
    v = (np.arange(n, dtype=np.float32) % 97) + 10 * channel + (block % 13)
    if block % 7 == 3:
        v[(block * 31 + channel) % n] = 1000.0 if channel % 2 == 0 else -1000.0
    return v


def write_run(
    runs: Path,
    *,
    blocks: int,
    channels: int = 4,
    n: int = 1024,
    ttl_every: int = 50,
    spike_every: int = 70,
    batch: int = 512,
    units: str | None = "uV",
    values: Callable[[int, int, int], np.ndarray] = block_values,
    keep: bool = True,
) -> tuple[str, np.ndarray]:
    """A closed run with one Open Ephys stream `oe`; returns (run id, all samples as
    (samples, channels) float32, what the placed array must hold). `units`: sent in every data
    header with `bit_volts`, as newer plugins may. `values(block, channel, n)`: a channel's
    samples in a block. `keep=False` keeps no copy of the samples (an empty array is returned:
    long runs for benchmarks)."""
    codec = codec_for("openephys")
    samples = np.zeros((blocks * n if keep else 0, channels), dtype=np.float32)
    with RunWriter(runs, started_ns=START_NS) as run:
        run_id = run.run_id
        s = run.add_stream(
            "oe", protocol="openephys", endpoint="tcp://h:1", socket_type="SUB", role="connect"
        )
        pending: list = []
        seq = 0

        def put(frames: list[bytes], sample_end: int) -> None:
            recv = START_NS + int(sample_end / RATE * 1e9)
            pending.append((recv, frames, None))
            if len(pending) >= batch:
                drain()

        def drain() -> None:
            for part in decode_batch(codec, pending):
                s.append_part(part)
            pending.clear()

        for b in range(blocks):
            for c in range(channels):
                v = values(b, c, n)
                if keep:
                    samples[b * n : (b + 1) * n, c] = v
                seq += 1
                frames = oe.encode_data(
                    v, message_num=seq, stream="probe", channel_num=c,
                    channel_name=f"CH{c + 1}", sample_num=b * n, sample_rate=RATE,
                )  # fmt: skip
                if units:
                    header = json.loads(frames[1])
                    header["content"].update(bit_volts=0.195, units=units)
                    frames[1] = json.dumps(header).encode()
                put(frames, (b + 1) * n)
            if ttl_every and b % ttl_every == ttl_every - 1:
                seq += 1
                put(
                    oe.encode_ttl(
                        message_num=seq, stream="probe", source_node=100,
                        sample_num=b * n + 5, line=1, state=bool((b // ttl_every) % 2 == 0),
                    ),
                    (b + 1) * n,
                )  # fmt: skip
            if spike_every and b % spike_every == spike_every - 1:
                seq += 1
                put(
                    oe.encode_spike(
                        np.zeros((1, 40), np.float32), message_num=seq, stream="probe",
                        source_node=100, electrode="E1", sample_num=b * n + 9,
                    ),
                    (b + 1) * n,
                )  # fmt: skip
        drain()
    return run_id, samples
