"""ADZMQ (NDPluginZMQ) codec, encoder and simulator."""

from __future__ import annotations

import json
import threading
from decimal import Decimal

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.errors import MalformedMessage
from recorder.protocols import adzmq
from recorder.protocols.base import NO_SEQ, NO_TIME
from recorder.simulators.adzmq import AdzmqSimulator, socket_plan

CODEC = adzmq.AdzmqCodec()
ATTRS = {
    "ColorMode": np.int32(0),
    "Exposure": np.float32(0.01),
    "Temperature": 21.5,
    "Camera": "sim",
}
ARRAY = np.arange(6, dtype=np.uint16).reshape(2, 3)


# --------------------------------------------------------------------------- byte-exact encoder


def test_psi_header_bytes():
    header, data = adzmq.encode_array(ARRAY, 7, 1041234567.123456, ATTRS, "psi")
    assert header == (
        b'{"htype":"array-1.0", "type":"uint16", "shape":[2,3], "frame":7, '
        b'"timeStamp":1041234567.123456, "encoding":"", '
        b'"ndattr":{"ColorMode":0,"Exposure":0.00999999978,"Temperature":21.5,"Camera":"sim"}}'
    )
    assert data == ARRAY.tobytes()


def test_pre14_header_lists_htype_and_xy_shape():
    header, _ = adzmq.encode_array(ARRAY, 7, 0.25, {}, "pre14")
    assert header == (
        b'{"htype":["array-1.0"], "type":"uint16", "shape":[3,2], "frame":7, '
        b'"timeStamp":0.25, "encoding":"", "ndattr":{}}'
    )


def test_pre_adcore3_header_has_no_encoding():
    header, _ = adzmq.encode_array(ARRAY, 1, 2.0, None, "pre14", encoding=None)
    assert header == (
        b'{"htype":["array-1.0"], "type":"uint16", "shape":[3,2], "frame":1, '
        b'"timeStamp":2, "ndattr":{}}'
    )


def test_diamond_chunk_header_bytes():
    header, _ = adzmq.encode_array(ARRAY, 7, 99.0, ATTRS, "chunk")
    assert header == (
        b'{"htype":["chunk-1.0"], "type":"uint16", "shape":[3,2], "frame":7, '
        b'"ndattr":{"ColorMode":{ "value":0,"dataType":"int32"},'
        b'"Exposure":{ "value":0.01,"dataType":"float32"},'
        b'"Temperature":{ "value":21.5,"dataType":"float64"},'
        b'"Camera":{ "value":"sim","dataType":"string"}}}'
    )


def test_ndattr_formatting_rules():
    text = adzmq.encode_ndattr(
        {
            "f64": 0.1,
            "f32": np.float32(0.1),
            "big": 1e300,
            "neg": -7,
            "u32": np.uint32(4000000000),
            "undef": None,
            "q": 'a"b',
        }
    )
    assert text == (
        '{"f64":0.10000000000000001,"f32":0.100000001,"big":1.0000000000000001e+300,'
        '"neg":-7,"u32":4000000000,"undef":"Undefined","q":"a"b"}'
    )
    # epicsInt8/UInt8 are chars: the C++ stream writes the raw byte, not the number.
    assert adzmq.encode_ndattr({"flag": np.uint8(65)}) == '{"flag":A}'


def test_compressed_array_keeps_payload():
    header, data = adzmq.encode_array(
        ARRAY, 3, 1.5, {}, encoding="blosc", payload=b"\x01compressed"
    )
    assert b'"encoding":"blosc"' in header and data == b"\x01compressed"
    d = CODEC.decode([header, data])
    assert d.bulk == [] and d.columns["encoding"] == "blosc" and d.seq == 3


# --------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("variant", adzmq.VARIANTS)
@pytest.mark.parametrize("i", [0, 1, 7])
def test_decode_simulator_messages(variant, i):
    sim = AdzmqSimulator(variant=variant, height=5, width=7)
    d = CODEC.decode(sim.message(i))
    assert d.kind == "array" and d.seq == i + 1 and d.seq_key == ""
    (bulk,) = d.bulk
    assert bulk.frame == 1 and bulk.name == "image"
    assert bulk.array.dtype == np.uint16 and bulk.array.shape == (5, 7)
    np.testing.assert_array_equal(bulk.array, sim.image(i))
    attrs = sim.ndattr(i)
    assert d.columns["ndattr.ColorMode"] == 0 and d.columns["ndattr.Counter"] == i + 1
    assert type(d.columns["ndattr.ColorMode"]) is int and type(d.columns["ndattr.Counter"]) is int
    assert np.float32(d.columns["ndattr.Exposure"]) == attrs["Exposure"]
    assert type(d.columns["ndattr.Exposure"]) is float
    assert d.columns["ndattr.Camera"] == "sim"
    assert bulk.dims == ("y", "x") and not bulk.ragged
    if variant == "chunk":
        assert d.source_ns == NO_TIME and "timeStamp" not in d.columns
    else:
        assert d.columns["ndattr.Temperature"] == attrs["Temperature"]
        assert d.columns["timeStamp"] == sim.timestamp(i)
        assert abs(d.source_ns - sim.timestamp(i) * 1e9) < 1000


@pytest.mark.parametrize("dtype", adzmq.DTYPES)
@pytest.mark.parametrize("variant", adzmq.VARIANTS)
def test_every_dtype_and_3d_shape_roundtrips(dtype, variant):
    array = (np.arange(60) % 100).astype(dtype).reshape(3, 4, 5)
    d = CODEC.decode(adzmq.encode_array(array, 11, 5.0, {}, variant))
    np.testing.assert_array_equal(d.bulk[0].array, array)
    assert d.bulk[0].array.dtype == np.dtype(dtype)


def test_stop_frame():
    d = CODEC.decode([b"STOP"])
    assert d.kind == "stop" and d.bulk == [] and d.seq == NO_SEQ


def test_source_ns_keeps_nanoseconds():
    ts = 1041234567.123456789
    header = b'{"htype":"array-1.0", "type":"uint8", "shape":[0], "frame":1, "timeStamp":%r}' % ts
    exact = int((Decimal(ts) * 10**9).to_integral_value())  # exact ns of the float64 value
    assert exact != int(ts * 1e9)  # naive float maths would lose ~100 ns
    assert CODEC.decode([header, b""]).source_ns == exact


def test_decode_zero_copy():
    frames = [bytearray(f) for f in adzmq.encode_array(ARRAY, 1, 1.0)]
    d = CODEC.decode(frames)
    assert np.shares_memory(d.bulk[0].array, np.frombuffer(frames[1], dtype=np.uint8))


def _msg(drop=(), **changes):
    header = json.loads(adzmq.encode_array(ARRAY, 7, 1.0, {"A": 1})[0])
    header.update(changes)
    for key in drop:
        del header[key]
    return [json.dumps(header).encode(), ARRAY.tobytes()]


MALFORMED = [
    ([], "needs 2 frames"),
    ([b"STOP "], "needs 2 frames"),
    ([b"STOP", b""], "not valid JSON"),
    ([b"{", b""], "not valid JSON"),
    ([b"\xff", b""], "not valid JSON"),
    ([b"[1]", b""], "not an object"),
    ([*_msg(), b"x"], "needs 2 frames"),
    (_msg(drop=("htype",)), "htype None"),
    (_msg(htype="array-2.0"), "is not array-1.0"),
    (_msg(htype=["chunk-1.0", "x"]), "is not array-1.0"),
    (_msg(type="complex64"), "not an allowed array type"),
    (_msg(type="bool"), "not an allowed array type"),
    (_msg(type="object"), "not an allowed array type"),
    (_msg(type=5), "not an allowed array type"),
    (_msg(drop=("type",)), "not an allowed array type"),
    (_msg(drop=("shape",)), "no 'shape'"),
    (_msg(shape=[2, -3]), "non-negative integers"),
    (_msg(shape="2x3"), "non-negative integers"),
    (_msg(shape=[2.0, 3]), "non-negative integers"),
    (_msg(shape=[True, 3]), "non-negative integers"),
    (_msg(shape=[1] * 11), "at most 10"),
    (_msg(shape=[2**32, 2**32]), "needs"),
    (_msg(shape=[2**70]), "non-negative integers"),
    (_msg(drop=("frame",)), "frame None"),
    (_msg(frame="7"), "not an integer"),
    (_msg(frame=7.0), "not an integer"),
    (_msg(timeStamp="now"), "not a finite number"),
    (_msg(timeStamp=1e300), "out of range"),
    (_msg(encoding=5), "not a string"),
    (_msg(ndattr=[1]), "ndattr is list"),
    (_msg(shape=[3, 3]), "data is 12 bytes"),
    ([adzmq.encode_array(ARRAY, 1, 1.0)[0], b"\x00" * 13], "data is 13 bytes"),
]


@pytest.mark.parametrize(("frames", "reason"), MALFORMED)
def test_malformed_messages_say_why(frames, reason):
    with pytest.raises(MalformedMessage) as err:
        CODEC.decode(frames)
    assert reason in err.value.reason


def test_sniff():
    for variant in adzmq.VARIANTS:
        assert adzmq.sniff(adzmq.encode_array(ARRAY, 1, 1.0, {}, variant))
    assert adzmq.sniff([b"STOP"])
    assert not adzmq.sniff([b"DATA\x00", b"{}", b""]) and not adzmq.sniff([b'{"a":1}', b""])
    assert not adzmq.sniff([]) and not adzmq.sniff([object(), b""])


# --------------------------------------------------------------------------- fuzzing

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
SIMS = [AdzmqSimulator(variant=v, height=3, width=4) for v in adzmq.VARIANTS]


@st.composite
def mutated_messages(draw):
    frames = [bytes(f) for f in draw(st.sampled_from(SIMS)).message(draw(st.integers(0, 5)))]
    op = draw(st.sampled_from(["header", "header", "attr", "flip", "truncate", "drop", "append"]))
    if op in ("header", "attr"):
        header = json.loads(frames[0])
        target = header["ndattr"] if op == "attr" and header["ndattr"] else header
        key = draw(st.sampled_from(sorted(target)))
        if draw(st.booleans()):
            target[key] = draw(json_values)
        else:
            del target[key]
        frames[0] = json.dumps(header).encode()
    elif op == "flip":
        k = draw(st.integers(0, 1))
        pos = draw(st.integers(0, len(frames[k]) - 1))
        frames[k] = (
            frames[k][:pos]
            + bytes([frames[k][pos] ^ draw(st.integers(1, 255))])
            + frames[k][pos + 1 :]
        )
    elif op == "truncate":
        k = draw(st.integers(0, 1))
        frames[k] = frames[k][: draw(st.integers(0, len(frames[k])))]
    elif op == "drop":
        del frames[draw(st.integers(0, 1))]
    else:
        frames.append(draw(st.binary(max_size=8)))
    return frames


def _decode_or_reject(frames):
    try:
        d = CODEC.decode(frames)
    except MalformedMessage as exc:
        assert exc.reason
        return
    for b in d.bulk:
        assert b.array.nbytes == memoryview(frames[b.frame]).nbytes


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=64), max_size=5))
def test_fuzz_random_frames(frames):
    _decode_or_reject(frames)
    adzmq.sniff(frames)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_messages())
def test_fuzz_mutated_messages(frames):
    _decode_or_reject(frames)
    adzmq.sniff(frames)


# --------------------------------------------------------------------------- simulator sockets


@pytest.mark.parametrize(
    ("server_host", "plan"),
    [
        ("tcp://*:1234", ("tcp://*:1234", zmq.PUB, True)),
        ("tcp://127.0.0.1:1234 PUB", ("tcp://127.0.0.1:1234", zmq.PUB, True)),
        ("tcp://127.0.0.1:1234 PUB CONNECT", ("tcp://127.0.0.1:1234", zmq.PUB, False)),
        ("tcp://127.0.0.1:5432", ("tcp://127.0.0.1:5432", zmq.PUSH, False)),
        ("tcp://127.0.0.1:5432 PUSH BIND", ("tcp://127.0.0.1:5432", zmq.PUSH, True)),
        ("tcp://127.0.0.1:5432 BIND", ("tcp://127.0.0.1:5432", zmq.PUSH, True)),
        ("tcp://*:5432 PUSH", ("tcp://*:5432", zmq.PUSH, True)),
    ],
)
def test_socket_plan_follows_ndpluginzmq(server_host, plan):
    assert socket_plan(server_host) == plan


def _receive(sock, n):
    got = []
    while len(got) < n:
        assert sock.poll(10_000), "simulator went quiet"
        got.append(sock.recv_multipart())
    return got


@pytest.mark.timeout(30)
def test_pub_simulator_with_gap_and_stop():
    ctx = zmq.Context()
    sim = AdzmqSimulator(
        "tcp://127.0.0.1:* PUB",
        rate=0,
        count=12,
        skip=frozenset({4}),
        ctx=ctx,
        wait_for_subscriber=True,
        height=8,
        width=8,
        send_stop=True,
    )
    sub = ctx.socket(zmq.SUB)
    for prefix in (b"{", b"STOP"):  # what ZMQDriver subscribes to
        sub.setsockopt(zmq.SUBSCRIBE, prefix)
    sub.connect(sim.bind())
    thread = threading.Thread(target=sim.run)
    thread.start()
    try:
        got = _receive(sub, 12)
        decoded = [CODEC.decode(f) for f in got]
        assert [d.seq for d in decoded[:-1]] == [n for n in range(1, 13) if n != 4]
        assert decoded[-1].kind == "stop"
        assert got[0] == sim.message(0)
        np.testing.assert_array_equal(decoded[5].bulk[0].array, sim.image(6))
    finally:
        thread.join(10)
        sub.close(linger=0)
        ctx.term()
    assert sim.sent == 11


@pytest.mark.timeout(30)
def test_push_connect_simulator():
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.bind("tcp://127.0.0.1:*")
    sim = AdzmqSimulator(
        pull.getsockopt_string(zmq.LAST_ENDPOINT),
        rate=200,
        count=5,
        ctx=ctx,
        variant="pre14",
        height=4,
        width=6,
    )
    thread = threading.Thread(target=sim.run)
    thread.start()
    try:
        got = _receive(pull, 5)
        assert [CODEC.decode(f).seq for f in got] == [1, 2, 3, 4, 5]
        assert got == [sim.message(i) for i in range(5)]
    finally:
        thread.join(10)
        pull.close(linger=0)
        ctx.term()


@pytest.mark.timeout(30)
def test_push_bind_simulator_waits_for_puller():
    ctx = zmq.Context()
    sim = AdzmqSimulator(
        "tcp://127.0.0.1:* PUSH",
        rate=0,
        count=4,
        ctx=ctx,
        wait_for_subscriber=True,
        variant="chunk",
        height=2,
        width=3,
    )
    endpoint = sim.bind()
    thread = threading.Thread(target=sim.run)
    thread.start()
    pull = ctx.socket(zmq.PULL)
    pull.connect(endpoint)
    try:
        got = _receive(pull, 4)
        assert [CODEC.decode(f).seq for f in got] == [1, 2, 3, 4]
    finally:
        thread.join(10)
        pull.close(linger=0)
        ctx.term()
