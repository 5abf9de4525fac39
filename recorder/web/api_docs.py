"""The API's reference as a page, `/api/docs`: the OpenAPI document rendered on the server.

Rendered from the same document `/api/v1/openapi.json` serves (so it cannot drift from what
validates requests), with no script and nothing fetched from elsewhere, and readable without
signing in, like the document itself.
"""

from __future__ import annotations

import functools
import secrets

from flask import Blueprint, Response, render_template, request

from recorder import __version__
from recorder.web.api import PREFIX, api, state
from recorder.web.auth import caller

bp = Blueprint("api_docs", __name__)
CSP = "default-src 'none'; style-src 'self'; img-src data:; frame-ancestors 'none'; base-uri 'none'"


def _schema_name(schema: dict | None) -> str:
    ref = (schema or {}).get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref else ""


def _returns(op: dict, ok: list[str]) -> str:
    """The schema a successful answer holds ("" for none, or not JSON)."""
    content = op["responses"][ok[0]].get("content", {}) if ok else {}
    json_body: dict = content.get("application/json", {})
    return _schema_name(json_body.get("schema"))


def _operations(doc: dict) -> dict[str, list[dict]]:
    """Operations by tag, in the order the API declares them."""
    by_tag: dict[str, list[dict]] = {}
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            ok = [c for c in op["responses"] if c.startswith("2")]
            by_tag.setdefault(op["tags"][0], []).append({
                "method": method.upper(), "path": path, "id": op["operationId"],
                "summary": op.get("summary", ""), "description": op.get("description", ""),
                "parameters": op.get("parameters", []), "body": _schema_name(body.get("schema")),
                "ok": ok, "errors": [c for c in op["responses"] if not c.startswith("2")],
                "returns": _returns(op, ok), "public": op.get("security") == [],
            })  # fmt: skip
    return by_tag


@functools.cache
def _document() -> dict:
    """The operations are declared at import: the document is the same for the process's life."""
    doc = api.openapi(title="zmq-recorder", version=__version__, prefix=PREFIX)
    doc["paths"][PREFIX + "/openapi.json"]["get"]["security"] = []
    return doc


@bp.get("/api/docs")
def api_docs():
    doc = _document()
    signed_in = caller(state().control, request) is not None
    html = render_template(
        "api_docs.html", doc=doc, ops=_operations(doc), schemas=doc["components"]["schemas"],
        bare=not signed_in, active="api", nonce=secrets.token_urlsafe(8),
    )  # fmt: skip
    resp = Response(html, mimetype="text/html")
    resp.headers["Content-Security-Policy"] = CSP
    return resp
