"""The runs page in a real browser: local times with the zone named, a date range typed in
local time, several runs tagged and deleted at once, jumping to page N."""

from __future__ import annotations

import re

import pytest

from tests.e2e.uiworld import a_run, sign_in

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


def test_runs_page_in_a_browser(app, data, browser, served):
    expect = pytest.importorskip("playwright.sync_api").expect
    secret, _ = app.extensions["recorder"].control.create_token("runs")
    ids = [a_run(app, data, f"run {i:02d}") for i in range(27)]
    ctx = browser.new_context(viewport={"width": 1366, "height": 768}, timezone_id="Asia/Kolkata")
    ctx.set_default_timeout(20_000)
    page = ctx.new_page()
    page.on("dialog", lambda d: d.accept())
    try:
        base = served
        sign_in(page, base, secret)
        page.goto(base + "/runs?size=25")
        assert page.locator("[data-zone]").inner_text().endswith("(UTC+05:30)")  # Kolkata
        assert "Asia/" in page.locator("[data-zone]").inner_text()
        first = page.locator("#runs time").first
        assert "UTC" not in first.inner_text()  # the local time, 5:30 ahead
        assert first.get_attribute("datetime").endswith("+00:00")

        page.locator("#jump input[name=page]").fill("2")
        page.locator("#jump").get_by_role("button", name="Go").click()
        page.wait_for_url(re.compile(r"page=2"))
        assert page.locator("#runs tbody tr").count() == 2
        assert "Page 2 of 2" in page.locator(".pager").inner_text()

        # Select the two on this page (the oldest), tag them, then delete one.
        page.locator("[data-select-all]").check()
        assert page.locator("[data-selected]").inner_text() == "2 selected"
        page.locator("#bulk input[name=tags]").fill("bulk-a, bulk-b")
        page.get_by_role("button", name="Tag selected", exact=True).click()
        page.locator("#runs .chip", has_text="bulk-b").nth(1).wait_for()
        page.locator(f"#runs input[value='{ids[0]}']").check()
        page.get_by_role("button", name="Delete selected").click()
        expect(page.locator(f"#runs input[value='{ids[0]}']")).to_have_count(0)
        expect(page.locator("#runs tbody tr")).to_have_count(1)

        # A range typed in local time: from the first run's local minute on, all but none.
        local = page.evaluate(
            "(iso) => { const d = new Date(new Date(iso).getTime() - 60000);"
            " return new Date(d.getTime() - d.getTimezoneOffset() * 60000)"
            ".toISOString().slice(0, 16); }",
            first.get_attribute("datetime"),
        )
        page.goto(base + "/runs")
        page.locator("input[name=until]").fill(local)
        page.get_by_role("button", name="Filter").click()
        page.get_by_text("No runs match.").wait_for()
        page.goto(base + "/runs")
        page.locator("input[name=since]").fill(local)
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url(re.compile(r"tz=330"))
        assert "26 found" in page.locator("h1").inner_text().replace("\u2009", "")
    finally:
        ctx.close()
