"""What the Karabo codec remembers between trains (array headers by their bytes, column names
of a source's keys, JSON text of repeating lists) never changes what a train decodes to:
a codec that has seen a hostile stream decodes each train exactly as a fresh codec does, and
values keep their exact types and text through the caches."""

from __future__ import annotations

import math

import pytest

from recorder.errors import MalformedMessage
from recorder.protocols import karabo as kb
from recorder.protocols.base import Decoded
from tests.store.test_alike_batches import _hostile_train, _karabo_hostile

pytestmark = pytest.mark.timeout(120)


def _typed(value):
    """A value with its exact type (1 == 1.0 == True in Python; NaN != NaN)."""
    if isinstance(value, float):
        return ("float", math.copysign(1.0, value), repr(value))
    return (type(value).__name__, value)


def _fingerprint(d: Decoded) -> tuple:
    def arrays(items):
        out = []
        for b in items:
            name, a, ragged = (b.name, b.array, b.ragged) if hasattr(b, "name") else (*b, None)
            out.append((getattr(b, "frame", None), name, ragged, a.dtype.str, a.shape, a.tobytes()))
        return out

    return (
        d.kind,
        d.seq,
        d.seq_key,
        d.source_ns,
        [(k, _typed(v)) for k, v in d.columns.items()],  # in order
        arrays(d.bulk),
        arrays(d.derived),
    )


def _decode(codec: kb.KaraboCodec, frames) -> tuple | str:
    try:
        return _fingerprint(codec.decode(frames))
    except MalformedMessage as exc:
        return f"reject: {exc.reason}"


def test_a_warm_codec_decodes_every_train_as_a_fresh_one():
    warm = kb.KaraboCodec()
    messages = _karabo_hostile()
    got = [_decode(warm, m) for m in messages]
    want = [_decode(kb.KaraboCodec(), m) for m in messages]
    for k, (a, b) in enumerate(zip(got, want, strict=True)):
        assert a == b, k
    assert sum(isinstance(g, str) for g in got) == 4  # the rejects, with the same reasons


def _one(values: dict, meta: dict | None = None) -> list[bytes]:
    return kb.encode_train({"S": values}, {"S": meta or {"timestamp.tid": 1}})


def test_values_keep_their_types_and_text_through_the_caches():
    codec = kb.KaraboCodec()
    cases = [
        (1.5, ("float", 1.0, "1.5")),
        (2, ("int", 2)),
        (True, ("bool", True)),
        ("t", ("str", "t")),
        (2**63 - 1, ("int", 2**63 - 1)),
        (2**63, None),  # past int64: no column (the frame keeps it)
        (-(2**63), ("int", -(2**63))),
        (-0.0, ("float", -1.0, "-0.0")),
        (None, None),
    ]
    for value, want in cases:
        cols = codec.decode(_one({"x": value})).columns
        assert (_typed(cols["S:x"]) if "S:x" in cols else None) == want, value
    texts = [
        (["a", True], '["a", true]'),
        (["a", 1], '["a", 1]'),
        (["a", 1.0], '["a", 1.0]'),
        (["a", 1.0], '["a", 1.0]'),
        (["a", -0.0], '["a", -0.0]'),
        (["a", 0.0], '["a", 0.0]'),
        ([{"p": 1, "q": 2}], '[{"p": 1, "q": 2}]'),
        ([{"q": 2, "p": 1}], '[{"q": 2, "p": 1}]'),
        (["a", [1, True]], '["a", [1, true]]'),
        (["a", [1, 1]], '["a", [1, 1]]'),
    ]
    for value, text in texts:
        assert codec.decode(_one({"names": value})).columns["S:names"] == text, value


def test_column_names_follow_the_keys_a_train_has():
    """Names are remembered per key list: another order, a key gone or a nested map in place
    of a value gives the columns a first parse gives."""
    codec = kb.KaraboCodec()
    trains = [
        {"a": 1, "b": 2.0},
        {"b": 2.0, "a": 1},
        {"a": 1},
        {"a": {"b": 3}, "metadata": {"c": 4}},
        {"a": 1, "b": 2.0},
    ]
    for values in trains:
        frames = _one(values)
        assert _decode(codec, frames) == _decode(kb.KaraboCodec(), frames)
    cols = codec.decode(_one({"a": {"b": 3}, "metadata": {"c": 4}})).columns
    assert cols["S:a.b"] == 3 and not any("metadata.c" in k for k in cols)


def test_extra_metadata_keys_are_columns_and_time_keys_are_not():
    codec = kb.KaraboCodec()
    for meta in ({"timestamp.tid": 5, "timestamp": 1.5}, {"timestamp.tid": 5, "run": 7}):
        cols = codec.decode(_one({"v": 1}, meta)).columns
        assert cols["S:metadata.timestamp.tid"] == 5
        assert ("S:metadata.run" in cols) == ("run" in meta)
        assert "S:metadata.timestamp" not in cols


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_known_headers_in_other_buffers_decode_as_bytes_do(kind):
    """The receive thread may hand over frames that are not bytes (zero-copy)."""
    codec = kb.KaraboCodec()
    for t in range(3):
        frames = _hostile_train(t)
        other = [kind(f) for f in frames]
        assert _decode(codec, other) == _decode(kb.KaraboCodec(), frames)


def test_a_known_header_whose_source_is_missing_is_refused():
    """Array headers are remembered by their bytes; one whose source's msgpack frame is not
    in this train is still refused, as a first parse refuses it."""
    codec = kb.KaraboCodec()
    frames = _hostile_train(0)  # DET/H: values, 3 arrays; then MOTOR/M: values
    assert len(frames) == 10
    codec.decode(frames)
    stray = frames[8:10] + frames[2:4]  # a known DET/H array in a train without DET/H
    got = _decode(codec, stray)
    assert isinstance(got, str) and "before its msgpack frame" in got
    assert got == _decode(kb.KaraboCodec(), stray)


@pytest.mark.parametrize("delta", [-4, 4])
def test_a_known_header_with_data_of_another_size_is_refused(delta):
    codec = kb.KaraboCodec()
    frames = _hostile_train(1)
    codec.decode(frames)
    changed = list(frames)
    changed[3] = frames[3][:delta] if delta < 0 else frames[3] + bytes(delta)
    got = _decode(codec, changed)
    assert isinstance(got, str) and "bytes but shape" in got
    assert got == _decode(kb.KaraboCodec(), changed)
