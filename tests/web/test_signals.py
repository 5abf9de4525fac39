"""The signal view's endpoint: any window at any zoom from the run's overview levels (min/max
equal to numpy's over the raw samples), raw samples when zoomed in, runs without levels, bad
queries, superseded requests."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from recorder import config
from recorder.store import overviews
from recorder.store.reader import RunReader
from recorder.web.signals import Generations
from tests.golden.goldens import copy_into
from tests.signalhelp import RATE, write_run

pytestmark = pytest.mark.timeout(120)
API = "/api/v1"
CH = 4


@pytest.fixture(scope="module")
def run_and_samples(tmp_path_factory):
    runs = tmp_path_factory.mktemp("signals")
    run_id, samples = write_run(runs, blocks=400, channels=CH)  # 409600 samples, 13.7 s
    return runs, run_id, samples


@pytest.fixture
def oe_run(data, run_and_samples):
    runs, run_id, samples = run_and_samples
    shutil.copytree(runs / run_id, config.runs_dir(data) / run_id)
    return run_id, samples


def _get(client, run_id, **q):
    query = "&".join(f"{k}={v}" for k, v in q.items())
    return client.get(f"{API}/runs/{run_id}/streams/oe/signal?{query}")


def _row_time(r: int) -> float:
    """Row r's time in the synthetic run: the first block's message arrives with its last
    sample (block of 1024), at started + 1024 / RATE."""
    return r / RATE


def test_levels_hold_min_and_max_of_the_raw_samples(oe_run, data):
    run_id, samples = oe_run
    with RunReader(config.runs_dir(data) / run_id) as run:
        seg = next(x for x in run.stream("oe").array_segments() if x.placed)
        parent, _, leaf = seg.path.rpartition("/")
        found = overviews.levels(run.stream("oe").group[parent], leaf)
    assert [lv.bucket for lv in found] == [64, 1024]
    for lv in found:
        n = len(samples) // lv.bucket
        ref = samples[: n * lv.bucket].reshape(n, lv.bucket, CH)
        assert lv.rows == n
        np.testing.assert_array_equal(lv.min[:n], ref.min(axis=1))
        np.testing.assert_array_equal(lv.max[:n], ref.max(axis=1))


def test_window_from_a_level_is_numpy_min_max_of_the_raw_window(client, oe_run):
    run_id, samples = oe_run
    # 200 points over rows [65536, 65536 + 200 * 1024): exactly level 1024's rows
    r0, width, points = 65536, 1024, 200
    body = _get(
        client, run_id, start=_row_time(r0), end=_row_time(r0 + points * width - 1),
        points=points, channels="0,2,3",
    ).get_json()  # fmt: skip
    assert body["level"] == 1024 and body["bucket"] == 1024
    assert body["channels"] == [0, 2, 3] and body["labels"] == ["CH1", "CH3", "CH4"]
    assert body["units"] == "uV"  # announced in the data headers
    ref = samples[r0 : r0 + points * width].reshape(points, width, CH)
    got_min = np.array(body["min"], dtype=float).T
    got_max = np.array(body["max"], dtype=float).T
    assert got_min.shape == (points, 3)
    np.testing.assert_array_equal(got_min, ref.min(axis=1)[:, [0, 2, 3]])
    np.testing.assert_array_equal(got_max, ref.max(axis=1)[:, [0, 2, 3]])
    np.testing.assert_allclose(body["t_s"][:2], [_row_time(r0), _row_time(r0 + width)])


def test_a_spike_inside_a_bucket_is_never_lost_at_any_zoom(client, oe_run):
    run_id, samples = oe_run
    for points in (50, 300, 2000):
        body = _get(client, run_id, points=points, channels="0,1").get_json()
        assert max(v for v in body["max"][0] if v is not None) == samples[:, 0].max() == 1000
        assert min(v for v in body["min"][1] if v is not None) == samples[:, 1].min() == -1000


def test_zoomed_in_gives_raw_samples(client, oe_run):
    run_id, samples = oe_run
    r0 = 100_000
    body = _get(
        client, run_id, start=_row_time(r0), end=_row_time(r0 + 999), points=1000, channels="1"
    ).get_json()
    assert body["bucket"] == 1 and body["level"] == 1 and "min" not in body
    assert body["values"][0] == samples[r0 : r0 + 1000, 1].tolist()
    np.testing.assert_allclose(body["t_s"][:3], [_row_time(r) for r in (r0, r0 + 1, r0 + 2)])


def test_ttl_events_and_spikes_on_the_sample_clock(client, oe_run):
    run_id, _ = oe_run
    body = _get(client, run_id, start=0, end=5, points=100).get_json()
    assert body["events_shown"]
    # a TTL every 50 blocks at sample b * 1024 + 5 (b = 49, 99, ...), a spike every 70 at + 9
    want_ttl = [(b * 1024 + 5) / RATE for b in range(49, 400, 50) if (b * 1024 + 5) / RATE <= 5]
    want_spk = [(b * 1024 + 9) / RATE for b in range(69, 400, 70) if (b * 1024 + 9) / RATE <= 5]
    np.testing.assert_allclose([e["t_s"] for e in body["events"]], want_ttl)
    assert [e["state"] for e in body["events"]] == [True, False, True, False][: len(want_ttl)]
    np.testing.assert_allclose([e["t_s"] for e in body["spikes"]], want_spk)
    assert {e["electrode"] for e in body["spikes"]} == {"E1"}


def test_a_run_without_levels_gets_them_on_first_request(client, oe_run, data):
    run_id, _ = oe_run
    run = config.runs_dir(data) / run_id
    (folder,) = run.glob("streams/oe/data/continuous/probe/overview_*")
    shutil.rmtree(folder)  # as written before the levels existed
    body = _get(client, run_id, points=200, channels="0").get_json()
    assert folder.is_dir(), "built once and kept in the run"
    assert max(v for v in body["max"][0] if v is not None) == 1000
    again = _get(client, run_id, points=200, channels="0").get_json()
    assert again["min"] == body["min"] and again["max"] == body["max"]


@pytest.mark.parametrize(
    "query, status",
    [
        ({"start": 5, "end": 1}, 400),
        ({"channels": "0,9"}, 400),
        ({"channels": "x"}, 422),
        ({"points": 1}, 422),
        ({"points": 100000}, 422),
        ({"channels": ",".join(str(c % 4 + 4 * c) for c in range(65))}, 400),
        ({"array": "nope"}, 404),
        ({"channels": ",".join(["0"] * 70)}, 200),  # duplicates collapse
    ],
)
def test_bad_queries_answer_with_the_error_envelope(client, oe_run, query, status):
    run_id, _ = oe_run
    r = _get(client, run_id, **query)
    assert r.status_code == status, r.get_json()
    if status != 200:
        assert set(r.get_json()["error"]) >= {"code", "message"}


def test_unknown_stream_and_run(client, oe_run):
    run_id, _ = oe_run
    assert client.get(f"{API}/runs/{run_id}/streams/nope/signal").status_code == 404
    assert client.get(f"{API}/runs/20990101-000000-abcdef/streams/oe/signal").status_code == 404


def test_a_superseded_request_is_answered_409(client, oe_run):
    run_id, _ = oe_run
    assert _get(client, run_id, view="v1", gen=5, points=10).status_code == 200
    r = _get(client, run_id, view="v1", gen=4, points=10)
    assert r.status_code == 409 and r.get_json()["error"]["code"]
    assert _get(client, run_id, view="v2", gen=1, points=10).status_code == 200  # another view


def test_work_in_progress_stops_once_a_newer_request_begins():
    gens = Generations()
    check = gens.begin("view", 1)
    check()  # still the newest
    gens.begin("view", 2)
    with pytest.raises(overviews.Cancelled):
        check()
    with pytest.raises(overviews.Cancelled):
        gens.begin("view", 1)


@pytest.mark.parametrize("folder", ["format1", "format2"])
def test_golden_runs_of_every_format_are_served_from_their_samples(client, data, folder):
    """Runs written before the levels existed: the window comes from the stored samples; a
    format-1 run is never written to (the levels are an addition within format 2)."""
    path = copy_into(folder, data)
    before = sorted(p.name for p in path.rglob("*"))
    body = client.get(f"{API}/runs/{path.name}/streams/openephys/signal?points=4000").get_json()
    with RunReader(path) as run:
        s = run.stream("openephys")
        segs = [x for x in s.array_segments(body["array"]) if x.placed and x.rows]
        raws = [np.asarray(s.read_segment(x.index, 0, x.rows), dtype=float) for x in segs]
    n = min(8, max(r.shape[1] for r in raws))
    assert body["channels"] == list(range(n))
    got = np.array(body["values"] if body["bucket"] == 1 else body["max"], dtype=float)
    assert np.nanmax(got) == max(np.nanmax(r[:, :n]) for r in raws)
    if body["bucket"] == 1 and len(raws) == 1:
        np.testing.assert_array_equal(got.T[: len(raws[0])], raws[0][:, :n])
    if folder == "format1":
        assert sorted(p.name for p in path.rglob("*")) == before


def test_events_are_listed_only_for_windows_of_few_messages(client, oe_run, monkeypatch):
    from recorder.web import signals

    run_id, _ = oe_run
    monkeypatch.setattr(signals, "EVENT_SCAN_MESSAGES", 500)  # the fixture run has ~1600
    whole = _get(client, run_id, points=100).get_json()
    assert not whole["events_shown"] and whole["events"] == []
    t = (49 * 1024 + 5) / RATE  # the first TTL event
    near = _get(client, run_id, start=t - 0.2, end=t + 0.2, points=100).get_json()
    assert near["events_shown"] and [e["t_s"] for e in near["events"]] == pytest.approx([t])
