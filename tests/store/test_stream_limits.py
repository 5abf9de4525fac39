"""Hostile field names, column and shape churn: a stream stays writable, bounded and exact."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.protocols.base import BulkFrame, Decoded
from recorder.store import layout
from recorder.store.reader import RunReader
from recorder.store.run_writer import RunWriter

pytestmark = pytest.mark.reliability  # issue 10's reliability suite: pytest -m reliability


def new_stream(folder: Path):
    run = RunWriter(folder, name="t")
    stream = run.add_stream(
        "s", protocol="test", endpoint="tcp://h:1", socket_type="SUB", role="connect"
    )
    return run, stream


def _files(path: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for root, _, names in os.walk(path):
        for n in names:
            st_ = os.stat(os.path.join(root, n))
            out[os.path.join(root, n)] = (st_.st_ino, st_.st_mtime_ns)
    return out


def _written_by(stream, action) -> list[str]:
    """Files the action created or replaced under the stream's folder."""
    root = Path(stream.group.store_path.store.root) / stream.group.path
    before = _files(root)
    action()
    after = _files(root)
    return sorted(os.path.relpath(p, root) for p, v in after.items() if before.get(p) != v)


HOSTILE = [
    "ndattr." + "x" * 300,
    "k" * 10_000,
    "a/b",
    "../../escape",
    "..",
    ".",
    "/",
    "zarr.json",
    "c",
    "__reserved",
    "nul\x00name",
    "ünïcødé ✓",
    "Name",
    "name",
    "",
    "lone \ud800 surrogate",
]

names = (
    st.text(min_size=0, max_size=400)
    | st.text(st.characters(categories=["Cs", "Cc", "Lo"]), max_size=50)  # surrogates, NUL ...
    | st.sampled_from(HOSTILE)
    | st.sampled_from(sorted(layout.MESSAGE_COLUMNS))  # an NDAttribute called `seq`
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(keys=st.lists(names, min_size=1, max_size=6, unique=True))
def test_any_field_name_round_trips_through_writer_and_reader(keys):
    with tempfile.TemporaryDirectory() as folder:
        run, s = new_stream(Path(folder))
        sent = []
        keys = list({layout.valid_text(k): k for k in keys}.values())  # one per stored name
        for i in range(3):
            frames = [b"msg %d" % i]
            values = {k: float(i * 10 + j) for j, k in enumerate(keys)}
            s.append(100 + i, frames, Decoded(seq=i, columns=values))
            sent.append(frames)
            s.flush()
        run.close()
        with RunReader(run.path) as r:
            st_ = r.stream("s")
            listed = set(st_.column_names())
            for j, k in enumerate(keys):
                # a decoded column named like a message column (`seq`, `flags` ...) is listed
                # and read as columns/<name>: the message column keeps its name
                name = layout.valid_text(k)
                name = "columns/" + name if name in layout.MESSAGE_COLUMNS else name
                assert name in listed
                assert st_.column(name).tolist() == [float(i * 10 + j) for i in range(3)]
            assert [[bytes(f) for f in m.frames] for m in r.messages()] == sent
        arrays = os.listdir(run.path / "streams" / "s" / "columns")
        assert all(len(a.encode()) <= 64 and "/" not in a for a in arrays)


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_name_or_string_value_never_fails_a_run(tmp_path, name):
    run, s = new_stream(tmp_path)
    s.append(1, [b"m"], Decoded(seq=0, columns={name: 1.5, "text": name}))
    s.flush()
    run.close()
    assert run.status == layout.STATUS_COMPLETE, run.error
    with RunReader(run.path) as r:
        st_ = r.stream("s")
        assert st_.column(name).tolist() == [1.5]  # found by its name, as the wire gave it
        assert st_.column("text").tolist() == [layout.valid_text(name)]
        assert [bytes(f) for m in r.messages() for f in m.frames] == [b"m"]


def test_a_column_is_not_padded_or_rewritten_when_its_key_is_absent(tmp_path):
    run, s = new_stream(tmp_path)
    s.append(1, [b"first"], Decoded(seq=0, columns={f"k{i}": i for i in range(256)}))
    s.flush()
    for i in range(1, 20):
        s.append(1 + i, [b"m%d" % i], Decoded(seq=i, columns={"k0": i}))
    written = _written_by(s, s.flush)
    assert not [w for w in written if w.startswith("columns/") and not w.startswith("columns/k0/")]
    assert len(written) <= 16  # the message and frame tables, heap, one column, the attributes
    run.close()
    with RunReader(run.path) as r:
        st_ = r.stream("s")
        assert st_.column("k0").tolist() == list(range(20))
        assert st_.column("k5").tolist() == [5] + [np.iinfo(np.int64).min] * 19


def test_a_live_reader_pads_a_column_that_missed_the_newest_messages(tmp_path):
    run, s = new_stream(tmp_path)
    s.append(1, [b"a"], Decoded(seq=0, columns={"x": 1.5, "y": "s"}))
    s.append(2, [b"b"], Decoded(seq=1, columns={}))
    s.flush()
    with RunReader(run.path) as r:
        c = r.stream("s").column("x")
        assert len(c) == 2 and c[0] == 1.5 and math.isnan(c[1])
        assert r.stream("s").column("y").tolist() == ["s", ""]
    run.close()


def test_flush_cost_does_not_grow_with_past_shapes(tmp_path):
    run, s = new_stream(tmp_path)

    def image(i, shape):
        data = np.full(shape, i, np.uint16)
        frames = [b"h%d" % i, data.tobytes()]
        view = np.frombuffer(frames[1], np.uint16).reshape(shape)
        return frames, Decoded(seq=i, bulk=[BulkFrame(1, "image", view)])

    counts = []
    for i in range(120):
        s.append(i, *image(i, (2, 1 + i)))  # a new shape every frame
        counts.append(len(_written_by(s, s.flush)))
    # each flush: one new segment and its index, the tables, heap, attributes; never the past
    assert max(counts[5:]) <= counts[5] + 2, counts
    assert len(s._segment_appenders) - len(s._finished) <= 2  # old segments were let go
    run.close()


def test_columns_past_the_cap_stay_in_the_message_bytes_and_are_counted(tmp_path, monkeypatch):
    monkeypatch.setattr(layout, "MAX_COLUMNS", 40)
    run, s = new_stream(tmp_path)
    sent = []
    for train in range(10):  # 10 new keys per message, as a Karabo source whose keys churn
        values = {f"t{train}.k{k}": float(k) for k in range(10)}
        frames = [b"train %d" % train, repr(values).encode()]
        s.append(train, frames, Decoded(seq=train, columns=values))
        sent.append(frames)
        s.flush()
    run.close()
    with RunReader(run.path) as r:
        st_ = r.stream("s")
        assert len(st_.column_names()) == len(layout.MESSAGE_COLUMNS) + 40
        assert st_.stats["columns_dropped"] == 60
        assert r.summary()["streams"][0]["columns_dropped"] == 60
        assert [[bytes(f) for f in m.frames] for m in r.messages()] == sent  # replay is exact


def test_column_names_have_a_byte_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(layout, "MAX_COLUMN_NAME_BYTES", 25_000)
    run, s = new_stream(tmp_path)
    s.append(1, [b"m"], Decoded(seq=0, columns={"a" * 10_000 + str(i): i for i in range(5)}))
    run.close()
    with RunReader(run.path) as r:
        assert len(r.stream("s").column_names()) == len(layout.MESSAGE_COLUMNS) + 2
        assert r.stream("s").stats["columns_dropped"] == 3


def test_segments_past_the_cap_go_verbatim_to_the_heap_and_are_counted(tmp_path, monkeypatch):
    monkeypatch.setattr(layout, "MAX_SEGMENTS", 8)
    run, s = new_stream(tmp_path)
    sent = []
    for i in range(30):
        data = np.full((3, 1 + i % 15), i, np.uint16)
        frames = [b"h%d" % i, data.tobytes()]
        view = np.frombuffer(frames[1], np.uint16).reshape(data.shape)
        s.append(i, frames, Decoded(seq=i, bulk=[BulkFrame(1, "image", view)]))
        sent.append(frames)
        if i % 4 == 0:
            s.flush()
    run.close()
    with RunReader(run.path) as r:
        st_ = r.stream("s")
        assert len(st_.segments) == 8
        # past the cap only the current segment still takes rows (i = 22 has its shape)
        assert st_.stats["segments_capped"] == 30 - 9
        assert [[bytes(f) for f in m.frames] for m in r.messages()] == sent
    assert sorted(os.listdir(run.path / "streams/s/data")) == sorted(
        ["image", *(f"image@{k}" for k in range(1, 8)), "zarr.json"]
    )


@pytest.mark.parametrize("kind", ["float", "str"])
def test_recovered_run_reads_missing_cells_as_missing(tmp_path, kind):
    from recorder.store.recover import repair_run

    run, s = new_stream(tmp_path)
    value = 2.5 if kind == "float" else "v"
    s.append(1, [b"a"], Decoded(seq=0, columns={"x": value}))
    s.append(2, [b"b"], Decoded(seq=1))
    s.flush()
    run.root.attrs.update({"pid": 2**22 + 7})  # a recorder that is gone (killed)
    repair_run(run.path)
    with RunReader(run.path) as r:
        c = r.stream("s").column("x").tolist()
        assert c[0] == value and (math.isnan(c[1]) if kind == "float" else c[1] == "")


def test_frames_lost_before_an_adzmq_restart_count_as_gaps(tmp_path):
    from recorder.protocols.adzmq import AdzmqCodec
    from recorder.simulators.adzmq import AdzmqSimulator

    run = RunWriter(tmp_path, name="t")
    s = run.add_stream(
        "cam", protocol="adzmq", endpoint="tcp://h:1", socket_type="SUB", role="connect"
    )
    codec = AdzmqCodec()
    sim = AdzmqSimulator(height=4, width=4)
    # frames 1..10, then the IOC restarts: frames 1..3 of the new acquisition are lost, we see
    # 4..6; then frame 9 of that acquisition is lost too
    for i in [*range(10), 3, 4, 5, 7]:
        frames = sim.message(i)
        s.append(i, frames, codec.decode(frames))
    run.close()
    with RunReader(run.path) as r:
        stats = r.stream("cam").stats
        assert stats["seq_resets"] == 1
        assert stats["gaps"] == 3 + 1


def test_adzmq_frames_out_of_order_or_twice_are_not_counted_as_loss(tmp_path):
    from recorder.protocols.adzmq import AdzmqCodec
    from recorder.simulators.adzmq import AdzmqSimulator

    run = RunWriter(tmp_path, name="t")
    s = run.add_stream(
        "cam", protocol="adzmq", endpoint="tcp://h:1", socket_type="SUB", role="connect"
    )
    codec, sim = AdzmqCodec(), AdzmqSimulator(height=4, width=4)
    # frame ids 1..100, then 102, 101 (out of order, as several plugin threads deliver), 103,
    # 103 again, 104: nothing was lost
    for i in [*range(100), 101, 100, 102, 102, 103]:
        frames = sim.message(i)
        s.append(i, frames, codec.decode(frames))
    run.close()
    with RunReader(run.path) as r:
        stats = r.stream("cam").stats
        assert stats["gaps"] == 1  # 101 was skipped when 102 came; it came late, but came
        assert stats["seq_resets"] == 2


def test_a_restart_of_a_protocol_without_a_known_first_number_is_a_reset_only(tmp_path):
    run, s = new_stream(tmp_path)  # protocol "test"
    for seq in [5, 6, 7, 3, 4]:
        s.append(seq, [b"m"], Decoded(seq=seq))
    run.close()
    with RunReader(run.path) as r:
        assert (r.stream("s").stats["gaps"], r.stream("s").stats["seq_resets"]) == (0, 1)
