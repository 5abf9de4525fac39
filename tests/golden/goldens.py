"""The committed golden runs (README.md here): where they are and what they must read as, for
the tests that read, replay, browse and migrate them."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable
from pathlib import Path

from recorder import config
from recorder.store.reader import Message

GOLDEN = Path(__file__).resolve().parent
#: One entry per format version folder (format1, format2 ...) that has an expected.json.
FOLDERS = sorted(p.name for p in GOLDEN.glob("format*") if (p / "expected.json").is_file())


def golden_run(folder: str) -> tuple[Path, dict]:
    """The committed run of `folder` (never written to: copy it first) and what it holds."""
    expected = json.loads((GOLDEN / folder / "expected.json").read_text())
    return GOLDEN / folder / expected["run_id"], expected


def digests(messages: Iterable[Message]) -> list[dict]:
    """Messages as expected.json lists them: the sha256 of every frame, in order."""
    return [
        {
            "stream": m.stream,
            "index": m.index,
            "recv_ns": m.recv_ns,
            "seq": m.seq,
            "flags": m.flags,
            "frames": [hashlib.sha256(f).hexdigest() for f in m.frames],
        }
        for m in messages
    ]


def copy_into(folder: str, data: Path) -> Path:
    """A copy of the golden run in data folder `data` (created if need be), not indexed."""
    path, _ = golden_run(folder)
    target = config.runs_dir(config.data_dir(data)) / path.name
    shutil.copytree(path, target)
    return target


def tree_digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder` by relative path: to show a run was not touched."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
