"""Recording and replay limits: one check per kind, spelled for the caller's front end, and the
same bounds in the API's schema."""

from __future__ import annotations

import pytest

from recorder import limits
from recorder.errors import UsageError
from recorder.manager.planning import plan_recording, plan_replay
from recorder.recording.recording import Recording
from recorder.recording.source_spec import SourceSpec
from recorder.replay import Replayer
from recorder.store.run_writer import RunWriter
from recorder.web import models

pytestmark = pytest.mark.timeout(30)

RECORDING_BAD = [
    ({"count": 0}, "--count must be positive", "count must be positive"),
    ({"duration": -1.0}, "--duration must be positive", "duration_s must be positive"),
    ({"flush_interval": 0.0}, "--flush-interval must be positive", "flush_interval_s must be"),
]

REPLAY_BAD = [
    ({"speed": 2.0, "max_speed": True}, "choose one of --speed, --max-speed and --rate",
     "choose one of speed, max_speed and rate"),
    ({"speed": 1.0, "rate": 5.0}, "choose one of --speed", "choose one of speed"),
    ({"speed": 0.0}, "--speed must be positive", "speed must be positive"),
    ({"rate": -3.0}, "--rate must be positive", "rate must be positive"),
    ({"loop": -1}, "--loop takes a count >= 0 (0: forever)", "loop takes a count >= 0"),
    ({"start": -0.5}, "--start must be >= 0", "start_s must be >= 0"),
    ({"end": 0.0}, "--end must be positive", "end_s must be positive"),
    ({"start": 2.0, "end": 1.0}, "--end must be after --start", "end_s must be after start_s"),
    ({"start": 2.0, "end": 2.0}, "--end must be after --start", "end_s must be after start_s"),
    ({"match": "fuzzy"}, "--match is bytes or order", "match is bytes or order"),
]  # fmt: skip


@pytest.mark.parametrize(("kw", "cli", "api"), RECORDING_BAD)
def test_recording_limits_name_the_option_of_each_front_end(kw, cli, api):
    with pytest.raises(UsageError, match=cli):
        limits.check_recording(**kw)
    with pytest.raises(UsageError, match=api):
        limits.check_recording(**kw, names=limits.RECORD_API)


@pytest.mark.parametrize(("kw", "cli", "api"), REPLAY_BAD)
def test_replay_limits_name_the_option_of_each_front_end(kw, cli, api):
    with pytest.raises(UsageError, match=cli.replace("(", r"\(").replace(")", r"\)")):
        limits.check_replay(**kw)
    with pytest.raises(UsageError, match=api):
        limits.check_replay(**kw, names=limits.REPLAY_API)


def test_sensible_requests_pass():
    limits.check_recording()
    limits.check_recording(count=1, duration=1e-3, flush_interval=0.1)
    limits.check_recording(count=limits.COUNT_MAX * 4)  # the command line is not capped
    limits.check_replay()
    limits.check_replay(max_speed=True, loop=0, start=0.0, end=0.1, match="order")
    limits.check_replay(speed=limits.SPEED_MAX * 10, start=1.0)
    limits.check_replay(rate=1.0, end=5.0)


@pytest.mark.parametrize(("kw", "cli", "api"), RECORDING_BAD)
def test_recording_checks_before_it_creates_anything(tmp_path, kw, cli, api):
    with pytest.raises(UsageError, match=cli):
        Recording(tmp_path / "runs", [SourceSpec(endpoint="tcp://127.0.0.1:9")], **kw)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("kw", "cli", "api"), REPLAY_BAD)
def test_replayer_checks_before_it_opens_the_run(tmp_path, kw, cli, api):
    with pytest.raises(UsageError, match=cli[:12]):
        Replayer(tmp_path / "no-such-run", **kw)


@pytest.mark.parametrize(("kw", "cli", "api"), RECORDING_BAD)
def test_job_planning_speaks_the_api_names(kw, cli, api):
    api_kw = {{"duration": "duration_s", "flush_interval": "flush_interval_s"}.get(k, k): v
              for k, v in kw.items()}  # fmt: skip
    with pytest.raises(UsageError, match=api):
        plan_recording(None, sources=[{"endpoint": "tcp://127.0.0.1:9"}], **api_kw)


@pytest.mark.parametrize(("kw", "cli", "api"), REPLAY_BAD)
def test_replay_planning_speaks_the_api_names(tmp_path, kw, cli, api):
    RunWriter(tmp_path, run_id="r1").close()
    api_kw = {{"start": "start_s", "end": "end_s"}.get(k, k): v for k, v in kw.items()}
    with pytest.raises(UsageError, match=api):
        plan_replay(tmp_path, run_id="r1", **api_kw)


def _bounds(model, field: str) -> dict:
    schema = model.model_json_schema()["properties"][field]
    schema = next((s for s in schema.get("anyOf", []) if s.get("type") != "null"), schema)
    return {k: schema[k] for k in ("exclusiveMinimum", "minimum", "maximum") if k in schema}


@pytest.mark.parametrize(
    ("model", "field", "bounds"),
    [
        (models.RecordingCreate, "count", {"exclusiveMinimum": 0, "maximum": limits.COUNT_MAX}),
        (models.RecordingCreate, "duration_s", {"exclusiveMinimum": 0, "maximum": 1e7}),
        (models.RecordingCreate, "flush_interval_s", {"exclusiveMinimum": 0, "maximum": 60}),
        (models.ReplayCreate, "speed", {"exclusiveMinimum": 0, "maximum": limits.SPEED_MAX}),
        (models.ReplayCreate, "rate", {"exclusiveMinimum": 0, "maximum": limits.RATE_MAX_HZ}),
        (models.ReplayCreate, "loop", {"minimum": 0, "maximum": limits.LOOP_MAX}),
        (models.ReplayCreate, "start_s", {"minimum": 0, "maximum": limits.TIME_MAX_S}),
        (models.ReplayCreate, "end_s", {"exclusiveMinimum": 0, "maximum": limits.TIME_MAX_S}),
        (models.Seek, "t_s", {"minimum": 0, "maximum": limits.TIME_MAX_S}),
        (models.Speed, "speed", {"exclusiveMinimum": 0, "maximum": limits.SPEED_MAX}),
        (models.Step, "n", {"minimum": 1, "maximum": limits.STEP_MAX}),
    ],
)
def test_the_api_schema_shows_the_same_bounds(model, field, bounds):
    assert _bounds(model, field) == bounds


def test_the_api_match_modes_are_the_core_ones():
    schema = models.ReplayCreate.model_json_schema()["properties"]["match"]
    assert tuple(schema["enum"]) == limits.MATCH_MODES
