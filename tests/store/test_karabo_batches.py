"""Karabo trains decoded a batch at a time (KaraboCodec.decode_alike, karabo_batch.Plan) and
stored a run at a time (StreamWriter.append_run with an AlikeRun) are stored exactly as the same
trains decoded and stored one by one: every array, every attribute, every reject, byte for
byte; and every run's values are what decode() says of each of its trains."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import zmq

from recorder.protocols import codec_for
from recorder.protocols import karabo as kb
from recorder.protocols.base import (
    AlikeRun,
    BulkFrame,
    Decoded,
    decode_batch,
    decode_or_reject,
)
from recorder.simulators import make_simulator
from recorder.store.reader import RunReader
from recorder.store.run_writer import RunWriter
from tests.store.test_alike_batches import _assert_same_runs, _karabo, _karabo_hostile

pytestmark = pytest.mark.timeout(300)


def _train(t: int, **change) -> list[bytes]:
    """Train t of a steady source; `change` overrides values, metadata or array shapes."""
    meta = {
        "source": "DET/A",
        "timestamp": 1.7e9 + t / 10,
        "timestamp.sec": str(1_700_000_000 + t // 10),
        "timestamp.frac": f"{(t % 10) * 10**17:018d}",
        "timestamp.tid": 10_000 + t,
    }
    meta.update(change.pop("meta", {}))
    pulses = change.pop("pulses", 3)
    values = {
        "energy": t * 0.25,
        "count": t % 100,  # a fixint: one byte whose value is the value
        "big": 70_000 + t,  # an uint32
        "on": t % 2 == 0,
        "state": "ON",
        "nested": {"x": -t, "y": {"z": float(t)}},
        "passport": ["A", "B"],  # constant list: JSON text
        "present": [1, 0, 1],  # constant numeric list: a typed copy
        "image": np.full((pulses, 4, 8), t % 251, dtype=np.uint16),
        "cells": np.arange(pulses, dtype=np.uint16),
        "gain": np.array(t % 3, dtype=np.int32),  # 0-d: stacked
        "wide": np.full((70_000,), t % 256, dtype=np.uint8),  # >= 64 KiB: views
    }
    values.update(change)
    data = {"DET/A": values, "XGM/B": {"e": t / 3.0, "metadata": {"x": 1}}}
    metas = {"DET/A": meta, "XGM/B": {"timestamp.tid": 10_000 + t, "timestamp": 1.7e9}}
    return kb.encode_train(data, metas)


def _bad(frames: list[bytes], what: str) -> list:
    frames = list(frames)
    if what == "garbage":
        frames[1] = b"\xc1"
    elif what == "short":
        frames[-1] = frames[-1][:-2]
    elif what == "odd":
        frames = frames[:-1]
    return frames


def _changing() -> list[list]:
    """Batches whose trains change under the plan, one thing at a time, mid-batch."""
    msgs: list[list] = [_train(t) for t in range(40)]
    msgs[10] = _bad(msgs[10], "garbage")  # a reject in the middle of a run
    msgs[20] = _bad(msgs[20], "short")  # an array of the wrong size: a reject
    msgs[25] = _bad(msgs[25], "odd")
    msgs += [_train(t, pulses=5) for t in range(40, 60)]  # a new array shape
    msgs += [_train(t, extra=1) for t in range(60, 75)]  # a key added
    msgs += [_train(t, energy=t) for t in range(75, 90)]  # a float column gets ints
    msgs += [_train(t, state="ONE" if t % 3 else "\u00e9t") for t in range(90, 110)]
    msgs += [_train(t, count=t) for t in range(110, 140)]  # fixint -> uint8
    msgs += [_train(t, meta={"timestamp.sec": "17x"}) for t in range(140, 150)]  # not digits
    msgs += [_train(t, meta={"timestamp.tid": -t}) for t in range(150, 152)]  # rejects
    msgs += [_train(t, meta={"timestamp.tid": 2**64 - t}) for t in range(152, 154)]
    msgs += [_train(t, meta={"timestamp": math.nan, "timestamp.sec": 5}) for t in range(154, 170)]
    msgs += [  # a time past int64 ns (no time) now and then
        _train(t, meta={"timestamp.sec": 5, "timestamp": 1e300 if t % 6 == 0 else t * 1.0})
        for t in range(160, 170)
    ]
    msgs += [_train(t, present=[1, t % 2, 1]) for t in range(170, 190)]  # a list that changes
    msgs += [_train(t, big=2**64 - 1 - t) for t in range(190, 200)]  # past int64: no column
    msgs += [_train(t) for t in range(200, 260)]
    for k in range(230, 240):  # zero-copy frames as the receive thread may hand them over
        msgs[k] = [memoryview(f) if i % 2 else bytearray(f) for i, f in enumerate(msgs[k])]
    for k in range(240, 250):  # zero-copy frames as pyzmq gives them
        msgs[k] = [zmq.Frame(f) for f in msgs[k]]
    msgs[245] = [b"\x81\xa6source\xa1A", b"garbage"]
    return msgs


def _small(n_sources: int) -> list[list[bytes]]:
    sim = make_simulator("karabo", detector="small", n_sources=n_sources)
    return [sim.message(i) for i in range(300)]


STREAMS = {
    "changing": _changing,
    "small": lambda: _small(1),
    "small-3": lambda: _small(3),
    "alike": _karabo,
    "hostile": _karabo_hostile,
}


def _record(path, messages, *, together: bool, batch: int, compression: str | None = None):
    codec = codec_for("karabo")
    runs = 0
    with RunWriter(path, run_id="20260101-000000-000000") as run:
        s = run.add_stream(
            "s",
            protocol="karabo",
            endpoint="tcp://h:1",
            socket_type="SUB",
            role="connect",
            compression=compression,
        )
        for i in range(0, len(messages), batch):
            part = [(1_000 + i + k, f, None) for k, f in enumerate(messages[i : i + batch])]
            if not together:
                for r, f, x in part:
                    s.append_batch([decode_or_reject(codec, r, f, x)])
            else:
                for piece in decode_batch(codec, part):
                    runs += isinstance(piece, tuple) and isinstance(piece[2], AlikeRun)
                    s.append_part(piece)
            if i % (batch * 3) == 0:
                s.flush()  # flushes in between: chunks written part by part
    return run.path, runs


@pytest.mark.parametrize(
    ("stream", "compression", "batch"),
    [(name, None, 97) for name in STREAMS]
    + [("changing", "zstd", 97), ("small", "zstd", 97), ("changing", None, 11)],
)
def test_batched_trains_are_stored_as_single_trains_are(tmp_path, stream, compression, batch):
    messages = STREAMS[stream]()
    one, _ = _record(
        tmp_path / "one", messages, together=False, batch=batch, compression=compression
    )
    together, runs = _record(
        tmp_path / "all", messages, together=True, batch=batch, compression=compression
    )
    if stream in ("changing", "small", "small-3"):
        assert runs >= 3  # the batch path was taken
    _assert_same_runs(one, together)
    with RunReader(together) as r:
        stored = [[bytes(f) for f in m.frames] for m in r.stream("s").messages()]
        stats = r.stream("s").attrs["stats"]
    assert stored == [[bytes(f) for f in m] for m in messages]  # byte for byte
    with RunReader(one) as r:
        assert stats["rejects"] == r.stream("s").attrs["stats"]["rejects"]


def _bulk_of(d: Decoded) -> list[BulkFrame]:
    derived = [x if isinstance(x, BulkFrame) else BulkFrame(-1, x[0], x[1]) for x in d.derived]
    return d.bulk + derived


@pytest.mark.parametrize("stream", ["changing", "small-3"])
def test_runs_say_what_decode_says_of_each_train(stream):
    messages = STREAMS[stream]()
    codec, fresh = codec_for("karabo"), codec_for("karabo")
    in_runs = 0
    for b in range(0, len(messages), 64):
        batch = messages[b : b + 64]
        spans = codec.decode_alike(batch)
        assert (
            [(s[0], s[1]) for s in spans] == [(s[0], s[1]) for s in spans if s[0] < s[1]]
            and spans[0][0] == 0
            and spans[-1][1] == len(batch)
        )
        assert all(x[1] == y[0] for x, y in itertools.pairwise(spans))  # in order, all covered
        for start, end, what in spans:
            if not isinstance(what, AlikeRun):
                assert end == start + 1
                got = decode_or_reject(fresh, 0, batch[start])
                if what is None:
                    continue
                assert got[2] is not None and got[2].columns == what.columns
                continue
            in_runs += end - start
            for k in range(end - start):
                d = fresh.decode(batch[start + k])
                assert (int(what.seq[k]), int(what.source_ns[k])) == (d.seq, d.source_ns)
                assert list(what.columns) == list(d.columns)
                for name, values in what.columns.items():
                    value = values.tolist()[k] if isinstance(values, np.ndarray) else values[k]
                    assert type(value) is type(d.columns[name]) and value == d.columns[name]
                for block, bf in zip(what.arrays, _bulk_of(d), strict=True):
                    assert (block.frame, block.name, block.ragged) == (bf.frame, bf.name,
                                                                       bf.ragged)  # fmt: skip
                    if isinstance(block.rows, list):
                        array = block.rows[k]
                    elif block.ragged:
                        n = block.shape[0]
                        array = block.rows[k * n : (k + 1) * n]
                    else:
                        array = block.rows[k]
                    assert array.dtype == bf.array.dtype and array.shape == bf.array.shape
                    assert array.tobytes() == bf.array.tobytes()
    assert in_runs > len(messages) // 3


def test_a_plan_is_not_made_from_what_it_cannot_read_exactly():
    """A train whose values a plan could misread (a column made twice, metadata maps that
    become JSON text) is decoded one by one, never in a run."""
    clash = [
        kb.encode_train({"A": {"metadata.x": t * 1.0}}, {"A": {"timestamp.tid": t, "x": 2.0}})
        for t in range(1, 40)
    ]
    deep = [
        kb.encode_train({"A": {"v": 1.0}}, {"A": {"timestamp.tid": t, "m": {"k": t}}})
        for t in range(1, 40)
    ]
    for messages in (clash, deep):
        spans = codec_for("karabo").decode_alike(messages)
        assert not any(isinstance(w, AlikeRun) for _, _, w in spans)
        assert len(spans) == len(messages)
