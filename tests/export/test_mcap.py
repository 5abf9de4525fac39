"""The MCAP export read back with the mcap library's own reader, and imported back as runs.

Runs: the demo run of tests/analysis/runs.py (Open Ephys, ADZMQ, pyMultiVideo, Karabo recorded
from the real simulators) and a run of raw and request/reply streams written through the
store's RunWriter as an import writes it (multipart messages, empty frames, interleaved times).
"""

from __future__ import annotations

import base64
import json
import re
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
from tests.analysis.runs import Sent, record_demo_run

T0 = 1_700_000_000_000_000_000


@pytest.fixture(scope="module")
def sent(tmp_path_factory) -> Sent:
    ctx = zmq.Context()
    try:
        return record_demo_run(tmp_path_factory.mktemp("demo") / "runs", ctx)
    finally:
        ctx.destroy(linger=0)


@pytest.fixture(scope="module")
def demo(sent) -> Path:
    return sent.path


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


@pytest.mark.timeout(120)
def test_columns_carry_what_the_simulators_sent(sent, tmp_path):
    out = tmp_path / "demo.mcap"
    export(sent.path, out)
    _, _, bodies = decoded(out)
    camera = [b for _, b in bodies["/camera/columns"]]
    assert len(camera) == 6  # the STOP message carries no column
    for i, body in enumerate(camera):
        attrs = sent.camera.ndattr(i)
        assert body["seq"] == sent.camera.seq(i) == body["ndattr_Counter"]
        assert body["ndattr_Camera"] == "sim"
        assert body["ndattr_Exposure"] == pytest.approx(float(attrs["Exposure"]))
        assert body["timeStamp"] == pytest.approx(sent.camera.timestamp(i))
    assert [b["unique_id"] for _, b in bodies["/video/columns"]] == ["cam7"] * 5
    ephys = [b for _, b in bodies["/ephys/columns"]]
    assert [b["seq"] for b in ephys] == [sent.ephys.seq(i) for i in range(len(ephys))]
    for i, body in enumerate(ephys):
        kind, block, channel = sent.ephys.plan(i)
        if kind == "data":
            assert body["channel_num"] == channel
            assert body["sample_num"] == block * sent.ephys.n_samples


def test_field_names_are_plain_and_unique():
    from recorder.export.mcap_columns import field_names

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


# --- import ------------------------------------------------------------------------------


def stream_messages(run: Path, name: str) -> list[tuple[int, list[bytes]]]:
    with RunReader(run) as r:
        return [(m.recv_ns, [bytes(f) for f in m.frames]) for m in r.stream(name).messages()]


def runs_in(runs_dir: Path) -> list[Path]:
    return [p for p in runs_dir.iterdir() if p.is_dir()] if runs_dir.exists() else []


def assert_same_streams(original: Path, imported: Path, names: list[str] | None = None) -> None:
    with RunReader(original) as a, RunReader(imported) as b:
        names = names or list(a.streams)
        assert sorted(b.streams) == sorted(names)
        assert b.started_ns == a.started_ns and b.status == "complete"
        for name in names:
            sa, sb = a.stream(name), b.stream(name)
            for key in ("protocol", "endpoint", "socket_type", "role"):
                assert getattr(sb, key) == getattr(sa, key), (name, key)
            assert sb.attrs["options"] == sa.attrs["options"]
    for name in names:
        assert stream_messages(imported, name) == stream_messages(original, name), name


@pytest.mark.timeout(120)
def test_an_exported_run_imports_as_the_same_streams_and_messages(demo, tmp_path):
    from recorder.export.mcap_import import import_file

    out = tmp_path / "demo.mcap"
    export(demo, out)
    run = import_file(out, tmp_path / "runs")
    assert_same_streams(demo, run)
    with RunReader(run) as r, RunReader(demo) as d:
        assert r.name == d.name
        assert r.attrs["meta"]["imported_from"] == {
            "format": "mcap",
            "file": "demo.mcap",
            "run_id": d.run_id,
        }
        camera = r.stream("camera")  # decoded as recorded: typed images, columns
        assert camera.array_names() == d.stream("camera").array_names()
        np.testing.assert_array_equal(
            camera.column("ndattr.Exposure"), d.stream("camera").column("ndattr.Exposure")
        )


def test_raw_and_reqrep_streams_round_trip_and_a_window_imports_as_itself(tmp_path):
    from recorder.export.mcap_import import import_file

    run = write_mixed(tmp_path / "runs")
    whole, cut = tmp_path / "whole.mcap", tmp_path / "cut.mcap"
    export(run, whole)
    assert_same_streams(run, import_file(whole, tmp_path / "imported"))
    export(run, cut, streams=("service",), start=0.010, end=0.020)
    back = import_file(cut, tmp_path / "imported", name="a window")
    with RunReader(back) as r:
        assert list(r.streams) == ["service"] and r.name == "a window"
    assert stream_messages(back, "service") == stream_messages(run, "service")[10:20]


def write_foreign(path: Path) -> list[tuple[str, int, bytes]]:
    """An MCAP file as another program writes it: a JSON channel with a schema and a channel
    of no schema, with messages out of log-time order on one channel."""
    from mcap.writer import Writer

    sent = []
    with open(path, "wb") as f:
        w = Writer(f)
        w.start(profile="", library="someone else")
        schema = w.register_schema("pose", "jsonschema", b'{"type": "object"}')
        pose = w.register_channel("/robot/pose", "json", schema)
        blob = w.register_channel("blob", "application/octet-stream", 0)
        for i in range(20):
            data = json.dumps({"x": i, "y": -i}).encode()
            w.add_message(pose, log_time=T0 + i * 1000, data=data, publish_time=T0 + i * 1000)
            sent.append(("robot_pose", T0 + i * 1000, data))
            if i % 4 == 0:
                w.add_message(blob, log_time=T0 + i * 1000 + 1, data=bytes(i), publish_time=0)
                sent.append(("blob", T0 + i * 1000 + 1, bytes(i)))
        w.finish()
    return sent


def test_a_foreign_mcap_imports_as_raw_streams_on_loopback(tmp_path):
    from recorder.export.mcap_import import FOREIGN_PORT, import_file

    source = tmp_path / "robot.mcap"
    sent = write_foreign(source)
    run = import_file(source, tmp_path / "runs")
    with RunReader(run) as r:
        assert sorted(r.streams) == ["blob", "robot_pose"]
        pose, blob = r.stream("robot_pose"), r.stream("blob")
        assert r.name == "robot" and r.started_ns == T0
        # as a SUB recording a PUB: replay serves them from a PUB bound on these ports
        assert (pose.protocol, pose.socket_type, pose.role) == ("raw", "SUB", "connect")
        assert pose.endpoint == f"tcp://127.0.0.1:{FOREIGN_PORT}"
        assert blob.endpoint == f"tcp://127.0.0.1:{FOREIGN_PORT + 1}"
        assert pose.attrs["options"]["subscribe"] == [""]
        assert pose.attrs["options"]["mcap"] == {
            "topic": "/robot/pose",
            "message_encoding": "json",
            "schema": "pose",
            "schema_encoding": "jsonschema",
        }
    for name in ("robot_pose", "blob"):
        want = [(t, [d]) for n, t, d in sent if n == name]
        assert stream_messages(run, name) == want


@pytest.mark.timeout(60)
def test_an_imported_foreign_file_replays_over_zmq_byte_for_byte(tmp_path):
    from recorder.export.mcap_import import import_file
    from tests.helpers import free_port, local
    from tests.replayhelp import client, receive, replaying, wait_clients

    source = tmp_path / "robot.mcap"
    sent = [d for n, _, d in write_foreign(source) if n == "robot_pose"]
    run = import_file(source, tmp_path / "runs")
    port = free_port()
    ctx = zmq.Context()
    try:
        with replaying(
            run, streams=["robot_pose"], endpoints={"robot_pose": local(port)}, paused=True,
            max_speed=True,
        ) as rp:  # fmt: skip
            sock = client(ctx, zmq.SUB, local(port))
            wait_clients(rp)
            rp.resume()
            assert receive(sock, len(sent)) == [[d] for d in sent]
    finally:
        ctx.destroy(linger=0)


def assert_refused(source: Path, runs_dir: Path, match: str) -> None:
    from recorder.export.mcap_import import import_file

    with pytest.raises(ExportError, match=match):
        import_file(source, runs_dir)
    assert runs_in(runs_dir) == []
    assert list(runs_dir.glob("*.reserve")) == [] if runs_dir.exists() else True


def test_a_file_that_is_not_mcap_is_refused(tmp_path):
    (tmp_path / "notes.mcap").write_text("hello, I am not an MCAP file\n" * 10)
    assert_refused(tmp_path / "notes.mcap", tmp_path / "runs", "not a complete, readable MCAP")
    (tmp_path / "empty.mcap").write_bytes(b"")
    assert_refused(tmp_path / "empty.mcap", tmp_path / "runs", "MCAP")
    with pytest.raises(ExportError, match="cannot read"):
        from recorder.export.mcap_import import import_file

        import_file(tmp_path / "missing.mcap", tmp_path / "runs")


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.99])
def test_a_truncated_mcap_is_refused_and_leaves_no_run(tmp_path, keep):
    run = write_mixed(tmp_path / "source", n=200)
    whole = tmp_path / "whole.mcap"
    export(run, whole)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: int(len(data) * keep)])
    assert_refused(cut, tmp_path / "runs", "truncated")


def test_a_damaged_chunk_is_refused_and_the_half_written_run_removed(tmp_path):
    with RunImport(tmp_path / "source", started_ns=T0) as imp:
        big = imp.stream(ImportedStream("big", "raw", "tcp://127.0.0.1:5555", "SUB", "connect"))
        for i in range(40):  # 8 MB: the export has several chunks
            big.append(T0 + i, [bytes([i]) * 200_000])
    whole = tmp_path / "whole.mcap"
    export(imp.path, whole)
    data = bytearray(whole.read_bytes())
    with open(whole, "rb") as f:
        chunks = make_reader(f).get_summary().chunk_indexes
    assert len(chunks) > 1
    chunk = chunks[-1]  # the messages of the first chunks are written by then
    at = chunk.chunk_start_offset + chunk.chunk_length // 2
    data[at : at + 64] = bytes(64)  # inside a chunk: its CRC no longer matches
    bad = tmp_path / "bad.mcap"
    bad.write_bytes(bytes(data))
    assert_refused(bad, tmp_path / "runs", "damaged")


def test_raw_image_encodings():
    from recorder.export.mcap_foxglove import raw_image
    from recorder.protocols.base import BulkFrame

    mono = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert raw_image(BulkFrame(1, "image", mono, dims=("y", "x")))[:3] == (4, 3, "mono8")
    big = np.arange(12, dtype=">u2").reshape(3, 4)  # shown little endian, same values
    w, h, enc, px = raw_image(BulkFrame(1, "image", big, dims=("y", "x")))
    assert (w, h, enc, px.dtype.str) == (4, 3, "mono16", "<u2")
    np.testing.assert_array_equal(px, big)
    ints = np.arange(12, dtype=np.int32).reshape(3, 4)
    assert raw_image(BulkFrame(1, "image", ints, dims=("y", "x")))[2] == "32FC1"
    line = np.arange(5, dtype=np.uint8)
    assert raw_image(BulkFrame(1, "image", line, dims=("x",)))[:3] == (5, 1, "mono8")
    rgb1 = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)  # ADZMQ RGB1: (y, x, color)
    w, h, enc, px = raw_image(BulkFrame(1, "image", rgb1, dims=("y", "x", "color")))
    assert (w, h, enc) == (4, 2, "rgb8")
    rgb3 = np.ascontiguousarray(np.moveaxis(rgb1, 2, 0))  # RGB3: (color, y, x)
    w, h, enc, px = raw_image(BulkFrame(1, "image", rgb3, dims=("color", "y", "x")))
    np.testing.assert_array_equal(px, rgb1)
    deep = np.zeros((2, 4, 3), dtype=np.uint16)  # 16-bit color: no RawImage for it
    assert raw_image(BulkFrame(1, "image", deep, dims=("y", "x", "color"))) is None
    assert raw_image(BulkFrame(1, "image", rgb1, dims=None)) is None


@pytest.mark.timeout(120)
def test_memory_stays_flat_in_run_length(tmp_path):
    import tracemalloc

    def run_of(n: int) -> Path:
        with RunImport(tmp_path / f"runs{n}", started_ns=T0) as imp:
            big = imp.stream(ImportedStream("big", "raw", "tcp://127.0.0.1:1", "SUB", "connect"))
            small = imp.stream(
                ImportedStream("small", "raw", "tcp://127.0.0.1:2", "SUB", "connect")
            )
            for i in range(n):
                big.append(T0 + i * 1000, [bytes([i % 256]) * 100_000])
                small.append(T0 + i * 1000 + 1, [b"%d" % i])
        return imp.path

    peaks = {}
    for n in (100, 400):  # 10 MB and 40 MB of frames
        run = run_of(n)
        tracemalloc.start()
        try:
            export(run, tmp_path / f"{n}.mcap")
            peaks[n] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peaks[400] < 1.5 * peaks[100] + (2 << 20), peaks
    assert peaks[400] < 25e6, peaks  # well under the 40 MB the run holds


def test_equal_receive_times_keep_each_streams_order(tmp_path):
    from recorder.export.mcap_import import import_file

    with RunImport(tmp_path / "runs", started_ns=T0) as imp:
        a = imp.stream(ImportedStream("a", "raw", "tcp://127.0.0.1:1", "SUB", "connect"))
        b = imp.stream(ImportedStream("b", "raw", "tcp://127.0.0.1:2", "PULL", "bind"))
        for i in range(30):  # three messages per stream at each time
            a.append(T0 + i // 3, [b"a%d" % i])
            b.append(T0 + i // 3, [b"b%d" % i, b"!"])
    out = tmp_path / "ties.mcap"
    export(imp.path, out)
    assert_raw_equal(out, imp.path, {"a": (0, 30), "b": (0, 30)})
    assert_same_streams(imp.path, import_file(out, tmp_path / "imported"))


def test_a_channel_that_claims_our_framing_but_does_not_fit_is_refused(tmp_path):
    from mcap.writer import Writer

    source = tmp_path / "fake.mcap"
    with open(source, "wb") as f:
        w = Writer(f)
        w.start()
        meta = {fr.KIND: "raw", fr.FRAMING_KEY: fr.FRAMING, fr.STREAM: "s", fr.PROTOCOL: "raw"}
        meta |= {fr.ENDPOINT: "tcp://127.0.0.1:1", fr.SOCKET_TYPE: "SUB", fr.ROLE: "connect"}
        ch = w.register_channel("/s/raw", fr.MESSAGE_ENCODING, 0, meta)
        w.add_message(ch, log_time=T0, data=fr.pack([b"fine"]), publish_time=T0)
        w.add_message(ch, log_time=T0 + 1, data=b"\x05\x00\x00\x00 not framed", publish_time=T0)
        w.finish()
    assert_refused(source, tmp_path / "runs", "channel '/s/raw', message at log time")
    meta[fr.PROTOCOL] = "telepathy"
    with open(source, "wb") as f:
        w = Writer(f)
        w.start()
        w.register_channel("/s/raw", fr.MESSAGE_ENCODING, 0, meta)
        w.finish()
    assert_refused(source, tmp_path / "runs", "protocol 'telepathy'")


def test_progress_rises_to_the_end(tmp_path):
    run = write_mixed(tmp_path / "runs", n=300)
    seen: list[float] = []
    export_run(ExportRequest(run, "mcap", tmp_path / "p.mcap"), seen.append)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) > 10


def test_without_views_only_the_raw_channels_are_written(tmp_path):
    from recorder.export.base import no_progress, plan
    from recorder.export.mcap import McapTarget

    run = write_mixed(tmp_path / "runs", n=5)
    target, out = McapTarget(views=False), tmp_path / "raw.mcap"
    with RunReader(run) as r:
        target.write(plan(r, target, ExportRequest(run, "mcap", out)), out, no_progress)
    channels, _, _ = read_channels(out)
    assert sorted(channels) == ["/service/raw", "/wire/raw"]
    assert_raw_equal(out, run, {"wire": (0, 5), "service": (0, 5)})


@pytest.mark.timeout(120)
def test_the_reading_example_in_the_docs_runs(demo, tmp_path, monkeypatch):
    doc = Path(__file__).resolve().parents[2] / "docs" / "export" / "mcap.md"
    (code,) = re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)
    export(demo, tmp_path / "run.mcap")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, str(doc), "exec"), scope)
    with RunReader(demo) as r:
        last = list(r.stream("camera").messages())[-1]
    assert scope["parts"] == [bytes(f) for f in last.frames]


def test_an_unindexed_foreign_file_imports_in_file_order_with_times_that_never_go_back(tmp_path):
    from mcap.writer import IndexType, Writer

    from recorder.export.mcap_import import import_file

    source = tmp_path / "stream.mcap"
    with open(source, "wb") as f:
        w = Writer(
            f, use_chunking=False, index_types=IndexType.NONE, use_statistics=False,
            repeat_channels=False, repeat_schemas=False,
        )  # fmt: skip
        w.start()
        ch = w.register_channel("/t", "cbor", 0)
        for t in (T0 + 5, T0 + 3, T0 + 9):  # the second is logged earlier than the first
            w.add_message(ch, log_time=t, data=b"%d" % t, publish_time=t)
        w.finish()
    run = import_file(source, tmp_path / "runs")
    assert stream_messages(run, "t") == [
        (T0 + 5, [b"%d" % (T0 + 5)]),
        (T0 + 5, [b"%d" % (T0 + 3)]),
        (T0 + 9, [b"%d" % (T0 + 9)]),
    ]
    with RunReader(run) as r:
        assert r.started_ns == T0 + 5


def test_column_fragments_are_json_and_leave_missing_values_out():
    from recorder.analysis.columns import INT_MISSING
    from recorder.export.mcap_columns import _fragments

    def obj(parts):
        return json.loads("{" + ",".join(p for p in parts if p is not None) + "}")

    floats = _fragments("f", np.array([1.5, np.nan, np.inf, 1e300, -0.0]), float("nan"))
    assert [p is None for p in floats] == [False, True, True, False, False]
    assert obj(floats[:1]) == {"f": 1.5} and obj(floats[3:4]) == {"f": 1e300}
    ints = _fragments("i", np.array([3, INT_MISSING, -7], dtype=np.int64), INT_MISSING)
    assert [obj([p]) if p else None for p in ints] == [{"i": 3}, None, {"i": -7}]
    texts = np.array(['say "hi"', "", "caf\u00e9 \\ \n", "\ud800x"], dtype=object)
    got = _fragments("s", texts, "")
    assert got[1] is None
    assert [obj([p])["s"] for p in got if p] == ['say "hi"', "caf\u00e9 \\ \n", "\ud800x"]
    bools = _fragments("b", np.array([True, False]), None)
    assert [obj([p]) for p in bools] == [{"b": True}, {"b": False}]


@pytest.mark.timeout(120)
def test_the_mcap_cli_finds_nothing_wrong(demo, tmp_path):
    import shutil
    import subprocess

    cli = shutil.which("mcap")  # the Go binary; not a pip package, so mostly absent
    if cli is None:
        pytest.skip("the mcap CLI is not installed")
    out = tmp_path / "demo.mcap"
    export(demo, out)
    proc = subprocess.run([cli, "doctor", str(out)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
