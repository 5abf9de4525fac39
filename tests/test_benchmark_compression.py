"""benchmarks/compression.py keeps running as the store changes under it: a small pass of every
case and compression (the real measurement is the script's default run, by hand)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from recorder.store import layout

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "compression.py"


@pytest.mark.timeout(120)
def test_every_case_records_with_every_compression(tmp_path):
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--rounds", "1", "--mib", "1", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=110, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()[1:] if line.strip()][:-1]
    cases = ("counting", "integrating", "ephys-f32", "ephys-i16")
    assert [(r[0], r[1]) for r in rows] == [(c, z) for c in cases for z in layout.COMPRESSIONS]
    for row in rows:
        speed, disk_per_payload = float(row[2]), float(row[5])
        assert speed > 0 and disk_per_payload > 0
    assert not list(tmp_path.iterdir())  # every run it made was removed
