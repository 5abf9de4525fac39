"""Format 2 as other tools see it: plain zarr, xarray, dask; disk use; ragged and compressed arrays.

The plain-zarr check runs in a fresh interpreter that never imports the recorder, so it proves
that a run is a dataset on its own, not something only our reader understands.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import zarr

from recorder import protocols
from recorder.protocols.base import BulkFrame, Decoded
from recorder.simulators import (
    AdzmqSimulator,
    KaraboSimulator,
    OpenEphysSimulator,
    PyMultiVideoSimulator,
)
from recorder.store import compact, layout
from recorder.store.reader import RunReader
from recorder.store.run_writer import RunWriter

SIMS = {
    "cam": ("adzmq", lambda: AdzmqSimulator(height=32, width=48)),
    "kb": ("karabo", lambda: KaraboSimulator(detector="small")),
    "oe": ("openephys", lambda: OpenEphysSimulator()),
    "pmv": ("pymultivideo", lambda: PyMultiVideoSimulator()),
}


def record_sims(runs: Path, n: int, compression: str | None = None) -> tuple[Path, dict]:
    """A closed run with one stream per simulator; returns it and the frames sent per stream."""
    sent: dict[str, list[list[bytes]]] = {}
    with RunWriter(runs, name="f2") as run:
        for name, (proto, make) in SIMS.items():
            sim, codec = make(), protocols.lookup(proto).codec()
            s = run.add_stream(
                name,
                protocol=proto,
                endpoint="tcp://h:1",
                socket_type="SUB",
                role="connect",
                compression=compression,
            )
            msgs = [[bytes(f) for f in sim.message(i)] for i in range(n)]
            s.append_batch([(1_000 + i, m, codec.decode(m), None) for i, m in enumerate(msgs)])
            s.flush()
            sent[name] = msgs
    return run.path, sent


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def payload_bytes(sent) -> int:
    return sum(len(f) for msgs in sent.values() for m in msgs for f in m)


PLAIN = textwrap.dedent(
    """
    import json, sys
    import numpy as np, zarr, xarray as xr
    assert "recorder" not in sys.modules
    run = sys.argv[1]
    root = zarr.open_group(run, mode="r")
    missing = []
    def walk(g, prefix):
        for name, node in g.members():
            if isinstance(node, zarr.Array):
                if not node.metadata.dimension_names or None in node.metadata.dimension_names:
                    missing.append(prefix + name)
            else:
                walk(node, prefix + name + "/")
    walk(root, "")
    cam = root["streams/cam/data/image/image"]
    tree = xr.open_datatree(run, engine="zarr")
    assert set(tree["streams/cam/data/image"].to_dataset().variables) >= {"image", "recv_ns"}
    image = xr.open_zarr(run, group="streams/cam/data/image")  # dask-backed
    oe = tree["streams/oe/data/continuous/example_data"].to_dataset()
    out = {
        "missing_dims": missing,
        "cam_shape": list(cam.shape),
        "cam_sum": int(np.asarray(cam[:], dtype=np.int64).sum()),
        "image_dims": list(image["image"].dims),
        "image_lazy": type(image["image"].data).__module__.split(".")[0],
        "recv_dtype": str(image["recv_ns"].dtype),
        "seq": image["seq"].values.tolist(),
        "oe_dims": list(oe["example_data"].dims),
        "oe_sample0": int(oe["sample"].values[0]),
        "oe_time_unit": oe["time"].attrs.get("units"),
        "stream_recv": str(tree["streams/cam"].to_dataset()["recv_ns"].dtype),
        "consolidated": "consolidated_metadata" in json.load(open(run + "/zarr.json")),
    }
    print(json.dumps(out))
    """
)


@pytest.mark.timeout(120)
def test_plain_zarr_and_xarray_open_a_run_without_the_recorder(tmp_path):
    path, _ = record_sims(tmp_path, 6)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", PLAIN, str(path)],
        capture_output=True,
        text=True,
        timeout=100,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["missing_dims"] == []
    sim = SIMS["cam"][1]()
    assert got["cam_shape"] == [6, 32, 48]
    assert got["cam_sum"] == sum(int(sim.image(i).astype(np.int64).sum()) for i in range(6))
    assert got["image_dims"][0] == "frame" and got["image_lazy"] == "dask"
    assert got["recv_dtype"] == "datetime64[ns]" and got["stream_recv"] == "datetime64[ns]"
    assert got["seq"] == [i + 1 for i in range(6)]  # ADZMQ frame ids
    assert got["oe_dims"] == ["sample", "channel"] and got["oe_time_unit"] == "s"
    assert got["consolidated"]


@pytest.mark.parametrize("compression", [None, "zstd", "blosc-zstd"])
def test_every_message_reads_back_byte_for_byte(tmp_path, compression):
    path, sent = record_sims(tmp_path, 12, compression)
    with RunReader(path) as r:
        assert r.attrs["format_version"] == 2
        for name, msgs in sent.items():
            got = [[bytes(f) for f in m.frames] for m in r.stream(name).messages()]
            assert got == msgs, name


def test_a_short_run_is_small(tmp_path):
    """10 messages: at most 1.1 x the payload + 256 KiB per stream (format 1 took 12-37 MB)."""
    path, sent = record_sims(tmp_path, 10)
    allowed = 1.1 * payload_bytes(sent) + len(sent) * (256 << 10)
    assert disk_bytes(path) <= allowed, (disk_bytes(path), payload_bytes(sent))


def test_compression_saves_disk_on_detector_like_images(tmp_path):
    rng = np.random.default_rng(0)
    sizes = {}
    for compression in ("none", "zstd", "blosc-zstd"):
        with RunWriter(tmp_path / compression, name="c") as run:
            s = run.add_stream(
                "det",
                protocol="test",
                endpoint="tcp://h:1",
                socket_type="SUB",
                role="connect",
                compression=compression,
            )
            for i in range(40):  # dark offset + Poisson photons: counts in a few bits
                img = (100 + rng.poisson(0.3, (128, 128))).astype(np.uint16)
                s.append(i, [img.tobytes()], Decoded(bulk=[BulkFrame(0, "image", img)]))
        sizes[compression] = disk_bytes(run.path)
        with RunReader(run.path) as r:
            assert r.stream("det").stats["bytes"] == 40 * 128 * 128 * 2
    assert sizes["zstd"] < 0.5 * sizes["none"]
    assert sizes["blosc-zstd"] < 0.5 * sizes["none"]


def _ragged_stream(tmp_path, counts, *, flag=True, rest=(4, 3)):
    rng = np.random.default_rng(1)
    sent, arrays_ = [], []
    with RunWriter(tmp_path, name="r") as run:
        s = run.add_stream(
            "kb", protocol="test", endpoint="tcp://h:1", socket_type="SUB", role="connect"
        )
        for i, n in enumerate(counts):
            a = rng.integers(0, 1000, (n, *rest)).astype(np.float32)
            frames = [b"head%d" % i, a.tobytes()]
            view = np.frombuffer(frames[1], np.float32).reshape(a.shape)
            b = BulkFrame(1, "DET/CAM:out/image.data", view, ragged=flag, dims=("pulse", "y", "x"))
            s.append(10 + i, frames, Decoded(seq=100 + i, bulk=[b]))
            sent.append(frames)
            arrays_.append(a)
            if i % 3 == 0:
                s.flush()
    return run.path, sent, arrays_


def test_ragged_arrays_are_one_array_with_first_and_count(tmp_path):
    counts = [3, 0, 5, 1, 7, 2]
    path, sent, arrays_ = _ragged_stream(tmp_path, counts)
    with RunReader(path) as r:
        s = r.stream("kb")
        assert [[bytes(f) for f in m.frames] for m in s.messages()] == sent
        (seg,) = s.array_segments()
        assert seg.ragged and seg.rows == sum(counts) and seg.shape == (4, 3)
    fam = zarr.open_group(path / "streams/kb/data/DET/CAM_out/image.data", mode="r")
    assert fam.attrs["name"] == "DET/CAM:out/image.data" and fam.attrs["kind"] == "ragged"
    values = fam["image.data"]
    assert values.metadata.dimension_names == ("pulse", "y", "x")
    np.testing.assert_array_equal(values[:], np.concatenate(arrays_))
    assert fam["count"][:].tolist() == counts
    assert fam["first"][:].tolist() == np.cumsum([0, *counts[:-1]]).tolist()
    assert fam["seq"][:].tolist() == [100 + i for i, n in enumerate(counts) for _ in range(n)]


def test_arrays_of_the_same_messages_share_their_row_coordinates(tmp_path):
    """Two ragged arrays with a row per pulse of every train, and two stacked ones with a row
    per train: each pair's per-row coordinates are derived once, and the second array's are
    the first's chunk files linked; an array of other messages gets its own."""
    counts = [3, 0, 5, 1, 7, 2]
    rng = np.random.default_rng(2)
    with RunWriter(tmp_path, name="r") as run:
        s = run.add_stream(
            "kb", protocol="test", endpoint="tcp://h:1", socket_type="SUB", role="connect"
        )
        for i, n in enumerate(counts):
            img = rng.integers(0, 9, (n, 4, 3)).astype(np.float32)
            cells = np.arange(n, dtype=np.uint16)
            energy = np.array([i, 2 * i], dtype=np.float64)
            frames = [b"h", img.tobytes(), cells.tobytes(), energy.tobytes(), energy.tobytes()]
            bulk = [
                BulkFrame(1, "DET/A:out/image.data", img, ragged=True),
                BulkFrame(2, "DET/A:out/image.cellId", cells, ragged=True),
                BulkFrame(3, "XGM/B:out/energy", energy),
                BulkFrame(4, "XGM/B:out/energy2", energy),
            ]
            if i % 2:
                bulk.append(BulkFrame(0, "odd", np.frombuffer(b"h", np.uint8)))
            s.append(10 + i, frames, Decoded(seq=100 + i, bulk=bulk))
            if i == 2:
                s.flush()
    data = tmp_path / run.path.name / "streams/kb/data"
    pulses = [100 + i for i, n in enumerate(counts) for _ in range(n)]
    trains = [100 + i for i in range(len(counts))]
    for fam, seq in (
        ("DET/A_out/image.data", pulses),
        ("DET/A_out/image.cellId", pulses),
        ("XGM/B_out/energy", trains),
        ("XGM/B_out/energy2", trains),
        ("odd", [101, 103, 105]),
    ):
        group = zarr.open_group(data / fam, mode="r")
        assert group["seq"][:].tolist() == seq, fam
        assert group["recv_ns"][:].tolist() == [s - 90 for s in seq], fam
    cells = zarr.open_group(data / "DET/A_out/image.cellId", mode="r")
    assert cells["count"][:].tolist() == counts
    assert cells["first"][:].tolist() == np.cumsum([0, *counts[:-1]]).tolist()
    assert (
        cells["seq"].metadata.dimension_names == cells["image.cellId"].metadata.dimension_names[:1]
    )
    assert cells["recv_ns"].attrs["long_name"] == "host receive time"

    def inodes(fam: str, name: str) -> set[int]:
        return {f.stat().st_ino for f in (data / fam / name).glob("c.*")}

    for first, second in (("DET/A_out/image.data", "DET/A_out/image.cellId"),
                          ("XGM/B_out/energy", "XGM/B_out/energy2")):  # fmt: skip
        for name in ("recv_ns", "seq"):
            assert inodes(first, name) and inodes(first, name) == inodes(second, name)
    assert inodes("DET/A_out/image.data", "count") == inodes("DET/A_out/image.cellId", "count")
    assert not inodes("odd", "seq") & inodes("XGM/B_out/energy", "seq")


def test_a_shape_changing_only_in_its_first_axis_becomes_ragged(tmp_path):
    """An ADZMQ ROI whose height changes every frame: two segments, not one per frame."""
    path, sent, _ = _ragged_stream(tmp_path, [5, 6, 7, 8, 9, 10, 11], flag=False)
    with RunReader(path) as r:
        s = r.stream("kb")
        assert [[bytes(f) for f in m.frames] for m in s.messages()] == sent
        segs = s.array_segments()
        assert [(g.ragged, g.rows) for g in segs] == [(False, 1), (True, 6 + 7 + 8 + 9 + 10 + 11)]


def test_an_interrupted_compaction_is_finished_or_undone(tmp_path):
    path, sent = record_sims(tmp_path, 4)
    heap = path / "streams/cam/heap"
    # a crash after the first rename: the original moved aside, the copy not yet in place
    os.replace(heap, heap.with_name("heap.old"))
    compact.cleanup(path)
    assert heap.is_dir() and not heap.with_name("heap.old").exists()
    with RunReader(path) as r:
        got = [[bytes(f) for f in m.frames] for m in r.stream("cam").messages()]
    assert got == sent["cam"]


def test_format_version_and_doc_pointer(tmp_path):
    path, _ = record_sims(tmp_path, 1)
    attrs = json.loads((path / "zarr.json").read_text())["attributes"]
    assert attrs["format_version"] == layout.FORMAT_VERSION == 2
    assert "docs/format.md" in attrs["format_doc"]
    with RunReader(path) as r:
        meaning = r.stream("cam").attrs["meaning"]
        assert set(meaning) == {"seq", "source_time", "source_epoch", "columns"}
