"""The run format: typed segments, rejects, columns, commit points, chunk-aligned writes."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from recorder.errors import StoreError, StreamNotFound, UsageError
from recorder.protocols.base import BulkFrame, Decoded
from recorder.store import layout
from recorder.store.reader import RunReader
from recorder.store.run_meta import open_run
from recorder.store.run_writer import RunWriter


def new_stream(tmp_path, **kw):
    run = RunWriter(tmp_path, name="t", **kw)
    stream = run.add_stream(
        "cam", protocol="test", endpoint="tcp://h:1", socket_type="SUB", role="connect"
    )
    return run, stream


def image_message(i: int, shape=(4, 6), dtype=np.uint16):
    img = (np.arange(np.prod(shape)) + i).astype(dtype).reshape(shape)
    header = b'{"frame":%d}' % i
    frames = [header, img.tobytes()]
    bulk = np.frombuffer(frames[1], dtype=dtype).reshape(shape)
    return frames, Decoded(seq=i, source_ns=1000 + i, bulk=[BulkFrame(1, "image", bulk)]), img


def test_typed_segments_split_on_shape_or_dtype_change(tmp_path):
    run, s = new_stream(tmp_path)
    sent = []
    for i in range(10):
        shape, dtype = ((4, 6), np.uint16) if i < 4 else ((2, 3), np.uint16)
        if i >= 7:
            dtype = np.float32
        frames, dec, img = image_message(i, shape, dtype)
        s.append(100 + i, frames, dec)
        sent.append((frames, img))
    run.close()
    with RunReader(run.path) as r:
        st = r.stream("cam")
        segs = st.arrays("image")
        assert [(a.shape, a.dtype) for a in segs] == [
            ((4, 4, 6), np.uint16),
            ((3, 2, 3), np.uint16),
            ((3, 2, 3), np.float32),
        ]
        np.testing.assert_array_equal(np.concatenate([segs[0][:]]), [img for _, img in sent[:4]])
        np.testing.assert_array_equal(segs[2][:], [img for _, img in sent[7:]])
        assert [[bytes(f) for f in m.frames] for m in r.messages()] == [f for f, _ in sent]
        assert st.column("seq").tolist() == list(range(10))
        assert st.column("source_ns").tolist() == [1000 + i for i in range(10)]
        # a plain zarr user finds the same arrays without our reader
        plain = zarr.open_group(run.path / "streams/cam/data/image", mode="r")
        assert plain.attrs["name"] == "image" and plain["image"].shape == (4, 4, 6)
        assert plain["image"].metadata.dimension_names == ("frame", "dim_1", "dim_2")
        assert plain["message"][:].tolist() == [0, 1, 2, 3]


def test_rejects_are_kept_verbatim_with_their_reason(tmp_path):
    run, s = new_stream(tmp_path)
    frames, dec, _ = image_message(0)
    s.append(1, frames, dec)
    s.append(2, [b"garbage", b"\x00\x01"], reject_reason="header is not JSON")
    s.append(3, *image_message(1)[:2])
    run.close()
    with RunReader(run.path) as r:
        st = r.stream("cam")
        assert st.rejects() == [(1, "header is not JSON")]
        msgs = list(r.messages())
        assert [m.rejected for m in msgs] == [False, True, False]
        assert [bytes(f) for f in msgs[1].frames] == [b"garbage", b"\x00\x01"]
        assert st.column("seq").tolist() == [0, -1, 1]
        assert r.summary()["rejects"] == 1


def test_scalar_columns_fill_missing_values(tmp_path):
    run, s = new_stream(tmp_path)
    s.append(1, [b"a"], Decoded(columns={"gain": 1.5, "mode": "fast", "n": 3}))
    s.append(2, [b"b"], Decoded(columns={"gain": 2.0}))
    s.append(3, [b"c"], Decoded(columns={"n": "not-an-int", "late": True}))
    run.close()
    with RunReader(run.path) as r:
        st = r.stream("cam")
        gain = st.column("gain")
        assert gain[:2].tolist() == [1.5, 2.0] and np.isnan(gain[2])
        assert st.column("mode").tolist() == ["fast", "", ""]
        assert st.column("n").tolist() == [3, np.iinfo(np.int64).min, np.iinfo(np.int64).min]
        assert st.column("late").tolist() == [False, False, True]
        with pytest.raises(StreamNotFound):
            st.column("nope")


def test_gap_counting_follows_sequence_numbers(tmp_path):
    run, s = new_stream(tmp_path)
    for seq in [1, 2, 5, 6, 1, 2, 4]:  # 2 missing, a restart, 1 missing
        s.append(seq, [b"x"], Decoded(seq=seq))
    run.close()
    with RunReader(run.path) as r:
        stats = r.stream("cam").stats
        assert stats["gaps"] == 3 and stats["seq_resets"] == 1
        assert r.summary()["gaps"] == 3


def test_only_committed_messages_are_visible(tmp_path):
    run, s = new_stream(tmp_path)
    for i in range(100):
        s.append(i, [b"%d" % i])
    with RunReader(run.path) as r:
        assert list(r.messages()) == []  # nothing flushed yet
    s.flush()
    for i in range(100, 150):
        s.append(i, [b"%d" % i])
    with RunReader(run.path) as r:
        assert [bytes(m.frames[0]) for m in r.messages()] == [b"%d" % i for i in range(100)]
        assert r.status == layout.STATUS_RECORDING
    run.close()
    with RunReader(run.path) as r:
        assert len(list(r.messages())) == 150 and r.status == layout.STATUS_COMPLETE


def test_small_messages_reach_zarr_only_at_flush(tmp_path):
    run, s = new_stream(tmp_path)
    for i in range(5000):
        s.append(i, [b"y" * 40])
    heap = zarr.open_array(run.path / "streams/cam/heap", mode="r")
    assert heap.shape == (0,)  # no per-message writes
    s.flush()
    heap = zarr.open_array(run.path / "streams/cam/heap", mode="r")
    assert heap.shape == (layout.HEAP_CHUNK,)  # grown a chunk at a time; committed says 200_000
    run.close()
    heap = zarr.open_array(run.path / "streams/cam/heap", mode="r")
    assert heap.shape == (200_000,)  # the finished array is cut to its rows


def test_large_frames_reach_disk_as_whole_chunks_with_bounded_memory(tmp_path):
    run, s = new_stream(tmp_path)
    payload = np.random.default_rng(1).bytes(1 << 20)
    for i in range(100):
        s.append(i, [payload])
    heap = run.path / "streams/cam/heap"
    whole = 100 * (1 << 20) // layout.HEAP_CHUNK
    written = sorted(int(p.name[2:]) for p in heap.glob("c.*") if p.name[2:].isdigit())
    assert written == list(range(whole))  # full chunks went out; the partial one waits
    index = (layout.HEAP_CHUNK // layout.INNER_CHUNK_BYTES) * 16 + 4  # a shard's index
    assert all((heap / f"c.{k}").stat().st_size == layout.HEAP_CHUNK + index for k in written)
    assert len(s.heap.pieces) <= layout.HEAP_CHUNK // (1 << 20) + 1  # only the open chunk held
    run.close()
    # the last shard holds only the inner chunks its bytes reached: no padding to 8 MiB
    rest = 100 * (1 << 20) - whole * layout.HEAP_CHUNK
    assert (heap / f"c.{whole}").stat().st_size == rest + index
    with RunReader(run.path) as r:
        assert r.stream("cam").heap_bytes == 100 << 20
        assert all(bytes(m.frames[0]) == payload for m in r.messages())


def test_a_flush_commits_the_streamed_chunk_so_far_and_holds_no_frames(tmp_path):
    """The chunk being streamed is the only copy of its frames: a flush copies its file into
    place (readable at once), and streaming goes on into the same chunk after it."""
    run, s = new_stream(tmp_path)
    rng = np.random.default_rng(2)
    sent = []
    for round_ in range(3):
        for i in range(3):
            frames = [b"%d" % (10 * round_ + i), rng.bytes(300_000 + i)]
            sent.append(frames)
            s.append(10 * round_ + i, frames)
        assert s.heap.pieces == []  # written, not kept
        s.flush()
        with RunReader(run.path) as r:
            got = [[bytes(f) for f in m.frames] for m in r.messages()]
        assert got == sent  # the partial chunk, as committed, while the run goes on
    run.close()
    with RunReader(run.path) as r:
        assert [[bytes(f) for f in m.frames] for m in r.messages()] == sent


def test_time_window_selects_by_seconds_from_run_start(tmp_path):
    run, s = new_stream(tmp_path)
    t0 = run.started_ns
    for i in range(10):
        s.append(t0 + i * 1_000_000_000, [b"%d" % i])
    run.close()
    with RunReader(run.path) as r:
        got = [bytes(m.frames[0]) for m in r.messages(start=2.5, stop=6)]
    assert got == [b"3", b"4", b"5"]


def test_messages_of_several_streams_merge_in_receive_order(tmp_path):
    run = RunWriter(tmp_path)
    a = run.add_stream("a", protocol="raw", endpoint="tcp://h:1", socket_type="SUB", role="connect")
    b = run.add_stream("b", protocol="raw", endpoint="tcp://h:2", socket_type="PULL", role="bind")
    for t in range(0, 20, 2):
        a.append(t, [b"a%d" % t])
        b.append(t + 1, [b"b%d" % (t + 1)])
    run.close()
    with RunReader(run.path) as r:
        assert [m.recv_ns for m in r.messages()] == list(range(20))
        assert [m.stream for m in r.messages(streams=["b"])] == ["b"] * 10
        with pytest.raises(StreamNotFound):
            list(r.messages(streams=["c"]))


def test_unknown_format_version_is_refused(tmp_path):
    run, _ = new_stream(tmp_path)
    run.close()
    root = zarr.open_group(run.path, mode="r+")
    root.attrs["format_version"] = 99
    with pytest.raises(StoreError, match="format version 99"):
        RunReader(run.path)


def test_names_are_checked(tmp_path):
    run = RunWriter(tmp_path)
    for bad in ["", "../up", "a/b", ".hidden", "x" * 65]:
        with pytest.raises(UsageError):
            run.add_stream(bad, protocol="raw", endpoint="e", socket_type="SUB", role="connect")
    with pytest.raises(UsageError):
        RunWriter(tmp_path, run_id="../escape")
    run.close()


def test_exception_inside_the_block_marks_the_run_failed(tmp_path):
    with pytest.raises(RuntimeError), RunWriter(tmp_path) as run:
        run.add_stream("s", protocol="raw", endpoint="e", socket_type="SUB", role="connect")
        raise RuntimeError("boom")
    with RunReader(run.path) as r:
        assert r.status == "failed" and "boom" in r.attrs["error"]


def test_derived_arrays_and_row_index_map_rows_to_messages(tmp_path):
    run, s = new_stream(tmp_path)
    for i in range(6):
        derived = [("det:image.data", np.full((2, 3), i, np.float32))] if i % 2 == 0 else []
        derived.append(("xgm:intensity", np.arange(4, dtype=np.int32) + i))
        s.append(100 + i, [b"train %d" % i], Decoded(seq=1000 + i, derived=derived))
    run.close()
    with RunReader(run.path) as r:
        st = r.stream("cam")
        [det] = st.arrays("det:image.data")
        [det_rows] = st.array_messages("det:image.data")
        assert det_rows.tolist() == [0, 2, 4]  # the source was missing from odd trains
        assert st.column("seq")[det_rows].tolist() == [1000, 1002, 1004]
        np.testing.assert_array_equal(det[:, 0, 0], [0, 2, 4])
        assert st.array_messages("xgm:intensity")[0].tolist() == list(range(6))
        # derived copies are not frames: every message is still exactly its verbatim frame
        assert [bytes(m.frames[0]) for m in r.messages()] == [b"train %d" % i for i in range(6)]
        assert all(seg.get("derived") for seg in st.segments)


@pytest.mark.timeout(60)
def test_a_stream_being_added_is_not_read_until_its_attributes_are_written(tmp_path):
    """add_stream makes the stream's group, then its ~40 arrays, then its attributes: a reader
    in between (the run page of a recording that just started) saw a stream without recv_ns
    and failed with StoreError (HTTP 503). Nothing of such a stream is committed: no stream."""
    w = RunWriter(tmp_path, name="x")
    w.add_stream("done", protocol="raw", endpoint="tcp://h:1", socket_type="SUB", role="connect")
    zarr.open_group(w.path / layout.STREAMS_GROUP / "half", mode="w")  # as add_stream leaves it
    for reader in (RunReader, open_run):  # replay's lazy reader too
        with reader(w.path) as run:
            assert list(run.streams) == ["done"]
            with pytest.raises(StreamNotFound):
                run.stream("half")
    w.close()


def test_a_stream_s_first_columns_get_wide_chunks_and_later_ones_narrow(tmp_path):
    """A protocol's few header fields are written a chunk file per 65536 messages, not per
    4096; past WIDE_EXTRA_COLUMNS a stream's columns stay narrow (a flush rewrites the partial
    chunk of each), and each column is made with room for its first chunk."""
    run, s = new_stream(tmp_path)
    keys = [f"k{i}" for i in range(layout.WIDE_EXTRA_COLUMNS + 2)]
    s.append(0, [b"m"], Decoded(columns={k: i for i, k in enumerate(keys)}))
    chunks = {k: s._columns_group[k].chunks[0] for k in keys}
    shapes = {k: s._columns_group[k].shape[0] for k in keys}
    run.close()
    wide, narrow = keys[: layout.WIDE_EXTRA_COLUMNS], keys[layout.WIDE_EXTRA_COLUMNS :]
    assert {chunks[k] for k in wide} == {layout.COLUMN_CHUNK}
    assert {chunks[k] for k in narrow} == {layout.EXTRA_COLUMN_CHUNK}
    assert shapes == chunks  # room for the first chunk: no metadata rewrite at the first flush
    with RunReader(run.path) as r:
        st = r.stream("cam")
        assert [st.column(k).tolist() for k in keys] == [[i] for i in range(len(keys))]


def test_a_rare_key_reads_missing_between_its_values_and_keeps_no_chunk_of_only_missing(
    tmp_path, monkeypatch
):
    """An event-only key (Open Ephys' `line`) among thousands of data messages: its column
    grows by every message, but chunks that got no value of it are never written."""
    monkeypatch.setattr(layout, "WIDE_EXTRA_COLUMNS", 0)  # narrow chunks: a small test
    run, s = new_stream(tmp_path)
    rows = layout.EXTRA_COLUMN_CHUNK
    n = 3 * rows + 10
    rare = {5: 7, n - 3: 9}
    s.append_batch(
        [
            (i, [b"m"], Decoded(columns={"n": i, **({"ev": rare[i]} if i in rare else {})}), None)
            for i in range(n)
        ]
    )
    s.append(n, [b"m"], Decoded(columns={"f": 0.5}))  # padded: floats miss as NaN
    run.close()
    with RunReader(run.path) as r:
        st = r.stream("cam")
        ev, f = st.column("ev"), st.column("f")
        numbers = st.column("n")
    missing = np.iinfo(np.int64).min
    assert numbers.tolist() == [*range(n), missing]
    assert ev.tolist() == [*(rare.get(i, missing) for i in range(n)), missing]
    assert np.isnan(f[:n]).all() and f[n] == 0.5
    folder = run.path / "streams/cam/columns/ev"
    chunks = sorted(p.name for p in folder.iterdir() if p.name != "zarr.json")
    assert chunks == ["c.0", "c.3"]  # chunks 1 and 2 hold missing values only
