"""Messages decoded together (PlacedRun, the Open Ephys fast path) are stored exactly as the
same messages decoded one by one: every array, every attribute, byte for byte."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from recorder.protocols import codec_for, json_columns
from recorder.protocols import openephys as oe
from recorder.protocols.base import PlacedRun, decode_batch, decode_or_reject
from recorder.protocols.json_shapes import ShapeCache
from recorder.simulators import make_simulator
from recorder.store.reader import RunReader
from recorder.store.run_writer import RunWriter

pytestmark = pytest.mark.timeout(120)

_VOLATILE = {
    "run_id",
    "started_ns",
    "ended_ns",
    "pid",
    "host",
    "updated_ns",
    "committed_ns",
    "slowest_flush_ns",
}


def _data(seq, channel, sample, *, n=64, stream="probe", rate=30000.0, name=True, **extra):
    frames = oe.encode_data(
        np.arange(n, dtype="<f4") + channel,
        message_num=seq,
        stream=stream,
        channel_num=channel,
        channel_name=f"CH{channel + 1}" if name else None,
        sample_num=sample,
        sample_rate=rate,
        timestamp_ms=1_700_000_000_000 + sample,
    )
    if extra:
        header = json.loads(frames[1])
        header["content"].update(extra)
        frames[1] = json.dumps(header, indent=2).encode()
    return frames


def _hostile_stream() -> list[list[bytes]]:
    """Continuous data with everything that must end a run or fall back: events and spikes in
    between, a malformed header, a rate change, a second stream, an added content key, a
    restart, a jump in samples, a lost channel name, an empty block, a huge sequence number."""
    sim = make_simulator("openephys", n_channels=16, n_samples=128)
    msgs = [sim.message(i) for i in range(1500)]
    seq = 5000
    for block in range(30):
        for ch in range(8):
            seq += 1
            msgs.append(_data(seq, ch, block * 64, name=block % 7 != 3))
    msgs.insert(1600, [oe.DATA_ENVELOPE, b"{not json", b"\0" * 256])
    msgs.append(_data(seq + 1, 0, 30 * 64, rate=20000.0))
    msgs.append(_data(seq + 2, 1, 30 * 64, stream="other"))
    msgs.append(_data(seq + 3, 2, 30 * 64, bit_volts=0.195))
    msgs += [_data(s, s % 8, 31 * 64) for s in range(3, 11)]  # a restart
    msgs += [_data(20 + c, c, 10**9, n=64) for c in range(8)]  # a jump: new segment
    msgs += [_data(40 + c, c, 10**9 + 64, n=0) for c in range(8)]  # empty blocks
    msgs += [_data(2**63 + c, c, 10**9 + 128) for c in range(8)]  # out of range: rejected
    msgs += [_data(60 + c, c, 10**9 + 192) for c in range(8)]
    bad_size = _data(70, 0, 10**9 + 256)
    bad_size[2] = bad_size[2][:-4]
    msgs.append(bad_size)
    return msgs


def _record(path, messages, *, together: bool, batch: int = 64):
    codec = codec_for("openephys")
    runs = 0
    with RunWriter(path, run_id="20260101-000000-000000") as run:
        s = run.add_stream(
            "oe", protocol="openephys", endpoint="tcp://h:1", socket_type="SUB", role="connect"
        )
        for i in range(0, len(messages), batch):
            part = [(1_000 + i + k, f, None) for k, f in enumerate(messages[i : i + batch])]
            if not together:
                s.append_batch([decode_or_reject(codec, r, f, x) for r, f, x in part])
            else:
                for piece in decode_batch(codec, part):
                    runs += isinstance(piece, tuple) and isinstance(piece[2], PlacedRun)
                    s.append_part(piece)
            if i % (batch * 7) == 0:
                s.flush()  # flushes in between: chunks written part by part
    return run.path, runs


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in _VOLATILE}
    return value


def _tree(path) -> dict:
    root = zarr.open_group(path, mode="r", use_consolidated=False)
    out = {}

    def walk(group, prefix=""):
        out[prefix + "@"] = _strip(group.attrs.asdict())
        for name, member in group.members():
            if isinstance(member, zarr.Group):
                walk(member, f"{prefix}{name}/")
            else:
                out[prefix + name] = (member.attrs.asdict(), member[...])

    walk(root)
    return out


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return (
            a.dtype == b.dtype
            and a.shape == b.shape
            and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
        )
    return a == b


@pytest.mark.parametrize("batch", [64, 1000])
def test_runs_are_stored_as_single_messages_are(tmp_path, batch):
    messages = _hostile_stream()
    one, _ = _record(tmp_path / "one", messages, together=False, batch=batch)
    together, runs = _record(tmp_path / "together", messages, together=True, batch=batch)
    assert runs > 10  # the fast path was taken
    a, b = _tree(one), _tree(together)
    assert sorted(a) == sorted(b)
    for key in a:
        if isinstance(a[key], tuple):
            assert a[key][0] == b[key][0], key
            assert _same(a[key][1], b[key][1]), key
        else:
            assert a[key] == b[key], key
    with RunReader(together) as r:
        stream = r.stream("oe")
        assert stream.stats["rejects"] >= 9  # bad JSON, 8 out-of-range, the short payload
        stored = [[bytes(f) for f in m.frames] for m in stream.messages()]
        assert stored == [[bytes(f) for f in m] for m in messages]  # byte for byte


def test_decode_run_never_takes_what_decode_would_reject():
    codec = codec_for("openephys")
    good = [_data(i, i % 4, (i // 4) * 64) for i in range(20)]
    for k, bad in enumerate(
        [
            _data(99, 0, -1 if False else 2**63),
            _data(2**63, 0, 0),
            [oe.DATA_ENVELOPE, good[0][1], good[0][2][:8]],
            [b"DATB\x00", good[0][1], good[0][2]],
            [oe.DATA_ENVELOPE, good[0][1].replace(b'"CH1"', b'"C\\u00e9"'), good[0][2]],
            [oe.DATA_ENVELOPE, good[0][1].replace(b'"CH1"', b'"C\xff"'), good[0][2]],  # not UTF-8
            [
                oe.DATA_ENVELOPE,
                good[0][1].replace(b'"data_size": 256', b'"data_size": 252'),
                good[0][2],
            ],
            [oe.DATA_ENVELOPE, good[0][1]],  # two frames
            [*good[0], b""],  # four
        ]
    ):
        messages = [*good, bad, *good]
        run = codec.decode_run(messages, 0)
        assert isinstance(run, PlacedRun)
        assert run.count == 20, k  # the run ends before the message it cannot vouch for
        single = decode_or_reject(codec, 0, messages[0], None)[2]
        assert single is not None
        assert run.seq[0] == single.seq and run.source_ns[0] == single.source_ns
        assert {k: v[0] for k, v in run.columns.items()} == single.columns


def _views(messages: list[list[bytes]]) -> list[list[memoryview]]:
    """The frames as views of one payload, as a receive process hands a batch over."""
    payload = memoryview(b"".join(f for m in messages for f in m))
    out, at = [], 0
    for m in messages:
        views = []
        for f in m:
            views.append(payload[at : at + len(f)])
            at += len(f)
        out.append(views)
    return out


def test_a_run_of_views_decodes_as_the_same_bytes_do():
    codec = codec_for("openephys")
    good = [_data(i, i % 4, (i // 4) * 64) for i in range(20)]
    for messages in (good, [*good[:7], [b"EVENT\x00", good[7][1], good[7][2]], *good[8:]]):
        a = codec.decode_run(messages, 0)
        b = codec.decode_run(_views(messages), 0)
        assert isinstance(a, PlacedRun) and isinstance(b, PlacedRun)
        assert a.count == b.count == (20 if messages is good else 7)
        assert (a.seq, a.source_ns, a.columns, a.rows, a.cols) == (
            b.seq,
            b.source_ns,
            b.columns,
            b.rows,
            b.cols,
        )
        assert all(np.array_equal(x, y) for x, y in zip(a.arrays, b.arrays, strict=True))


def _probes(blocks: int, probes: int, channels: int) -> list[list[bytes]]:
    """Block-major, probe by probe, channel by channel: a run ends at every probe switch."""
    out, seq = [], 0
    for b in range(blocks):
        for p in range(probes):
            for c in range(channels):
                seq += 1
                out.append(_data(seq, c, b * 16, n=16, stream=f"probe{p}"))
    return out


def test_a_run_matches_its_own_headers_and_at_most_one_step_more():
    messages = _probes(blocks=2, probes=3, channels=384)
    shape = ShapeCache().learn(messages[0][1])
    assert shape is not None
    calls = []

    def groups(text):
        calls.append(text)
        return shape.groups(text)

    stream = shape.slots[("content", "stream")][0]
    found, data = oe._matched(messages, groups, [(stream, b"probe0")])
    assert len(found) == len(data) == 384
    assert [g[stream] for g in found] == [b"probe0"] * 384
    # the rest of the batch (2304 headers) is not matched for a run of 384
    assert 384 <= len(calls) < 2 * 384


def test_runs_end_at_each_probe_and_a_long_run_is_one_run():
    codec = codec_for("openephys")
    messages = _probes(blocks=2, probes=3, channels=384)
    start, streams = 0, []
    while start < len(messages):
        run = codec.decode_run(messages, start)
        assert isinstance(run, PlacedRun) and run.count == 384
        assert run.seq == list(range(start + 1, start + 385))
        streams.append(run.columns["stream"][0])
        start += run.count
    assert streams == ["probe0", "probe1", "probe2"] * 2
    long = _probes(blocks=8, probes=1, channels=384)  # 3072: past every step's size
    run = codec.decode_run(long, 0)
    assert isinstance(run, PlacedRun) and run.count == len(long)
    assert run.seq == list(range(1, len(long) + 1))
    assert run.rows == [(i // 384) * 16 for i in range(len(long))]


def _layout(codec) -> oe._RunLayout:
    layouts = [lay for lay in codec._layouts.values() if lay is not None]
    assert len(layouts) == 1
    return layouts[0]


def _reads_of(codec, monkeypatch) -> list[int]:
    """How many headers each read by the codec's columns takes from now on."""
    columns = _layout(codec).columns
    assert columns is not None  # an ordinary data header is read by columns
    seen: list[int] = []
    read = columns.read

    def counting(headers, want):
        seen.append(len(headers))
        return read(headers, want)

    monkeypatch.setattr(columns, "read", counting)
    return seen


def test_a_run_read_by_columns_reads_its_own_headers_and_at_most_one_step_more(monkeypatch):
    codec = codec_for("openephys")
    messages = _probes(blocks=2, probes=3, channels=384)
    assert codec.decode_run(messages, 0).count == 384
    seen = _reads_of(codec, monkeypatch)
    codec._recent_reads.clear()  # as if no run had been read before
    run = codec.decode_run(messages, 384)
    assert isinstance(run, PlacedRun) and run.count == 384
    assert run.columns["stream"] == ["probe1"] * 384
    assert 384 <= sum(seen) < 2 * 384


def test_a_run_a_batch_end_cut_short_does_not_make_the_next_one_read_in_steps(monkeypatch):
    """Runs end at events (here every 4 blocks of 64 channels) and at batch ends: the next
    run is read in one step as long as the longest recent one, not from a short guess up."""
    codec = codec_for("openephys")
    run_of = [_data(k + 1, k % 64, (k // 64) * 16, n=16) for k in range(256)]
    event = oe.encode_ttl(
        message_num=999, stream="probe", source_node=100, sample_num=0, line=1, state=True
    )
    assert codec.decode_run([*run_of, event], 0).count == 256
    assert codec.decode_run(run_of[:40], 0).count == 40  # a batch's end cut this one
    seen = _reads_of(codec, monkeypatch)
    assert codec.decode_run([*run_of, event], 0).count == 256
    assert seen == [256]


def test_the_runs_after_events_are_read_with_the_run_before_them(monkeypatch):
    """Events end runs, and a read costs about the same however few headers it holds: the
    headers past an event are read with the run before it, and the calls that reach them
    read nothing. What each call gives is what it gives reading alone."""
    messages = []
    for block in range(12):
        messages += [_data(64 * block + c + 1, c, block * 16, n=16) for c in range(64)]
        if block % 4 == 3:  # a TTL after every fourth block, a spike after the sixth
            messages.append(
                oe.encode_ttl(
                    message_num=1000 + block,
                    stream="probe",
                    source_node=100,
                    sample_num=block * 16,
                    line=1,
                    state=True,
                )
            )
        if block == 5:
            messages.append(
                oe.encode_spike(
                    np.zeros((2, 8)),
                    message_num=2000,
                    stream="probe",
                    source_node=100,
                    electrode="TT1",
                    sample_num=block * 16,
                )
            )
    codec, alone = codec_for("openephys"), codec_for("openephys")
    assert codec.decode_run(messages, 0).count == 256
    assert codec.decode_run(messages, 0).count == 256  # asked again: read again
    seen = _reads_of(codec, monkeypatch)
    starts, i = [], 256
    while i < len(messages):
        run = codec.decode_run(messages, i)
        fresh = alone.decode_run(messages, i)
        assert (run is None) == (fresh is None), i
        if run is None:
            i += 1
            continue
        assert (run.seq, run.source_ns, run.columns, run.rows, run.cols) == (
            fresh.seq, fresh.source_ns, fresh.columns, fresh.rows, fresh.cols,
        )  # fmt: skip
        assert all(np.array_equal(a, b) for a, b in zip(run.arrays, fresh.arrays, strict=True))
        starts.append((i, run.count))
        i += run.count
    assert starts == [(257, 128), (386, 128), (515, 256)]
    assert seen == []  # the first call read them all


def test_headers_beyond_what_columns_read_go_by_the_regex_and_decode_alike():
    """A key at the top level the run does not read: the layout has no columns, and the
    regex path makes the same values decode() does."""
    codec = codec_for("openephys")
    messages = []
    for i in range(40):
        frames = _data(i + 1, i % 8, (i // 8) * 64)
        header = json.loads(frames[1])
        header["node"] = 104
        frames[1] = json.dumps(header, indent=2).encode()
        messages.append(frames)
    run = codec.decode_run(messages, 0)
    assert isinstance(run, PlacedRun) and run.count == 40
    assert _layout(codec).columns is None
    for k in (0, 9, 39):
        single = decode_or_reject(codec, 0, messages[k], None)[2]
        assert single is not None
        assert (run.seq[k], run.source_ns[k]) == (single.seq, single.source_ns)
        assert {key: v[k] for key, v in run.columns.items()} == single.columns


def test_a_long_stream_whose_numbers_gain_digits_stays_in_runs(monkeypatch):
    """Layouts change as the numbers grow (three probes: every length of message_num and
    sample_num, for each probe): far more than the frames kept, which give way in turn."""
    monkeypatch.setattr(json_columns, "MAX_FRAMES", 4)
    codec = codec_for("openephys")
    messages, seq = [], 0
    for b in (0, 1, 7, 8, 70, 71, 700, 701, 7000, 7001):
        for p in range(3):
            for c in range(16):
                seq += 1 if seq < 30 else 97
                messages.append(_data(seq, c, b * 16, n=16, stream=f"probe{p}"))
    start, runs = 0, 0
    while start < len(messages):
        run = codec.decode_run(messages, start)
        assert isinstance(run, PlacedRun) and run.count == 16, start
        start, runs = start + run.count, runs + 1
    assert runs == 30
    assert sum(map(len, _layout(codec).columns.frames.values())) <= 4
