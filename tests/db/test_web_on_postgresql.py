"""The whole stack on one PostgreSQL catalog: the web app plans a recording over the API, a
manager runs it, and the run is listed, searched, tagged and annotated through the API."""

from __future__ import annotations

import pytest

from recorder.simulators import make_simulator
from recorder.web import create_app
from tests.helpers import running_manager, wait_for
from tests.recordhelp import running

API = "/api/v1"


def _manager(data, url):
    return running_manager(data, spares=0, url=url, join_s=60)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_record_list_search_and_annotate_over_the_api(pg_url, data):
    app = create_app(data, catalog=pg_url)
    control = app.extensions["recorder"].control
    secret, _ = control.create_token("tests")
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    sim = make_simulator("adzmq", "tcp://127.0.0.1:* PUB", rate=200)
    endpoint = sim.bind()
    with running(sim), _manager(data, pg_url):
        src = {"endpoint": endpoint, "protocol": "adzmq"}
        r = c.post(f"{API}/recordings", json={"sources": [src], "count": 20, "name": "beam 50%"})
        assert r.status_code == 201, r.get_json()
        job_id, run_id = r.get_json()["id"], r.get_json()["run_id"]
        wait_for(
            lambda: c.get(f"{API}/recordings/{job_id}").get_json()["state"] == "finished",
            120,
            "the recording to finish",
        )
    runs = c.get(f"{API}/runs?q=50%25").get_json()
    assert runs["total"] == 1 and runs["runs"][0]["run_id"] == run_id
    assert runs["runs"][0]["messages"] == 20 and runs["runs"][0]["status"] == "complete"
    assert c.post(f"{API}/runs/{run_id}/tags", json={"tag": "calib"}).status_code == 200
    r = c.patch(f"{API}/runs/{run_id}", json={"note": "odd \u0000 spike"})
    assert r.status_code == 200, r.get_json()
    assert c.get(f"{API}/runs?tag=calib").get_json()["total"] == 1
    assert c.get(f"{API}/runs?q=spike").get_json()["total"] == 1
    assert c.get(f"{API}/runs?q=nothing").get_json()["total"] == 0
