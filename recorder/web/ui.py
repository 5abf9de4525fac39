"""The browser UI (blueprint `ui`): server-rendered pages that read through the API's own view
functions, and actions that the page scripts send to /api/v1 with the login cookie.

So there is one code path for every action: what a button does is exactly what an automation
client does with a bearer token. Pages need a signed-in browser: without the cookie they
redirect to /login. Errors render as a short page with the API's message, never a traceback.
"""

from __future__ import annotations

import logging
import secrets
import time
from urllib.parse import quote, urlencode

from flask import Blueprint, Response, g, redirect, render_template, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from recorder.errors import RecorderError
from recorder.recording.source_spec import known_protocols
from recorder.store import layout
from recorder.web import api as api_views
from recorder.web import exports, session_view, ui_data
from recorder.web import models as m
from recorder.web.auth import caller
from recorder.web.http_errors import ApiError, status_of, validation_details
from recorder.web.runs import run_path

log = logging.getLogger("recorder.web")
bp = Blueprint("ui", __name__)

PAGE_SIZES = (25, 50, 100, 200)
SORTS = {
    "-started": "newest first",
    "started": "oldest first",
    "name": "name",
    "-duration": "longest",
    "-bytes": "largest",
    "-messages": "most messages",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: blob:; connect-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


class NotSignedIn(Exception):
    """No valid login cookie: pages answer with a redirect to the login page."""


@bp.before_request
def _signed_in():
    g.token = caller(api_views.state().control, request)
    if g.token is None:
        raise NotSignedIn


@bp.after_request
def _csp(resp: Response) -> Response:
    if resp.mimetype == "text/html":
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.errorhandler(NotSignedIn)
def _to_login(_exc):
    if request.headers.get("HX-Request"):  # a poll: htmx would follow a redirect silently
        return "signed out", 401
    nxt = request.full_path.rstrip("?") if request.method == "GET" else "/"
    return redirect("/login?next=" + quote(nxt, safe="/"), code=303)


def _error_page(status: int, message: str, details=None):
    body = render_template("error.html", status=status, message=message, details=details)
    return body, status


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    return _error_page(exc.status, exc.message, exc.details)


@bp.errorhandler(ValidationError)
def _invalid(exc: ValidationError):
    return _error_page(422, "Some of the filters are not valid.", validation_details(exc))


@bp.errorhandler(RecorderError)
def _recorder_error(exc: RecorderError):
    status, _ = status_of(exc)
    return _error_page(status, str(exc))


@bp.errorhandler(HTTPException)
def _http(exc: HTTPException):
    return _error_page(exc.code or 500, exc.description or exc.name)


@bp.errorhandler(Exception)
def _unexpected(exc: Exception):
    log.exception("unexpected error in a page")
    return _error_page(500, "Something went wrong on the server (see the server log).")


def page(template: str, **values):
    return render_template(template, nonce=secrets.token_urlsafe(8), **values)


# -- pages ---------------------------------------------------------------------------------------


@bp.get("/")
def dashboard():
    return page("dashboard.html", active="dashboard", **_live(),
                sources=api_views.list_sources()["sources"],
                open_sessions=api_views.state().catalog.list_sessions(open_only=True)[0],
                compressions=layout.COMPRESSIONS)  # fmt: skip


@bp.get("/ui/live")
def live_fragment():
    """The dashboard's live part, polled by htmx every second."""
    return render_template("_live.html", **_live())


def _live() -> dict:
    recordings = [
        r for r in api_views.list_recordings()["recordings"] if not r["params"].get("preview")
    ]
    recs, recent_recs = ui_data.split_jobs(recordings)
    reps, recent_reps = ui_data.split_jobs(api_views.list_replays()["replays"])
    return {
        "status": api_views.get_status(),
        "recordings": recs,
        "recent_recordings": recent_recs,
        "failed_recordings": ui_data.recent_failures(recordings),
        "replays": reps,
        "recent_replays": recent_reps,
        "elapsed": ui_data.elapsed_s,
    }


@bp.get("/runs")
def runs():
    """The runs table: the filters are the API's own query (GET /api/v1/runs), plus paging."""
    args = {k: v for k, v in request.args.items() if v != "" and k not in ("page", "size")}
    query_args = ui_data.local_range(args)
    size = request.args.get("size", "")
    size = int(size) if size.isdigit() and int(size) in PAGE_SIZES else 50
    pageno = max(1, int(request.args["page"])) if request.args.get("page", "").isdigit() else 1
    query = m.RunsQuery.model_validate({**query_args, "limit": size, "offset": (pageno - 1) * size})
    out = api_views.list_runs(query)
    pages = max(1, -(-out["total"] // size))
    return page(
        "runs.html", active="runs", runs=out["runs"], total=out["total"], q=query,
        page=pageno, pages=pages, size=size, sizes=PAGE_SIZES, sorts=SORTS,
        statuses=layout.STATUSES, protocols=known_protocols(), args=args,
        link=lambda **changes: "?" + urlencode({**args, "size": size, **changes}),
    )  # fmt: skip


@bp.get("/runs/<run_id>")
def run_page(run_id: str):
    run = api_views.get_run(run_id)
    st = api_views.state()
    timeline = ui_data.rate_timeline(run_path(st.runs_dir, run_id), run["started_ns"])
    return page("run.html", active="runs", run=run, timeline=timeline,
                image_array=ui_data.image_array, exports=exports.run_exports(run_id),
                export_targets=EXPORT_TARGETS)  # fmt: skip


@bp.get("/sessions/<session_id>")
def session_page(session_id: str):
    """A session whole: its runs on one timeline, totals, replay and export of all of it."""
    return page("session.html", active="sessions", export_targets=EXPORT_TARGETS,
                **session_view.page_data(session_id))  # fmt: skip


#: The run page's export formats, each with what it is for.
EXPORT_TARGETS = {
    "mcap": "every stream (Foxglove)",
    "nwb": "Open Ephys (NWB)",
    "exdf": "Karabo (EuXFEL HDF5)",
    "hdf5": "images (NeXus-like HDF5)",
}


@bp.get("/ui/runs/<run_id>/exports")
def exports_fragment(run_id: str):
    """The run page's exports, polled by htmx while one is under way."""
    run_path(api_views.state().runs_dir, run_id)
    return render_template("_exports.html", run_id=run_id, exports=exports.run_exports(run_id))


@bp.get("/sources")
def sources():
    return page("sources.html", active="sources", sources=api_views.list_sources()["sources"],
                protocols=known_protocols(), compressions=layout.COMPRESSIONS)  # fmt: skip


@bp.get("/tokens")
def tokens():
    """API tokens: list, revoke, create (through the JSON API, like every action)."""
    return page("tokens.html", active="tokens", tokens=api_views.list_tokens()["tokens"],
                now_ns=time.time_ns())  # fmt: skip


@bp.get("/replays/<job_id>")
def replay_page(job_id: str):
    return page("replay.html", active="dashboard", replay=api_views.get_replay(job_id))


@bp.get("/ui/replays/<job_id>")
def replay_fragment(job_id: str):
    """The replay page's live part, polled by htmx."""
    return render_template("_replay_live.html", replay=api_views.get_replay(job_id))
