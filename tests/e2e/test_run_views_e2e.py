"""The run page's views and the replay page's keys in Debian's chromium, against the real app
served over HTTP on loopback with runs recorded from the simulators: the image viewer (steps,
jumps, colour map, contrast, full resolution, attributes), the message inspector (paging, hex,
Karabo trains, source and key), a scalar plot, a range dragged on the timeline filling the
replay and export forms, and (with a real manager) the replay page's keyboard and a recording's
Stop button, counts and countdown. Screenshots: test-artifacts/."""

from __future__ import annotations

import importlib.util
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from recorder import config
from recorder.simulators import make_simulator
from recorder.web import create_app
from tests.helpers import running_manager, wait_for
from tests.recordhelp import running
from tests.web.webhelp import recorded_run

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]
DASH = "\N{EN DASH}"  # the inspector writes ranges with it


@contextmanager
def serving(data):
    """The web app on a free loopback port in a thread; yields its origin and a token."""
    app = create_app(data)
    secret, _ = app.extensions["recorder"].control.create_token("browser")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", secret
    finally:
        server.shutdown()
        t.join(10)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    data = tmp_path_factory.mktemp("views-e2e") / "data"
    config.data_dir(data)
    runs = {p: recorded_run(data, p, 40) for p in ("adzmq", "karabo", "raw")}
    with serving(data) as (origin, secret):
        yield {"origin": origin, "secret": secret, "runs": runs, "data": data}


def _open(page, site, path: str):
    page.goto(f"{site['origin']}/login?next={path}#token={site['secret']}")
    page.wait_for_url(f"**{path}")


def _axe_violations(page, selectors: list[str]) -> list | None:
    """axe-core's violations inside `selectors` (None when axe-core is not installed)."""
    spec = importlib.util.find_spec("axe_playwright_python")
    if spec is None or not spec.submodule_search_locations:
        return None
    axe = Path(next(iter(spec.submodule_search_locations))) / "axe.min.js"
    page.evaluate(axe.read_text(encoding="utf-8"))
    return page.evaluate(
        "sel => axe.run({include: sel}).then(r => r.violations.map(v => [v.id,"
        " v.nodes.map(n => n.target.join(' '))]))",
        selectors,
    )


def _no_script_errors(page):
    assert not page.console_errors, page.console_errors


def test_image_viewer_steps_jumps_colours_and_shows_attributes(page, site, shot):
    _open(page, site, f"/runs/{site['runs']['adzmq']}")
    viewer = page.locator("#image-viewer")
    facts = viewer.locator("[data-img-facts]")
    facts.get_by_text("0 of 40").wait_for()
    viewer.get_by_role("button", name="Next frame").click()
    facts.get_by_text("1 of 40").wait_for()
    viewer.get_by_label("Frame", exact=True).fill("17")
    viewer.get_by_label("Frame", exact=True).press("Enter")
    facts.get_by_text("17 of 40").wait_for()
    assert viewer.locator("[data-img-attrs]").get_by_text("ndattr.Temperature").count() == 1
    unique = facts.locator("div", has_text="Unique id").locator("dd").inner_text()
    assert unique.lstrip("-").isdigit()

    viewer.get_by_label("Colours").select_option("viridis")
    img = viewer.locator("img[data-img]")
    page.wait_for_function(
        "() => { const i = document.querySelector('[data-img]');"
        " return i.src.includes('cmap=viridis') && i.complete && i.naturalWidth > 0; }"
    )
    assert viewer.get_by_label("Low %").is_hidden()
    viewer.get_by_label("Contrast").select_option("manual")
    lo = viewer.get_by_label("Black")
    assert lo.is_visible() and lo.input_value() != ""  # filled from the frame's values
    img.click()  # full resolution
    page.wait_for_function(
        "() => { const i = document.querySelector('[data-img]');"
        " return i.src.includes('full=true') && i.complete && i.naturalWidth === 64; }"
    )
    assert "full" in viewer.locator("[data-img-box]").get_attribute("class")
    viewer.locator("[data-img-box]").focus()
    shot("image-viewer")
    _no_script_errors(page)


def test_inspector_pages_and_finds_a_karabo_train_source_and_key(page, site, shot):
    _open(page, site, f"/runs/{site['runs']['raw']}")
    insp = page.locator("#inspector")
    status = insp.locator("[data-insp-status]")
    status.get_by_text(f"messages 0{DASH}9 of 40").wait_for()
    assert insp.locator("li.message").count() == 10
    insp.get_by_role("button", name="Next page").click()
    status.get_by_text(f"messages 10{DASH}19 of 40").wait_for()
    first = insp.locator("li.message").first
    assert first.locator("summary").first.inner_text().startswith("#10 ")
    hexdump = first.locator("pre.frame-content").nth(1).inner_text()
    assert len(hexdump.split()) == 64  # the payload's first 64 bytes, as hex pairs
    insp.get_by_label("From message").fill("35")
    insp.get_by_label("From message").press("Enter")
    status.get_by_text(f"messages 35{DASH}39 of 40").wait_for()
    _no_script_errors(page)

    _open(page, site, f"/runs/{site['runs']['karabo']}")
    insp = page.locator("#inspector")
    status = insp.locator("[data-insp-status]")
    status.get_by_text("of 40").wait_for()
    train = page.evaluate(
        f"R.api('GET', '/runs/{site['runs']['karabo']}/streams/main/messages?start=23&limit=1')"
        ".then(p => p.messages[0].columns.train_id)"
    )
    insp.get_by_label("Train id").fill(str(train))
    insp.get_by_role("button", name="Go to train").click()
    status.get_by_text(f"messages 23{DASH}").wait_for()
    assert f"train {train}" in insp.locator("li.message summary").first.inner_text()
    insp.get_by_label("Source").select_option("SA1_XTD2_XGM/DOOCS/MAIN")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#inspector li.message')].length > 0 &&"
        " [...document.querySelectorAll("
        "'#inspector li.message:first-child tbody tr td:nth-child(4)')]"
        ".every(td => td.textContent === 'SA1_XTD2_XGM/DOOCS/MAIN')"
    )
    insp.get_by_label("Key").select_option("pulseEnergy.photonFlux.value")
    page.wait_for_function(
        "() => { const pres = [...document.querySelectorAll("
        "'#inspector li.message:first-child pre.frame-content')].map(p => p.textContent);"
        " return pres.some(t => t.includes('pulseEnergy.photonFlux.value'))"
        " && !pres.some(t => t.includes('beamPosition')); }"
    )
    shot("inspector-karabo")
    views = ["#image-viewer", "#inspector", "#scalars", "#run-timeline"]
    assert not _axe_violations(page, views)  # labelled, reachable from the keyboard
    _no_script_errors(page)


def test_a_scalar_column_is_plotted_on_the_run_time_axis(page, site, shot):
    _open(page, site, f"/runs/{site['runs']['adzmq']}")
    box = page.locator("#scalars")
    box.get_by_label("Column").select_option("ndattr.Temperature")
    box.locator("[data-sc-plot][data-column='ndattr.Temperature'] .uplot canvas").wait_for()
    assert box.locator("[data-sc-status]").inner_text().startswith("40 values in")
    shot("scalars")
    _no_script_errors(page)


def test_dragging_a_range_on_the_timeline_fills_replay_and_export(page, site, shot):
    _open(page, site, f"/runs/{site['runs']['raw']}")
    bar = page.locator("[data-tl-bar]")
    bar.scroll_into_view_if_needed()
    box = bar.bounding_box()
    duration = float(page.locator("#run-timeline").get_attribute("data-duration-s"))
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.4, y, steps=5)
    page.mouse.move(box["x"] + box["width"] * 0.6, y, steps=5)
    page.mouse.up()
    start = float(page.locator("#replay-form input[name=start_s]").input_value())
    end = float(page.locator("#replay-form input[name=end_s]").input_value())
    tol = duration * 0.02 + 1e-3
    assert abs(start - 0.2 * duration) <= tol and abs(end - 0.6 * duration) <= tol
    assert float(page.locator("#export-form input[name=start]").input_value()) == start
    assert float(page.locator("#export-form input[name=end]").input_value()) == end
    assert page.locator("[data-tl-range]").is_visible()
    shot("timeline-range")

    # A click (no drag) shows that moment in the viewers: the inspector starts there.
    page.mouse.click(box["x"] + box["width"] * 0.9, y)
    page.wait_for_function(
        "() => !document.querySelector('[data-tl-cursor]').hidden &&"
        " Number(document.querySelector('[data-insp-start]').value) > 20"
    )
    page.get_by_role("button", name="Whole run").click()
    assert page.locator("#replay-form input[name=start_s]").input_value() == ""
    _no_script_errors(page)


def _replay(page, rid: str) -> dict:
    return page.evaluate(f"R.api('GET', '/replays/{rid}')")


def test_replay_page_keys_pause_resume_step_and_seek(page, site, shot):
    with running_manager(site["data"]):
        _open(page, site, "/")
        rid = page.evaluate(
            "run => R.api('POST', '/replays', {run_id: run, endpoint: 'auto', paused: true,"
            " loop: 0, speed: 0.01}).then(r => r.id)",
            site["runs"]["raw"],
        )
        page.goto(f"{site['origin']}/replays/{rid}")
        keys = page.locator("#replay-keys")
        toggle = keys.locator("button[data-rk-toggle]")
        keys.locator("button[data-rk-toggle][aria-pressed=true]").wait_for()  # started paused
        wait_for(lambda: _replay(page, rid)["state"] == "paused", 20, "the replay state")

        page.locator("h1").click()  # focus on the page, not on a field
        page.keyboard.press("Space")
        wait_for(lambda: _replay(page, rid)["state"] == "running", 20, "the replay state")
        keys.locator("button[data-rk-toggle][aria-pressed=false]").wait_for()
        assert toggle.get_attribute("aria-label") == "Hold or play on (space)"
        page.keyboard.press("Space")
        wait_for(lambda: _replay(page, rid)["state"] == "paused", 20, "the replay state")

        before = _replay(page, rid)["messages"]
        page.keyboard.press("ArrowRight")  # paused: the next message
        wait_for(lambda: _replay(page, rid)["messages"] > before, 20, "the replay state")

        # Typing in a field is not a shortcut.
        page.get_by_label("Speed").focus()
        page.keyboard.press("Space")
        assert _replay(page, rid)["desired"] == "paused"

        # The slider seeks within the run and no further.
        slider = keys.locator("[data-rk-slider]")
        wait_for(lambda: float(slider.get_attribute("max") or 0) > 0, 20, "the replay state")
        slider.evaluate(
            "s => { s.value = s.max; s.dispatchEvent(new Event('input'));"
            " s.dispatchEvent(new Event('change')); }"
        )
        keys.locator("[data-rk-status]").get_by_text("seek to").wait_for()
        duration = float(slider.get_attribute("max"))
        assert float(slider.input_value()) <= duration
        page.locator("h1").click()
        page.keyboard.press("Shift+ArrowLeft")
        keys.locator("[data-rk-status]").get_by_text("seek to 0.0 s").wait_for()
        shot("replay-keys")
        page.evaluate(f"R.api('POST', '/replays/{rid}/stop')")
        wait_for(
            lambda: _replay(page, rid)["state"] in ("stopped", "finished"), 30, "the replay state"
        )
        keys.get_by_role("button", name="Step 1 message").wait_for()
        wait_for(
            lambda: keys.get_by_role("button", name="Step 1 message").is_disabled(), 10, "disabled"
        )
        _no_script_errors(page)


def test_page_of_a_run_being_recorded_counts_counts_down_and_stops(page, site, shot):
    sim = make_simulator("raw", "tcp://127.0.0.1:*", rate=200)
    endpoint = sim.bind()
    with running(sim), running_manager(site["data"]):
        _open(page, site, "/")
        job = page.evaluate(
            "ep => R.api('POST', '/recordings', {sources: [{protocol: 'raw', endpoint: ep}],"
            " duration_s: 600, name: 'timed'})",
            endpoint,
        )
        run_id = job.get("run_id")
        deadline = time.monotonic() + 30
        while not run_id and time.monotonic() < deadline:
            run_id = page.evaluate(f"R.api('GET', '/recordings/{job['id']}').then(r => r.run_id)")
            time.sleep(0.1)
        assert run_id, "the recording never opened a run"
        wait_for(
            lambda: page.evaluate(
                "id => R.api('GET', '/runs/' + id).then(() => true, () => false)", run_id
            ),
            30,
            "the run in the catalog",
        )
        page.console_errors.clear()  # the 404s of the wait above
        page.goto(f"{site['origin']}/runs/{run_id}")
        panel = page.locator("#recording-now")
        panel.wait_for()
        counts = panel.locator("[data-rn-messages]")
        page.wait_for_function(
            "() => Number(document.querySelector('[data-rn-messages]').textContent"
            ".replace(/[^0-9]/g, '')) > 0"
        )
        first = int("".join(ch for ch in counts.inner_text() if ch.isdigit()))
        page.wait_for_function(
            "n => Number(document.querySelector('[data-rn-messages]').textContent"
            ".replace(/[^0-9]/g, '')) > n",
            arg=first,
        )  # live, without reloading
        left = panel.locator("[data-rn-countdown]").inner_text()
        assert left.startswith(("9:", "10:")), left  # 600 s, counting down
        shot("recording-now")
        _no_script_errors(page)
        panel.get_by_role("button", name="Stop recording").click()
        panel.locator("[data-rn-status]").get_by_text("has ended").wait_for(timeout=30_000)
        assert panel.get_by_role("button", name="Stop recording").is_hidden()
        # the live panel's poll races the stop: it learns the recording ended (no failed load)
        page.locator("#live-preview [data-live-status]").get_by_text("has ended").wait_for()
        assert not page.console_errors, page.console_errors
