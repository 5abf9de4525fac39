"""The web app: `create_app()` is the factory gunicorn serves (`recorder.web:create_app()`).

Configuration comes from arguments, else the environment (`RECORDER_DATA`, `RECORDER_CATALOG`,
the endpoint policy's `RECORDER_IPC_DIR`, `RECORDER_ALLOW_BIND`, `RECORDER_ALLOW_CONNECT`, the
browser sessions' `RECORDER_SESSION_IDLE`, `RECORDER_SESSION_MAX`),
else the embedded defaults, exactly as for the CLI. The app keeps no state of its own: it reads
and writes the catalog, so any number of gunicorn workers serve the same truth.
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from recorder import config
from recorder.db.catalog import Catalog
from recorder.db.control import Control
from recorder.endpoint_policy import EndpointPolicy
from recorder.web import bulk as _bulk  # noqa: F401  registers its route
from recorder.web import download as _download  # noqa: F401  registers its route
from recorder.web import events as _events  # noqa: F401  registers its route
from recorder.web import exports as _exports  # noqa: F401  registers its routes
from recorder.web import hosts as _hosts  # noqa: F401  registers its route and page
from recorder.web import http_errors as errors
from recorder.web import live as _live  # noqa: F401  registers its routes
from recorder.web import notes as _notes  # noqa: F401  registers its routes
from recorder.web import recording_controls as _recording_controls  # noqa: F401  its routes
from recorder.web import run_ids as _run_ids  # noqa: F401  run id prefixes in URLs
from recorder.web import session_pages as _session_pages  # noqa: F401  registers its pages
from recorder.web import session_view as _session_view  # noqa: F401  registers its routes
from recorder.web import sessions as _sessions  # noqa: F401  registers its routes
from recorder.web import signals as _signals  # noqa: F401  registers its route
from recorder.web import sources_api as _sources_api  # noqa: F401  registers its routes
from recorder.web.api import AppState
from recorder.web.api import bp as api_bp
from recorder.web.api_docs import bp as api_docs_bp
from recorder.web.login import bp as login_bp
from recorder.web.ui import bp as ui_bp
from recorder.web.ui_format import FILTERS

MAX_BODY_BYTES = 1 << 20


def _assets_root() -> Path:
    """templates/ and static/ sit in the package in a wheel, beside it in a source checkout."""
    package = Path(__file__).resolve().parent.parent
    return package if (package / "templates").is_dir() else package.parent


def create_app(
    data: str | os.PathLike | None = None,
    catalog: str | None = None,
    policy: EndpointPolicy | None = None,
) -> Flask:
    """`policy`: what endpoints requests may use; by default the environment's settings
    (RECORDER_IPC_DIR, RECORDER_ALLOW_BIND, RECORDER_ALLOW_CONNECT; config.endpoint_policy)."""
    folder = Path(config.data_dir(data)).resolve()
    cat = Catalog(config.catalog_url(catalog, folder))
    idle_s, max_s = config.session_lifetimes()
    assets = _assets_root()
    app = Flask(
        "recorder.web",
        template_folder=str(assets / "templates"),
        static_folder=str(assets / "static"),
    )
    app.jinja_env.filters.update(FILTERS)
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY_BYTES, JSON_SORT_KEYS=False)
    if isinstance(app.json, DefaultJSONProvider):  # it is, unless an extension swapped it
        app.json.sort_keys = False
    app.extensions["recorder"] = AppState(
        data=folder,
        runs_dir=config.runs_dir(folder),
        catalog=cat,
        control=Control(cat.engine),
        policy=policy or config.endpoint_policy(folder),
        session_idle_s=idle_s,
        session_max_s=max_s,
    )
    errors.install(app)
    app.register_blueprint(api_bp)
    app.register_blueprint(login_bp)
    app.register_blueprint(api_docs_bp)
    app.register_blueprint(ui_bp)

    @app.after_request
    def _headers(resp):
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        if resp.mimetype == "application/json":
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    return app
