"""A source's compression is checked with the rest of its description, before a run exists:
a bad value is the user's mistake, not a failed run."""

from __future__ import annotations

import pytest

from recorder.errors import UsageError
from recorder.recording.recording import Recording
from recorder.recording.source_spec import SourceSpec


@pytest.mark.timeout(30)
def test_compression_defaults_to_none_and_bad_values_are_refused(tmp_path):
    assert SourceSpec(endpoint="tcp://127.0.0.1:5").check().compression == "none"
    assert SourceSpec(endpoint="tcp://127.0.0.1:5", compression="zstd").check().compression == (
        "zstd"
    )
    with pytest.raises(UsageError, match="unknown compression 'lz4'"):
        Recording(tmp_path / "runs", [SourceSpec(endpoint="tcp://127.0.0.1:5", compression="lz4")])
    assert not list((tmp_path / "runs").glob("*"))
