"""Karabo bridge codec, encoder and simulator against the real karabo-bridge / extra-data peers."""

from __future__ import annotations

import contextlib
import re
import subprocess
import threading

import msgpack
import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as npst
from karabo_bridge import Client
from karabo_bridge.serializer import deserialize, serialize

from recorder.errors import MalformedMessage
from recorder.protocols.base import NO_SEQ, NO_TIME
from recorder.protocols.karabo import (
    KaraboCodec,
    bad_request_reply,
    encode_train,
    train_values,
    v1_arrays,
)
from recorder.simulators.karabo import FIRST_TRAIN, KaraboSimulator
from tests.karabotools import start_tool, write_mock_run

CODEC = KaraboCodec()
PROTOCOLS = ["2.2", "1.0"]
MODES = [
    pytest.param(m, k, id=m) for m, k in (("REP", zmq.REQ), ("PUSH", zmq.PULL), ("PUB", zmq.SUB))
]


def _meta(src: str, tid: int = 42, ts: float = 1700000000.25) -> dict:
    sec, _, frac = repr(ts).partition(".")
    return {
        "source": src,
        "timestamp": ts,
        "timestamp.tid": tid,
        "timestamp.sec": sec,
        "timestamp.frac": frac.ljust(18, "0"),
    }


def _sample_train() -> tuple[dict, dict]:
    data = {
        "SPB_DET/CAL/APPEND": {
            "image.data": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
            "image.cellId": np.arange(4, dtype=np.uint16),
            "image.mask": np.asfortranarray(np.eye(3, dtype=np.int64)),
            "image.strided": np.arange(20, dtype=">u4")[::2],
            "image.scalar": np.array(7.5),
            "image.flags": np.array([True, False, True]),
            "passport": ["a", "b"],
            "count": np.int32(3),
            "gain": np.float32(0.5),
        },
        "SA1_XGM/DOOCS/MAIN": {
            "pulseEnergy.photonFlux.value": 1.25,
            "state": "ON",
            "blob": b"\x00\x01",
            "nested": {"a": {"b": [1, 2.5, "x", None]}, "c": True},
            "big": 2**64 - 1,
            "neg": -(2**63),
        },
    }
    return data, {src: _meta(src) for src in data}


def _reference_plain(value):
    if isinstance(value, dict):
        return {k: _reference_plain(v) for k, v in value.items() if not isinstance(v, np.ndarray)}
    if isinstance(value, list):
        return [_reference_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def check_against_karabo_bridge(frames: list) -> dict:
    """Decode `frames` with our codec and with karabo_bridge's deserializer and compare."""
    views = [memoryview(f.buffer if isinstance(f, zmq.Frame) else f) for f in frames]
    decoded = CODEC.decode(views)
    data, meta = deserialize(frames)
    if len(views) == 1:
        assert decoded.bulk == [] and decoded.columns["protocol_version"] == "1.0"
        arrays = v1_arrays(views[0])
    else:
        assert decoded.columns["protocol_version"] == "2.2"
        arrays = {b.name: b.array for b in decoded.bulk}
        for b in decoded.bulk:  # zero copy: the array is the received frame
            assert np.shares_memory(b.array, np.frombuffer(views[b.frame], np.uint8))
    expected = {
        f"{src}:{key}": value
        for src, values in data.items()
        for key, value in values.items()
        if isinstance(value, np.ndarray)
    }
    assert arrays.keys() == expected.keys()
    for name, array in arrays.items():
        assert array.dtype == expected[name].dtype and array.shape == expected[name].shape
        np.testing.assert_array_equal(array, expected[name])
    values = train_values(views)
    assert values.keys() == data.keys()
    for src in data:
        assert values[src] == {**_reference_plain(data[src]), "metadata": meta[src]}
    tids = [m["timestamp.tid"] for m in meta.values()]
    assert decoded.kind == "train" and decoded.seq == min(tids) == decoded.columns["train_id"]
    assert decoded.columns["sources"] == ",".join(sorted(data))
    assert decoded.columns["tid_mismatch"] is (len(set(tids)) > 1)
    # Re-encoding what karabo_bridge decoded gives the received bytes back.
    version = decoded.columns["protocol_version"]
    assert encode_train(data, meta, version) == [bytes(v) for v in views]
    return {"decoded": decoded, "data": data, "meta": meta}


# ----------------------------------------------------------------------------- encoder


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_encoder_matches_karabo_bridge_serializer(protocol):
    data, meta = _sample_train()
    ours = encode_train(data, meta, protocol)
    theirs = [bytes(f) for f in serialize(data, meta, protocol_version=protocol)]
    assert ours == theirs
    assert all(type(f) is bytes for f in ours)
    # metadata defaults to data[src]['metadata'] in both
    with_meta = {s: {**v, "metadata": meta[s]} for s, v in data.items()}
    assert encode_train(with_meta, protocol=protocol) == [
        bytes(f) for f in serialize(with_meta, protocol_version=protocol)
    ]


def test_encoder_rejects_unknown_protocol_and_object_arrays():
    with pytest.raises(ValueError, match="protocol"):
        encode_train({}, {}, "2.1")
    with pytest.raises(TypeError, match="object arrays"):
        encode_train({"s": {"o": np.array([object()])}}, {"s": {}}, "1.0")


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.binary(max_size=8),
)
_plain_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
_arrays = npst.arrays(
    dtype=npst.scalar_dtypes().filter(lambda d: d.kind not in "mM")
    | npst.byte_string_dtypes(max_len=3)
    | npst.unicode_string_dtypes(max_len=3),
    shape=npst.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3),
)
_numpy_scalars = st.builds(
    lambda t, x: t(x),
    st.sampled_from([np.int8, np.uint16, np.int64, np.float32, np.float64]),
    st.integers(0, 100),
)


@st.composite
def _trains(draw, protocol):
    sources = draw(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=3, unique=True))
    leaf = _plain_values | _arrays | _numpy_scalars
    if protocol == "1.0":  # msgpack-numpy handles numpy values anywhere, bools included
        leaf = (
            leaf
            | st.builds(np.bool_, st.booleans())
            | st.dictionaries(st.text(max_size=3), _arrays | _numpy_scalars, max_size=2)
        )
    data = {s: draw(st.dictionaries(st.text(max_size=10), leaf, max_size=5)) for s in sources}
    meta = {s: draw(st.dictionaries(st.text(max_size=6), _scalars, max_size=3)) for s in sources}
    return data, meta


@pytest.mark.parametrize("protocol", PROTOCOLS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_encoder_matches_serializer_on_random_trains(protocol, draw):
    data, meta = draw.draw(_trains(protocol))
    assert encode_train(data, meta, protocol) == [
        bytes(f) for f in serialize(data, meta, protocol_version=protocol)
    ]


def test_bad_request_reply_matches_real_server_format():
    assert bad_request_reply(b"hello") == b"Error: bad request %b" % b"hello"
    assert bad_request_reply(memoryview(b"")) == b"Error: bad request "


# ----------------------------------------------------------------------------- decoder


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_decode_sample_train(protocol):
    data, meta = _sample_train()
    frames = encode_train(data, meta, protocol)
    result = check_against_karabo_bridge(frames)
    decoded = result["decoded"]
    assert decoded.seq_key == ""
    assert decoded.source_ns == 1_700_000_000_250_000_000
    names = (
        sorted(b.name for b in decoded.bulk) if protocol == "2.2" else sorted(v1_arrays(frames[0]))
    )
    assert "SPB_DET/CAL/APPEND:image.data" in names and len(names) == 6
    if protocol == "2.2":
        strided = next(b for b in decoded.bulk if b.name.endswith("image.strided"))
        assert strided.array.dtype == np.dtype(">u4")
        np.testing.assert_array_equal(strided.array, np.arange(0, 20, 2))


def test_train_id_mismatch_and_missing_metadata():
    data = {"a": {"x": 1}, "b": {"y": np.zeros(2)}, "c": {}}
    meta = {"a": _meta("a", tid=7, ts=10.5), "b": _meta("b", tid=5, ts=20.0), "c": {}}
    for protocol in PROTOCOLS:
        decoded = CODEC.decode(encode_train(data, meta, protocol))
        assert decoded.seq == 5 and decoded.columns["tid_mismatch"] is True
        assert decoded.source_ns == 10_500_000_000  # earliest source time
    bare = encode_train({"a": {"x": 1}}, {"a": {}})
    decoded = CODEC.decode(bare)
    assert (decoded.seq, decoded.source_ns, decoded.columns["train_id"]) == (NO_SEQ, NO_TIME, -1)
    only_float = CODEC.decode(encode_train({"a": {}}, {"a": {"timestamp": 1.5}}))
    assert only_float.source_ns == 1_500_000_000


def test_a_timestamp_past_any_time_is_no_time():
    """1e300 s is a finite float whose ns are not: no time (it used to raise OverflowError
    out of decode, which no reject catches)."""
    for ts in (1e300, -1e300, 2.0**63 / 1e9):
        decoded = CODEC.decode(encode_train({"a": {}}, {"a": {"timestamp": ts}}))
        assert decoded.source_ns == NO_TIME
        assert "a:metadata.timestamp_ns" not in decoded.columns


def test_v1_arrays_skip_pickled_object_arrays_without_unpickling():
    evil = {b"nd": True, b"type": "|O", b"kind": b"O", b"shape": [1], b"data": b"cos\nsystem\n."}
    frame = msgpack.packb({"s": {"obj": evil, "metadata": {"timestamp.tid": 1}}}, use_bin_type=True)
    assert v1_arrays(frame) == {}
    assert CODEC.decode([frame]).seq == 1
    assert train_values([frame])["s"]["obj"] == evil


def _pack(obj) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


_HDR = _pack({"source": "s", "content": "msgpack", "metadata": {"timestamp.tid": 1}})
_EMPTY = _pack({})


def _arr_hdr(**kw) -> bytes:
    return _pack(
        {"source": "s", "content": "array", "path": "p", "dtype": "uint16", "shape": [2, 3], **kw}
    )


MALFORMED = {
    "empty": ([], "empty message"),
    "odd frame count": ([_HDR, _EMPTY, _HDR], "even count"),
    "header not msgpack": ([b"\xc1garbage", _EMPTY], "not valid msgpack"),
    "header not a map": ([_pack([1, 2]), _EMPTY], "not a map"),
    "header without source": ([_pack({"content": "msgpack"}), _EMPTY], "no source name"),
    "unknown content": ([_pack({"source": "s", "content": "pickle"}), b""], "unknown content"),
    "data not a map": ([_HDR, _pack([1])], "not a map"),
    "data not msgpack": ([_HDR, b"\xc1"], "not valid msgpack"),
    "duplicate source": ([_HDR, _EMPTY, _HDR, _EMPTY], "appears twice"),
    "array before msgpack": ([_arr_hdr(), bytes(12)], "before its msgpack frame"),
    "array without path": ([_HDR, _EMPTY, _arr_hdr(path=None), bytes(12)], "no path"),
    "buffer too short": ([_HDR, _EMPTY, _arr_hdr(), bytes(10)], "payload is 10 bytes"),
    "buffer too long": ([_HDR, _EMPTY, _arr_hdr(), bytes(14)], "payload is 14 bytes"),
    "bogus dtype": ([_HDR, _EMPTY, _arr_hdr(dtype="uint13"), bytes(12)], "unknown dtype"),
    "unparsable dtype": ([_HDR, _EMPTY, _arr_hdr(dtype="i4,("), bytes(12)], "unknown dtype"),
    "object dtype": ([_HDR, _EMPTY, _arr_hdr(dtype="O"), bytes(48)], "cannot hold"),
    "dtype not a string": ([_HDR, _EMPTY, _arr_hdr(dtype=5), bytes(12)], "not a string"),
    "shape not a list": ([_HDR, _EMPTY, _arr_hdr(shape="23"), bytes(12)], "not a list"),
    "negative dimension": ([_HDR, _EMPTY, _arr_hdr(shape=[-2, -3]), bytes(12)], "negative"),
    "overflowing shape": (
        [_HDR, _EMPTY, _arr_hdr(shape=[2**32, 2**32]), b""],
        "payload is 0 bytes but shape [4294967296, 4294967296]",
    ),
    "duplicate array": (
        [_HDR, _EMPTY, _arr_hdr(), bytes(12), _arr_hdr(), bytes(12)],
        "sent twice",
    ),
    "metadata not a map": (
        [_pack({"source": "s", "content": "msgpack", "metadata": 3}), _EMPTY],
        "not a map",
    ),
    "train id not an int": (
        [_pack({"source": "s", "content": "msgpack", "metadata": {"timestamp.tid": "7"}}), _EMPTY],
        "not a train id",
    ),
    "v1 not msgpack": ([b"\xc1"], "not valid msgpack"),
    "v1 not a map": ([_pack([1, 2])], "not a map"),
    "v1 source not a map": ([_pack({"s": 3})], "not a map"),
    "v1 source name not a string": ([_pack({b"s": {}})], "not a string"),
    "v1 array size mismatch": (
        [
            _pack(
                {
                    "s": {
                        "a": {
                            b"nd": True,
                            b"type": "<u2",
                            b"kind": b"",
                            b"shape": [3],
                            b"data": b"\x00" * 5,
                        }
                    }
                }
            )
        ],
        "payload is 5 bytes",
    ),
    "v1 array without data": ([_pack({"s": {"a": {b"nd": True, b"type": "<u2"}}})], "without"),
    "v1 array bogus dtype": (
        [_pack({"s": {"a": {b"nd": True, b"type": "<q9", b"shape": [1], b"data": b"x"}}})],
        "unknown dtype",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_messages_say_why(case):
    frames, reason = MALFORMED[case]
    with pytest.raises(MalformedMessage, match=re.escape(reason)) as info:
        CODEC.decode(frames)
    assert info.value.reason == str(info.value)
    if case != "train id not an int":  # train_values does not look at train ids
        with pytest.raises(MalformedMessage):
            train_values(frames)


def _valid_trains() -> list[list[bytes]]:
    sim = KaraboSimulator(detector="small")
    data, meta = _sample_train()
    return [
        sim.message(0),
        KaraboSimulator(protocol="1.0").message(1),
        encode_train(data, meta, "2.2"),
        encode_train(data, meta, "1.0"),
    ]


VALID = _valid_trains()


def _decode_all(frames) -> None:
    """Every entry point either succeeds or raises MalformedMessage, nothing else."""
    for call in (CODEC.decode, train_values):
        try:
            call(frames)
        except MalformedMessage as exc:
            assert exc.reason
    if len(frames) == 1:
        with contextlib.suppress(MalformedMessage):
            v1_arrays(frames[0])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=48), max_size=6))
def test_fuzz_random_frames(frames):
    _decode_all(frames)


_msgpack_objects = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "source",
                    "content",
                    "path",
                    "dtype",
                    "shape",
                    "metadata",
                    "timestamp.tid",
                    "timestamp",
                    "nd",
                ]
            )
            | st.text(max_size=3),
            inner | st.sampled_from(["msgpack", "array", "uint8", "<f4"]),
            max_size=5,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_msgpack_objects.map(_pack) | st.binary(max_size=16), max_size=6))
def test_fuzz_msgpack_shaped_frames(frames):
    _decode_all(frames)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(range(len(VALID))), st.data())
def test_fuzz_mutated_valid_trains(which, data):
    frames = [bytearray(f) for f in VALID[which]]
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "truncate", "drop", "swap", "dup", "insert"]))
        if not frames:
            break
        k = data.draw(st.integers(0, len(frames) - 1))
        if op == "flip" and frames[k]:
            pos = data.draw(st.integers(0, min(len(frames[k]) - 1, 200)))
            frames[k][pos] ^= data.draw(st.integers(1, 255))
        elif op == "truncate":
            frames[k] = frames[k][: data.draw(st.integers(0, len(frames[k])))]
        elif op == "drop":
            del frames[k]
        elif op == "swap":
            j = data.draw(st.integers(0, len(frames) - 1))
            frames[k], frames[j] = frames[j], frames[k]
        elif op == "dup":
            frames.insert(k, bytearray(frames[k]))
        elif op == "insert":
            frames.insert(k, bytearray(data.draw(st.binary(max_size=16))))
    _decode_all([bytes(f) for f in frames])


# ----------------------------------------------------------------------------- real peers


@pytest.fixture
def tools():
    procs: list[subprocess.Popen] = []

    def start(args: list[str]) -> int:
        proc, port = start_tool(args)
        procs.append(proc)
        return port

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(10)
        proc.stdout.close()


def _client_socket(ctx: zmq.Context, kind: int, endpoint: str) -> zmq.Socket:
    """A socket set up like karabo_bridge.Client's: HWM 1, linger 0, receive timeout."""
    sock = ctx.socket(kind)
    sock.linger = 0
    sock.set_hwm(1)
    sock.rcvtimeo = 30_000
    if kind == zmq.SUB:
        sock.subscribe(b"")
    sock.connect(endpoint)
    return sock


def _receive(sock: zmq.Socket, n: int) -> list[list[zmq.Frame]]:
    trains = []
    for _ in range(n):
        if sock.type == zmq.REQ:
            sock.send(b"next")
        trains.append(sock.recv_multipart(copy=False))
    return trains


@pytest.mark.timeout(60)
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(("mode", "kind"), MODES)
def test_decode_real_server_sim(tools, ctx, mode, kind, protocol):
    port = tools(
        ["karabo-bridge-server-sim", "*", "-z", mode, "-p", protocol, "-d", "AGIPDModule", "-r"]
    )
    sock = _client_socket(ctx, kind, f"tcp://127.0.0.1:{port}")
    tids = []
    for frames in _receive(sock, 3):
        result = check_against_karabo_bridge(frames)
        decoded = result["decoded"]
        assert decoded.source_ns != NO_TIME
        assert decoded.columns["sources"] == "SPB_DET_AGIPD1M-1/DET/0CH0:xtdf"
        tids.append(decoded.seq)
    assert tids == sorted(set(tids)) and tids[0] >= FIRST_TRAIN
    if mode == "REP":
        assert tids == [FIRST_TRAIN, FIRST_TRAIN + 1, FIRST_TRAIN + 2]


@pytest.mark.timeout(60)
def test_real_server_error_reply_matches_ours(tools, ctx):
    port = tools(["karabo-bridge-server-sim", "*", "-z", "REP", "-d", "AGIPDModule", "-r"])
    sock = _client_socket(ctx, zmq.REQ, f"tcp://127.0.0.1:{port}")
    sock.send(b"give me data")
    assert sock.recv_multipart() == [bad_request_reply(b"give me data")]
    (frames,) = _receive(sock, 1)
    assert CODEC.decode([f.buffer for f in frames]).seq == FIRST_TRAIN + 1  # train 0 dropped


@pytest.fixture(scope="module")
def mock_run(tmp_path_factory):
    return write_mock_run(tmp_path_factory.mktemp("karabo"))


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("mode", "kind"), [m for m in MODES if m.id != "PUB"])
def test_decode_serve_files(tools, ctx, mock_run, mode, kind):
    """serve-files sends each train once, so PUB (drops until a subscriber is there) is left out."""
    port = tools(["karabo-bridge-serve-files", str(mock_run), "tcp://127.0.0.1:*", "-z", mode])
    sock = _client_socket(ctx, kind, f"tcp://127.0.0.1:{port}")
    seen = []
    for frames in _receive(sock, 4):
        result = check_against_karabo_bridge(frames)
        decoded = result["decoded"]
        assert decoded.source_ns == NO_TIME  # files give only source and train id
        assert "SA1_XTD2_XGM/DOOCS/MAIN:output" in decoded.columns["sources"].split(",")
        images = {b.name: b.array for b in decoded.bulk}
        image = images["FXE_XAD_GEC/CAM/CAMERA:daqOutput:data.image.pixels"]
        assert image.shape == (255, 1024) and image.dtype == np.uint16
        seen.append(decoded.seq)
    assert seen == [10000, 10001, 10002, 10003]


# ----------------------------------------------------------------------------- our simulator


def _run_in_thread(sim: KaraboSimulator, stop: threading.Event | None = None):
    sim.bind()
    result: dict[str, int] = {}
    thread = threading.Thread(target=lambda: result.setdefault("sent", sim.run(stop)))
    thread.start()
    return thread, result


def _assert_train_matches(sim: KaraboSimulator, data: dict, meta: dict) -> int:
    tid = next(iter(meta.values()))["timestamp.tid"]
    want_data, want_meta = sim.train(tid - FIRST_TRAIN)
    assert meta == want_meta and data.keys() == want_data.keys()
    for src, values in want_data.items():
        for key, value in values.items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(data[src][key], value)
            elif isinstance(value, np.generic):
                assert data[src][key] == value.item()
            else:
                assert data[src][key] == value
    return tid


@pytest.mark.timeout(60)
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(("mode", "client_sock"), [("REP", "REQ"), ("PUSH", "PULL")])
def test_simulator_with_real_client(ctx, mode, client_sock, protocol):
    sim = KaraboSimulator(
        "tcp://127.0.0.1:*",
        socket=mode,
        protocol=protocol,
        count=5,  # train indices 0..4, skipped one included
        rate=None,
        skip={FIRST_TRAIN + 1},
        n_sources=2,
        ctx=ctx,
    )
    thread, result = _run_in_thread(sim)
    client = Client(sim.bound_endpoint, sock=client_sock, timeout=30, context=ctx)
    tids = [_assert_train_matches(sim, *client.next()) for _ in range(4)]
    thread.join(30)
    assert result["sent"] == 4
    assert tids == [FIRST_TRAIN, FIRST_TRAIN + 2, FIRST_TRAIN + 3, FIRST_TRAIN + 4]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_simulator_pub_with_real_client(ctx, protocol):
    stop = threading.Event()
    sim = KaraboSimulator(
        "tcp://127.0.0.1:*",
        socket="PUB",
        protocol=protocol,
        rate=200.0,
        wait_for_subscriber=True,
        ctx=ctx,
    )
    thread, result = _run_in_thread(sim, stop)
    try:
        client = Client(sim.bound_endpoint, sock="SUB", timeout=30, context=ctx)
        tids = [_assert_train_matches(sim, *client.next()) for _ in range(3)]
    finally:
        stop.set()
        thread.join(30)
    assert tids[0] == FIRST_TRAIN  # held until the subscriber joined
    assert tids == sorted(set(tids)) and result["sent"] >= 3


@pytest.mark.timeout(60)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_simulator_wire_bytes_and_bad_request(ctx, protocol):
    sim = KaraboSimulator("tcp://127.0.0.1:*", protocol=protocol, count=3, rate=None, ctx=ctx)
    thread, result = _run_in_thread(sim)
    sock = _client_socket(ctx, zmq.REQ, sim.bound_endpoint)
    sock.send(b"hello")
    assert sock.recv_multipart() == [b"Error: bad request hello"]
    trains = [[f.bytes for f in t] for t in _receive(sock, 2)]
    thread.join(30)
    assert trains == [sim.message(1), sim.message(2)]  # train 0 was dropped, like the real one
    assert result["sent"] == 2
    for frames in trains:
        check_against_karabo_bridge(frames)


def test_simulator_messages_are_deterministic():
    a = KaraboSimulator(seed=3, detector="small", n_sources=3)
    b = KaraboSimulator(seed=3, detector="small", n_sources=3)
    assert a.message(5) == b.message(5) != a.message(6)
    assert a.message(5) != KaraboSimulator(seed=4).message(5)
    decoded = CODEC.decode(a.message(5))
    assert decoded.seq == FIRST_TRAIN + 5
    assert decoded.columns["sources"].count(",") == 4  # 2 XGM sources + 3 detector sources
    agipd = KaraboSimulator(detector="AGIPD").detector  # 268 MB a train: not generated here
    assert (agipd.modules, agipd.mod_y, agipd.mod_x, agipd.pulses) == (16, 128, 512, 64)


def test_simulator_stop_before_subscriber(ctx):
    stop = threading.Event()
    stop.set()
    sim = KaraboSimulator("tcp://127.0.0.1:*", socket="PUB", wait_for_subscriber=True, ctx=ctx)
    assert sim.run(stop) == 0
