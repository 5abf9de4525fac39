"""Browser fixtures: Debian's chromium driven by playwright (never a downloaded browser), at
the laptop size the UI is designed for, with screenshots kept in test-artifacts/ to look at."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from recorder.web import create_app

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def _chromium():
    """One playwright driver and one chromium per test module: launching them costs seconds,
    and every test gets its own browser context (cookies, storage, pages) anyway. Not per
    session: while the sync driver lives, its event loop counts as running in this thread, so
    another module's own sync_playwright() (tests/web/test_live.py) or asyncio.run() fails."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        launched = []

        def launch():
            if not launched or not launched[-1].is_connected():  # a test crashed the last one
                launched.append(p.chromium.launch(executable_path=CHROMIUM, args=ARGS,
                                                  headless=True))  # fmt: skip
            return launched[-1]

        try:
            yield launch
        finally:
            for b in launched:
                if b.is_connected():
                    b.close()


@pytest.fixture
def browser(_chromium):
    """The shared chromium; a test makes its own contexts in it and closes them (`page` does)."""
    b = _chromium()
    yield b
    for left in b.contexts:  # one a failed test left open: the next test starts clean
        left.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1366, "height": 768})
    ctx.set_default_timeout(20_000)
    pg = ctx.new_page()
    pg.console_errors = []
    pg.on("console", lambda m: m.type == "error" and pg.console_errors.append(m.text))
    pg.on("pageerror", lambda e: pg.console_errors.append(str(e)))
    try:
        yield pg
    finally:
        ctx.close()


@pytest.fixture
def shot(page):
    """shot("name") saves a full-page screenshot as test-artifacts/e2e-NN-name.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    for old in ARTIFACTS.glob("e2e-*.png"):
        old.unlink()
    count = [0]

    def take(name: str, full: bool = True) -> Path:
        count[0] += 1
        path = ARTIFACTS / f"e2e-{count[0]:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=full)
        return path

    return take


@pytest.fixture
def app(data):
    return create_app(data)


@pytest.fixture
def token(app) -> str:
    secret, _ = app.extensions["recorder"].control.create_token("e2e")
    return secret


@pytest.fixture
def served(app):
    """The app on a real port in a thread (werkzeug), for a real browser."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    t.join(10)
