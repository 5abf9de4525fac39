"""pyMultiVideo codec, encoders and simulator."""

from __future__ import annotations

import json
import threading
import time

import msgpack
import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.errors import MalformedMessage
from recorder.protocols import pymultivideo as pmv
from recorder.protocols.base import NO_SEQ
from recorder.simulators.pymultivideo import PyMultiVideoSimulator

CODEC = pmv.PyMultiVideoCodec()
SIM = PyMultiVideoSimulator(height=6, width=10)


def test_frame_bytes():
    image = np.array([[1, 2, 3], [4, 5, 255]], dtype=np.uint8)
    frames = pmv.encode_frame(image, unique_id="cam0", timestamp=1_700_000_000_123_456_789)
    assert frames[0] == b"image"
    assert frames[1] == (
        b"\x84\xa9unique_id\xa4cam0\xa9timestamp\xcf"
        + (1_700_000_000_123_456_789).to_bytes(8, "big")
        + b"\xa6height\x02\xa5width\x03"
    )
    assert frames[2] == bytes([1, 2, 3, 4, 5, 255])


def test_first_timestamp_zero_packs_as_fixint():
    frames = pmv.encode_frame(np.zeros((1, 1), np.uint8), unique_id="c", timestamp=0)
    assert frames[1] == b"\x84\xa9unique_id\xa1c\xa9timestamp\x00\xa6height\x01\xa5width\x01"


def test_draw_box_bytes():
    assert pmv.encode_draw_box((1, 2), (30, 40)) == (
        b'{"DRAW_BOX": {"TOP_LEFT": [1, 2], "BOTTOM_RIGHT": [30, 40]}}'
    )


def test_encoder_rejects_color_images():
    with pytest.raises(ValueError):
        pmv.encode_frame(np.zeros((2, 2, 3), np.uint8), unique_id="c", timestamp=0)


@pytest.mark.parametrize("i", [0, 1, 9])
def test_decode_simulator_messages(i):
    d = CODEC.decode(SIM.message(i))
    assert d.kind == "image" and d.seq == NO_SEQ and d.source_ns == SIM.timestamp(i)
    assert d.columns == {"unique_id": "cam0"}
    (bulk,) = d.bulk
    assert bulk.frame == 2 and bulk.name == "image" and bulk.array.dtype == np.uint8
    np.testing.assert_array_equal(bulk.array, SIM.image(i))
    assert SIM.timestamp(0) == 0


def test_decode_zero_copy():
    frames = [bytearray(f) for f in SIM.message(2)]
    assert np.shares_memory(CODEC.decode(frames).bulk[0].array, np.frombuffer(frames[2], np.uint8))


def _msg(drop=(), payload=None, **changes):
    meta = {"unique_id": "cam0", "timestamp": 5, "height": 2, "width": 3}
    meta.update(changes)
    for key in drop:
        del meta[key]
    return [b"image", msgpack.packb(meta), bytes(6) if payload is None else payload]


MALFORMED = [
    ([], "needs 3 frames"),
    (_msg()[:2], "needs 3 frames"),
    ([*_msg(), b""], "needs 3 frames"),
    ([b"images", *_msg()[1:]], "not b'image'"),
    ([b"image", b"\xc1", b""], "not valid msgpack"),
    ([b"image", msgpack.packb({"a": 1}) + b"x", b""], "not valid msgpack"),
    ([b"image", msgpack.packb({1: 2}), b""], "not valid msgpack"),
    ([b"image", msgpack.packb([1, 2]), b""], "not a map"),
    (_msg(drop=("unique_id",)), "unique_id is NoneType"),
    (_msg(unique_id=7), "unique_id is int"),
    (_msg(drop=("timestamp",)), "has no 'timestamp'"),
    (_msg(timestamp="now"), "not an integer"),
    (_msg(timestamp=1.5), "not an integer"),
    (_msg(timestamp=2**64 - 1), "out of range"),
    (_msg(height=-2), "out of range"),
    (_msg(width=True), "not an integer"),
    (_msg(payload=bytes(5)), "image is 5 bytes"),
    (_msg(height=2**40, payload=b""), "image is 0 bytes"),
]


@pytest.mark.parametrize(("frames", "reason"), MALFORMED)
def test_malformed_messages_say_why(frames, reason):
    with pytest.raises(MalformedMessage) as err:
        CODEC.decode(frames)
    assert reason in err.value.reason


def test_sniff():
    assert pmv.sniff(SIM.message(0))
    assert not pmv.sniff([b"image", b""]) and not pmv.sniff([b"DATA\x00", b"", b""])
    assert not pmv.sniff([]) and not pmv.sniff([1, 2, 3])


# --------------------------------------------------------------------------- fuzzing

msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def mutated_messages(draw):
    frames = [bytes(f) for f in SIM.message(draw(st.integers(0, 5)))]
    op = draw(st.sampled_from(["meta", "meta", "flip", "truncate", "drop", "append"]))
    if op == "meta":
        meta = msgpack.unpackb(frames[1])
        key = draw(st.sampled_from(sorted(meta)))
        if draw(st.booleans()):
            meta[key] = draw(msgpack_values)
        else:
            del meta[key]
        frames[1] = msgpack.packb(meta)
    elif op == "flip":
        k = draw(st.integers(0, 2))
        pos = draw(st.integers(0, len(frames[k]) - 1))
        frames[k] = (
            frames[k][:pos]
            + bytes([frames[k][pos] ^ draw(st.integers(1, 255))])
            + frames[k][pos + 1 :]
        )
    elif op == "truncate":
        k = draw(st.integers(0, 2))
        frames[k] = frames[k][: draw(st.integers(0, len(frames[k])))]
    elif op == "drop":
        del frames[draw(st.integers(0, 2))]
    else:
        frames.append(draw(st.binary(max_size=8)))
    return frames


def _decode_or_reject(frames):
    try:
        d = CODEC.decode(frames)
    except MalformedMessage as exc:
        assert exc.reason
        return
    assert d.bulk[0].array.nbytes == memoryview(frames[2]).nbytes


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=64), max_size=5))
def test_fuzz_random_frames(frames):
    _decode_or_reject(frames)
    pmv.sniff(frames)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_fuzz_random_meta(meta):
    _decode_or_reject([b"image", meta, b""])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_messages())
def test_fuzz_mutated_messages(frames):
    _decode_or_reject(frames)
    pmv.sniff(frames)


# --------------------------------------------------------------------------- simulator sockets


@pytest.mark.timeout(30)
def test_simulator_publishes_and_records_back_channel():
    ctx = zmq.Context()
    stop = threading.Event()
    sim = PyMultiVideoSimulator(
        "tcp://127.0.0.1:0",
        rate=0,
        count=None,
        ctx=ctx,
        wait_for_subscriber=True,
        height=4,
        width=5,
    )
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"image")
    sub.connect(sim.bind())
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    push.connect(sim.pull_endpoint)
    thread = threading.Thread(target=sim.run, args=(stop,))
    thread.start()
    try:
        got = []
        while len(got) < 5:
            assert sub.poll(10_000), "simulator went quiet"
            got.append(sub.recv_multipart())
        assert got == [sim.message(i) for i in range(5)]
        assert [CODEC.decode(f).source_ns for f in got][:2] == [0, 1_000_000]
        push.send(pmv.encode_draw_box((1, 2), (3, 4)))
        deadline = time.monotonic() + 10
        while not sim.received and time.monotonic() < deadline:
            time.sleep(0.01)
        assert json.loads(sim.received[0][0]) == {
            "DRAW_BOX": {"TOP_LEFT": [1, 2], "BOTTOM_RIGHT": [3, 4]}
        }
    finally:
        stop.set()
        thread.join(10)
        sub.close(linger=0)
        push.close()
        ctx.term()


@pytest.mark.timeout(30)
def test_simulator_count_and_skip():
    ctx = zmq.Context()
    sim = PyMultiVideoSimulator(
        "tcp://127.0.0.1:*",
        rate=500,
        count=6,
        skip=frozenset({2}),
        ctx=ctx,
        wait_for_subscriber=True,
        height=2,
        width=2,
    )
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(sim.bind())
    thread = threading.Thread(target=sim.run)
    thread.start()
    try:
        got = []
        while len(got) < 5:
            assert sub.poll(10_000), "simulator went quiet"
            got.append(sub.recv_multipart())
        assert got == [sim.message(i) for i in (0, 1, 3, 4, 5)]
    finally:
        thread.join(10)
        sub.close(linger=0)
        ctx.term()
    assert sim.sent == 5
