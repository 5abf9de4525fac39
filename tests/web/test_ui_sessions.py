"""The sessions in the pages: the Sessions page (list, search, New session form), the dashboard's
current session, a run's session on its page (in a real browser: tests/e2e/test_sessions_ui.py)."""

from __future__ import annotations

import json
import re

import pytest

from recorder import config
from recorder.store.run_writer import RunWriter
from tests.web.webhelp import API

pytestmark = pytest.mark.timeout(60)
EVIL = "<script>alert(1)</script>"


@pytest.fixture
def browser_client(app, token):
    c = app.test_client()
    assert c.post("/login", data={"token": token}).status_code == 303
    return c


def new_session(client, **fields) -> str:
    r = client.post(f"{API}/sessions", json=fields)
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


def a_run(app, data) -> str:
    """A one-message run in the data folder, indexed."""
    with RunWriter(config.runs_dir(data), name="made") as w:
        s = w.add_stream("main", protocol="raw", endpoint="tcp://127.0.0.1:5999",
                         socket_type="PULL", role="connect")  # fmt: skip
        s.append(w.started_ns, [b"x"])
    app.extensions["recorder"].catalog.index_path(w.path)
    return w.run_id


def test_the_sessions_page_lists_and_searches(client, browser_client, data):
    (data / "session_templates.json").write_text(json.dumps({"mouse": {"subject": ["sex"]}}))
    a = new_session(client, name=EVIL, experimenters=["Ada"], subject={"subject_id": "m12"})
    b = new_session(client, name="beamtime")
    client.post(f"{API}/sessions/{b}/close")
    page = browser_client.get("/sessions").get_data(as_text=True)
    assert EVIL not in page and "&lt;script&gt;" in page
    assert f'href="/sessions/{a}"' in page and f'href="/sessions/{b}"' in page
    assert f'data-post="/sessions/{a}/close"' in page  # open: can be closed
    assert f'data-post="/sessions/{b}/close"' not in page
    assert 'data-action="create-session"' in page and 'data-fields="sex"' in page
    found = browser_client.get("/sessions?q=m12").get_data(as_text=True)
    assert a in found and b not in found
    opened = browser_client.get("/sessions?open=1").get_data(as_text=True)
    assert a in opened and b not in opened
    assert 'href="/sessions"' in browser_client.get("/runs").get_data(as_text=True)  # nav


def test_the_dashboard_shows_the_current_session(client, browser_client):
    assert "No open session" in browser_client.get("/").get_data(as_text=True)
    old = new_session(client, name="older")
    new = new_session(client, name="newer")
    page = browser_client.get("/").get_data(as_text=True)
    select = re.search(r'<select id="current-session".*?</select>', page, re.S).group(0)
    assert f'data-default="{new}"' in select
    assert select.index(new) < select.index(old)  # the newest open one first (and selected)
    assert re.search(rf'value="{new}"\s*selected', select)


def test_the_run_page_shows_its_session(app, client, browser_client, data):
    sid = new_session(client, name="mouse 12")
    run = a_run(app, data)
    page = browser_client.get(f"/runs/{run}").get_data(as_text=True)
    assert 'id="run-session-link">none' in page and f'data-move-run="{run}"' in page
    client.put(f"{API}/runs/{run}/session", json={"session": sid})
    page = browser_client.get(f"/runs/{run}").get_data(as_text=True)
    assert f'<a href="/sessions/{sid}" id="run-session-link">mouse 12</a>' in page
    client.post(f"{API}/sessions/{sid}/close")  # a closed session is still shown as the run's
    page = browser_client.get(f"/runs/{run}").get_data(as_text=True)
    assert re.search(rf'value="{sid}" selected>mouse 12 \(closed\)', page)
