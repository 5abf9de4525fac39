"""The mapped read path (what a replay sends) gives every frame byte for byte as zarr reads it.

Runs of every protocol are written large enough that heap and typed arrays span several shards
(8 MiB each), with frames straddling shard ends; each is read twice, mapped and through zarr
(`messages(mapped=False)`), while still being written (flushed, partly filled last shards) and
after it closed. Large frames must come out of a mapping of their chunk files (no copy), the
ones that straddle two shards included.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from recorder import protocols
from recorder.protocols import codec_for
from recorder.store.reader import RunReader
from recorder.store.run_writer import RunWriter


def raw_messages(n: int) -> list[list[bytes]]:
    """A counter and an odd-sized payload: payloads straddle heap shard ends often."""
    rng = np.random.default_rng(1)
    return [
        [i.to_bytes(8, "little"), rng.integers(0, 255, (1 << 20) + 4099 * i, np.uint8).tobytes()]
        for i in range(n)
    ]


def simulated(protocol: str, n: int, **options) -> list[list[bytes]]:
    cls = protocols.lookup(protocol).simulator_class()
    assert cls is not None
    sim = cls(**options)
    return [sim.message(i) for i in range(n)]


CASES = {
    # protocol: (messages, recorded socket type)
    "raw": (lambda: raw_messages(20), "SUB"),
    "adzmq": (lambda: simulated("adzmq", 20, height=512, width=1024), "SUB"),
    "pymultivideo": (lambda: simulated("pymultivideo", 12, height=720, width=1280), "SUB"),
    "karabo": (lambda: simulated("karabo", 900), "REQ"),
    "openephys": (lambda: simulated("openephys", 2600, n_channels=64, n_samples=1024), "SUB"),
    "reqrep": (lambda: simulated("reqrep", 500), "REQ"),
}


def frames_of(path: Path, mapped: bool) -> list[tuple]:
    with RunReader(path) as run:
        return [
            (m.index, m.recv_ns, m.seq, m.source_ns, m.flags, [bytes(f) for f in m.frames])
            for name in run.streams
            for m in run.stream(name).messages(mapped=mapped)
        ]


def assert_same(path: Path, count: int) -> None:
    mapped, zarr_read = frames_of(path, True), frames_of(path, False)
    assert len(mapped) == count
    assert mapped == zarr_read


def crosses_shards(path: Path) -> bool:
    """Some array of the run has a second chunk file along its first axis (per-message and
    frame-table columns hold 65536 rows per chunk: only the bulk arrays get one here)."""
    return any(re.fullmatch(r"c\.1(\.0)*", f.name) for f in path.rglob("c.*"))


@pytest.mark.timeout(180)
@pytest.mark.parametrize("protocol", sorted(CASES))
def test_mapped_frames_equal_zarr_while_written_and_closed(tmp_path, protocol):
    make, socket_type = CASES[protocol]
    messages = make()
    codec = codec_for(protocol)
    w = RunWriter(tmp_path, name=protocol)
    s = w.add_stream(
        "main", protocol=protocol, endpoint="tcp://127.0.0.1:5999", socket_type=socket_type,
        role="connect",
    )  # fmt: skip
    half = len(messages) // 2 + 1
    for i, frames in enumerate(messages):
        s.append(w.started_ns + i * 1_000_000, frames, codec.decode(frames))
        if i + 1 == half:
            w.flush()  # a run being recorded: partly filled last shards
            assert_same(w.path, half)
    w.flush()
    assert_same(w.path, len(messages))
    w.close()
    assert_same(w.path, len(messages))
    assert crosses_shards(w.path), "the run must span several shards"
    with RunReader(w.path) as run:  # and the frames are what was sent
        got = [[bytes(f) for f in m.frames] for m in run.messages()]
    assert got == messages


@pytest.mark.timeout(120)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
@pytest.mark.parametrize("protocol", ["raw", "adzmq"])
def test_large_frames_are_slices_of_mapped_chunk_files(tmp_path, protocol):
    make, socket_type = CASES[protocol]
    messages = make()
    codec = codec_for(protocol)
    with RunWriter(tmp_path, name=protocol) as w:
        s = w.add_stream(
            "main", protocol=protocol, endpoint="tcp://127.0.0.1:5999", socket_type=socket_type,
            role="connect",
        )  # fmt: skip
        for i, frames in enumerate(messages):
            s.append(w.started_ns + i * 1_000_000, frames, codec.decode(frames))
    with RunReader(w.path) as run:
        msgs = list(run.messages())
        spans = mapped_files(w.path)
        large = [f for m in msgs for f in m.frames if len(f) >= 1 << 20]
        assert len(large) == len(messages)
        straddling = 0
        for f in large:
            lo = np.frombuffer(f, np.uint8).ctypes.data
            first, last = file_at(spans, lo), file_at(spans, lo + len(f) - 1)
            assert first is not None and last is not None, "a copied frame"
            straddling += first != last
        if protocol == "raw":
            assert straddling >= 2, "payloads straddling shard ends are mapped too"
        assert bytes(large[-1]) == messages[-1][-1]


def mapped_files(root: Path) -> list[tuple[int, int, str]]:
    """(start, end, file) of this process's mappings of files under `root`."""
    out = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[5].startswith(str(root)):
            start, end = (int(x, 16) for x in parts[0].split("-"))
            out.append((start, end, parts[5]))
    return out


def file_at(spans: list[tuple[int, int, str]], address: int) -> str | None:
    return next((f for lo, hi, f in spans if lo <= address < hi), None)
