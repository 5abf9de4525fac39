"""Edits in a real browser that must not lose what the page does not show: a source's edit
form sends only the fields changed (its `subscribe` filter survives a description edit, and the
name, its key, is read-only), and notes are added, edited and deleted one at a time, so a note
added elsewhere after the page loaded stays."""

from __future__ import annotations

import re

import pytest

from tests.web.test_ui_sessions import a_run
from tests.web.webhelp import API

pytestmark = pytest.mark.timeout(180)


def _sign_in(page, served, token):
    page.goto(served + "/login")
    page.fill("input[name=token]", token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/$"))


def _api(app, token):
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return c


def test_editing_a_source_keeps_the_fields_it_does_not_change(app, token, served, page):
    api = _api(app, token)
    source = {"name": "cam", "protocol": "adzmq", "endpoint": "tcp://127.0.0.1:5601",
              "subscribe": ["frames"], "request": "more", "heartbeat": False}  # fmt: skip
    assert api.post(f"{API}/sources", json=source).status_code == 201
    _sign_in(page, served, token)
    page.goto(served + "/sources")
    page.locator("tr[data-source=cam] button", has_text="Edit").click()
    form = page.locator("#source-form")
    assert form.locator("input[name=name]").get_attribute("readonly") is not None
    assert form.locator("textarea[name=subscribe]").input_value() == "frames"
    assert not form.locator("input[name=heartbeat]").is_checked()
    # meanwhile a script changes the request; the page does not know
    assert api.patch(f"{API}/sources/cam", json={"request": "again"}).status_code == 200
    form.locator("input[name=description]").fill("camera on bench 2")
    with page.expect_navigation():
        form.get_by_role("button", name="Save source").click()
    got = api.get(f"{API}/sources/cam").get_json()
    assert got["description"] == "camera on bench 2"
    assert (got["subscribe"], got["request"], got["heartbeat"]) == (["frames"], "again", False)
    assert [s["name"] for s in api.get(f"{API}/sources").get_json()["sources"]] == ["cam"]

    # a new source with every field: subscribe, upstream, stream name
    form.locator("input[name=name]").fill("proxy")
    form.locator("select[name=protocol]").select_option("reqrep")
    form.locator("input[name=endpoint]").fill("tcp://127.0.0.1:5602")
    form.locator("input[name=upstream]").fill("tcp://127.0.0.1:5603")
    form.locator("input[name=stream]").fill("svc")
    with page.expect_navigation():
        form.get_by_role("button", name="Save source").click()
    got = api.get(f"{API}/sources/proxy").get_json()
    assert (got["upstream"], got["stream"]) == ("tcp://127.0.0.1:5603", "svc")
    assert not page.console_errors, page.console_errors


def test_notes_one_at_a_time_keep_notes_added_elsewhere(app, data, token, served, page):
    run = a_run(app, data)
    control = app.extensions["recorder"].control
    other, _ = control.create_token("ada")
    _sign_in(page, served, token)
    page.goto(f"{served}/runs/{run}")
    notes = page.locator("#notes")
    notes.get_by_label("Add a note").fill("first <b>note</b>")
    notes.get_by_role("button", name="Add note").click()
    items = notes.locator("li[data-note]")
    items.first.wait_for()
    assert items.first.locator(".note-text").inner_text() == "first <b>note</b>"
    assert "e2e" in items.first.locator(".note-meta").inner_text()  # the token's name

    # another client adds a note; this page still shows only its own
    r = _api(app, other).post(f"{API}/runs/{run}/notes", json={"text": "from ada"})
    assert r.status_code == 201
    items.first.get_by_role("button", name="Edit").click()
    box = items.first.get_by_label("Edit note")
    box.fill("first note, edited")
    items.first.get_by_role("button", name="Save").click()
    page.locator("#notes li[data-note] .note-text", has_text="from ada").wait_for()
    texts = [n["text"] for n in _api(app, token).get(f"{API}/runs/{run}").get_json()["notes"]]
    assert texts == ["first note, edited", "from ada"]

    page.once("dialog", lambda d: d.accept())
    items.first.get_by_role("button", name="Delete").click()
    page.locator("#notes li[data-note]").filter(has_text="first note").wait_for(state="detached")
    texts = [n["text"] for n in _api(app, token).get(f"{API}/runs/{run}").get_json()["notes"]]
    assert texts == ["from ada"]
    assert not page.console_errors, page.console_errors


def test_the_recording_form_sends_count_flush_and_split(app, token, served, page):
    api = _api(app, token)
    source = {"name": "cam", "protocol": "raw", "endpoint": "tcp://127.0.0.1:5601"}
    assert api.post(f"{API}/sources", json=source).status_code == 201
    _sign_in(page, served, token)
    form = page.locator("form[data-action=start-recording]")
    form.locator("input[value=cam]").check()
    form.get_by_label("Stop after (messages)").fill("500")
    form.get_by_label("Flush every (s)").fill("0.5")
    form.get_by_label("Split every").fill("10m")
    form.get_by_role("button", name="Start recording").click()
    page.locator("#flash.ok", has_text="Recording started").wait_for()
    params = api.get(f"{API}/recordings").get_json()["recordings"][0]["params"]
    assert params["count"] == 500 and params["flush_interval_s"] == 0.5
    assert params["split"]["seconds"] == 600
    assert not page.console_errors, page.console_errors
