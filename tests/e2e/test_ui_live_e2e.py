"""The dashboard updates in place in a real browser: what the user has open or is typing in
survives the updates, and a signed-out dashboard goes to the sign-in page instead of polling."""

from __future__ import annotations

import re

import pytest

from tests.e2e.uiworld import API, sign_in

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

UPDATES = """() => new Promise((done) => { let n = 0;
  document.addEventListener("live:updated", () => { if (++n === 2) done(n); }); })"""


def test_focus_typed_text_and_open_panels_survive_updates_and_401_goes_to_sign_in(
    app, served, page
):
    control = app.extensions["recorder"].control
    secret, row = control.create_token("browser")
    api = app.test_client()
    api.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    api.put(f"{API}/sources/cam", json={"endpoint": "tcp://127.0.0.1:5998", "protocol": "raw"})
    old = api.post(f"{API}/recordings", json={"sources": ["cam"], "name": "old"}).get_json()
    api.post(f"{API}/recordings/{old['id']}/stop")
    live = api.post(f"{API}/recordings", json={"sources": ["cam"], "name": "now"}).get_json()
    base = served
    sign_in(page, base, secret)
    page.locator("#live details summary").click()  # "Recent recordings": open it
    box = page.locator(f"#marker-{live['id']}")
    box.click()
    box.type("beam ")
    api.post(f"{API}/recordings", json={"sources": ["cam"], "name": "another"})
    page.locator("#recordings tbody tr").nth(1).wait_for()  # the update came in place
    page.evaluate(UPDATES)  # and two more after it
    page.keyboard.type("on")  # into whatever has the focus now
    assert page.evaluate("document.activeElement.id") == f"marker-{live['id']}"
    assert box.input_value() == "beam on"
    assert page.locator("#live details").get_attribute("open") is not None
    assert page.locator("h1", has_text="Dashboard").count() == 1
    assert page.console_errors == []

    control.revoke_token(row["id"])  # signed out elsewhere: the next update is a 401
    page.wait_for_url(re.compile(r"/login\?next=/$"))
    page.get_by_role("button", name="Sign in").wait_for()
