"""The UI as a person uses it, in a real browser against `recorder serve --demo`: sign in with the
printed link, record a demo camera and Open Ephys, watch the counts rise, stop, tag, look at the
thumbnails and the waveform, replay and watch the progress move. Screenshots: test-artifacts/."""

from __future__ import annotations

import re
import time

import pytest

from tests.clihelp import serve_demo
from tests.helpers import free_port

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


def _int(text: str) -> int:
    return int(re.sub(r"\D", "", text) or 0)


def _replay_created(response) -> bool:
    """The answer to the replay form's POST /replays."""
    return response.request.method == "POST" and response.url.split("?")[0].endswith("/replays")


def _rises(read, timeout: float = 20.0) -> tuple[int, int]:
    first = read()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = read()
        if now > first:
            return first, now
        time.sleep(0.25)
    raise AssertionError(f"did not rise from {first} in {timeout} s")


def test_record_tag_preview_replay_in_a_browser(tmp_path, page, shot):
    with serve_demo(tmp_path) as (link, _):
        page.goto(link.split("#")[0])  # without the token: the sign-in form
        page.get_by_role("button", name="Sign in").wait_for()
        shot("login")
        page.goto("about:blank")  # else only the fragment changes and the page stays
        page.goto(link)
        page.wait_for_url(re.compile(r"/$"))
        page.get_by_role("heading", name="Start a recording").wait_for()
        shot("dashboard")

        # Start one recording of the camera and Open Ephys demos.
        form = page.locator("form[data-action=start-recording]")
        form.locator("input[value=demo-pymultivideo]").check()
        form.locator("input[value=demo-openephys]").check()
        form.locator("input[value=demo-karabo]").check()
        form.locator("input[name=name]").fill("e2e camera <b>run</b>")
        form.locator("select[name=compression]").select_option("zstd")
        form.get_by_role("button", name="Start recording").click()
        row = page.locator("#recordings tbody tr").first
        row.wait_for()
        chosen = page.evaluate(
            "async () => (await R.api('GET', '/recordings')).recordings[0]"
            ".params.sources.map((s) => s.compression)"
        )
        assert chosen == ["zstd"] * 3
        count = row.locator("td.messages")
        before, after = _rises(lambda: _int(count.inner_text()))
        assert after > before
        time.sleep(1.5)
        shot("recording")
        run_link = row.locator("td a").first
        assert run_link.inner_text() == "e2e camera <b>run</b>"  # text, not markup
        run_url = run_link.get_attribute("href")
        row.get_by_role("button", name="Stop").click()
        page.get_by_text("Nothing is being recorded.").wait_for()

        # The runs table lists it; open it and tag it.
        page.get_by_role("link", name="Runs", exact=True).click()
        page.locator("#runs").wait_for()
        page.locator(f"#runs a[href='{run_url}']").click()
        page.wait_for_url(re.compile(re.escape(run_url) + "$"))
        tag_form = page.locator("form[data-action=add-tag]")
        tag_form.locator("input[name=tag]").fill("e2e-test")
        tag_form.get_by_role("button", name="Add").click()
        page.locator("#tags .chip", has_text="e2e-test").wait_for()
        notes = page.locator("#notes")
        notes.get_by_label("Add a note").fill("beam at 2 mA <i>unstable</i>")
        notes.get_by_role("button", name="Add note").click()
        saved = page.locator("#notes li[data-note] .note-text")  # text, not markup
        saved.first.wait_for()
        assert saved.first.inner_text() == "beam at 2 mA <i>unstable</i>"

        # Previews: a decoded thumbnail and a drawn waveform.
        thumb = page.locator("img[data-thumb=demo-pymultivideo]")
        page.wait_for_function(
            "() => { const i = document.querySelector('img[data-thumb=\"demo-pymultivideo\"]');"
            " return i && i.complete && i.naturalWidth > 0; }"
        )
        first_src = thumb.get_attribute("src")
        scrub = page.locator("input[data-scrub=demo-pymultivideo]")
        scrub.fill("3")
        page.wait_for_function(
            "s => document.querySelector('img[data-thumb=\"demo-pymultivideo\"]').src != s",
            arg=page.evaluate(
                "() => document.querySelector('img[data-thumb=\"demo-pymultivideo\"]').src"
            ),
        )
        assert "/frames/3.png" in thumb.get_attribute("src") != first_src
        page.locator("[data-signal=demo-openephys] canvas").first.wait_for()
        page.locator("#timeline canvas").wait_for()
        page.locator("[data-karabo=demo-karabo] ul.tree li").first.wait_for()
        time.sleep(0.5)
        shot("run")

        # The runs table filters by the tag (a chip links to that filter).
        page.get_by_role("link", name="Runs", exact=True).click()
        page.locator("#runs a.chip", has_text="e2e-test").click()
        page.wait_for_url(re.compile(r"tag=e2e-test"))
        assert page.locator("#runs tbody tr").count() == 1
        shot("runs")
        page.locator(f"#runs a[href='{run_url}']").click()
        page.locator("#replay-form").wait_for()

        # A refused request reads as the API's one-line message.
        replay = page.locator("#replay-form")
        replay.locator("input[name='endpoint:demo-karabo']").fill("nonsense")
        replay.get_by_role("button", name="Start replay").click()
        flash = page.locator("#flash.error")
        flash.wait_for()
        assert "endpoint" in flash.inner_text().lower(), flash.inner_text()
        shot("run-error", full=False)
        assert page.console_errors == [
            "Failed to load resource: the server responded with a status of 400 (BAD REQUEST)"
        ]
        page.console_errors.clear()  # that 400 was the point

        # Replay to fresh ports, looping, and watch the position move. Each stream gets two
        # ports: the Open Ephys and pyMultiVideo replays bind a control socket on port + 1.
        port = free_port(6)
        for k, stream in enumerate(("demo-pymultivideo", "demo-openephys", "demo-karabo")):
            replay.locator(f"input[name='endpoint:{stream}']").fill(
                f"tcp://127.0.0.1:{port + 2 * k}"
            )
        replay.locator("input[name=loop]").fill("0")
        # answered once the sockets are bound (up to 15 s on a busy machine), then the page moves
        with page.expect_response(_replay_created, timeout=60_000) as created:
            replay.get_by_role("button", name="Start replay").click()
        assert created.value.status == 201, created.value.text()
        page.wait_for_url(re.compile(r"/replays/"))
        replay_url = page.url
        position = page.locator("#replay-position")
        _rises(lambda: int(float(position.inner_text()) * 10), timeout=30)
        shot("replay")
        page.get_by_role("link", name="Dashboard", exact=True).click()
        page.locator("#replays progress").wait_for()
        shot("dashboard-replaying")
        page.goto(replay_url)
        page.get_by_role("button", name="Pause").click()
        page.locator("#replay-live .state", has_text="paused").wait_for()
        page.get_by_role("button", name="Stop").click()
        page.locator("#replay-live .state", has_text=re.compile("stopped|finished")).wait_for()

        # Sources, and an error reads as a message, not a stack trace.
        page.get_by_role("link", name="Sources", exact=True).click()
        page.locator("#sources").wait_for()
        # Editing a source keeps what the form shows, compression included.
        page.locator("tr[data-source=demo-openephys] button", has_text="Edit").click()
        source_form = page.locator("#source-form")
        source_form.locator("select[name=compression]").select_option("blosc-zstd")
        with page.expect_navigation():  # saved, the page reloads
            source_form.get_by_role("button", name="Save source").click()
        edit = page.locator("tr[data-source=demo-openephys] button[data-edit-source]")
        assert '"compression": "blosc-zstd"' in edit.get_attribute("data-edit-source")
        page.locator("tr[data-source=demo-openephys] button", has_text="Edit").click()
        assert source_form.locator("select[name=compression]").input_value() == "blosc-zstd"
        runs_before = page.evaluate("async () => (await R.api('GET', '/runs')).total")
        page.locator("tr[data-source=demo-openephys] button", has_text="Test").click()
        page.locator("tr[data-source=demo-openephys] .test-result", has_text="OK").wait_for(
            timeout=20_000
        )
        # a connection test leaves no run behind
        assert page.evaluate("async () => (await R.api('GET', '/runs')).total") == runs_before
        shot("sources")
        assert not page.console_errors, page.console_errors
        page.goto(link.split("/login")[0] + "/runs/no-such-run")
        assert "no run 'no-such-run'" in page.inner_text("main")
        assert "Traceback" not in page.content()
        shot("error")
