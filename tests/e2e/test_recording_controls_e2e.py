"""Recording controls in a real browser against `recorder serve --demo`: start an armed
recording from the dashboard's form, press Trigger, add a marker, and find the marker on the new
run's page (its list and its mark on the run's timeline bar). Screenshots: test-artifacts/."""

from __future__ import annotations

import re
import time

import pytest

from tests.clihelp import serve_demo

pytestmark = [pytest.mark.timeout(150), pytest.mark.slow]


def test_armed_recording_trigger_and_marker_in_a_browser(tmp_path, page, shot):
    with serve_demo(tmp_path) as (link, _):
        origin = re.match(r"https?://[^/]+", link).group(0)
        page.goto(link)
        page.wait_for_url(re.compile(r"/$"))
        form = page.locator("form[data-action=start-recording]")
        form.locator("input[value=demo-raw]").check()
        form.locator("input[name=name]").fill("armed e2e")
        form.locator("input[name=armed]").check()
        form.locator("input[name=pre_s]").fill("1")
        form.get_by_role("button", name="Start recording").click()

        row = page.locator("#recordings tbody tr").first
        row.locator("[data-testid=recording-state]", has_text="armed").wait_for()
        assert row.locator("[data-testid=current-run]").count() == 0  # no run before a trigger
        shot("armed")
        row.get_by_role("button", name="Trigger").click()
        row.locator("[data-testid=recording-state]", has_text="recording").wait_for()
        run_link = row.locator("[data-testid=current-run]")
        run_link.wait_for()
        run_url = run_link.get_attribute("href")
        assert run_url and run_url.startswith("/runs/")

        marker = row.locator("form[data-marker] input[name=text]")
        marker.fill("odour on <b>A</b>")
        row.get_by_role("button", name="Add marker").click()
        page.get_by_text("Marker added.").wait_for()
        shot("marker-added")

        # The worker writes the marker into the run within a poll: reload until it shows.
        deadline = time.monotonic() + 20
        while True:
            page.goto(origin + run_url)
            items = page.locator("[data-testid=marker]")
            if items.count() or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert items.count() == 1, "the marker never reached the run page"
        text = items.first.inner_text()
        assert "odour on <b>A</b>" in text  # shown as text, not markup
        assert page.locator("[data-testid=trigger]").inner_text().startswith("Triggered")
        mark = page.locator("#markbar .marker-mark")
        assert mark.count() == 1
        left = mark.evaluate("el => el.style.left")
        assert left.endswith("%") and 0 <= float(left[:-1]) <= 100
        shot("run-with-marker")
        assert not [e for e in page.console_errors if "Content Security Policy" in e]

        page.goto(origin + "/")
        page.locator("#recordings tbody tr").first.get_by_role("button", name="Stop").click()
        page.get_by_text("Nothing is being recorded.").wait_for()
