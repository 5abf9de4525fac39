"""`POST /api/v1/runs/bulk`: one action on several runs (the runs page's selection).

Each run is acted on as its own request would (the same functions, the same checks), so a run
in use is refused while the others go ahead; the answer says which were done and why the others
were not. Deleting in bulk is explicit like deleting one run: `confirm` repeats how many.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from recorder.errors import RecorderError
from recorder.web import models as m
from recorder.web import runs as run_ops
from recorder.web.api import api, state
from recorder.web.http_errors import ApiError, status_of
from recorder.web.run_ids import full_run_id

MAX_RUNS = 200


class BulkRuns(m.Request):
    action: Literal["delete", "tag", "untag"]
    run_ids: list[Annotated[str, Field(pattern=m.NAME_PATTERN, max_length=64)]] = Field(
        min_length=1, max_length=MAX_RUNS, description="Run ids (or unique prefixes)."
    )
    tags: list[m.Tag] | None = Field(None, min_length=1, max_length=100)
    confirm: int | None = Field(None, description="For `delete`: how many runs, repeated.")

    @model_validator(mode="after")
    def _complete(self) -> BulkRuns:
        if self.action in ("tag", "untag") and not self.tags:
            raise ValueError(f"`{self.action}` needs `tags`")
        return self


class BulkFailure(m.Response):
    run_id: str
    code: str
    message: str


class BulkOut(m.Response):
    action: str
    done: list[str]
    failed: list[BulkFailure]


@api.op("POST", "/runs/bulk", tag="runs", body=BulkRuns, response=BulkOut)
def bulk_runs(body: BulkRuns):
    """Delete, tag or untag several runs at once; `done` and `failed` tell each run's outcome.

    Deleting needs `confirm` equal to the number of runs (400 otherwise); a run that is
    recorded or replayed is not deleted (it is in `failed`, the others are deleted)."""
    if body.action == "delete" and body.confirm != len(body.run_ids):
        raise ApiError(400, "confirmation_required",
                       f"deleting is explicit: add \"confirm\": {len(body.run_ids)}")  # fmt: skip
    st = state()
    done: list[str] = []
    failed: list[dict] = []
    for given in dict.fromkeys(body.run_ids):
        try:
            run_id = full_run_id(given)
            if body.action == "delete":
                run_ops.delete_run(st.runs_dir, st.catalog, st.control, run_id)
            elif body.action == "tag":
                run_ops.change_tags(st.runs_dir, st.catalog, run_id, add=body.tags)
            else:
                run_ops.change_tags(st.runs_dir, st.catalog, run_id, remove=body.tags)
            done.append(run_id)
        except ApiError as exc:
            failed.append({"run_id": given, "code": exc.code, "message": exc.message})
        except RecorderError as exc:
            failed.append({"run_id": given, "code": status_of(exc)[1], "message": str(exc)})
    return {"action": body.action, "done": done, "failed": failed}
