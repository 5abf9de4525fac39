"""The pages, through the Flask test client: they render for a signed-in browser, send everyone
else to the login page, escape whatever users typed, and show errors as readable messages."""

from __future__ import annotations

import re

import pytest

from tests.web.webhelp import API, recorded_run

pytestmark = pytest.mark.timeout(60)
EVIL = "<script>alert(1)</script>"
PAGES = ["/", "/runs", "/sources", "/ui/live"]


@pytest.fixture
def browser(app, token):
    """A client signed in the way a browser is: the login form sets the cookie."""
    c = app.test_client()
    r = c.post("/login", data={"token": token})
    assert r.status_code == 303
    return c


@pytest.fixture
def run_id(data, client):
    rid = recorded_run(data, "adzmq", 5)
    assert client.patch(f"{API}/runs/{rid}", json={"name": EVIL, "note": EVIL}).status_code == 200
    assert client.post(f"{API}/runs/{rid}/tags", json={"tag": "cal-1"}).status_code == 200
    return rid


@pytest.mark.parametrize("path", PAGES)
def test_pages_render_for_a_signed_in_browser(browser, path):
    r = browser.get(path)
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    assert r.mimetype == "text/html"
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]


@pytest.mark.parametrize("path", [*PAGES, "/runs/x", "/replays/x"])
def test_pages_send_strangers_to_the_login_page(anon, path):
    r = anon.get(path)
    assert r.status_code == 303
    assert r.headers["Location"].startswith("/login?next=")


def test_a_poll_without_login_is_401_not_a_redirect(anon):
    assert anon.get("/ui/live", headers={"HX-Request": "true"}).status_code == 401


def test_a_bad_cookie_is_not_signed_in(app):
    c = app.test_client()
    c.set_cookie("recorder_session", "rec_nonsense")
    assert c.get("/").status_code == 303


def test_login_goes_back_where_it_came_from_but_only_on_this_site(app, token):
    c = app.test_client()
    r = c.post("/login", data={"token": token, "next": "/runs?tag=x"})
    assert r.headers["Location"] == "/runs?tag=x"
    for bad in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        r = c.post("/login", data={"token": token, "next": bad})
        assert r.headers["Location"] == "/", bad


def test_user_text_is_escaped_everywhere(browser, run_id):
    for path in ("/runs", f"/runs/{run_id}", "/runs?q=<script>"):
        html = browser.get(path).get_data(as_text=True)
        assert EVIL not in html, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in browser.get(f"/runs/{run_id}").get_data(
        as_text=True
    )


def test_run_page_shows_streams_tags_notes_and_previews(browser, run_id):
    html = browser.get(f"/runs/{run_id}").get_data(as_text=True)
    assert 'data-thumb="main"' in html  # an image stream gets a thumbnail and scrubber
    assert "cal-1" in html and "adzmq" in html
    assert 'id="timeline-data"' in html
    assert f"/api/v1/runs/{run_id}/download" in html


def test_runs_table_filters_sorts_and_pages(browser, data, client, run_id):
    other = recorded_run(data, "adzmq", 3)
    html = browser.get("/runs?tag=cal-1").get_data(as_text=True)
    assert run_id in html and other not in html
    html = browser.get("/runs?sort=-messages&size=25").get_data(as_text=True)
    assert html.index(run_id) < html.index(other)  # 5 messages before 3
    html = browser.get("/runs?size=25&page=2").get_data(as_text=True)
    assert "No runs match." in html
    assert re.search(r"<span class=\"chip\"|class=\"chip\"", browser.get("/runs").text)


def test_errors_are_readable_pages_not_tracebacks(browser):
    r = browser.get("/runs/no-such-run")
    assert r.status_code == 404
    text = r.get_data(as_text=True)
    assert "no run &#39;no-such-run&#39;" in text and "Traceback" not in text
    r = browser.get("/runs?status=nonsense&since=yesterday")
    assert r.status_code == 422
    assert "status" in r.get_data(as_text=True) and "Traceback" not in r.get_data(as_text=True)
    assert browser.get("/replays/nope").status_code == 404


def test_download_is_a_zip_of_the_run(client, run_id):
    import io
    import zipfile

    r = client.get(f"{API}/runs/{run_id}/download")
    assert r.status_code == 200 and r.mimetype == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(r.get_data())).namelist()
    assert f"{run_id}/zarr.json" in names
    assert client.get(f"{API}/runs/nope/download").status_code == 404


def test_sort_is_part_of_the_api_too(client, data):
    assert client.get(f"{API}/runs?sort=-bytes").status_code == 200
    assert client.get(f"{API}/runs?sort=sideways").status_code == 422


def test_karabo_run_page_offers_sources_and_the_image(browser, data):
    rid = recorded_run(data, "karabo", 3)
    html = browser.get(f"/runs/{rid}").get_data(as_text=True)
    assert 'data-karabo="main"' in html
    assert re.search(r'data-thumb="main" data-array="[^"]*image[^"]*"', html), html[-3000:]


def test_sign_out_ends_the_session(browser):
    assert browser.get("/").status_code == 200
    r = browser.post("/logout")
    assert r.status_code == 303 and r.headers["Location"] == "/login"
    assert browser.get("/").status_code == 303


def test_forms_offer_every_compression(browser, client):
    """The source form keeps a saved source's choice when edited (it PUTs the whole source),
    and the start form offers one for the recording."""
    src = {"endpoint": "tcp://127.0.0.1:1", "compression": "zstd"}
    assert client.put(f"{API}/sources/dark", json=src).status_code == 201
    for path in ("/sources", "/"):
        html = browser.get(path).get_data(as_text=True)
        select = re.search(r'<select name="compression">(.*?)</select>', html)
        assert select, path
        assert re.findall(r"<option[^>]*>([^<]+)</option>", select[1])[-3:] == [
            "none",
            "zstd",
            "blosc-zstd",
        ]
    assert "&#34;compression&#34;: &#34;zstd&#34;" in browser.get("/sources").get_data(as_text=True)
