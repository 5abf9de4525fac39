"""`open_run`: a run's metadata from its JSON files, the real reader (zarr) only when needed,
and the same answers as `RunReader` either way."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from recorder.errors import RunNotFound, StoreError, StreamNotFound
from recorder.store.reader import RunReader
from recorder.store.run_meta import LazyRun, open_run
from recorder.store.run_writer import RunWriter
from tests.replayhelp import make_run

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


def _two_streams(runs: Path) -> Path:
    return make_run(
        runs,
        [0.0, 1.0, 2.0, 3.0],
        streams={"cam": ("SUB", "connect"), "ephys": ("PULL", "connect")},
        owner=["cam", "ephys", "cam", "ephys"],
    )


def test_metadata_is_read_without_opening_the_store(tmp_path):
    path = _two_streams(tmp_path)
    lazy = open_run(path)
    assert isinstance(lazy, LazyRun)
    with RunReader(path) as real:
        assert (lazy.run_id, lazy.name, lazy.status, lazy.started_ns) == (
            real.run_id, real.name, real.status, real.started_ns,
        )  # fmt: skip
        assert lazy.pauses() == real.pauses() and lazy.markers() == real.markers()
        assert lazy.attrs == real.attrs and lazy.path == real.path
        assert list(lazy.streams) == list(real.streams) == ["cam", "ephys"]
        for name in real.streams:
            mine, theirs = lazy.stream(name), real.stream(name)
            for field in ("name", "attrs", "protocol", "endpoint", "socket_type", "role", "stats"):
                assert getattr(mine, field) == getattr(theirs, field), field
    assert not lazy.opened


def test_messages_open_the_store_and_read_as_the_reader_does(tmp_path):
    path = _two_streams(tmp_path)
    lazy = open_run(path)
    stream = lazy.stream("ephys")
    assert stream.n_messages == 2  # not in the JSON answers: the real reader is opened
    assert lazy.opened
    with RunReader(path) as real:
        want = [(m.stream, m.index, [bytes(f) for f in m.frames]) for m in real.messages()]
    got = [(m.stream, m.index, [bytes(f) for f in m.frames]) for m in lazy.messages()]
    assert got == want
    lazy.close()


def test_a_missing_stream_or_run_is_refused_as_by_the_reader(tmp_path):
    path = _two_streams(tmp_path)
    with pytest.raises(StreamNotFound, match="no stream 'nope'"):
        open_run(path).stream("nope")
    with pytest.raises(RunNotFound):
        open_run(tmp_path / "20200101-000000-000000")


def test_another_format_version_is_opened_by_the_reader(tmp_path):
    golden = next(p for p in (GOLDEN / "format1").iterdir() if p.is_dir())
    run = open_run(golden)
    assert isinstance(run, RunReader)
    run.close()


def test_metadata_that_does_not_parse_goes_to_the_reader_and_its_errors(tmp_path):
    path = _two_streams(tmp_path)
    (path / "streams" / "cam" / "zarr.json").write_text("{not json")
    with pytest.raises(Exception) as theirs:
        RunReader(path)
    with pytest.raises(type(theirs.value)):
        open_run(path)
    other = _two_streams(tmp_path / "b")
    node = json.loads((other / "zarr.json").read_text())
    node["attributes"]["format"] = "something-else"
    (other / "zarr.json").write_text(json.dumps(node))
    with pytest.raises(StoreError, match="not a zmq-recorder run"):
        open_run(other)


def test_once_opened_every_answer_comes_from_the_reader_and_follows_refresh(tmp_path):
    """replay --follow: a run still being recorded is refreshed; its status and counts must be
    the new ones, not the JSON read at the start."""
    w = RunWriter(tmp_path, name="live")
    s = w.add_stream("main", protocol="raw", endpoint="tcp://127.0.0.1:5999",
                     socket_type="PULL", role="connect")  # fmt: skip
    s.append(w.started_ns, [b"0"])
    w.flush()
    lazy = open_run(w.path)
    assert lazy.status == "recording"
    stream = lazy.stream("main")
    assert stream.n_messages == 1
    s.append(w.started_ns + 1000, [b"1"])
    w.close()
    lazy.refresh()
    assert lazy.status == "complete"
    assert stream.n_messages == 2 and stream.stats["messages"] == 2
    lazy.close()
    shutil.rmtree(w.path)
