"""Columns read from their chunk files (what a replay's block reads take) equal zarr's reads.

The run is written with small column chunks (monkeypatched COLUMN_CHUNK) so blocks of 4096
messages span many chunk files and the last chunk is partly filled; read while written and
after closing. Arrays the fast path does not know (sharded, strings, a chunk never written)
are left to zarr.
"""

from __future__ import annotations

import numpy as np
import pytest

from recorder.store import layout
from recorder.store.column_files import ColumnFiles
from recorder.store.nodes import array, read_rows
from recorder.store.reader import RunReader
from recorder.store.run_writer import RunWriter

KEYS = [*layout.MESSAGE_COLUMNS, "frames/segment", "frames/offset", "frames/length"]


def messages(n: int) -> list[list[bytes]]:
    return [[i.to_bytes(8, "little"), bytes([i % 251]) * (i % 37)] for i in range(n)]


def same_columns(path, stop_expected: int) -> None:
    with RunReader(path) as run:
        stream = run.stream("main")
        assert stream.n_messages == stop_expected
        folder = path / "streams" / "main"
        for key in KEYS:
            files = ColumnFiles.open(folder / key)
            assert files is not None, key
            n = stream.n_frames if key.startswith("frames/") else stream.n_messages
            for lo, hi in [(0, n), (5, 6), (63, 65), (100, n - 3), (n - 1, n), (7, 7)]:
                got = files.rows(lo, hi)
                want = read_rows(array(stream.group, key), lo, hi)
                assert got is not None and got.dtype == want.dtype, (key, lo, hi)
                np.testing.assert_array_equal(got, want)
        fast = [
            (m.index, m.recv_ns, m.seq, m.source_ns, m.flags, [bytes(f) for f in m.frames])
            for m in stream.messages()
        ]
        ref = [
            (m.index, m.recv_ns, m.seq, m.source_ns, m.flags, [bytes(f) for f in m.frames])
            for m in stream.messages(mapped=False)
        ]
        assert fast == ref
        rows, ref_rows = stream.frame_rows(10, 5000), None
        ref_rows = [read_rows(array(stream.group, f"frames/{k}"), 0, stream.n_frames) for k in (
            "segment", "offset", "length")]  # fmt: skip
        f0 = int(read_rows(array(stream.group, "first_frame"), 10, 11)[0])
        np.testing.assert_array_equal(rows.offset, ref_rows[1][f0 : f0 + len(rows)])


@pytest.mark.timeout(120)
def test_columns_from_chunk_files_equal_zarr_while_written_and_closed(tmp_path, monkeypatch):
    monkeypatch.setattr(layout, "COLUMN_CHUNK", 64)
    msgs = messages(9000)  # more than two blocks of 4096 messages
    w = RunWriter(tmp_path, name="columns")
    s = w.add_stream(
        "main", protocol="raw", endpoint="tcp://127.0.0.1:5999", socket_type="SUB",
        role="connect",
    )  # fmt: skip
    for i, frames in enumerate(msgs):
        s.append(w.started_ns + i * 1000, frames, None)
        if i + 1 == 4200:
            w.flush()  # a run being recorded: a partly filled last chunk
            same_columns(w.path, 4200)
    w.close()
    same_columns(w.path, len(msgs))
    with RunReader(w.path) as run:
        assert [[bytes(f) for f in m.frames] for m in run.messages()] == msgs


@pytest.mark.timeout(60)
def test_arrays_it_does_not_know_are_left_to_zarr(tmp_path):
    w = RunWriter(tmp_path, name="other")
    s = w.add_stream(
        "main", protocol="raw", endpoint="tcp://127.0.0.1:5999", socket_type="SUB",
        role="connect",
    )  # fmt: skip
    for i, frames in enumerate(messages(10)):
        s.append(w.started_ns + i * 1000, frames, None)
    w.flush()
    folder = w.path / "streams" / "main"
    assert ColumnFiles.open(folder / "heap") is None  # sharded while recorded
    w.close()
    assert ColumnFiles.open(folder / "rejects" / "reason") is None  # strings
    assert ColumnFiles.open(folder / "no such array") is None
    assert ColumnFiles.open(None) is None
    files = ColumnFiles.open(folder / "recv_ns")
    assert files is not None
    assert files.rows(0, 10) is not None
    assert files.rows(1 << 20, (1 << 20) + 1) is None  # a chunk never written: zarr's fill
