"""Writes the golden format-2 run in tests/golden/format2/ (see the README beside it).

The same messages, streams, annotations and fixed identity as the format-1 golden run
(make_format1.py), written by the recorder that writes format 2; it refuses to run with one
that writes another version. Format 2 is compact as written, so nothing is shrunk afterwards.

    PYTHONPATH=. python tests/golden/make_format2.py
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import zarr

from recorder.errors import MalformedMessage
from recorder.protocols import codec_for
from recorder.store import layout, nodes
from recorder.store.run_writer import RunWriter

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_format1 as golden  # the shared messages and expected.json shape

FORMAT = 2
RUN_ID = "20261201-120000-902d02"


def write(runs_dir: Path) -> Path:
    w = RunWriter(runs_dir, run_id=RUN_ID, name="golden format 2", tags=["golden", "format2"],
                  meta={"purpose": "golden format-2 run", "operator": "tests"})  # fmt: skip
    w.started_ns = golden.STARTED_NS
    w._attrs.update(started_ns=golden.STARTED_NS, host="golden-host", pid=1)
    for name, spec in golden.messages().items():
        protocol = spec.get("protocol", name)
        s = w.add_stream(name, protocol=protocol, **spec["attrs"])
        codec = codec_for(protocol)
        items = []
        for t_ms, frames, extra in spec["messages"]:
            recv_ns = golden.STARTED_NS + int(t_ms * 1e6)
            try:
                decoded = codec.decode(frames)
            except MalformedMessage as exc:
                items.append((recv_ns, frames, None, exc.reason))
                continue
            if extra:
                decoded.columns.update(extra)
            items.append((recv_ns, frames, decoded, None))
        s.append_batch(items[:2])  # two batches with a flush between, as a recording has
        s.flush()
        s.append_batch(items[2:])
        s.add_drops(spec.get("drops", 0))
    w.close()
    root = zarr.open_group(w.path, mode="r+", zarr_format=3, use_consolidated=False)
    attrs = dict(root.attrs)
    attrs["ended_ns"] = golden.STARTED_NS + 900_000_000  # the clock stamped it: fix it
    root.attrs.put(attrs)
    notes = root["annotations"]
    ann = dict(notes.attrs)
    ann["notes"] = [{"created_ns": golden.STARTED_NS + 1_000_000_000, "text": "golden note <b>"}]
    ann["name"] = "golden format 2 (renamed)"
    notes.attrs.put(ann)
    nodes.consolidate(w.path)
    return w.path


def main() -> int:
    if layout.FORMAT_VERSION != FORMAT:
        print(f"this recorder writes format {layout.FORMAT_VERSION}, not {FORMAT}", file=sys.stderr)
        return 1
    target = Path(__file__).resolve().parent / f"format{FORMAT}"
    shutil.rmtree(target, ignore_errors=True)
    run = write(target)
    out = golden.expected(run)
    out["format_version"] = FORMAT
    (target / "expected.json").write_text(json.dumps(out, indent=1) + "\n")
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    print(f"{run}: {len(out['messages'])} messages, {size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
