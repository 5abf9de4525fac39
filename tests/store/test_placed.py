"""Placed segments: Open Ephys channel blocks stored as one (samples, channels) array per stream,
with every message still rebuilt byte for byte from it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import zarr

from recorder.protocols import openephys as oe
from recorder.protocols.base import BulkFrame, Decoded
from recorder.simulators.openephys import OpenEphysSimulator
from recorder.store import layout, placed
from recorder.store.chunk_io import chunk_file
from recorder.store.reader import RunReader
from recorder.store.recover import repair_run
from recorder.store.run_writer import RunWriter

pytestmark = pytest.mark.timeout(120)

CODEC = oe.OpenEphysCodec()
NAME = "continuous/example_data"


def new_stream(tmp_path):
    run = RunWriter(tmp_path, name="oe")
    stream = run.add_stream(
        "oe", protocol="openephys", endpoint="tcp://h:5556", socket_type="SUB", role="connect"
    )
    return run, stream


def write(stream, messages, start_ns=0):
    """As recorder/record.py's writer thread does it: decode, then one batch."""
    items = [(start_ns + i, m, CODEC.decode(m), None) for i, m in enumerate(messages)]
    stream.append_batch(items)


def sim(**kw):
    opts = {"n_channels": 4, "n_samples": 16, "ttl_every": 2, "spike_every": 3, **kw}
    return OpenEphysSimulator(**opts)


def expected(s: OpenEphysSimulator, blocks, skip=()):
    """(rows, channels) the simulator sent for `blocks`; NaN where (block, channel) in skip."""
    out = []
    for b in blocks:
        cols = [
            np.full(s.n_samples, np.nan, np.float32) if (b, ch) in skip else s.samples(b, ch)
            for ch in range(s.n_channels)
        ]
        out.append(np.stack(cols, axis=1))
    return np.concatenate(out)


def data_index(s: OpenEphysSimulator, block: int, channel: int) -> int:
    """Index of the message carrying (block, channel)."""
    i = 0
    while s.plan(i) != ("data", block, channel):
        i += 1
    return i


def messages_of(path, **kw):
    with RunReader(path) as r:
        return [[bytes(f) for f in m.frames] for m in r.messages(**kw)]


def test_blocks_become_one_array_of_samples_by_channels(tmp_path):
    s = sim(format="older")  # no channel_name: the array gets no channel_names either
    sent = [s.message(i) for i in range(data_index(s, 12, 3) + 1)]
    run, st = new_stream(tmp_path)
    write(st, sent)
    run.close()
    assert messages_of(run.path) == sent
    with RunReader(run.path) as r:
        reader = r.stream("oe")
        (cont,) = reader.arrays(NAME)
        assert cont.shape == (13 * 16, 4) and cont.dtype == np.float32
        np.testing.assert_array_equal(cont, expected(s, range(13)))
        assert len(reader.arrays("spikes/example_data/Tetrode 1")) == 1
        assert NAME in r.summary()["streams"][0]["arrays"]
        seg = next(x for x in reader.segments if x["name"] == NAME)
        assert seg["placed"] and seg["first_sample"] == 0 and seg["shape"] == [4]
        cols = reader.group["frames/column"][:]
        segs = reader.group["frames/segment"][:]
    data = [i for i in range(len(sent)) if s.plan(i)[0] == "data"]
    assert [int(cols[3 * i + 2]) for i in data] == [s.plan(i)[2] for i in data]
    assert all(cols[3 * i + 2] == layout.WHOLE_ROWS for i in range(len(sent)) if i not in data)
    assert all(segs[3 * i] == layout.HEAP_SEGMENT for i in range(len(sent)))  # envelopes
    # a plain zarr user gets the same array and its sample addressing
    plain = zarr.open_array(run.path / "streams/oe" / seg["path"], mode="r")
    assert plain.attrs["first_sample"] == 0 and plain.attrs["sample_rate"] == 30000.0
    assert plain.attrs["name"] == NAME and plain.attrs["first_message"] == 0
    assert "channel_names" not in plain.attrs
    np.testing.assert_array_equal(plain[:], expected(s, range(13)))


def test_first_sample_channel_names_and_odd_float_bits(tmp_path):
    bits = np.array([0x7FA00001, 0xFFC12345, 0x80000000, 0x7F800000], np.uint32)  # sNaN, -0 ..
    sent = []
    for block in range(3):
        for ch in range(3):
            values = np.arange(5, dtype=np.float32) + 10 * ch + 100 * block
            if block == 1 and ch == 2:
                values[:4] = bits.view(np.float32)
            sent.append(
                oe.encode_data(
                    values,
                    message_num=len(sent) + 1,
                    stream="probe A",
                    channel_num=ch,
                    channel_name=f"CH{ch + 1}",
                    sample_num=90_000 + 5 * block,
                    sample_rate=2500.0,
                )
            )
    run, st = new_stream(tmp_path)
    write(st, sent)
    run.close()
    assert messages_of(run.path) == sent
    with RunReader(run.path) as r:
        (cont,) = r.stream("oe").arrays("continuous/probe A")
        assert cont.shape == (15, 3)
        assert cont[5:9, 2].view(np.uint32).tolist() == bits.tolist()
        assert cont[0, :].tolist() == [0.0, 10.0, 20.0]
        path = r.stream("oe").segments[0]["path"]
    attrs = zarr.open_array(run.path / "streams/oe" / path, mode="r").attrs
    assert attrs["first_sample"] == 90_000 and attrs["sample_rate"] == 2500.0
    assert attrs["channel_names"] == ["CH1", "CH2", "CH3"]


def test_flush_mid_block_commits_exactly_what_was_appended(tmp_path, monkeypatch):
    monkeypatch.setattr(layout, "PLACED_CHUNK_BYTES", 4 * 4 * 24)  # 24-row chunks
    s = sim()
    n = data_index(s, 20, 2)  # stop in the middle of block 20
    sent = [s.message(i) for i in range(n + 40)]
    run, st = new_stream(tmp_path)
    write(st, sent[:n])
    st.flush()
    write(st, sent[n:])  # placements finalize chunks past the commit point: invisible
    with RunReader(run.path) as r:
        assert r.stream("oe").n_messages == n
        assert [[bytes(f) for f in m.frames] for m in r.messages()] == sent[:n]
        (cont,) = r.stream("oe").arrays(NAME)
        assert cont.shape == (21 * 16, 4)
        np.testing.assert_array_equal(cont[: 20 * 16], expected(s, range(20)))
        np.testing.assert_array_equal(cont[20 * 16 :, :2], expected(s, [20])[:, :2])
        # channels 2, 3 of block 20 arrived after the flush: NaN, or their true values if a
        # chunk became final since (committed cells never change, later ones may fill in)
        late, want = cont[20 * 16 :, 2:], expected(s, [20])[:, 2:]
        assert (np.isnan(late) | (late == want)).all()
    run.close()
    assert messages_of(run.path) == sent
    with RunReader(run.path) as r:
        (cont,) = r.stream("oe").arrays(NAME)
        np.testing.assert_array_equal(cont[: 22 * 16], expected(s, range(22)))


def test_a_flush_inside_the_first_block_widens_the_array_for_the_rest_of_it(tmp_path):
    """The flush fixes a provisional channel count; channels the first block still brings
    widen the same array (one (samples, channels) array, not a second segment)."""
    s = sim(ttl_every=0, spike_every=0)
    sent = [s.message(i) for i in range(4 * 5)]
    run, st = new_stream(tmp_path)
    write(st, sent[:2])  # channels 0 and 1 of block 0, then a flush
    st.flush()
    assert messages_of(run.path) == sent[:2]
    write(st, sent[2:3])  # channel 2: wider, readable at once
    st.flush()
    assert messages_of(run.path) == sent[:3]
    write(st, sent[3:])
    run.close()
    assert messages_of(run.path) == sent
    with RunReader(run.path) as r:
        (cont,) = r.stream("oe").arrays(NAME)
    np.testing.assert_array_equal(cont, expected(s, range(5)))


def test_a_new_channel_after_the_first_block_still_starts_a_new_segment(tmp_path):
    s = sim(ttl_every=0, spike_every=0)
    sent = [s.message(i) for i in range(4 * 3)]
    narrow = [m for i, m in enumerate(sent) if s.plan(i)[2] < 2]  # channels 0, 1 only ...
    run, st = new_stream(tmp_path)
    write(st, narrow[:2])
    st.flush()
    write(st, narrow[2:] + sent[-2:])  # ... then channels 2, 3 appear in block 2
    run.close()
    with RunReader(run.path) as r:
        assert [a.shape[1] for a in r.stream("oe").arrays(NAME)] == [2, 4]


@pytest.mark.parametrize("chunk_rows", [None, 40])
def test_dropped_messages_leave_nan_cells(tmp_path, monkeypatch, chunk_rows):
    """Also with 40-row chunks (16-row blocks): chunks are finalized as blocks go on, and the
    buffer of a later chunk (a finalized one's memory, reused) holds no earlier values."""
    if chunk_rows is not None:
        monkeypatch.setattr(layout, "PLACED_CHUNK_BYTES", 4 * 4 * chunk_rows)
    s = sim()
    lost = {(0, 1), (1, 3), (3, 1), (3, 2), (7, 0), (9, 3), (33, 2), (37, 0), (38, 1), (38, 2)}
    sent = [
        s.message(i)
        for i in range(data_index(s, 39, 3) + 1)
        if not (s.plan(i)[0] == "data" and s.plan(i)[1:] in lost)
    ]
    run, st = new_stream(tmp_path)
    for lo in range(0, len(sent), 50):  # a flush waits for the finishing thread: by the late
        write(st, sent[lo : lo + 50], start_ns=lo)  # blocks, chunks are made from spare ones
        st.flush()
    run.close()
    assert messages_of(run.path) == sent
    with RunReader(run.path) as r:
        (cont,) = r.stream("oe").arrays(NAME)
    np.testing.assert_array_equal(cont, expected(s, range(40), skip=lost))
    assert np.isnan(cont[3 * 16 : 4 * 16, 1:3]).all()
    assert np.isnan(cont[38 * 16 : 39 * 16, 1:3]).all()


def test_acquisition_restart_starts_a_new_segment(tmp_path):
    s = sim()
    first = [s.message(i) for i in range(data_index(s, 5, 3) + 1)]
    again = [s.message(i) for i in range(data_index(s, 2, 3) + 1)]  # sample_num back to 0
    run, st = new_stream(tmp_path)
    write(st, first)
    write(st, again, start_ns=10_000)
    run.close()
    assert messages_of(run.path) == first + again
    with RunReader(run.path) as r:
        a, b = r.stream("oe").arrays(NAME)
        assert r.stream("oe").stats["seq_resets"] == 1
    np.testing.assert_array_equal(a, expected(s, range(6)))
    np.testing.assert_array_equal(b, expected(s, range(3)))


def test_many_blocks_write_each_final_chunk_once_with_bounded_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(layout, "PLACED_CHUNK_BYTES", 4 * 4 * 40)  # 40-row chunks, 16-row blocks
    writes: list[int] = []
    real = placed.write_rows

    def counting(array, index, rows, valid=None):
        writes.append(index)
        real(array, index, rows, valid)

    monkeypatch.setattr(placed, "write_rows", counting)
    s = sim()
    n_blocks = 300
    sent = [s.message(i) for i in range(data_index(s, n_blocks - 1, 3) + 1)]
    run, st = new_stream(tmp_path)
    flushes = 0
    for lo in range(0, len(sent), 97):
        write(st, sent[lo : lo + 97], start_ns=lo)
        st.flush()
        flushes += 1
        app = next(a for a in st._segment_appenders if isinstance(a, placed.PlacedAppender))
        assert len(app.buffers) <= 3
        assert messages_of(run.path) == sent[: lo + 97]
    run.close()
    assert messages_of(run.path) == sent
    n_chunks = -(-n_blocks * 16 // 40)
    assert sorted(set(writes)) == list(range(n_chunks))
    assert len(writes) <= n_chunks + 3 * flushes  # only mutable chunks are ever rewritten
    with RunReader(run.path) as r:
        (cont,) = r.stream("oe").arrays(NAME)
    np.testing.assert_array_equal(cont, expected(s, range(n_blocks)))


def test_several_open_ephys_streams_in_one_recorder_stream(tmp_path):
    a = sim(stream="probeA", n_channels=3, spike_every=0)
    b = sim(stream="probeB", n_channels=2, n_samples=8, sample_rate=1000.0, ttl_every=0)
    sent = []
    for block in range(12):  # one block of each, interleaved
        for s in (a, b):
            sent += [s.message(i) for i in range(200) if s.plan(i)[1] == block]
    run, st = new_stream(tmp_path)
    write(st, sent)
    run.close()
    assert messages_of(run.path) == sent
    with RunReader(run.path) as r:
        reader = r.stream("oe")
        (ca,) = reader.arrays("continuous/probeA")
        (cb,) = reader.arrays("continuous/probeB")
    np.testing.assert_array_equal(ca, expected(a, range(12)))
    np.testing.assert_array_equal(cb, expected(b, range(12)))


def _block(block, channels, n=10, rate=1000.0, base=0):
    return [
        oe.encode_data(
            np.full(n, 1000 * block + ch, np.float32),
            message_num=1 + block * 100 + ch,
            stream="s",
            channel_num=ch,
            sample_num=base + block * n,
            sample_rate=rate,
        )
        for ch in channels
    ]


def test_misfits_go_to_new_segments_or_the_heap(tmp_path, monkeypatch):
    monkeypatch.setattr(layout, "PLACED_CHUNK_BYTES", 2 * 4 * 10)  # 10-row chunks, 2 channels
    sent = _block(0, [0, 1])
    for block in range(1, 6):
        sent += _block(block, [0])  # channel 1 falls silent ...
    sent += _block(1, [1])  # ... and resumes behind the final chunks: verbatim in the heap
    sent += _block(6, [0, 1, 2])  # a third channel: new segment
    sent += _block(7, [0, 1, 2], base=20_000)  # 20 s ahead at 1 kHz: new segment
    sent += _block(8, [0, 1, 2], rate=2000.0, base=20_000)  # another rate: new segment
    sent += _block(0, [0, 1, 2])  # sample numbers back to 0 (acquisition restart): new segment
    run, st = new_stream(tmp_path)
    write(st, sent)
    run.close()
    assert messages_of(run.path) == sent
    with RunReader(run.path) as r:
        reader = r.stream("oe")
        segs = reader.arrays("continuous/s")
        firsts = [x["first_sample"] for x in reader.segments]
        heap_frames = int((reader.group["frames/segment"][:] == layout.HEAP_SEGMENT).sum())
    assert [x.shape for x in segs] == [(70, 2), (10, 3), (10, 3), (10, 3), (10, 3)]
    assert firsts == [0, 60, 20_070, 20_080, 0]
    assert heap_frames == 2 * len(sent) + 1  # envelopes, headers and the late payload
    assert np.isnan(segs[0][10:60, 1]).all() and segs[0][60:, 1].tolist() == [6001.0] * 10
    assert segs[1][:, 2].tolist() == [6002.0] * 10 and np.isnan(segs[1][:, :2]).all()


def test_unplaceable_frames_and_other_byte_orders_stay_exact(tmp_path, monkeypatch):
    monkeypatch.setattr(placed, "chunk_format", lambda array: None)  # zarr encodes
    run, st = new_stream(tmp_path)
    sent, decoded = [], []
    for k in range(30):
        arr = np.arange(7, dtype=np.float32) + k
        frames = [b"h%d" % k, arr.tobytes()]
        view = np.frombuffer(frames[1], np.float32)
        bulk = [BulkFrame(1, "x", view, row=7 * (k // 3), column=k % 3)]
        sent.append(frames)
        decoded.append(Decoded(seq=k, bulk=bulk))
    big = np.ones(3, np.float32)
    odd = [
        BulkFrame(1, "x", np.frombuffer(big.tobytes(), np.float32), row=-5, column=0),
        BulkFrame(1, "x", np.frombuffer(big.tobytes(), np.float32), row=0, column=1 << 20),
        BulkFrame(1, "x", np.frombuffer(big.astype(">f4").tobytes(), ">f4"), row=9, column=0),
        BulkFrame(1, "x", np.zeros(0, np.float32), row=5, column=0),
    ]
    for b in odd:
        sent.append([b"odd", b.array.tobytes()])
        decoded.append(Decoded(bulk=[b]))
    st.append_batch([(k, f, d, None) for k, (f, d) in enumerate(zip(sent, decoded, strict=True))])
    st.flush()
    assert messages_of(run.path) == sent
    run.close()
    assert messages_of(run.path) == sent
    with RunReader(run.path) as r:
        (x,) = r.stream("oe").arrays("x")
    want = np.stack([np.arange(7) + np.arange(30).reshape(10, 3)[:, c, None] for c in range(3)])
    np.testing.assert_array_equal(x, want.transpose(1, 2, 0).reshape(70, 3))


def test_recover_cuts_placed_segments_to_the_last_flush(tmp_path, monkeypatch):
    monkeypatch.setattr(layout, "PLACED_CHUNK_BYTES", 4 * 4 * 24)
    monkeypatch.setattr(layout, "COLUMN_CHUNK", 20)
    s = sim()
    n = data_index(s, 10, 1)
    sent = [s.message(i) for i in range(data_index(s, 30, 0))]
    run, st = new_stream(tmp_path)
    write(st, sent[:n])
    st.flush()
    write(st, sent[n:])  # finalizes chunks far beyond the commit point, never committed
    root = zarr.open_group(run.path, mode="r+")
    root.attrs["pid"] = None  # the recorder "died" here
    assert len(list(run.path.rglob("sample.*.compact/c.*"))) > 11 * 16 // 20  # past the commit
    repair_run(run.path)
    assert messages_of(run.path) == sent[:n]
    with RunReader(run.path) as r:
        assert r.status == layout.STATUS_INTERRUPTED
        path = r.stream("oe").segments[0]["path"]
    plain = zarr.open_array(run.path / "streams/oe" / path, mode="r")
    assert plain.shape == (11 * 16, 4)
    np.testing.assert_array_equal(plain[: 10 * 16], expected(s, range(10)))
    # the sample numbers written ahead reached row ~400: only the committed rows are kept
    sample = zarr.open_array(run.path / "streams/oe" / path / "../sample", mode="r")
    first = plain.attrs["first_sample"]
    np.testing.assert_array_equal(sample[:], first + np.arange(11 * 16))
    assert not list(run.path.rglob("*.compact"))


def test_sample_numbers_are_written_ahead_and_whole_after_the_close(tmp_path, monkeypatch):
    """The `sample` coordinate's whole chunks are written as the placed chunks become final,
    where no reader lists them (no zarr warning about unknown members of a live run); the
    close moves them into the coordinate, which holds every sample number."""
    monkeypatch.setattr(layout, "PLACED_CHUNK_BYTES", 4 * 4 * 40)  # 40-row chunks, 16-row blocks
    monkeypatch.setattr(layout, "COLUMN_CHUNK", 100)
    s = sim()
    sent = [s.message(i) for i in range(data_index(s, 59, 3) + 1)]  # 60 blocks: 960 rows
    run, st = new_stream(tmp_path)
    write(st, sent)
    st.flush()
    app = next(a for a in st._segment_appenders if isinstance(a, placed.PlacedAppender))
    values = chunk_file(app.array, 0).parent
    staged = values / f"sample.{app.first_sample}.compact"
    final_rows = app.base * 40  # rows of the chunks no placement can change
    assert sorted(p.name for p in staged.iterdir()) == [f"c.{k}" for k in range(final_rows // 100)]
    assert final_rows // 100 >= 8
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(zarr.open_group(values.parent, mode="r").array_keys()) == [values.name]
    run.close()
    sample = zarr.open_array(values.parent / "sample", mode="r")
    np.testing.assert_array_equal(sample[:], app.first_sample + np.arange(60 * 16))
    assert not staged.exists()
    with RunReader(run.path) as r:
        (cont,) = r.stream("oe").arrays(NAME)
    np.testing.assert_array_equal(cont, expected(s, range(60)))


def test_runs_without_the_frame_column_read_as_whole_rows(tmp_path):
    s = sim(legacy=True)  # whole-block messages: one row per message, no placement
    sent = [s.message(i) for i in range(5)]
    run, st = new_stream(tmp_path)
    write(st, sent)
    run.close()
    frames = zarr.open_group(run.path / "streams/oe/frames", mode="r+")
    del frames["column"]  # as written before the column existed (format 1 before 0.1.0)
    assert messages_of(run.path) == sent


def test_channel_names_seen_after_the_array_was_made_are_kept(tmp_path):
    run, st = new_stream(tmp_path)
    block = np.arange(16, dtype=np.float32)

    def frame(b, c):
        arr = block + 100 * c + 1000 * b
        return [arr.tobytes()], Decoded(
            bulk=[BulkFrame(0, NAME, arr, row=16 * b, column=c, channel_name=f"CH{c}")]
        )

    st.append(0, *frame(0, 0))
    st.flush()  # the array is made with one channel
    for i, (b, c) in enumerate([(0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]):
        st.append(i + 1, *frame(b, c))
    run.close()
    with RunReader(run.path) as r:
        reader = r.stream("oe")
        (cont,) = reader.arrays(NAME)
        assert reader.channel_names(NAME) == ["CH0", "CH1", "CH2"]
    assert cont.shape == (32, 3)
    np.testing.assert_array_equal(cont[16:, 2], block + 200 + 1000)


def test_a_final_chunk_that_cannot_be_written_fails_the_next_flush(tmp_path, monkeypatch):
    """Final chunks are written on a thread of their own: its failure reaches the writer."""
    monkeypatch.setattr(layout, "PLACED_CHUNK_BYTES", 4 * 4 * 40)  # 40-row chunks, 16-row blocks
    s = sim()
    sent = [s.message(i) for i in range(data_index(s, 10, 3) + 1)]  # chunks 0-2 become final
    middle = data_index(s, 4, 3) + 1
    run, st = new_stream(tmp_path)
    write(st, sent[:middle])
    st.flush()
    app = next(a for a in st._segment_appenders if isinstance(a, placed.PlacedAppender))
    folder = chunk_file(app.array, 0).parent
    assert (folder / "zarr.json").is_file()
    folder.rename(folder.with_name("moved"))
    folder.write_bytes(b"")  # a file where the chunks go: every chunk write fails
    write(st, sent[middle:])
    with pytest.raises(NotADirectoryError):
        st.flush()
    folder.unlink()
    folder.with_name("moved").rename(folder)
    run.close()
