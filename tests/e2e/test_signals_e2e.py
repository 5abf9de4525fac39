"""The run page's signal viewer in a real browser: it shows a run's continuous data, zooming
asks the server for a narrower window and gets finer data down to raw samples, the channel
picker asks for the channels ticked, and no script error happens on the way."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest

from recorder import config
from tests.e2e.uiworld import sign_in
from tests.signalhelp import write_run

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}


def _loaded(page, count: int) -> None:
    """Wait until the viewer has drawn `count` answers."""
    page.wait_for_function(
        f"() => document.querySelector('[data-signal=oe]').dataset.loads === '{count}'"
    )


def test_zoom_loads_finer_data_down_to_raw_samples(app, data, token, served, page, shot):
    """The app served in a thread (the `served` fixture): the viewer needs the web app and a
    run, not the manager and gunicorn of `recorder serve`."""
    runs = config.runs_dir(data)
    run_id, _ = write_run(runs, blocks=600, channels=16)
    app.extensions["recorder"].catalog.index_path(runs / run_id)
    asked: list[str] = []
    page.on("request", lambda r: "/signal?" in r.url and asked.append(r.url))
    sign_in(page, served, token)
    page.goto(f"{served}/runs/{run_id}")
    view = page.locator("[data-signal=oe]")
    view.locator(".uplot").wait_for()
    assert view.get_attribute("data-loads") == "1"
    first_bucket = int(view.get_attribute("data-bucket") or 0)
    assert first_bucket >= 64, "a whole 20 s run is drawn from an overview level"
    assert "min/max of" in view.locator("[data-signal-status]").inner_text()
    shot("signals-whole-run")

    whole = float(view.get_attribute("data-end") or 0)
    assert whole == pytest.approx(600 * 1024 / 30000, abs=1e-6)

    # Drag across the middle fifth of the plot: the viewer asks for that window.
    view.locator(".u-over").scroll_into_view_if_needed()
    box = view.locator(".u-over").bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.4, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, y, steps=5)
    page.mouse.up()
    _loaded(page, 2)
    q = _query(asked[-1])
    assert 0 < float(q["end"]) - float(q["start"]) < 0.3 * whole
    assert int(view.get_attribute("data-bucket") or 0) < first_bucket

    # Zoom in with + until single samples come back.
    loads = 2
    while view.get_attribute("data-bucket") != "1":
        assert loads < 12, "never reached raw samples"
        view.get_by_role("button", name="+").click()
        loads += 1
        _loaded(page, loads)
    assert "raw samples" in view.locator("[data-signal-status]").inner_text()
    spans = [float(_query(u)["end"]) - float(_query(u)["start"]) for u in asked[1:]]
    assert spans == sorted(spans, reverse=True), "every zoom asked for a narrower window"
    shot("signals-raw-samples")

    # Tick channel 13 (number 12): the next request asks for it, the legend shows it.
    view.locator("summary").click()
    view.locator("input[data-signal-channel='12']").check()
    loads += 1
    _loaded(page, loads)
    assert "12" in _query(asked[-1])["channels"].split(",")
    assert "CH13" in view.locator(".u-legend").inner_text()
    errors = [e for e in page.console_errors if "409" not in e]
    assert not errors, errors
