"""The wheel carries the web UI's templates and static files, not only an editable checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(300)
def test_wheel_ships_templates_and_static(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    [wheel] = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("templates", "static"):
        for f in (ROOT / folder).rglob("*"):
            if f.is_file():
                assert f"recorder/{folder}/{f.relative_to(ROOT / folder)}" in names
    assert "recorder/cli/main.py" in names
    for f in ("env.py", "script.py.mako", "versions/0001_initial.py"):  # run at start-up
        assert f"recorder/db/migrations/{f}" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "recorder = recorder.cli.main:main" in zipfile.ZipFile(wheel).read(entry).decode()
