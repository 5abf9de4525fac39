"""Writes the golden format-2 run in tests/golden/format2/ (see the README beside it).

The same messages, streams, annotations and fixed identity as the format-1 golden run
(make_format1.write, which writes whatever format the recorder writes), by the recorder that
writes format 2; it refuses to run with one that writes another version. Format 2 is compact
as written, so nothing is shrunk afterwards.

    PYTHONPATH=. python tests/golden/make_format2.py
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from recorder.store import layout
from tests.golden import make_format1 as golden  # the shared messages and expected.json shape

FORMAT = 2
RUN_ID = "20261201-120000-902d02"


def main() -> int:
    if layout.FORMAT_VERSION != FORMAT:
        print(f"this recorder writes format {layout.FORMAT_VERSION}, not {FORMAT}", file=sys.stderr)
        return 1
    target = Path(__file__).resolve().parent / f"format{FORMAT}"
    shutil.rmtree(target, ignore_errors=True)
    run = golden.write(target, RUN_ID, FORMAT)
    out = golden.expected(run)
    out["format_version"] = FORMAT
    (target / "expected.json").write_text(json.dumps(out, indent=1) + "\n")
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    print(f"{run}: {len(out['messages'])} messages, {size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
