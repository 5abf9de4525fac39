"""Exporting from the run page in a real browser against `recorder serve --demo` (gunicorn, the
manager, worker processes): a bad window reads as the API's message, then Export, watch it
finish and download the file, which the mcap library reads. Screenshots: test-artifacts/."""

from __future__ import annotations

import re

import pytest
from mcap.reader import make_reader

from tests.clihelp import serve_demo

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


def test_export_a_run_from_its_page_and_download_it(tmp_path, page, shot):
    with serve_demo(tmp_path) as (link, _):
        page.goto(link)
        page.wait_for_url(re.compile(r"/$"))
        # A short recording of two demo streams, through the API as the page's own scripts do.
        run_id = page.evaluate(
            """async () => {
                const rec = await R.api("POST", "/recordings", {
                    sources: ["demo-adzmq", "demo-raw"], duration_s: 1.5, name: "to export"});
                for (let i = 0; i < 200; i++) {
                    const job = await R.api("GET", "/recordings/" + rec.id);
                    if (["finished", "stopped", "failed"].includes(job.state)) return job.run_id;
                    await new Promise((r) => setTimeout(r, 100));
                }
                throw new Error("the recording did not end");
            }"""
        )
        page.goto(link.split("/login")[0] + f"/runs/{run_id}")
        form = page.locator("#export-form")
        form.wait_for()
        page.get_by_text("No exports yet.").wait_for()

        # A window that ends before it starts is refused with the API's message.
        form.locator("select[name=target]").select_option("mcap")
        form.locator("input[name=start]").fill("5")
        form.locator("input[name=end]").fill("1")
        form.get_by_role("button", name="Export").click()
        flash = page.locator("#flash.error")
        flash.wait_for()
        assert "before" in flash.inner_text(), flash.inner_text()
        assert page.console_errors == [
            "Failed to load resource: the server responded with a status of 400 (BAD REQUEST)"
        ]
        page.console_errors.clear()

        # One stream, the whole run: the job appears, runs and offers its file.
        form.locator("input[name=start]").fill("")
        form.locator("input[name=end]").fill("")
        form.locator("input[name=export-stream][value=demo-adzmq]").check()
        form.get_by_role("button", name="Export").click()
        row = page.locator("#exports tr[data-export]").first
        row.wait_for()
        download_link = row.locator("a.export-download")
        download_link.wait_for(timeout=60_000)  # polled by htmx until the job has finished
        assert row.get_attribute("data-state") == "finished"
        assert "messages" in row.inner_text()
        shot("export-finished")
        with page.expect_download() as info:
            download_link.click()
        saved = tmp_path / "downloaded.mcap"
        info.value.save_as(saved)
        assert info.value.suggested_filename == f"{run_id}.mcap"
        with saved.open("rb") as f:
            summary = make_reader(f).get_summary()
        assert summary is not None and summary.statistics.message_count > 0
        topics = {c.topic for c in summary.channels.values()}
        assert any("demo-adzmq" in t for t in topics) and not any("demo-raw" in t for t in topics)

        # Remove it: the list is empty again.
        row.get_by_role("button", name="Remove").click()
        page.get_by_text("No exports yet.").wait_for()
        assert not page.console_errors, page.console_errors
