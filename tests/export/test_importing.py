"""A run written from a file's messages keeps the file's own clock: started and ended where the
data did, not when the import ran."""

from __future__ import annotations

from recorder.export.importing import ImportedStream, RunImport
from recorder.store.reader import RunReader

T0 = 1_690_000_000_000_000_000  # 2023: long before the import


def test_an_imported_run_starts_and_ends_with_its_data(tmp_path):
    spec = ImportedStream("cam", "raw", "tcp://127.0.0.1:5999", "PUB", "bind")
    with RunImport(tmp_path, started_ns=T0, name="old data") as imp:
        stream = imp.stream(spec)
        for k in range(5):
            stream.append(T0 + k * 250_000_000, [b"frame %d" % k])
    with RunReader(imp.path) as run:
        summary = run.summary()
        frames = [bytes(m.frames[0]) for m in run.messages()]
    assert summary["started_ns"] == T0
    assert summary["ended_ns"] == T0 + 4 * 250_000_000
    assert summary["duration_s"] == 1.0
    assert frames == [b"frame %d" % k for k in range(5)]
    assert imp.path.name.startswith("20230722-")  # the id sorts by the data's start
