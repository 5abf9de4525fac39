"""Writes the golden format-1 run in tests/golden/format1/ (see the README beside it).

Run it with the recorder at the last commit that wrote format 1 (`git log -- tests/golden`
says which); it refuses to run with a recorder that writes another format version:

    PYTHONPATH=. python tests/golden/make_format1.py

The run is written by the recorder's own RunWriter/StreamWriter, each message decoded by its
protocol's codec exactly as a recording's writer thread does (StreamRecorder._write_batch):
a message the codec rejects is stored as a reject with its reason, the request/reply proxy's
columns (`request_ns`, `latency_ns`) are added as the proxy adds them. The messages are the
simulators' own (`Simulator.message(i)`, what they send on the wire), with small image sizes;
receive times, identity and annotations are fixed so the run is reproducible.

Format 1 writes fixed large chunks (8 MiB of heap, 512 KiB columns), so a 200 KB run takes
tens of MB. `shrink()` then rewrites every array with a smaller chunk shape: only the
`chunk_grid` of each array's zarr.json changes (it is not part of the format: readers take it
from the metadata); shape, dtype, fill value, codecs, attributes and every value stay as
written, and the script checks that every message reads back byte for byte the same.
Finally it writes expected.json: per message its stream, index, recv_ns, seq, flags and the
sha256 of each frame, in the order `RunReader.messages()` yields them.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import zarr

from recorder.protocols import codec_for
from recorder.protocols.base import decode_or_reject
from recorder.protocols.reqrep import pack_pair
from recorder.simulators import make_simulator
from recorder.store import layout, nodes
from recorder.store.reader import RunReader
from recorder.store.run_writer import RunWriter
from tests.golden.goldens import digests

HERE = Path(__file__).resolve().parent
FORMAT = 1
RUN_ID = "20261201-120000-901d01"
STARTED_NS = 1_764_590_400_000_000_000  # 2025-12-01 12:00:00 UTC
CHUNK_BYTES = 16 << 10  # chunk size of the rewritten arrays larger than ONE_CHUNK_BYTES
ONE_CHUNK_BYTES = 64 << 10  # smaller arrays get one chunk of exactly their shape


def messages() -> dict[str, dict]:
    """Per stream: its attributes and (recv offset in ms, frames, extra columns) per message."""
    oe = make_simulator("openephys", n_channels=4, n_samples=64, ttl_every=2, spike_every=4)
    oe_msgs = [oe.message(i) for i in range(14) if i != 5]  # message_num 6 lost: a gap
    ad = make_simulator("adzmq", "tcp://127.0.0.1:1234 PUB", height=8, width=8)
    ad_big = make_simulator("adzmq", "tcp://127.0.0.1:1234 PUB", height=6, width=10)
    ad_msgs = [ad.message(i) for i in (0, 1, 3)]  # frame 3 lost: a gap
    ad_msgs += [[b"{not json", b"\x00" * 8]]  # rejected: the header is no JSON
    ad_msgs += [ad_big.message(i) for i in (4, 5)]  # the shape changes: a second segment
    pmv = make_simulator("pymultivideo", height=8, width=8)
    k22 = make_simulator("karabo", protocol="2.2")
    k10 = make_simulator("karabo", protocol="1.0")
    rr = make_simulator("reqrep")
    raw = make_simulator("raw")
    rr_msgs: list[tuple[list[bytes], dict]] = [
        (rr.message(0), {"request_ns": STARTED_NS + 600_000_000, "latency_ns": 1_500_000}),
        (rr.message(1), {"request_ns": STARTED_NS + 610_000_000, "latency_ns": 2_500_000}),
        # asked but never answered: the request alone, stamped when the proxy stopped
        ([*pack_pair([b"never answered"], [])], {"request_ns": STARTED_NS + 620_000_000}),
    ]
    return {
        "openephys": {
            "attrs": dict(
                socket_type="SUB",
                role="connect",
                endpoint="tcp://127.0.0.1:5556",
                options={"subscribe": [""]},
            ),
            "messages": [(1.0 + i, m, None) for i, m in enumerate(oe_msgs)],
        },
        "adzmq": {
            "attrs": dict(
                socket_type="SUB",
                role="connect",
                endpoint="tcp://127.0.0.1:1234",
                options={"subscribe": [""]},
            ),
            "messages": [(100.5 + 10 * i, m, None) for i, m in enumerate(ad_msgs)],
            "drops": 2,
        },
        "pymultivideo": {
            "attrs": dict(
                socket_type="SUB",
                role="connect",
                endpoint="tcp://127.0.0.1:5560",
                options={"subscribe": [""]},
            ),
            "messages": [(200.0 + 100 * i, pmv.message(i), None) for i in range(3)],
        },
        "karabo22": {
            "protocol": "karabo",
            "attrs": dict(
                socket_type="REQ",
                role="connect",
                endpoint="tcp://127.0.0.1:4545",
                options={"subscribe": [], "request": "next"},
            ),
            "messages": [(300.0 + 100 * i, k22.message(i), None) for i in range(2)],
        },
        "karabo10": {
            "protocol": "karabo",
            "attrs": dict(
                socket_type="SUB",
                role="connect",
                endpoint="tcp://127.0.0.1:4546",
                options={"subscribe": [""]},
            ),
            "messages": [(350.0 + 100 * i, k10.message(i), None) for i in range(2)]
            + [(555.0, [b"\xc1 not msgpack"], None)],  # rejected: no msgpack
        },
        "reqrep": {
            "attrs": dict(
                socket_type="REP",
                role="bind",
                endpoint="tcp://127.0.0.1:5570",
                options={"subscribe": [], "upstream": "tcp://127.0.0.1:5571"},
            ),
            "messages": [(602.0 + 10 * i, m, extra) for i, (m, extra) in enumerate(rr_msgs)],
        },
        "raw": {
            "attrs": dict(
                socket_type="SUB",
                role="connect",
                endpoint="tcp://127.0.0.1:5999",
                options={"subscribe": [""]},
            ),
            "messages": [(700.0 + i, raw.message(i), None) for i in range(2)]
            + [(703.0, [b"", b"after an empty frame"], None), (704.0, [b"x" * 3], None)],
        },
    }


def write(runs_dir: Path, run_id: str = RUN_ID, fmt: int = FORMAT) -> Path:
    """The golden run of format `fmt` (whatever format this recorder writes), fixed identity."""
    w = RunWriter(
        runs_dir,
        run_id=run_id,
        name=f"golden format {fmt}",
        tags=["golden", f"format{fmt}"],
        meta={"purpose": f"golden format-{fmt} run", "operator": "tests"},
    )
    w.started_ns = STARTED_NS
    w._attrs.update(started_ns=STARTED_NS, host="golden-host", pid=1)
    for name, spec in messages().items():
        protocol = spec.get("protocol", name)
        s = w.add_stream(name, protocol=protocol, **spec["attrs"])
        codec = codec_for(protocol)
        items = []
        for t_ms, frames, extra in spec["messages"]:
            items.append(decode_or_reject(codec, STARTED_NS + int(t_ms * 1e6), frames, extra))
        s.append_batch(items[:2])  # two batches with a flush between, as a recording has
        s.flush()
        s.append_batch(items[2:])
        s.add_drops(spec.get("drops", 0))
    w.close()
    # the recorder stamps the end with the clock: fix it, as the start
    root = zarr.open_group(w.path, mode="r+", zarr_format=3, use_consolidated=False)
    attrs = dict(root.attrs)
    attrs["ended_ns"] = STARTED_NS + 900_000_000
    root.attrs.put(attrs)
    notes = root["annotations"]
    ann = dict(notes.attrs)
    ann["notes"] = [{"created_ns": STARTED_NS + 1_000_000_000, "text": "golden note <b>"}]
    ann["name"] = f"golden format {fmt} (renamed)"
    notes.attrs.put(ann)
    if nodes.is_consolidated(w.path):  # format 2 keeps a consolidated copy: make it current
        nodes.consolidate(w.path)
    return w.path


def shrink(run: Path) -> None:
    """Every array rewritten with smaller chunks (one chunk of its own shape when small, else
    about CHUNK_BYTES, so reads across chunk ends are exercised): only `chunk_grid` changes."""
    for meta_file in sorted(run.rglob("zarr.json")):
        meta = json.loads(meta_file.read_text())
        if meta.get("node_type") != "array":
            continue
        folder = meta_file.parent
        values = zarr.open_array(folder, mode="r")[...]
        shape = meta["shape"]
        row_bytes = max(1, int(np.prod(shape[1:], dtype=np.int64)) * max(1, values.itemsize))
        n = max(1, shape[0] if shape else 1)
        rows = n if n * row_bytes <= ONE_CHUNK_BYTES else max(1, CHUNK_BYTES // row_bytes)
        chunk = [rows, *shape[1:]] if shape else []
        shutil.rmtree(folder / "c", ignore_errors=True)
        meta["chunk_grid"]["configuration"]["chunk_shape"] = chunk
        meta_file.write_text(json.dumps(meta, indent=2))
        if values.size:
            arr = zarr.open_array(folder, mode="r+", config={"write_empty_chunks": True})
            arr[...] = values


def expected(run: Path) -> dict:
    with RunReader(run) as reader:
        summary = reader.summary()
        out = digests(reader.messages())
        streams = {
            name: {
                "protocol": s.protocol,
                "messages": s.n_messages,
                "rejects": [list(r) for r in s.rejects()],
                "columns": s.column_names(),
                "arrays": s.array_names(),
                "segments": len(s.array_segments()),
                "gaps": int(s.stats.get("gaps", 0)),
                "drops": int(s.stats.get("drops", 0)),
            }
            for name, s in reader.streams.items()
        }
    return {
        "format_version": FORMAT,
        "run_id": summary["run_id"],
        "name": summary["name"],
        "status": summary["status"],
        "started_ns": summary["started_ns"],
        "ended_ns": summary["ended_ns"],
        "tags": summary["tags"],
        "notes": summary["notes"],
        "meta": summary["meta"],
        "streams": streams,
        "messages": out,
    }


def main() -> int:
    if layout.FORMAT_VERSION != FORMAT:
        print(f"this recorder writes format {layout.FORMAT_VERSION}, not {FORMAT}", file=sys.stderr)
        return 1
    target = HERE / f"format{FORMAT}"
    shutil.rmtree(target, ignore_errors=True)
    run = write(target)
    before = expected(run)
    shrink(run)
    after = expected(run)
    assert after == before, "shrinking changed what the run reads as"
    (target / "expected.json").write_text(json.dumps(after, indent=1) + "\n")
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    print(f"{run}: {len(after['messages'])} messages, {size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
