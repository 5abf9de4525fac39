"""The contracts (recorder/contracts.py) say what crosses rooms; these tests hold the producers
to them at run time (mypy checks the code against them) and tie the API's response models to
them, so a key added on one side cannot silently miss the other."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from recorder import contracts as c
from recorder.db.tables import jobs
from recorder.manager.worker import Rates, record_stats, replay_stats
from recorder.protocols.base import BulkFrame, Decoded
from recorder.recording.recording import Recording, SourceSpec
from recorder.store.reader import RunReader
from recorder.store.run_writer import RunWriter
from recorder.web import api
from recorder.web import models as m
from recorder.web.runs import RunDetail
from tests.replayhelp import make_run, replaying


def keys(td: type) -> set[str]:
    return set(td.__required_keys__) | set(td.__optional_keys__)


def fields(model: type) -> set[str]:
    return set(model.model_fields)


def test_stored_attributes_and_summary_have_the_contracts_keys(tmp_path):
    with RunWriter(tmp_path, name="contracts") as run:
        s = run.add_stream("s", protocol="raw", endpoint="tcp://127.0.0.1:1", socket_type="SUB",
                           role="connect")  # fmt: skip
        img = np.arange(6, dtype="<u2").reshape(2, 3)
        samples = np.arange(4, dtype=np.float32)
        decoded = Decoded(
            seq=1,
            bulk=[
                BulkFrame(1, "image", img),
                BulkFrame(2, "wave", samples, row=0, column=0, sample_rate=10.0),
            ],
            columns={"n": 1},
        )
        s.append(1, [b"head", img.tobytes(), samples.tobytes()], decoded)
        s.append(2, [b"bad"], None, "not a message")
        assert set(s.stats()) == keys(c.StreamStats)
        run.add_marker("m")  # the optional attributes a recording adds as it goes
        run.set_pauses([{"start_ns": 1, "end_ns": 2, "messages": 0}])
        run.set_attr("trigger", {"at_ns": 1, "rule": "manual"})
    root = zarr.open_group(run.path, mode="r")
    assert set(root.attrs) == keys(c.RunAttrs)
    stream_attrs = dict(root["streams/s"].attrs)
    assert set(stream_attrs) <= keys(c.StreamAttrs)
    assert set(stream_attrs) >= c.StreamAttrs.__required_keys__
    assert set(stream_attrs["committed"]) == keys(c.Committed)
    assert set(stream_attrs["stats"]) == keys(c.StreamStats)
    assert len(stream_attrs["segments"]) == 2
    for seg in stream_attrs["segments"]:
        assert c.SegmentInfo.__required_keys__ <= set(seg) <= keys(c.SegmentInfo)
    with RunReader(run.path) as reader:
        summary = reader.summary()
        assert set(reader.annotations()) <= keys(c.Annotations)
    assert set(summary) == keys(c.RunSummary)
    assert [set(st) for st in summary["streams"]] == [keys(c.StreamSummary)]


@pytest.mark.timeout(60)
def test_live_stats_have_the_contracts_keys(tmp_path):
    rec = Recording(tmp_path, [SourceSpec(endpoint="tcp://127.0.0.1:*", bind=True)], count=1)
    rec.start()
    try:
        assert set(rec.stats()) == keys(c.RecordingStats)
        stats = record_stats(rec, Rates())
        assert set(stats) == keys(c.RecordJobStats)
        assert [set(s) for s in stats["streams"]] == [keys(c.RecordStreamStats)]
    finally:
        rec.stop()
        rec.finish()
    path = make_run(tmp_path / "replays", [0.0, 1.0])
    with replaying(path, paused=True) as rp:
        assert set(rp.status()) == keys(c.ReplayStatus)
        assert set(replay_stats(rp, {}, [], None)) == keys(c.ReplayJobStats)


def test_job_rows_are_the_jobs_table():
    assert {col.name for col in jobs.columns} == keys(c.JobRow)


# -- the API's response models show the contracts ------------------------------------------------


def test_stream_and_run_models_show_the_summary():
    assert fields(m.StreamOut) == keys(c.StreamSummary)
    assert fields(m.Note) == keys(c.Note)
    # the API leaves out where the run lives and who wrote it
    assert keys(RunDetail) - fields(m.RunOut) == {"host", "pid", "meta", "path"}
    assert fields(m.RunOut) <= keys(RunDetail)


def test_job_models_show_job_rows_and_their_stats():
    hidden = {"manager", "stop_requested_ns"}  # what api._job_out leaves out
    assert fields(m.JobOut) == keys(c.JobRow) - hidden
    recording = fields(m.RecordingOut) - fields(m.JobOut) - {"recording_state"}  # stats.state
    assert recording == set(api._RECORD_STATS) <= keys(c.RecordJobStats)
    replay = fields(m.ReplayOut) - fields(m.JobOut)
    assert replay - {"endpoints"} == set(api._REPLAY_STATS) <= keys(c.ReplayJobStats)
