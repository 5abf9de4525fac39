"""Every page in a real browser: axe-core finds no accessibility violation, and at phone width
(390 x 844) no page is wider than the screen. axe-core is the copy the PyPI package
axe-playwright-python bundles (a test dependency), run in the page."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.uiworld import sign_in, world

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


def _axe_source() -> str:
    axe = pytest.importorskip("axe_playwright_python")
    return (Path(axe.__file__).parent / "axe.min.js").read_text(encoding="utf-8")


def _violations(page, axe: str) -> list[str]:
    page.evaluate(axe)  # through the debugger: the page's CSP does not apply
    found = page.evaluate("async () => (await axe.run(document)).violations.map((v) => "
                          "v.id + ': ' + v.help + ' at ' + v.nodes.map((n) => n.target.join(' '))"
                          ".slice(0, 4).join(', '))")  # fmt: skip
    return found


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_page_has_an_accessibility_violation(app, data, browser, served, scheme):
    axe = _axe_source()
    paths = world(app, data)
    secret, _ = app.extensions["recorder"].control.create_token("axe")
    ctx = browser.new_context(viewport={"width": 1366, "height": 768}, color_scheme=scheme)
    ctx.set_default_timeout(20_000)
    page = ctx.new_page()
    try:
        base = served
        page.goto(base + "/login")
        problems = {"login": _violations(page, axe)}
        sign_in(page, base, secret)
        for name, path in paths.items():
            page.goto(base + path)
            page.wait_for_load_state("networkidle")
            problems[name] = _violations(page, axe)
        bad = {k: v for k, v in problems.items() if v}
        assert not bad, "\n".join(f"{k}: {x}" for k, v in bad.items() for x in v)
    finally:
        ctx.close()


def test_every_page_fits_a_phone_and_its_buttons_are_on_screen(app, data, browser, served):
    paths = world(app, data)
    secret, _ = app.extensions["recorder"].control.create_token("phone")
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    ctx.set_default_timeout(20_000)
    page = ctx.new_page()
    width = "() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
    try:
        base = served
        page.goto(base + "/login")
        widths = {"login": page.evaluate(width)}
        sign_in(page, base, secret)
        for name, path in paths.items():
            page.goto(base + path)
            page.wait_for_load_state("networkidle")
            widths[name] = page.evaluate(width)
        assert {k: w for k, w in widths.items() if w > 390} == {}
        # The buttons a row acts with are on screen, not behind a sideways scroll.
        for path, names in (("/", ["Stop"]), ("/sources", ["Test", "Edit"])):
            page.goto(base + path)
            for name in names:
                box = page.get_by_role("button", name=name, exact=True).first.bounding_box()
                assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, (
                    path, name, box)  # fmt: skip
    finally:
        ctx.close()
