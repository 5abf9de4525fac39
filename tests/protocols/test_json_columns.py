"""ShapeColumns reads exactly what the shape's regex reads, header for header, or stops."""

from __future__ import annotations

import random

import numpy as np
import pytest

from recorder.protocols import json_columns
from recorder.protocols.json_columns import MAX_DIGITS, ShapeColumns
from recorder.protocols.json_shapes import Shape

pytestmark = pytest.mark.timeout(120)

_SAMPLE = (
    b'{\r\n  "message_num": 1,\r\n  "type": "data",\r\n  "content": {\r\n'
    b'    "stream": "probe-A",\r\n    "channel_num": 0,\r\n    "channel_name": "CH1",\r\n'
    b'    "num_samples": 1024,\r\n    "sample_num": 0,\r\n    "sample_rate": 30000.0\r\n'
    b'  },\r\n  "data_size": 4096,\r\n  "timestamp": 1700000000000\r\n}'
)
_TEMPLATE = (
    '{{\r\n  "message_num": {seq},\r\n  "type": "{kind}",\r\n  "content": {{\r\n'
    '    "stream": "{stream}",\r\n    "channel_num": {ch},\r\n    "channel_name": "{name}",\r\n'
    '    "num_samples": {n},\r\n    "sample_num": {sample},\r\n    "sample_rate": {rate}\r\n'
    '  }},\r\n  "data_size": {size},\r\n  "timestamp": {stamp}\r\n}}'
)
_INTS = ("seq", "ch", "n", "sample", "size", "stamp")


def _columns(shape: Shape) -> tuple[ShapeColumns, list[int], list[int], list[int]]:
    g = {path[-1]: slot for path, (slot, _) in shape.slots.items()}
    ints = [g[k] for k in ("message_num", "channel_num", "num_samples", "sample_num")]
    ints += [g["data_size"], g["timestamp"]]
    texts, fixed = [g["channel_name"]], [g["type"], g["stream"], g["sample_rate"]]
    return ShapeColumns(shape, ints, texts, fixed), ints, texts, fixed


def _header(rng: random.Random, k: int) -> bytes:
    """Mostly ordinary headers of growing numbers; now and then a value the fast path must
    not take as it is (a sign, a leading zero, too many digits, an escape, a control character,
    bytes that are not UTF-8, another stream or rate, another kind of value)."""
    v: dict[str, object] = {
        "seq": 10 ** rng.randint(0, 9) + k,
        "kind": "data",
        "stream": "probe-A",
        "ch": rng.randint(0, 400),
        "name": f"CH{rng.randint(1, 400)}",
        "n": 1024,
        "sample": rng.randint(0, 10 ** rng.randint(1, 12)),
        "rate": "30000.0",
        "size": 4096,
        "stamp": 1_700_000_000_000 + k,
    }
    odd = rng.random()
    if odd < 0.3:
        key = rng.choice(_INTS)
        v[key] = rng.choice(
            ["-5", "0", "007", "1" * MAX_DIGITS, "9" * (MAX_DIGITS + 1), "1.5", "1e3", '"7"']
        )
    elif odd < 0.45:
        v["name"] = rng.choice(['C\\"H', "C\\\\H", "C\\u00e9", "", "é1", "x\x01y", "tab\t"])
    elif odd < 0.5:
        v["stream"] = rng.choice(["probe-B", "probe-AA"])
    elif odd < 0.55:
        v["rate"] = rng.choice(["20000.0", "30000.00", "3e4"])
    elif odd < 0.6:
        v["kind"] = "event"
    text = _TEMPLATE.format(**v).encode()
    if rng.random() < 0.03:
        text = text.replace(b"CH", b"C\xff", 1)  # not UTF-8: a text value is its raw bytes
    return text


def _expected(shape: Shape, ints, texts, fixed, want, headers):
    """What the regex reads, header by header, up to the first the columns may not take:
    one the regex does not match, other fixed values, or an int that is not plain digits (at
    most MAX_DIGITS)."""
    out_ints, out_texts = [], []
    for h in headers:
        m = shape.groups(h)
        if m is None or any(m.group(g + 1) != want[g] for g in fixed):
            break
        raw = [m.group(g + 1) for g in ints]
        if any(r[:1] == b"-" or len(r) > MAX_DIGITS for r in raw):
            break
        out_ints.append([int(r) for r in raw])
        out_texts.append([m.group(g + 1) for g in texts])
    return out_ints, out_texts


@pytest.mark.parametrize("seed", range(40))
def test_columns_read_what_the_regex_reads_and_stop_where_it_cannot(seed, monkeypatch):
    monkeypatch.setattr(json_columns, "MAX_FRAMES", 12)  # frames give way in most seeds
    rng = random.Random(seed)
    shape = Shape(_SAMPLE)
    reader, ints, texts, fixed = _columns(shape)
    m = shape.groups(_SAMPLE)
    assert m is not None
    want = {g: m.group(g + 1) for g in fixed}
    headers = [_header(rng, k) for k in range(rng.randint(1, 600))]
    start = 0
    while start < len(headers):  # as a run reader does: read, then go on past the stop
        rest = headers[start:]
        exp_ints, exp_texts = _expected(shape, ints, texts, fixed, want, rest)
        n, got_ints, got_texts = reader.read([memoryview(h) for h in rest], want)
        assert n == len(exp_ints)
        assert got_ints.dtype == np.int64 and got_ints.shape == (n, len(ints))
        assert got_ints.tolist() == exp_ints
        assert [list(t) for t in zip(*got_texts, strict=True)] == exp_texts
        assert sum(map(len, reader.frames.values())) <= json_columns.MAX_FRAMES
        start += max(n, 1)


def test_the_frame_used_least_recently_gives_way(monkeypatch):
    monkeypatch.setattr(json_columns, "MAX_FRAMES", 3)
    shape = Shape(_SAMPLE)
    reader, _, _, fixed = _columns(shape)
    m = shape.groups(_SAMPLE)
    assert m is not None
    want = {g: m.group(g + 1) for g in fixed}

    def header(seq: int) -> bytes:
        return _SAMPLE.replace(b'"message_num": 1,', b'"message_num": %d,' % seq)

    def lengths() -> list[int]:
        return sorted(length for length, frames in reader.frames.items() for _ in frames)

    base = len(_SAMPLE)
    n, values, names = reader.read([header(s) for s in (1, 2, 10, 11, 100, 101)], want)
    assert n == 6 and values[:, 0].tolist() == [1, 2, 10, 11, 100, 101]
    assert names == [[b"CH1"] * 6]
    assert lengths() == [base, base + 1, base + 2]
    assert reader.read([header(3)], want)[0] == 1  # one-digit numbers: used last now
    # a fourth layout: the two-digit frame, used least recently, gives way
    n, values, _ = reader.read([header(1000), header(4)], want)
    assert n == 2 and values[:, 0].tolist() == [1000, 4]
    assert lengths() == [base, base + 2, base + 3]
    n, values, _ = reader.read([header(12)], want)  # learnt again when it comes back
    assert n == 1 and values[:, 0].tolist() == [12]


def test_fixed_values_other_than_wanted_end_the_read():
    shape = Shape(_SAMPLE)
    reader, _, _, fixed = _columns(shape)
    m = shape.groups(_SAMPLE)
    assert m is not None
    want = {g: m.group(g + 1) for g in fixed}
    other = _SAMPLE.replace(b"probe-A", b"probe-B")
    assert reader.read([_SAMPLE, _SAMPLE, other, _SAMPLE], want)[0] == 2
    # the frame of probe-B is learnt, and serves a reader that wants probe-B
    want_b = {**want, fixed[1]: b"probe-B"}
    assert reader.read([other, other, _SAMPLE], want_b)[0] == 2
    assert reader.read([], want)[0] == 0


def test_a_shape_value_asked_for_as_another_kind_is_refused():
    shape = Shape(_SAMPLE)
    _, ints, texts, fixed = _columns(shape)
    with pytest.raises(ValueError):
        ShapeColumns(shape, [*ints, *texts], [], fixed)  # a text read as an int
    with pytest.raises(ValueError):
        ShapeColumns(shape, ints[1:], texts, fixed)  # one value left out
