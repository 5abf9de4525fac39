"""msgpack_shapes: frames of a learnt shape read a batch at a time give exactly what msgpack
reads of each; frames of another layout do not match (the caller parses those)."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from recorder.protocols.msgpack_shapes import Shape, Unlearnable

pytestmark = pytest.mark.timeout(60)


def test_header_frames_read_in_batches_keep_their_exact_values():
    """msgpack_shapes: values of every width and sign read back as msgpack reads them."""

    def frame(v):
        return msgpack.packb(
            {"f": v * 1.5, "i8": -v, "u16": 300 + v, "i64": -(2**40) - v, "s": f"s{v % 10}",
             "b": v % 2 == 0, "fx": v % 100, "n": None, "f32": np.float32(v / 7).item()},
            use_single_float=False,
        )  # fmt: skip

    shape = Shape(frame(3))
    frames = [frame(v) for v in range(0, 20)]
    batch = shape.read(frames)
    for k, f in enumerate(frames):
        want = msgpack.unpackb(f)
        if not batch.ok[k]:
            continue
        for key in ("f", "i8", "u16", "i64", "s", "b", "fx"):
            values = batch.values((key,))
            got = values.tolist()[k] if isinstance(values, np.ndarray) else values[k]
            assert got == want[key] and type(got) is type(want[key]), key
    assert batch.ok.sum() >= 10


def test_frames_of_another_layout_do_not_match():
    shape = Shape(msgpack.packb({"a": 1.5, "b": "xy", "c": [1, 2], "d": 5, "u": 2**40}))
    others = [
        msgpack.packb({"a": 1.5, "b": "xyz", "c": [1, 2], "d": 5, "u": 2**40}),  # longer
        msgpack.packb({"a": 1.5, "b": "xy", "c": [1, 3], "d": 5, "u": 2**40}),  # list changed
        msgpack.packb({"a": 1.5, "B": "xy", "c": [1, 2], "d": 5, "u": 2**40}),  # key changed
        msgpack.packb({"a": 1.5, "b": "xy", "c": [1, 2], "d": -5, "u": 2**40}),  # sign: kind
        msgpack.packb({"a": 1.5, "b": "xy", "c": [1, 2], "d": 5, "u": 2**63}),  # past int64
        msgpack.packb({"a": 1.5, "b": "\u00e9", "c": [1, 2], "d": 5, "u": 2**40}),  # UTF-8
        msgpack.packb({"a": 2.5, "b": "zz", "c": [1, 2], "d": 9, "u": 2**41}),  # fits
    ]
    ok = shape.read(others).ok.tolist()
    assert ok == [False, False, False, False, False, True, True]
    start = bytes(shape.data).index(b"xy")
    bad = bytearray(shape.data)
    bad[start] = 0xFF  # not UTF-8: msgpack would refuse it
    assert shape.read([bytes(bad)]).ok.tolist() == [False]


def test_what_is_not_a_map_of_values_is_not_learnt():
    for frame in (msgpack.packb([1, 2]), msgpack.packb({1: 2}), msgpack.packb({"a": 1}) + b"x"):
        with pytest.raises(Unlearnable):
            Shape(frame)
