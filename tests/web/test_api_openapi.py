"""The OpenAPI document describes the API, and property-based requests generated from it
(schemathesis) never get a 5xx and always get the documented statuses, media types and shapes.

Requests run against a catalog that holds a real recorded run, a saved source and jobs, and half
of the generated path parameters are swapped for those real names, so the fuzzing reaches past
"not found" into the handlers.
"""

from __future__ import annotations

import zlib

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from recorder.manager.planning import start_recording, start_replay
from recorder.web import create_app
from tests.web.webhelp import API, recorded_run


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    data = tmp_path_factory.mktemp("fuzz") / "data"
    data.mkdir()
    run_id = recorded_run(data, "adzmq", 5)
    app = create_app(data)
    control = app.extensions["recorder"].control
    secret, _ = control.create_token("fuzz")
    control.put_source("cam", {"endpoint": "tcp://127.0.0.1:5999", "protocol": "adzmq"})
    rec = start_recording(control, sources=["cam"])
    rep = start_replay(control, data / "runs", run_id=run_id, paused=True)
    known = {"run_id": run_id, "stream": "main", "name": "cam", "tag": "x", "i": 0}
    return (
        app,
        {"Authorization": f"Bearer {secret}"},
        known,
        {"record": rec["id"], "replay": rep["id"]},
    )


def test_the_document_is_openapi_3_1_from_the_models(world):
    app, headers, _, _ = world
    doc = app.test_client().get(f"{API}/openapi.json", headers=headers).get_json()
    assert doc["openapi"].startswith("3.1")
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    post = doc["paths"][f"{API}/recordings"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "RecordingCreate"
    )
    schema = doc["components"]["schemas"]["ReplayCreate"]
    assert schema["additionalProperties"] is False  # run_id or session: one of the two
    assert {"run_id", "session"} <= set(schema["properties"])
    for path in (
        "/status",
        "/sources/{name}",
        "/runs",
        "/runs/{run_id}/streams/{stream}/series",
        "/replays/{job_id}/seek",
        "/runs/{run_id}/streams/{stream}/frames/{i}.png",
    ):
        assert API + path in doc["paths"]


def _realistic(case, known: dict, jobs: dict):
    """Every other case uses names that exist, chosen by a hash so examples replay the same."""
    params = case.path_parameters or {}
    if params and zlib.crc32(repr(sorted(params.items())).encode()) % 2:
        for k in params:
            if k in known:
                params[k] = known[k]
            elif k == "job_id":
                params[k] = jobs["record" if "/recordings" in case.path else "replay"]
    return case


@pytest.mark.timeout(300)
def test_generated_requests_get_no_server_errors(world):
    app, headers, known, jobs = world
    schema = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", app, headers=headers)
    failures: dict[str, str] = {}
    seen: dict[str, set[int]] = {}
    # The event stream lasts as long as its `timeout` asks (up to a minute): tested on its own.
    operations = [r.ok() for r in schema.get_all_operations()]
    operations = [op for op in operations if op.label != f"GET {API}/events"]
    assert len(operations) > 25
    for op in operations:

        @settings(max_examples=25, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(case=op.as_strategy().map(lambda c: _realistic(c, known, jobs)))
        def check(case):
            # Schema-valid data may still be refused with 400 (an endpoint the schema cannot
            # judge, a stream the run lacks): only that one check is left out.
            r = case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])
            seen.setdefault(case.operation.label, set()).add(r.status_code)

        try:
            check()
        except BaseException as exc:  # collect all operations' failures, then report
            failures[op.label] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
    # The fuzzing got past "not found" into the handlers of the real run and jobs.
    stream = API + "/runs/{run_id}/streams/{stream}"
    for label in (
        f"GET {API}/runs/{{run_id}}",
        f"GET {stream}/messages",
        f"GET {stream}/frames/{{i}}.png",
        f"POST {API}/replays/{{job_id}}/seek",
    ):
        assert seen.get(label, set()) - {404, 422}, (label, seen.get(label))
