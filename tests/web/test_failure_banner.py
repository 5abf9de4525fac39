"""A recording that fails soon after it started is seen on the dashboard at once: a banner with
its reason above everything, not a line in the collapsed list of recent recordings."""

from __future__ import annotations

import time

import pytest

from recorder.db.jobs import FAILED, KIND_RECORD


@pytest.fixture
def browser(app, token):
    c = app.test_client()
    assert c.post("/login", data={"token": token}).status_code == 303
    return c


def _failed(control, name: str, error: str, *, ago_s: float = 0.0, **params) -> str:
    job = control.create_job(KIND_RECORD, {"name": name, "sources": [], **params}, run_id=None)
    control.finish_job(job["id"], FAILED, error=error)
    if ago_s:
        control.update_job(job["id"], ended_ns=time.time_ns() - int(ago_s * 1e9))
    return job["id"]


def test_a_recent_failure_is_a_banner(browser, control):
    fresh = _failed(control, "bench <b>2</b>", "cannot bind tcp://127.0.0.1:1: permission denied")
    old = _failed(control, "yesterday", "old trouble", ago_s=3600)
    _failed(control, "preview of x", "preview trouble", preview=True)
    for url in ("/", "/ui/live"):
        html = browser.get(url).get_data(as_text=True)
        banner = html[html.index('class="card error failure-banner"') :]
        banner = banner[: banner.index("</div>\n</div>")]
        assert 'role="alert"' in banner and f'data-failed-job="{fresh}"' in banner
        assert "bench &lt;b&gt;2&lt;/b&gt;" in banner and "permission denied" in banner
        assert f'data-failed-job="{old}"' not in html
        assert "preview trouble" not in html


def test_a_recording_links_its_run_once_the_run_is_made(browser, control):
    """A pending recording's run does not exist yet (and never will if it is stopped before a
    worker begins): the dashboard names it without a link until it runs."""
    job = control.create_job(
        KIND_RECORD, {"name": "soon", "sources": []}, run_id="20261202-120000-abcdef"
    )
    link = 'href="/runs/20261202-120000-abcdef" data-testid="current-run"'
    html = browser.get("/ui/live").get_data(as_text=True)
    assert "soon" in html and link not in html
    control.update_job(job["id"], state="running")
    assert link in browser.get("/ui/live").get_data(as_text=True)
