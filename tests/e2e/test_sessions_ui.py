"""Sessions in a real browser (Debian's chromium): create one on the Sessions page (a template's
missing field refused first), pick the dashboard's current session, move a run into it."""

from __future__ import annotations

import json
import re

import pytest

from recorder import config
from recorder.store.reader import RunReader
from tests.web.test_ui_sessions import a_run


@pytest.mark.timeout(180)
def test_sessions_in_a_browser(app, data, token, served, page):
    (data / "session_templates.json").write_text(
        json.dumps({"mouse": {"subject": ["subject_id", "species"]}})
    )
    run = a_run(app, data)
    page.goto(served + "/login")
    page.fill("input[name=token]", token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/$"))
    page.get_by_text("No open session").wait_for()
    page.get_by_role("link", name="Sessions", exact=True).click()
    page.wait_for_url(re.compile(r"/sessions$"))

    form = page.locator("#session-form")
    form.locator("input[name=name]").fill("mouse 12")
    form.locator("input[name=experimenters]").fill("Ada, Bo")
    form.locator("select[name=template]").select_option("mouse")  # adds its fields as rows
    keys = form.locator("input[name=subject-key]")
    assert [keys.nth(i).input_value() for i in range(keys.count())] == ["subject_id", "species"]
    form.locator("input[name=subject-value]").first.fill("m12")
    form.get_by_role("button", name="Create session").click()
    page.locator("#flash.error", has_text="species").wait_for()  # the template's 400, as a line
    assert not list(data.glob("sessions/*.json"))
    form.locator("input[name=subject-value]").nth(1).fill("Mus musculus")
    form.get_by_role("button", name="Create session").click()
    page.wait_for_url(re.compile(r"created=ses-"))
    sid = page.url.split("created=")[1]
    stored = json.loads((data / "sessions" / f"{sid}.json").read_text())
    assert stored["experimenters"] == ["Ada", "Bo"] and stored["template"] == "mouse"
    assert stored["subject"] == {"subject_id": "m12", "species": "Mus musculus"}
    page.locator(f"#sessions tr[data-session='{sid}']").wait_for()

    page.get_by_role("link", name="Dashboard", exact=True).click()
    page.wait_for_url(re.compile(r"/$"))
    # sessions.js is deferred: a pick made before it runs is not heard (nor kept)
    page.wait_for_load_state("domcontentloaded")
    assert page.locator("#current-session").input_value() == sid
    page.locator("#current-session").select_option("")  # picked: none, kept in this browser
    page.reload(wait_until="domcontentloaded")
    assert page.locator("#current-session").input_value() == ""
    assert page.locator("#current-session-link").is_hidden()

    page.goto(f"{served}/runs/{run}")
    page.locator(f"select[data-move-run='{run}']").select_option(sid)
    page.locator("#run-session-link", has_text="mouse 12").wait_for()
    assert RunReader(config.runs_dir(data) / run).summary()["session"]["id"] == sid
    assert page.console_errors == [
        "Failed to load resource: the server responded with a status of 400 (BAD REQUEST)"
    ]
