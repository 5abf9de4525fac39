"""The MCAP export read back with the mcap library's own reader, and imported back as runs.

Runs: the demo run of tests/analysis/runs.py (Open Ephys, ADZMQ, pyMultiVideo, Karabo recorded
from the real simulators) and a run of raw and request/reply streams written through the
store's RunWriter as an import writes it (multipart messages, empty frames, interleaved times).
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import zmq
from mcap.reader import make_reader

from recorder.analysis import columns
from recorder.errors import ExportError
from recorder.export import mcap_framing as fr
from recorder.export.base import ExportRequest, export_run
from recorder.export.importing import ImportedStream, RunImport
from recorder.protocols.reqrep import pack_pair
from recorder.store.reader import RunReader
from tests.analysis.runs import record_demo_run

T0 = 1_700_000_000_000_000_000


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    ctx = zmq.Context()
    try:
        return record_demo_run(tmp_path_factory.mktemp("demo") / "runs", ctx).path
    finally:
        ctx.destroy(linger=0)


def raw_messages(i: int) -> list[bytes]:
    return [b"topic", b"", bytes([i % 256]) * (i * 7 % 300)]


def reqrep_messages(i: int) -> list[bytes]:
    return pack_pair([b"get", str(i).encode()], [json.dumps({"i": i}).encode()])


def write_mixed(runs_dir: Path, n: int = 40, *, close: bool = True) -> Path:
    """A run of a raw and a request/reply stream, messages 1 ms apart, interleaved."""
    imp = RunImport(runs_dir, started_ns=T0, name="mixed")
    raw = imp.stream(ImportedStream("wire", "raw", "tcp://127.0.0.1:5555", "SUB", "connect"))
    rr = imp.stream(
        ImportedStream("service", "reqrep", "tcp://127.0.0.1:5556", "REQ", "connect", {"a": 1})
    )
    for i in range(n):
        raw.append(T0 + i * 1_000_000, raw_messages(i))
        rr.append(T0 + i * 1_000_000 + 500_000, reqrep_messages(i))
    if close:
        imp.close()
    else:
        raw.drain()
        rr.drain()
        imp.run.flush()
    return imp.path


def export(run: Path, out: Path, **kw):
    return export_run(ExportRequest(run, "mcap", out, **kw))


def read_channels(path: Path) -> tuple[dict, dict, list]:
    """(channel by topic, messages by topic, metadata records) of an MCAP file."""
    channels: dict = {}
    messages: dict = defaultdict(list)
    with open(path, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        assert summary is not None
        for channel in summary.channels.values():
            channels[channel.topic] = channel
        for _schema, channel, message in reader.iter_messages(log_time_order=False):
            messages[channel.topic].append(message)
        metadata = list(reader.iter_metadata())
    return channels, messages, metadata


def assert_raw_equal(path: Path, run: Path, windows: dict[str, tuple[int, int]]) -> None:
    """Every raw channel's messages are the run's messages [lo, hi), frame for frame."""
    channels, messages, _ = read_channels(path)
    raw = {t: c for t, c in channels.items() if c.metadata.get(fr.KIND) == fr.KIND_RAW}
    assert sorted(c.metadata[fr.STREAM] for c in raw.values()) == sorted(windows)
    with RunReader(run) as r:
        for topic, channel in raw.items():
            stream = r.stream(channel.metadata[fr.STREAM])
            assert channel.message_encoding == fr.MESSAGE_ENCODING
            assert channel.metadata[fr.PROTOCOL] == stream.protocol
            assert channel.metadata[fr.ENDPOINT] == stream.endpoint
            assert channel.metadata[fr.SOCKET_TYPE] == stream.socket_type
            assert channel.metadata[fr.ROLE] == stream.role
            assert json.loads(channel.metadata[fr.OPTIONS]) == stream.attrs["options"]
            lo, hi = windows[stream.name]
            want = list(stream.messages(lo, hi))
            got = messages.get(topic, [])
            assert len(got) == len(want) == hi - lo
            for g, w in zip(got, want, strict=True):
                assert fr.unpack(g.data) == [bytes(f) for f in w.frames]
                assert g.log_time == w.recv_ns
                assert g.publish_time == (w.source_ns if w.source_ns >= 0 else w.recv_ns)
                assert g.sequence == (w.seq if 0 <= w.seq < 2**32 else 0)


def all_windows(run: Path) -> dict[str, tuple[int, int]]:
    with RunReader(run) as r:
        return {name: (0, s.n_messages) for name, s in r.streams.items()}


@pytest.mark.timeout(120)
def test_every_stream_of_the_demo_run_is_a_channel_of_its_wire_bytes(demo, tmp_path):
    out = tmp_path / "demo.mcap"
    result = export(demo, out)
    assert result.partial is False and result.skipped == {}
    windows = all_windows(demo)
    assert sorted(result.streams) == sorted(windows)
    assert result.messages == sum(hi for _, hi in windows.values())
    assert_raw_equal(out, demo, windows)


def decoded(path: Path) -> tuple[dict, dict, dict]:
    """(channel by topic, schema by topic, [(log_time, JSON body)] by topic) of the JSON
    channels."""
    channels, schemas, bodies = {}, {}, defaultdict(list)
    with open(path, "rb") as f:
        for schema, channel, message in make_reader(f).iter_messages(log_time_order=False):
            if channel.message_encoding == "json":
                channels[channel.topic], schemas[channel.topic] = channel, schema
                bodies[channel.topic].append((message.log_time, json.loads(message.data)))
    return channels, schemas, bodies


@pytest.mark.timeout(120)
def test_images_are_foxglove_raw_images_of_the_recorded_pixels(demo, tmp_path):
    out = tmp_path / "demo.mcap"
    export(demo, out)
    channels, schemas, bodies = decoded(out)
    with RunReader(demo) as r:
        for name, encoding in (("camera", "mono16"), ("video", "mono8")):
            topic = f"/{name}/image"
            assert schemas[topic].name == "foxglove.RawImage"
            assert schemas[topic].encoding == "jsonschema"
            assert channels[topic].metadata[fr.STREAM] == name
            stream = r.stream(name)
            images = stream.message_arrays("image")
            recv = stream.column("recv_ns")
            assert len(bodies[topic]) == len(images) > 0
            for (log_time, body), (m, image) in zip(bodies[topic], images, strict=True):
                assert log_time == recv[m]
                assert (body["height"], body["width"]) == image.shape
                assert body["encoding"] == encoding
                assert body["step"] == image.shape[1] * image.dtype.itemsize
                assert body["frame_id"] == name
                assert body["timestamp"]["sec"] * 10**9 + body["timestamp"]["nsec"] == recv[m]
                pixels = np.frombuffer(base64.b64decode(body["data"]), dtype=image.dtype)
                np.testing.assert_array_equal(pixels.reshape(image.shape), image)


@pytest.mark.timeout(120)
def test_decoded_columns_are_json_messages_with_the_stored_values(demo, tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    out = tmp_path / "demo.mcap"
    export(demo, out)
    channels, schemas, bodies = decoded(out)
    with RunReader(demo) as r:
        for name in ("bridge", "camera", "ephys", "video"):
            topic = f"/{name}/columns"
            stream = r.stream(name)
            fields = json.loads(channels[topic].metadata[fr.COLUMN_FIELDS])
            assert sorted(fields) == sorted(stream.attrs["columns"])
            schema = json.loads(schemas[topic].data)
            recv = list(stream.column("recv_ns"))
            seen = 0
            for log_time, body in bodies[topic]:
                jsonschema.validate(body, schema)
                m = recv.index(log_time)
                for column, field in fields.items():
                    stored = stream.column(column, m, m + 1)[0]
                    missing = columns.missing_of(stream, column, np.asarray(stored).dtype)
                    if field not in body:
                        assert stored == missing or stored != stored, (name, column)
                    elif isinstance(stored, float | np.floating):
                        assert body[field] == pytest.approx(float(stored), nan_ok=True)
                        seen += 1
                    else:
                        assert body[field] == stored, (name, column, m)
                        seen += 1
            assert seen > 0, name
    assert {
        "ndattr_Exposure",
        "ndattr_Camera",
    } <= set(json.loads(channels["/camera/columns"].metadata[fr.COLUMN_FIELDS]).values())


def test_field_names_are_plain_and_unique():
    from recorder.export.mcap_foxglove import field_names

    got = field_names(["ndattr.X", "ndattr_X", "seq", "A/B:c.d", "1st", ""])
    assert got == {
        "ndattr.X": "ndattr_X",
        "ndattr_X": "ndattr_X_2",
        "seq": "seq_2",
        "A/B:c.d": "A_B_c_d",
        "1st": "_1st",
        "": "column",
    }


def test_raw_and_reqrep_streams_keep_every_frame(tmp_path):
    run = write_mixed(tmp_path / "runs")
    out = tmp_path / "mixed.mcap"
    export(run, out)
    assert_raw_equal(out, run, {"wire": (0, 40), "service": (0, 40)})
    _, messages, _ = read_channels(out)
    assert fr.unpack(messages["/wire/raw"][3].data) == raw_messages(3)


def test_messages_are_in_receive_time_order_across_streams(tmp_path):
    run = write_mixed(tmp_path / "runs")
    out = tmp_path / "mixed.mcap"
    export(run, out)
    with open(out, "rb") as f:
        reader = make_reader(f)
        got = [(c.topic, m.log_time) for _, c, m in reader.iter_messages(log_time_order=False)]
    times = [t for _, t in got]
    assert times == sorted(times)
    assert len([t for t in got if t[0].endswith("/raw")]) == 80


def test_the_file_says_which_run_streams_and_window_it_holds(tmp_path):
    run = write_mixed(tmp_path / "runs")
    out = tmp_path / "mixed.mcap"
    export(run, out, streams=("service",), start=0.010, end=0.020)
    _, _, metadata = read_channels(out)
    (record,) = [m for m in metadata if m.name == fr.RUN_METADATA]
    prov = record.metadata
    with RunReader(run) as r:
        assert prov["run_id"] == r.run_id
    assert prov["run_name"] == "mixed"
    assert json.loads(prov["streams"]) == ["service"]
    assert json.loads(prov["start_s"]) == 0.010 and json.loads(prov["end_s"]) == 0.020
    assert json.loads(prov["messages"]) == {"service": [10, 20]}
    assert json.loads(prov["partial"]) is False
    assert prov["recorder_version"]


def test_window_and_stream_selection(tmp_path):
    run = write_mixed(tmp_path / "runs")
    out = tmp_path / "cut.mcap"
    result = export(run, out, streams=("wire",), start=0.005, end=0.0125)
    assert result.streams == ["wire"] and result.messages == 8
    assert_raw_equal(out, run, {"wire": (5, 13)})


def test_a_run_still_recording_exports_what_was_committed(tmp_path):
    run = write_mixed(tmp_path / "runs", n=12, close=False)
    out = tmp_path / "live.mcap"
    result = export(run, out)
    assert result.partial is True and result.messages == 24
    assert_raw_equal(out, run, {"wire": (0, 12), "service": (0, 12)})
    _, _, metadata = read_channels(out)
    assert json.loads(metadata[0].metadata["partial"]) is True


def test_an_unknown_stream_is_refused_and_no_file_is_left(tmp_path):
    run = write_mixed(tmp_path / "runs", n=3)
    out = tmp_path / "x.mcap"
    with pytest.raises(Exception, match="nope"):
        export(run, out, streams=("nope",))
    assert list(tmp_path.glob("*.mcap*")) == [] and list(tmp_path.glob(".x.mcap*")) == []


def test_mcap_can_hold_any_stream(tmp_path):
    from recorder.export.mcap import TARGET

    run = write_mixed(tmp_path / "runs", n=3)
    with RunReader(run) as r:
        assert all(TARGET.cannot_hold(s) is None for s in r.streams.values())
    assert TARGET.name == "mcap" and TARGET.suffix == ".mcap"


def test_framing_refuses_bytes_that_are_not_a_framed_message():
    assert fr.unpack(fr.pack([b"a", b"", b"xyz"])) == [b"a", b"", b"xyz"]
    for bad in (b"", b"\x02\x00\x00\x00", fr.pack([b"abc"])[:-1], fr.pack([b"abc"]) + b"!"):
        with pytest.raises(ExportError, match="zmq-multipart"):
            fr.unpack(bad)
