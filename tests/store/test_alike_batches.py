"""Messages of one layout stored together (StreamWriter._append_alike: Karabo trains, images)
are stored exactly as the same messages stored one at a time: every array, every attribute,
byte for byte, for every protocol and with compression."""

from __future__ import annotations

import numpy as np
import pytest

from recorder.protocols import codec_for
from recorder.protocols import karabo as kb
from recorder.protocols.base import Verbatim, decode_batch, decode_or_reject
from recorder.simulators import make_simulator
from recorder.store import stream_writer
from recorder.store.reader import RunReader
from recorder.store.run_writer import RunWriter
from tests.store.test_placed_runs import _same, _tree

pytestmark = pytest.mark.timeout(300)


def _train(tid: int, pulses: int, *, width: int = 4, extra: bool = False) -> list[bytes]:
    meta = {"source": "DET/A", "timestamp.tid": tid, "timestamp": 1.7e9 + tid / 10}
    values = {
        "x": float(tid) / 3,
        "name": "det" if tid % 11 else "d\u00e9t",
        "cells": np.arange(pulses, dtype=np.uint16),
        "image": np.full((pulses, 3, width), tid % 251, dtype=np.uint16),
        "big": np.full((pulses, 8, 1024), tid % 7, dtype=np.uint8),  # >= 16 KiB a train
        "gain": np.array(tid % 3, dtype=np.int32),  # 0-d: stacked, never ragged
        "present": [1, 0, tid % 2],  # a numeric list: a derived typed array
    }
    if extra:
        values["added"] = 1
    out = {"DET/A": values}
    if tid % 5 == 0:
        out["XGM/B"] = {"metadata": {"timestamp.tid": tid}, "e": 1.5}
        return kb.encode_train(out, {"DET/A": meta, "XGM/B": {"timestamp.tid": tid}})
    return kb.encode_train(out, {"DET/A": meta})


def _karabo() -> list[list[bytes]]:
    msgs = [_train(t, 2 + (t // 23) % 3) for t in range(200)]  # pulses change every 23
    msgs[40:40] = [_train(1000 + t, 2, width=5) for t in range(30)]  # a new row shape
    msgs[100:100] = [[b"\x81\xa6source\xa1A", b"garbage"]]  # a reject
    msgs[150:150] = [_train(2000 + t, 3, extra=True) for t in range(12)]  # a new column
    v1 = make_simulator("karabo", protocol="1.0", detector="small")
    msgs += [v1.message(i) for i in range(20)]
    small = make_simulator("karabo", detector="small", n_sources=2)
    msgs += [small.message(i) for i in range(60)]
    return msgs


def _hostile_train(t: int) -> list:
    """Train t of a stream that changes under the batch path: keys appear and vanish, values
    change type, arrays change dtype, shape and size class (under 16 KiB, 16-64 KiB joined,
    64 KiB and more kept as views), sources come and go."""
    phase = t // 40
    values: dict = {
        "x": [float(t), t, f"t{t}", t % 2 == 0, 2**64 - 1 - t][phase % 5],  # type changes
        "s": "pl\u00e4in" if t % 7 == 0 else "plain",  # non-ASCII inside a batch
        "pulses": np.arange(3 + (t // 25) % 2, dtype=np.uint16 if phase % 2 else np.uint32),
        "mid": np.full((2 + t % 2, 24, 1024), t % 200, dtype=np.uint8),  # 48-72 KiB, ragged
        "flags": [True, False] if phase % 3 else [1, 0],  # bool list vs int list: dtypes differ
        "names": ["a", True] if t % 30 < 15 else ["a", 1],  # JSON text differs, == is equal
    }
    if 60 <= t % 100 < 80:
        values["sometimes"] = t  # a key appearing and vanishing
    else:
        values["big"] = np.full((70_000,), t % 256, dtype=np.uint8)  # an array that vanishes
    meta = {"DET/H": {"timestamp.tid": t, "timestamp": 1.7e9 + t / 10}}
    data = {"DET/H": values}
    if t % 50 < 30:  # a second source, part of the time
        data["MOTOR/M"] = {"pos": t * 0.5, "deep": {"er": {"v": t}}}
        meta["MOTOR/M"] = {"timestamp.tid": t, "timestamp.sec": "1700000000", "other": "x"}
    return kb.encode_train(data, meta)


def _karabo_hostile() -> list[list]:
    msgs: list[list] = [_hostile_train(t) for t in range(330)]
    msgs[45:45] = [[b"\x81\xa6source\xa1A", b"garbage"]]  # bad msgpack
    msgs[90:90] = [[msgs[89][0], b"\xc1"]]  # a good header, data that is no msgpack
    msgs[95:95] = [msgs[94][:-1]]  # the last array's data frame missing: odd frame count
    head = msgs[120]
    msgs[121:121] = [head[2:4] + head[:2] + head[4:]]  # an array pair before its msgpack pair
    v1 = make_simulator("karabo", protocol="1.0", detector="small", n_sources=2)
    msgs[200:200] = [v1.message(i) for i in range(15)]  # protocol 1.0 in between
    for k in range(250, 270):  # zero-copy frames as the receive thread may hand them over
        msgs[k] = [memoryview(f) if i % 2 else bytearray(f) for i, f in enumerate(msgs[k])]
    return msgs


def _adzmq() -> list[list[bytes]]:
    a = make_simulator("adzmq", height=16, width=32)
    b = make_simulator("adzmq", height=128, width=256, ndattr=False)
    msgs = [a.message(i) for i in range(50)] + [b.message(i) for i in range(30)]
    msgs += [a.message(i) for i in range(50, 70)]
    msgs[20:20] = [[b'{"type": "nonsense"}', b"\0" * 10]]
    return msgs


def _pymultivideo() -> list[list[bytes]]:
    a = make_simulator("pymultivideo", height=24, width=32)
    b = make_simulator("pymultivideo", height=120, width=160)
    return [a.message(i) for i in range(40)] + [b.message(i) for i in range(40)]


def _openephys() -> list[list[bytes]]:
    sim = make_simulator("openephys", n_channels=4, n_samples=64)
    return [sim.message(i) for i in range(300)]


def _raw() -> list[list[bytes]]:
    rng = np.random.default_rng(1)
    return [
        [
            rng.bytes(int(n))
            for n in rng.integers(0, 70_000 if i % 9 == 0 else 300, 1 + (i // 20) % 3)
        ]
        for i in range(200)
    ]


STREAMS = {
    "karabo": _karabo,
    "karabo-hostile": _karabo_hostile,
    "adzmq": _adzmq,
    "pymultivideo": _pymultivideo,
    "openephys": _openephys,
    "raw": _raw,
}


def _record(path, protocol, messages, *, batch: int, compression: str | None = None):
    codec = codec_for(protocol)
    with RunWriter(path, run_id="20260101-000000-000000") as run:
        s = run.add_stream(
            "s",
            protocol=protocol,
            endpoint="tcp://h:1",
            socket_type="SUB",
            role="connect",
            compression=compression,
        )
        for i in range(0, len(messages), batch):
            part = messages[i : i + batch]
            s.append_batch([decode_or_reject(codec, 1_000 + i + k, f) for k, f in enumerate(part)])
            if i % 150 < batch:
                s.flush()  # flushes in between: chunks written part by part
    return run.path


def _assert_same_runs(one, together) -> None:
    a, b = _tree(one), _tree(together)
    assert sorted(a) == sorted(b)
    for key in a:
        if isinstance(a[key], tuple):
            assert a[key][0] == b[key][0], key
            assert _same(a[key][1], b[key][1]), key
        else:
            assert a[key] == b[key], key


@pytest.mark.parametrize(
    ("protocol", "compression"),
    [(p, None) for p in sorted(STREAMS)]
    + [(p, "zstd") for p in ("adzmq", "karabo", "karabo-hostile", "raw")],
)
def test_alike_messages_are_stored_as_single_messages_are(tmp_path, monkeypatch, protocol,
                                                           compression):  # fmt: skip
    messages = STREAMS[protocol]()
    protocol = protocol.partition("-")[0]
    calls = []
    alike = stream_writer.StreamWriter._append_alike

    def counting(self, items):
        done = alike(self, items)
        calls.append(done)
        return done

    monkeypatch.setattr(stream_writer.StreamWriter, "_append_alike", counting)
    one = _record(tmp_path / "one", protocol, messages, batch=1, compression=compression)
    assert not calls
    together = _record(tmp_path / "all", protocol, messages, batch=97, compression=compression)
    assert any(calls) or protocol == "openephys"  # taken (Open Ephys: placed, append_run)
    _assert_same_runs(one, together)
    with RunReader(together) as r:
        stored = [[bytes(f) for f in m.frames] for m in r.stream("s").messages()]
    assert stored == [[bytes(f) for f in m] for m in messages]  # byte for byte


def test_hostile_karabo_batches_take_the_batch_path_and_keep_every_change(tmp_path,
                                                                          monkeypatch):  # fmt: skip
    """The hostile stream is not stored one by one in disguise: most of it goes through
    _append_alike, and what changed under it (types, dtypes, keys, rejects) is all there."""
    together: list[int] = []
    alike = stream_writer.StreamWriter._append_alike

    def counting(self, items):
        done = alike(self, items)
        together.append(len(items) if done else 0)
        return done

    monkeypatch.setattr(stream_writer.StreamWriter, "_append_alike", counting)
    messages = _karabo_hostile()
    run = _record(tmp_path / "all", "karabo", messages, batch=97)
    assert sum(together) > 60 and len([n for n in together if n]) >= 5  # 349 messages
    with RunReader(run) as r:
        attrs = r.stream("s").attrs
    assert attrs["stats"]["rejects"] == 4
    segments, columns = attrs["segments"], attrs["columns"]
    pulses = [g for g in segments if g["name"] == "DET/H:pulses"]
    assert {g["dtype"] for g in pulses} == {"<u2", "<u4"} and len(pulses) >= 4
    assert {g["name"] for g in segments} >= {"DET/H:big", "DET/H:mid", "DET/H:flags"}
    assert {"DET/H:sometimes", "DET/H:x", "DET/H:names", "MOTOR/M:deep.er.v"} <= set(columns)
    assert "MOTOR/M:metadata.other" in columns


def test_karabo_known_headers_decode_as_a_fresh_codec_does():
    """The array headers a codec remembers give the same Decoded as a first parse, and a
    remembered header with data of another size is a reject with the same reason."""
    messages = _karabo()
    warm = codec_for("karabo")
    for frames in messages:
        got = decode_or_reject(warm, 0, frames)
        fresh = decode_or_reject(codec_for("karabo"), 0, frames)
        assert got[3] == fresh[3]
        if got[2] is None:
            continue
        assert got[2].columns == fresh[2].columns  # type: ignore[union-attr]
        for x, y in zip(got[2].bulk, fresh[2].bulk, strict=True):  # type: ignore[union-attr]
            assert (x.frame, x.name, x.ragged) == (y.frame, y.name, y.ragged)
            assert x.array.dtype == y.array.dtype and np.array_equal(x.array, y.array)
    short = list(_train(7, 2))
    short[5] = short[5][:-2]
    reasons = {decode_or_reject(c, 0, short)[3] for c in (warm, codec_for("karabo"))}
    assert len(reasons) == 1 and None not in reasons


def test_wide_blocks_are_placed_as_single_messages_are(tmp_path):
    """Blocks wider than place_block's column groups (100 channels; one block in a shuffled
    channel order, so not a plain slice) land in the same cells as one message at a time."""
    from tests.store.test_placed_runs import _record as record_openephys

    sim = make_simulator("openephys", n_channels=100, n_samples=64)
    messages = [sim.message(i) for i in range(800)]
    block = messages[300:400]
    order = np.random.default_rng(3).permutation(len(block))
    messages[300:400] = [block[k] for k in order]
    one, _ = record_openephys(tmp_path / "one", messages, together=False, batch=400)
    together, runs = record_openephys(tmp_path / "all", messages, together=True, batch=400)
    assert runs >= 2
    _assert_same_runs(one, together)


@pytest.mark.parametrize("compression", [None, "zstd"])
def test_verbatim_batches_are_stored_as_single_messages_are(tmp_path, compression):
    """Raw messages reach the store as a Verbatim part (no Decoded per message): the same run,
    byte for byte, as decoding them one at a time; empty and large frames included."""
    messages = _raw()
    messages[5:5] = [[], [b""], [b"", b"x"], [bytes(200_000), b"", b"y"]]
    one = _record(tmp_path / "one", "raw", messages, batch=1, compression=compression)
    codec = codec_for("raw")
    with RunWriter(tmp_path / "all", run_id="20260101-000000-000000") as run:
        s = run.add_stream(
            "s", protocol="raw", endpoint="tcp://h:1", socket_type="SUB", role="connect",
            compression=compression,
        )  # fmt: skip
        for i in range(0, len(messages), 97):
            part = messages[i : i + 97]
            batch = [(1_000 + i + k, f, None) for k, f in enumerate(part)]
            (verbatim,) = decode_batch(codec, batch)
            assert isinstance(verbatim, Verbatim)
            s.append_verbatim(verbatim.recv, verbatim.messages)
            if i % 150 < 97:
                s.flush()
    _assert_same_runs(one, run.path)
    with RunReader(run.path) as r:
        stored = [[bytes(f) for f in m.frames] for m in r.stream("s").messages()]
    assert stored == [[bytes(f) for f in m] for m in messages]
