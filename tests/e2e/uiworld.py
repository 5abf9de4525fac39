"""A small world for browser tests of every page: a signed-in page, and one of each thing a
page shows (a run, a session, a source, a replay, recordings pending and stopped), made through
the API and the catalog, no manager needed. The app is served by the `served` fixture
(tests/e2e/conftest.py)."""

from __future__ import annotations

import re

from recorder import config
from recorder.manager.planning import start_replay
from recorder.store.run_writer import RunWriter

API = "/api/v1"


def sign_in(page, base: str, token: str) -> None:
    page.goto(base + "/login")
    page.fill("input[name=token]", token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/$"))


def a_run(app, data, name: str = "made") -> str:
    with RunWriter(config.runs_dir(data), name=name) as w:
        s = w.add_stream("main", protocol="raw", endpoint="tcp://127.0.0.1:5999",
                         socket_type="PULL", role="connect")  # fmt: skip
        s.append(w.started_ns, [b"x"])
    app.extensions["recorder"].catalog.index_path(w.path)
    return w.run_id


def world(app, data) -> dict[str, str]:
    """One of everything; returns the pages' paths by name."""
    c = app.test_client()
    st = app.extensions["recorder"]
    secret, _ = st.control.create_token("world")
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    run_id = a_run(app, data, "a run")
    c.post(f"{API}/runs/{run_id}/tags", json={"tag": "beam"})
    c.patch(f"{API}/runs/{run_id}", json={"note": "first note"})
    c.put(f"{API}/sources/cam", json={"endpoint": "tcp://127.0.0.1:5998", "protocol": "raw"})
    stopped = c.post(f"{API}/recordings", json={"sources": ["cam"], "name": "old"}).get_json()
    c.post(f"{API}/recordings/{stopped['id']}/stop")
    c.post(f"{API}/recordings", json={"sources": ["cam"], "name": "pending one"})
    session = c.post(f"{API}/sessions", json={"name": "beamtime"}).get_json()["id"]
    c.put(f"{API}/runs/{run_id}/session", json={"session": session})
    replay = start_replay(st.control, st.runs_dir, run_id=run_id)
    return {
        "dashboard": "/",
        "runs": "/runs",
        "run": f"/runs/{run_id}",
        "sources": "/sources",
        "tokens": "/tokens",
        "replay": f"/replays/{replay['id']}",
        "sessions": "/sessions",
        "session": f"/sessions/{session}",
        "api": "/api/docs",
    }
