"""Run ids in URLs may be shortened as at the CLI: a unique start of the id names the run.

Resolved after the caller is authenticated (so strangers learn nothing about which runs
exist), against the catalog, never by listing or following the runs folder: an exact id of a
run folder stays as it is, a prefix that matches one indexed run becomes its id, and one that
matches several is refused with 409 and the candidates, so a script never acts on the wrong run.
"""

from __future__ import annotations

from flask import redirect, request

from recorder.errors import UsageError
from recorder.store import layout
from recorder.web.api import bp as api_bp
from recorder.web.api import state
from recorder.web.http_errors import ApiError
from recorder.web.ui import bp as ui_bp

CANDIDATES = 5


def full_run_id(run_id: str) -> str:
    """The run `run_id` names: itself when it is a run's exact id (or names none, which the
    handler reports as 404), else the one indexed run it starts; 409 when it starts several."""
    try:
        layout.check_name("run id", run_id)
    except UsageError:
        return run_id
    st = state()
    exact = st.runs_dir / run_id
    if (exact / "zarr.json").is_file() and not exact.is_symlink():
        return run_id
    found = st.catalog.run_ids_starting(run_id, limit=CANDIDATES + 1)
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        shown = found[:CANDIDATES]
        more = ", ..." if len(found) > CANDIDATES else ""
        raise ApiError(409, "ambiguous", f"run {run_id!r} is ambiguous: {', '.join(shown)}{more}",
                       {"candidates": shown})  # fmt: skip
    return run_id


@api_bp.before_request
def _api_run_prefix():
    """After the API's own guard (registered first): handlers see the full run id."""
    args = request.view_args
    if args and isinstance(args.get("run_id"), str):
        args["run_id"] = full_run_id(args["run_id"])


@ui_bp.before_request
def _page_run_prefix():
    """/runs/PREFIX goes to the run's own address."""
    args = request.view_args
    if request.endpoint == "ui.run_page" and args and isinstance(args.get("run_id"), str):
        full = full_run_id(args["run_id"])
        if full != args["run_id"]:
            return redirect("/runs/" + full, code=303)
    return None
