"""Request/reply pairs: packing, content sniffing without unpickling, the tutorial-like service."""

from __future__ import annotations

import json
import pickle
import struct
import threading

import numpy as np
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.errors import MalformedMessage
from recorder.protocols.base import NO_SEQ, NO_TIME
from recorder.protocols.reqrep import (
    ReqRepCodec,
    content_type,
    pack_pair,
    sniff_json,
    sniff_pickle,
    unpack_pair,
)
from recorder.simulators.reqrep import ERROR_REPLY, SHAPE, ReqRepServer

CODEC = ReqRepCodec()
_frames = st.lists(st.binary(max_size=32), max_size=4)

TRIPPED: list[str] = []


class _Tripwire:
    """Unpickling this appends to TRIPPED: proof that a pickle was (or was not) loaded."""

    def __reduce__(self):
        return (TRIPPED.append, ("unpickled!",))


@settings(max_examples=200, deadline=None)
@given(_frames.filter(bool), _frames)
def test_pack_unpack_roundtrip(request, reply):
    packed = pack_pair(request, reply)
    assert packed[0] == struct.pack("<Q", len(request))
    assert unpack_pair(packed) == (request, reply)
    assert unpack_pair([memoryview(f) for f in packed])[0] == request
    decoded = CODEC.decode(packed)
    assert decoded.kind == "pair" and (decoded.seq, decoded.source_ns) == (NO_SEQ, NO_TIME)
    assert decoded.columns["request_bytes"] == sum(map(len, request))
    assert decoded.columns["reply_bytes"] == sum(map(len, reply))
    assert decoded.columns["request_frames"] == len(request)
    assert decoded.columns["reply_frames"] == len(reply)


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        ([], "at least 2 frames"),
        ([struct.pack("<Q", 1)], "at least 2 frames"),
        ([b"\x01\x00\x00\x00", b"req"], "not 8"),
        ([struct.pack("<Q", 0), b"req"], "0 request frames"),
        ([struct.pack("<Q", 3), b"req", b"rep"], "only 2 follow"),
        ([struct.pack("<Q", 2**64 - 1), b"req"], "request frames"),
    ],
)
def test_unpack_malformed(frames, reason):
    with pytest.raises(MalformedMessage, match=reason):
        unpack_pair(frames)
    with pytest.raises(MalformedMessage):
        CODEC.decode(frames)


def test_pack_needs_a_request():
    with pytest.raises(MalformedMessage):
        pack_pair([], [b"reply"])


@settings(max_examples=300, deadline=None)
@given(_frames)
def test_fuzz_decode_only_malformed(frames):
    try:
        CODEC.decode(frames)
    except MalformedMessage as exc:
        assert exc.reason


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_sniff_pickle_never_unpickles(protocol):
    evil = pickle.dumps(_Tripwire(), protocol=protocol)
    array = pickle.dumps(np.ones(SHAPE), protocol=protocol)
    assert sniff_pickle(evil) and sniff_pickle(array) and sniff_pickle(memoryview(array))
    decoded = CODEC.decode(pack_pair([evil], [array]))
    assert decoded.columns["content"] == decoded.columns["reply_content"] == "pickle"
    assert TRIPPED == []


def test_sniffers():
    as_json = json.dumps(np.ones(SHAPE).tolist()).encode()
    assert sniff_json(as_json) and not sniff_pickle(as_json)
    assert sniff_json(b' {"a": 1} ') and sniff_json(b"[1, 2]") and sniff_json(b"3")
    assert not sniff_json(b"") and not sniff_json(b"{") and not sniff_json(b"\xff\xfe")
    big = b"[" + b"1, " * 600_000 + b"1]"  # over the parse limit: judged by its brackets
    assert sniff_json(big)
    assert not sniff_pickle(b"\x80\x04") and not sniff_pickle(b"next")
    assert [content_type(f) for f in (b"next", as_json, pickle.dumps(1))] == [
        "bytes",
        "json",
        "pickle",
    ]
    unanswered = CODEC.decode(pack_pair([b"ping"], []))
    assert unanswered.columns["reply_content"] == "" and unanswered.columns["reply_frames"] == 0


def test_server_messages_are_deterministic_pairs():
    server = ReqRepServer(seed=1)
    assert server.message(3) == ReqRepServer(seed=1).message(3) != server.message(5)
    request, reply = unpack_pair(server.message(0))
    assert content_type(request[0]) == content_type(reply[0]) == "pickle"
    request, reply = unpack_pair(server.message(1))
    assert json.loads(reply[0]) == (server.array(1) ** 2).tolist()
    with pytest.raises(ValueError, match="skip"):
        ReqRepServer(skip={1})


def test_server_refuses_foreign_pickles():
    server = ReqRepServer()
    assert server.reply_to(pickle.dumps(_Tripwire())) == ERROR_REPLY
    assert server.reply_to(pickle.dumps({"not": "an array"})) == ERROR_REPLY
    assert server.reply_to(b"plain bytes") == ERROR_REPLY
    assert TRIPPED == []


@pytest.mark.timeout(60)
def test_server_with_tutorial_client(ctx):
    server = ReqRepServer("tcp://127.0.0.1:*", count=4, ctx=ctx)
    endpoint = server.bind()
    replies: dict[str, int] = {}
    thread = threading.Thread(target=lambda: replies.setdefault("n", server.run()))
    thread.start()
    client = ctx.socket(zmq.REQ)
    client.linger = 0
    client.rcvtimeo = 30_000
    client.connect(endpoint)
    rng = np.random.default_rng(7)

    array = rng.random(SHAPE)
    client.send_pyobj(array)
    assert np.array_equal(client.recv_pyobj(), array**2)  # the test trusts its own server

    array = rng.random(SHAPE)
    client.send_json(array.tolist())
    assert np.array_equal(np.array(client.recv_json()), array**2)

    client.send(pickle.dumps(_Tripwire()))
    assert client.recv() == ERROR_REPLY

    client.send(server.request(5, "json"))
    assert client.recv() == unpack_pair(server.message(5))[1][0]
    thread.join(30)
    assert replies["n"] == 4 and TRIPPED == []


@pytest.mark.timeout(60)
def test_server_stops_on_event(ctx):
    stop = threading.Event()
    server = ReqRepServer("tcp://127.0.0.1:*", ctx=ctx)
    server.bind()
    thread = threading.Thread(target=server.run, args=(stop,))
    thread.start()
    stop.set()
    thread.join(30)
    assert not thread.is_alive()
