"""The replay page tells the truth about a replay: a replay asked to play once shows "1 of 1"
(not ∞), a seek past the end is refused, and its controls are off once it is over. The job rows
are written as a worker writes them (real catalog, no worker needed)."""

from __future__ import annotations

import pytest

from recorder.db.jobs import KIND_REPLAY
from tests.web.webhelp import API


@pytest.fixture
def browser(app, token):
    c = app.test_client()
    assert c.post("/login", data={"token": token}).status_code == 303
    return c


def _replay(control, *, loop: int, state: str = "running", **stats) -> str:
    job = control.create_job(KIND_REPLAY, {"run_id": "r", "loop": loop}, run_id="r")
    control.update_job(job["id"], state=state, stats={"duration_s": 3.0, "loop": 0, **stats})
    return job["id"]


def test_plays_are_counted_against_what_was_asked(browser, control):
    once = _replay(control, loop=1)
    html = browser.get(f"/ui/replays/{once}").get_data(as_text=True)
    assert "1 of 1" in html and "∞" not in html
    forever = _replay(control, loop=0)
    control.update_job(forever, stats={"duration_s": 3.0, "loop": 4})
    html = browser.get(f"/ui/replays/{forever}").get_data(as_text=True)
    assert "5 of ∞" in html


def test_a_seek_past_the_end_is_refused(client, control):
    job = _replay(control, loop=1)
    r = client.post(f"{API}/replays/{job}/seek", json={"t_s": 3.5})
    assert r.status_code == 400 and "3.000 s long" in r.get_json()["error"]["message"]
    assert not control.take_commands(job)  # nothing reached the worker
    assert client.post(f"{API}/replays/{job}/seek", json={"t_s": 2.5}).status_code == 200
    assert [c.op for c in control.take_commands(job)] == ["seek"]


@pytest.mark.parametrize("state", ["stopped", "failed", "finished"])
def test_controls_are_off_once_a_replay_is_over(browser, control, state):
    job = _replay(control, loop=1, state=state)
    html = browser.get(f"/replays/{job}").get_data(as_text=True)
    controls = html[html.index('id="replay-controls"') :]
    controls = controls[: controls.index("</div>")]
    assert controls.count("disabled") == controls.count("data-replay-control") == 8
    assert 'data-over="true"' in html
    running = _replay(control, loop=1)
    html = browser.get(f"/replays/{running}").get_data(as_text=True)
    assert 'data-over="false"' in html and 'max="3.0"' in html
    controls = html[html.index('id="replay-controls"') :]
    assert "disabled" not in controls[: controls.index("</div>")]
