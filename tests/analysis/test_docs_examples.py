"""Every Python example in docs/analysis.md runs, in order, against a run recorded from the
simulators: the page cannot promise what the code does not do."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.analysis.runs import RUN_ID

DOC = Path(__file__).resolve().parents[2] / "docs" / "analysis.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[str]:
    return _BLOCK.findall(text)


def test_the_page_has_examples_for_every_part():
    blocks = python_blocks(DOC.read_text())
    joined = "\n".join(blocks)
    assert len(blocks) >= 10
    for call in ("open_run", ".table()", ".to_xarray()", ".to_datatree()", ".messages(",
                 ".continuous[0]", ".events", ".frame(0)", ".images", ".select(", ".trains()",
                 ".train_from_id(", ".get_array("):  # fmt: skip
        assert call in joined, call
    for block in blocks[2:]:  # each system's users get what they need in five lines or fewer
        assert len(block.strip().splitlines()) <= 5, block


@pytest.mark.timeout(120)
def test_every_example_runs(sent, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("RECORDER_DATA", str(sent.path.parent.parent))
    monkeypatch.chdir(tmp_path)
    assert sent.path.name == RUN_ID and RUN_ID.startswith("20261201-1200")
    namespace: dict = {"__name__": "docs_analysis"}
    for k, block in enumerate(python_blocks(DOC.read_text())):
        try:
            exec(compile(block, f"{DOC.name} example {k + 1}", "exec"), namespace)
        except Exception as exc:
            pytest.fail(f"example {k + 1} of {DOC.name} failed: {exc!r}\n{block}")
    out = capsys.readouterr().out
    assert f"<Run {RUN_ID} 'demo' complete" in out
    assert "['bridge', 'camera', 'ephys', 'video']" in out
