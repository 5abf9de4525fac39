"""The API's description is public: openapi.json without a token (with a `servers` entry) and
the reference page /api/docs rendered from it, linked from every signed-in page."""

from __future__ import annotations

from tests.web.webhelp import API


def test_openapi_is_readable_without_a_token_and_names_its_server(anon):
    r = anon.get(API + "/openapi.json", base_url="https://rec.example:8443")
    assert r.status_code == 200
    doc = r.get_json()
    assert doc["servers"] == [{"url": "https://rec.example:8443", "description": "this server"}]
    assert doc["paths"][API + "/openapi.json"]["get"]["security"] == []
    assert doc["security"] == [{"bearer": []}]  # everything else still needs a token
    assert anon.get(API + "/status").status_code == 401


def test_the_docs_page_lists_every_operation_without_a_script(anon, client):
    page = anon.get("/api/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    doc = client.get(API + "/openapi.json").get_json()
    for path, methods in doc["paths"].items():
        for op in methods.values():
            assert f'id="op-{op["operationId"]}"' in html
        assert f"<code>{path.replace('<', '&lt;')}</code>" in html
    assert "<script" not in html
    assert "script-src" not in page.headers["Content-Security-Policy"]  # none may run


def test_signed_in_pages_link_to_the_api_docs(app, token):
    b = app.test_client()
    b.post("/login", data={"token": token})
    assert 'href="/api/docs"' in b.get("/").get_data(as_text=True)
