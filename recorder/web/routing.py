"""Declaring API operations once: the route, its pydantic models, and its OpenAPI entry.

`Api.op(...)` registers a Flask view that validates the JSON body and the query string with the
given models before the handler runs, and records the same models for `openapi()`. So the
document served at /openapi.json is generated from exactly what validates requests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from recorder.web.http_errors import ApiError
from recorder.web.models import ErrorEnvelope

_CONVERTER = re.compile(r"<(?:(?P<conv>[a-z]+):)?(?P<name>\w+)>")
_ERROR_TEXT = {
    400: "Bad request",
    401: "Missing or invalid token",
    403: "Cross-origin request refused",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflicts with the current state",
    413: "Body too large",
    415: "Body is not JSON",
    422: "Does not match the schema",
    503: "Catalog or data folder unavailable",
}


@dataclass
class Operation:
    method: str
    rule: str
    name: str
    summary: str
    description: str
    tag: str
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    media: str
    errors: tuple[int, ...] = field(default=())
    also: tuple[int, ...] = field(default=())

    @property
    def path(self) -> str:
        return _CONVERTER.sub(lambda m: "{" + m["name"] + "}", self.rule)

    def path_params(self) -> list[dict]:
        out = []
        for m in _CONVERTER.finditer(self.rule):
            schema = {"type": "integer", "minimum": 0} if m["conv"] == "int" else {"type": "string"}
            out.append({"name": m["name"], "in": "path", "required": True, "schema": schema})
        return out


def _query_args(model: type[BaseModel]) -> BaseModel:
    # An empty value means "not given" (forms send `?tag=` for an empty field).
    args = {k: v for k, v in request.args.items() if v != ""}
    return model.model_validate(args)


def _json_body(model: type[BaseModel]) -> BaseModel:
    if not request.data:
        raise ApiError(400, "bad_request", "a JSON object body is required")
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # json nests deeper than Python's stack: hostile or broken, not ours
        raise ApiError(400, "bad_request", "the body nests too deeply") from None
    if data is None:
        raise ApiError(400, "bad_request", "the body is not valid JSON")
    return model.model_validate(data)


def _query_schema(prop: dict) -> dict:
    """A query string cannot carry JSON null: `X | None` is just an optional X there."""
    prop = {k: v for k, v in prop.items() if k != "title"}
    variants = prop.get("anyOf")
    if variants and {"type": "null"} in variants:
        rest = [v for v in variants if v != {"type": "null"}]
        if len(rest) == 1:
            prop = {**{k: v for k, v in prop.items() if k != "anyOf"}, **rest[0]}
    if "default" in prop and prop["default"] is None:
        del prop["default"]
    return prop


class Api:
    def __init__(self, blueprint: Blueprint):
        self.bp = blueprint
        self.ops: list[Operation] = []

    def op(
        self,
        method: str,
        rule: str,
        *,
        tag: str,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        media: str = "application/json",
        errors: tuple[int, ...] = (),
        also: tuple[int, ...] = (),
    ):
        def deco(fn):
            doc = (fn.__doc__ or "").strip()
            summary, _, description = doc.partition("\n")
            op = Operation(
                method, rule, fn.__name__, summary.strip(), description.strip(), tag,
                body, query, response, status, media, errors, also,
            )  # fmt: skip
            self.ops.append(op)

            def view(**path):
                kwargs = dict(path)
                if body is not None:
                    kwargs["body"] = _json_body(body)
                if query is not None:
                    kwargs["query"] = _query_args(query)
                rv = fn(**kwargs)
                code = status
                if isinstance(rv, tuple):  # (body, another documented success status)
                    rv, code = rv
                if isinstance(rv, Response):
                    return rv
                if rv is None:
                    return Response(status=204)
                if isinstance(rv, BaseModel):
                    rv = rv.model_dump(mode="json")
                return jsonify(rv), code

            view.__name__ = fn.__name__
            self.bp.add_url_rule(rule, endpoint=fn.__name__, view_func=view, methods=[method])
            return fn

        return deco

    # -- the OpenAPI document ------------------------------------------------------------------

    def openapi(self, *, title: str, version: str, prefix: str) -> dict:
        models: set[tuple[type[BaseModel], JsonSchemaMode]] = {(ErrorEnvelope, "serialization")}
        for op in self.ops:
            if op.body is not None:
                models.add((op.body, "validation"))
            if op.response is not None:
                models.add((op.response, "serialization"))
        names, top = models_json_schema(
            sorted(models, key=lambda m: (m[0].__name__, m[1])),
            ref_template="#/components/schemas/{model}",
        )
        paths: dict[str, dict] = {}
        for op in self.ops:
            paths.setdefault(prefix + op.path, {})[op.method.lower()] = self._operation(op, names)
        return {
            "openapi": "3.1.0",
            "info": {
                "title": title,
                "version": version,
                "description": "JSON API of zmq-recorder. Every call needs "
                "`Authorization: Bearer <token>` (`recorder token create`). Errors are "
                '`{"error": {"code", "message", "details"}}`. Responses may gain fields, '
                "never lose them.",
            },
            "paths": paths,
            "components": {
                "schemas": top.get("$defs", {}),
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            },
            "security": [{"bearer": []}],
        }

    def _operation(self, op: Operation, names: dict) -> dict:
        params = op.path_params()
        if op.query is not None:
            schema = op.query.model_json_schema(ref_template="#/components/schemas/{model}")
            required = set(schema.get("required", []))
            for name, prop in schema.get("properties", {}).items():
                prop = _query_schema(prop)
                desc = prop.pop("description", None)
                p = {"name": name, "in": "query", "required": name in required, "schema": prop}
                if desc:
                    p["description"] = desc
                params.append(p)
        out: dict = {
            "operationId": op.name,
            "summary": op.summary,
            "tags": [op.tag],
            "responses": {},
        }
        if op.description:
            out["description"] = op.description
        if params:
            out["parameters"] = params
        if op.body is not None:
            out["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": names[(op.body, "validation")]}},
            }
        if op.status == 204:
            out["responses"]["204"] = {"description": "Done"}
        elif op.media == "application/json":
            ref = names[(op.response, "serialization")] if op.response else {}
            for code in (op.status, *op.also):
                out["responses"][str(code)] = {
                    "description": "Created" if code == 201 else "OK",
                    "content": {"application/json": {"schema": ref}},
                }
        else:
            out["responses"][str(op.status)] = {
                "description": "OK",
                "content": {op.media: {"schema": {"type": "string", "format": "binary"}}},
            }
        errors = {400, 401, 503, *op.errors}
        if op.method not in ("GET", "HEAD"):
            errors.add(403)
        if op.body is not None:
            errors |= {413, 415, 422}
        if op.query is not None:
            errors.add(422)
        if "{" in op.path:
            errors.add(404)
        err = {"application/json": {"schema": names[(ErrorEnvelope, "serialization")]}}
        for code in sorted(errors):
            out["responses"][str(code)] = {"description": _ERROR_TEXT[code], "content": err}
        return out
