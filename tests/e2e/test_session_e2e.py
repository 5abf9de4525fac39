"""A session's page in a real browser against `recorder serve --demo` (gunicorn, the manager,
worker processes): its runs drawn on one timeline with their markers, links to each run, and the
whole session replayed from the page (its split runs served as one stream, which a ZeroMQ
client receives in order). The session and its runs are written beforehand with the store's
own writer (the session form is the sessions page's). Screenshots: test-artifacts/."""

from __future__ import annotations

import re

import pytest
import zmq

from recorder import config
from recorder.db.catalog import Catalog
from recorder.store.sessions import SessionFiles
from tests.clihelp import serve_demo
from tests.helpers import free_port
from tests.replay.test_session_replay import PIECES, TOTAL, split_runs

pytestmark = [pytest.mark.timeout(150), pytest.mark.slow]


def test_a_session_page_shows_its_runs_and_replays_them(tmp_path, page, shot):
    data = tmp_path / "data"
    config.data_dir(data)
    session = SessionFiles(data).create({
        "name": "mouse 12, day 3", "description": "open field", "experimenters": ["Ada"],
        "subject": {"subject_id": "m12", "species": "Mus musculus", "sex": "F"},
    })  # fmt: skip
    paths = split_runs(
        config.runs_dir(data), free_port(), PIECES, session=session,
        markers={0: ["lights off"], 2: ["done"]},
    )  # fmt: skip
    cat = Catalog(config.catalog_url(None, data))
    try:
        for p in paths:
            cat.index_path(p)
    finally:
        cat.close()
    with serve_demo(tmp_path) as (link, _):
        page.goto(link)
        page.wait_for_url(re.compile(r"/$"))
        base = link.split("/login")[0]
        page.goto(f"{base}/sessions/{session['id']}")
        page.get_by_role("heading", name="mouse 12, day 3").wait_for()
        timeline = page.locator("#session-timeline svg")
        timeline.wait_for()
        bars = timeline.locator("g.run")
        assert bars.count() == 3
        assert [bars.nth(i).get_attribute("data-run") for i in range(3)] == [p.name for p in paths]
        assert timeline.locator("path.marker").count() == 2
        assert "lights off" in timeline.locator("path.marker title").first.text_content()
        assert timeline.locator("rect.stream").count() == 3
        # split runs on one lane: the bars follow each other left to right
        xs = [float(bars.nth(i).locator("rect.run-bar").get_attribute("x")) for i in range(3)]
        ys = {bars.nth(i).locator("rect.run-bar").get_attribute("y") for i in range(3)}
        assert xs == sorted(xs) and len(ys) == 1
        for p in paths:
            assert page.locator(f"#session-runs a[href='/runs/{p.name}']").count() == 1
        assert page.locator("#session-totals").inner_text().count(str(len(paths))) >= 1
        shot("session-page")

        # Replay the whole session on a free port; a PULL client gets every message, in order.
        form = page.locator("#session-replay-form")
        form.locator("input[name=max_speed]").check()
        form.get_by_role("button", name="Replay session").click()
        page.wait_for_url(re.compile(r"/replays/[^/]+$"))
        page.get_by_text("serving", exact=False).first.wait_for()
        endpoint = re.search(r"tcp://127\.0\.0\.1:\d+", page.content()).group(0)
        ctx = zmq.Context()
        try:
            pull = ctx.socket(zmq.PULL)
            pull.linger = 0
            pull.connect(endpoint)
            got = []
            for _ in range(TOTAL):
                assert pull.poll(20_000), f"replay stalled after {len(got)}"
                got.append(pull.recv_multipart())
        finally:
            ctx.destroy(linger=0)
        assert got == [[b"%d" % i] for i in range(TOTAL)]
        shot("session-replay")
        assert page.console_errors == []


def test_a_session_made_in_the_browser_finds_its_run_on_its_page(tmp_path, page, shot):
    """The issue's browser test: a session created with the Sessions page's form, a recording
    started in it from the dashboard's form (its Session select), and the session's page shows
    the run."""
    with serve_demo(tmp_path) as (link, _):
        page.goto(link)
        page.wait_for_url(re.compile(r"/$"))
        base = link.split("/login")[0]
        page.goto(f"{base}/sessions")
        form = page.locator("#session-form")
        form.locator("input[name=name]").fill("calibration series")
        form.locator("input[name=experimenters]").fill("Ada")
        form.locator("input[name=subject-key]").first.fill("subject_id")
        form.locator("input[name=subject-value]").first.fill("m12")
        form.get_by_role("button", name="Create session").click()
        page.wait_for_url(re.compile(r"created=ses-"))
        sid = page.url.split("created=")[1]
        page.goto(f"{base}/")
        start = page.locator("form[data-action=start-recording]")
        start.locator("input[value=demo-raw]").check()
        start.locator("input[name=name]").fill("in the session")
        start.locator("select[name=session]").select_option(sid)
        start.get_by_role("button", name="Start recording").click()
        row = page.locator("#recordings tbody tr", has_text="in the session").first
        current = row.locator("[data-testid=current-run]")
        current.wait_for()
        run_id = current.get_attribute("href").rsplit("/", 1)[1]
        row.get_by_role("button", name="Stop").click()
        page.goto(f"{base}/runs/{run_id}")
        page.locator("#run-session-link", has_text="calibration series").wait_for()
        page.locator("#run-session-link").click()
        page.wait_for_url(re.compile(rf"/sessions/{sid}$"))
        page.get_by_role("heading", name="calibration series").wait_for()
        bar = page.locator(f"#session-timeline g.run[data-run='{run_id}']")
        bar.wait_for()
        assert bar.locator("rect.stream").count() == 1
        assert page.locator(f"#session-runs a[href='/runs/{run_id}']").count() == 1
        assert "m12" in page.locator("#session-subject").inner_text()
        shot("session-made-in-the-browser")
        assert page.console_errors == []
