"""The reader's table API (typed segments, frame table rows, segment rows), which the web's
previews read runs through, on whole-row, placed and pre-`frames/column` runs."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from recorder.errors import StreamNotFound
from recorder.protocols import openephys as oe
from recorder.protocols.base import BulkFrame, Decoded
from recorder.store import layout
from recorder.store.reader import ArraySegment, RunReader
from recorder.store.run_writer import RunWriter

pytestmark = pytest.mark.timeout(60)


def new_stream(tmp_path, protocol="test"):
    run = RunWriter(tmp_path, name="t")
    stream = run.add_stream(
        "s", protocol=protocol, endpoint="tcp://h:1", socket_type="SUB", role="connect"
    )
    return run, stream


def image_message(i: int, shape=(4, 6), dtype=np.uint16):
    img = (np.arange(np.prod(shape)) + i).astype(dtype).reshape(shape)
    frames = [b'{"frame":%d}' % i, img.tobytes()]
    bulk = np.frombuffer(frames[1], dtype=dtype).reshape(shape)
    return frames, Decoded(seq=i, bulk=[BulkFrame(1, "image", bulk)]), img


def image_run(tmp_path, n=6):
    """Images whose shape changes at message 4: two whole-row segments."""
    run, s = new_stream(tmp_path)
    imgs = []
    for i in range(n):
        frames, dec, img = image_message(i, (4, 6) if i < 4 else (2, 3))
        s.append(100 + i, frames, dec)
        imgs.append(img)
    run.close()
    return run.path, imgs


def drop_frame_column(path, stream="s"):
    """Make the run look as written before `frames/column` existed (early format 1)."""
    del zarr.open_group(path / "streams" / stream / "frames", mode="r+")["column"]


def test_array_segments_describe_whole_row_segments(tmp_path):
    path, imgs = image_run(tmp_path)
    with RunReader(path) as r:
        s = r.stream("s")
        segs = s.array_segments()
        assert segs == [
            ArraySegment(0, "image", "data/image/image", "<u2", (4, 6), rows=4),
            ArraySegment(1, "image", "data/image@1/image", "<u2", (2, 3), rows=2),
        ]
        assert s.array_segments("image") == segs and s.array_segments("nope") == []
        np.testing.assert_array_equal(s.read_segment(0, 1, 3), imgs[1:3])
        np.testing.assert_array_equal(s.read_segment(1, 0, 99), imgs[4:])  # committed rows only
        assert s.read_segment(1, 5, 9).shape == (0, 2, 3)
        with pytest.raises(StreamNotFound):
            s.read_segment(2, 0, 1)


@pytest.mark.parametrize("legacy", [False, True], ids=["frame-column", "no-frame-column"])
def test_frame_rows_of_whole_row_frames(tmp_path, legacy):
    """A run without `frames/column` reads exactly like one where every column is WHOLE_ROWS."""
    path, _ = image_run(tmp_path)
    if legacy:
        drop_frame_column(path)
    with RunReader(path) as r:
        s = r.stream("s")
        ft = s.frame_rows(3, 5)  # header (heap) + image (segment) per message
        assert len(ft) == 4
        assert ft.message.tolist() == [3, 3, 4, 4]
        assert ft.segment.tolist() == [layout.HEAP_SEGMENT, 0, layout.HEAP_SEGMENT, 1]
        assert ft.offset.tolist()[1::2] == [3, 0]  # rows of the segments
        assert ft.length.tolist() == [len(b'{"frame":3}'), 48, len(b'{"frame":4}'), 12]
        assert ft.column.tolist() == [layout.WHOLE_ROWS] * 4
        assert not ft.placed.any()
        assert len(s.frame_rows()) == 12 and len(s.frame_rows(6, 99)) == 0
        assert len(s.frame_rows(5, 2)) == 0
        # and messages are still rebuilt byte for byte
        assert [bytes(m.frames[1]) for m in s.messages()] == [
            image_message(i, (4, 6) if i < 4 else (2, 3))[0][1] for i in range(6)
        ]


def test_frame_rows_of_placed_frames_and_channel_names(tmp_path):
    """Open Ephys blocks of 8 samples x 3 channels, one message per channel per block."""
    codec = oe.OpenEphysCodec()
    sent, values = [], {}
    for block in range(3):
        for ch in range(3):
            values[block, ch] = np.arange(8, dtype=np.float32) + 10 * ch + 100 * block
            sent.append(
                oe.encode_data(
                    values[block, ch],
                    message_num=len(sent) + 1,
                    stream="probe",
                    channel_num=ch,
                    channel_name=f"CH{ch + 1}",
                    sample_num=500 + 8 * block,
                    sample_rate=2500.0,
                )
            )
    run, st = new_stream(tmp_path, "openephys")
    st.append_batch([(i, m, codec.decode(m), None) for i, m in enumerate(sent)])
    run.close()
    with RunReader(run.path) as r:
        s = r.stream("s")
        (seg,) = s.array_segments()
        assert (seg.name, seg.dtype, seg.shape, seg.rows) == ("continuous/probe", "<f4", (3,), 24)
        assert seg.placed and seg.first_sample == 500
        ft = s.frame_rows(0, 9)
        data = ft.segment == seg.index
        assert data.sum() == 9 and ft.placed[data].all() and not ft.placed[~data].any()
        assert ft.column[data].tolist() == [0, 1, 2] * 3
        assert ft.offset[data].tolist() == [0, 0, 0, 8, 8, 8, 16, 16, 16]
        assert ft.length[data].tolist() == [32] * 9
        assert ft.message[data].tolist() == list(range(9))
        np.testing.assert_array_equal(s.read_segment(seg.index, 8, 16)[:, 1], values[1, 1])
        assert s.channel_names("continuous/probe") == ["CH1", "CH2", "CH3"]
        assert s.channel_names("nope") is None
        assert [[bytes(f) for f in m.frames] for m in s.messages()] == sent


def test_only_committed_rows_are_listed(tmp_path):
    run, s = new_stream(tmp_path)
    for i in range(3):
        s.append(i, *image_message(i)[:2])
    s.flush()
    for i in range(3, 5):
        s.append(i, *image_message(i)[:2])
    with RunReader(run.path) as r:
        st = r.stream("s")
        assert [seg.rows for seg in st.array_segments()] == [3]
        assert st.read_segment(0, 0, 10).shape[0] == 3
        assert st.frame_rows(0, 10).message.tolist() == [0, 0, 1, 1, 2, 2]
    run.close()
