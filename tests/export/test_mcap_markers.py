"""A run's markers survive an MCAP export and `recorder import`: the `/markers` channel becomes
the imported run's markers again (docs/format.md), not a stream; a marker message that is not
one refuses the file and leaves no run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcap.writer import Writer

from recorder.errors import ExportError
from recorder.export import mcap_framing as fr
from recorder.export.base import ExportRequest, export_run
from recorder.export.mcap_import import import_file
from recorder.store.reader import RunReader
from recorder.store.run_writer import RunWriter

T0 = 1_700_000_000_000_000_000


def _wire_run(runs: Path, name: str) -> RunWriter:
    """An open run with one raw stream `wire` of 20 messages, 1 ms apart from T0."""
    w = RunWriter(runs, name=name, started_ns=T0)
    s = w.add_stream(
        "wire", protocol="raw", endpoint="tcp://127.0.0.1:5555", socket_type="SUB",
        role="connect",
    )  # fmt: skip
    for i in range(20):
        s.append(T0 + i * 1_000_000, [b"m%d" % i])
    return w


def _run_with_markers(runs: Path) -> Path:
    w = _wire_run(runs, "marked")
    w.add_marker("lights off", recv_ns=T0 + 2_500_000, author="ada")
    w.add_marker("stim \u2192 on", recv_ns=T0 + 9_000_000)  # no author, non-ASCII text
    w.add_marker("same time", recv_ns=T0 + 9_000_000, author="bob")
    w.close()
    return w.path


@pytest.mark.timeout(60)
def test_markers_round_trip_through_mcap(tmp_path):
    run = _run_with_markers(tmp_path / "runs")
    out = tmp_path / "marked.mcap"
    export_run(ExportRequest(run, "mcap", out))
    back = import_file(out, tmp_path / "imported")
    with RunReader(run) as a, RunReader(back) as b:
        assert len(a.markers()) == 3
        assert b.markers() == a.markers()
        assert list(b.streams) == ["wire"], "the markers channel is no stream"


@pytest.mark.timeout(60)
def test_a_window_imports_the_markers_inside_it(tmp_path):
    run = _run_with_markers(tmp_path / "runs")
    out = tmp_path / "cut.mcap"
    export_run(ExportRequest(run, "mcap", out, start=0.005, end=0.015))
    with RunReader(run) as a, RunReader(import_file(out, tmp_path / "imported")) as b:
        assert [m["text"] for m in b.markers()] == ["stim \u2192 on", "same time"]
        assert b.markers() == a.markers()[1:]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "body", [b"not json", b"[1]", b'{"author": "x"}', b'{"text": "t", "recv_ns": "soon"}']
)
def test_a_marker_that_is_not_one_refuses_the_file(tmp_path, body):
    source = tmp_path / "bad.mcap"
    with open(source, "wb") as f:
        w = Writer(f)
        w.start()
        schema = w.register_schema("zmq_recorder.Marker", "jsonschema", json.dumps({}).encode())
        ch = w.register_channel(
            "/markers", "json", schema_id=schema, metadata={fr.KIND: fr.KIND_MARKERS}
        )
        w.add_message(ch, log_time=T0, data=body, publish_time=T0)
        w.finish()
    runs = tmp_path / "runs"
    with pytest.raises(ExportError, match="marker"):
        import_file(source, runs)
    assert not runs.exists() or not any(runs.iterdir()), "no run left behind"


@pytest.mark.timeout(60)
def test_pauses_round_trip_through_mcap(tmp_path):
    w = _wire_run(tmp_path / "runs", "paused")
    w.set_pauses([
        {"start_ns": T0 + 3_000_000, "end_ns": T0 + 5_500_000, "messages": 2},
        {"start_ns": T0 + 12_000_000, "end_ns": T0 + 12_500_000, "messages": 0},
    ])  # fmt: skip
    w.close()
    out = tmp_path / "paused.mcap"
    export_run(ExportRequest(w.path, "mcap", out))
    with RunReader(w.path) as a, RunReader(import_file(out, tmp_path / "imported")) as b:
        assert len(a.pauses()) == 2
        assert b.pauses() == a.pauses()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "text",
    ["not json", "{}", '[{"start_ns": 1}]', '[{"start_ns": true, "end_ns": 2, "messages": 0}]'],
)
def test_a_pauses_record_that_is_not_one_refuses_the_file(tmp_path, text):
    source = tmp_path / "bad.mcap"
    with open(source, "wb") as f:
        w = Writer(f)
        w.start()
        w.add_metadata(fr.PAUSES_METADATA, {"pauses": text})
        w.finish()
    runs = tmp_path / "runs"
    with pytest.raises(ExportError, match="pauses"):
        import_file(source, runs)
    assert not runs.exists() or not any(runs.iterdir()), "no run left behind"
