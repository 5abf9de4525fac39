"""One error envelope for every failure: {"error": {"code", "message", "details"}}.

Core code raises the package's own exceptions; this is the one place they become HTTP statuses,
so the same failure reads the same in the CLI (one line) and the API (one envelope). Unexpected
exceptions are logged with their traceback but never with request headers (tokens live there),
and the client gets a generic 500 without internals.
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from recorder.errors import (
    Conflict,
    DataFolderError,
    ExportError,
    NotFound,
    RecorderError,
    RunNotFound,
    StoreError,
    StreamNotFound,
    UsageError,
)

log = logging.getLogger("recorder.web")


class ApiError(Exception):
    """An HTTP error raised by the web layer itself (auth, content type, confirmation)."""

    def __init__(self, status: int, code: str, message: str, details=None, headers=None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details, self.headers = details, headers or {}


#: The package's exceptions -> (status, code); the first matching class wins.
STATUS_OF: list[tuple[type[BaseException], int, str]] = [
    (RunNotFound, 404, "not_found"),
    (StreamNotFound, 404, "not_found"),
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (UsageError, 400, "bad_request"),
    (ExportError, 400, "bad_request"),  # unknown target, a stream it cannot hold, bad window
    (DataFolderError, 503, "data_folder_unavailable"),
    (StoreError, 503, "store_unavailable"),
    (RecorderError, 500, "error"),
]


def envelope(status: int, code: str, message: str, details=None, headers=None):
    resp = jsonify({"error": {"code": code, "message": message, "details": details}})
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def status_of(exc: BaseException) -> tuple[int, str]:
    for cls, status, code in STATUS_OF:
        if isinstance(exc, cls):
            return status, code
    return 500, "internal"


def validation_details(exc: ValidationError) -> list[dict]:
    """Where and why, without echoing the input back (it may be large or sensitive)."""
    return [
        {"loc": [str(x) for x in e["loc"]], "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def install(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return envelope(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.errorhandler(ValidationError)
    def _invalid(exc: ValidationError):
        return envelope(422, "invalid", "the request does not match the schema",
                        validation_details(exc))  # fmt: skip

    @app.errorhandler(RecorderError)
    def _recorder_error(exc: RecorderError):
        status, code = status_of(exc)
        if status >= 500:
            log.error("%s: %s", type(exc).__name__, exc)
        return envelope(status, code, str(exc))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        headers = {}
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            headers["Allow"] = ", ".join(exc.valid_methods)
        return envelope(exc.code or 500, code, exc.description or exc.name, None, headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error")
        return envelope(500, "internal", "internal error (see the server log)")
