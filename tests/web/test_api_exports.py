"""Exports over HTTP: a request is checked at once (4xx in the error envelope, no job), a real
manager hands the job to a real worker process, the job reports its progress and result, the
file downloads (a folder as a zip) and DELETE removes it."""

from __future__ import annotations

import io
import os
import signal
import time
import zipfile

import pytest
from mcap.reader import make_reader

from recorder import config
from recorder.db.jobs import FINISHED, KIND_EXPORT
from recorder.manager.planning import export_dir
from tests.helpers import running_manager
from tests.replayhelp import make_run

pytestmark = pytest.mark.timeout(120)
API = "/api/v1"
TIMES_MS = [i * 100.0 for i in range(10)]


def wait_export(client, job_id: str, states=("finished", "failed", "stopped"), timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"{API}/exports/{job_id}").get_json()
        if body["state"] in states:
            return body
        assert time.monotonic() < deadline, f"export still {body['state']}: {body}"
        time.sleep(0.05)


def envelope(r, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.get_json())
    err = r.get_json()["error"]
    assert set(err) == {"code", "message", "details"}
    return err["message"]


@pytest.fixture
def run_id(data) -> str:
    """A raw run of 10 messages alternating between streams a and b, 0.1 s apart."""
    return make_run(
        config.runs_dir(data), TIMES_MS,
        streams={"a": ("PULL", "connect"), "b": ("SUB", "connect")},
        owner=["a", "b"] * 5,
    ).name  # fmt: skip


def test_export_job_runs_in_a_worker_and_downloads(client, data, run_id, tmp_path):
    r = client.post(f"{API}/runs/{run_id}/exports", json={"target": "mcap"})
    assert r.status_code == 201, r.get_json()
    created = r.get_json()
    assert created["id"].startswith("exp-") and created["state"] == "pending"
    job_id = created["id"]
    with running_manager(data):
        done = wait_export(client, job_id)
    assert done["state"] == "finished", done
    assert done["kind"] == "export" and done["target"] == "mcap" and done["error"] is None
    assert done["progress"] == 1.0 and done["streams"] == ["a", "b"]
    assert done["messages"] == 10 and done["partial"] is False and done["skipped"] == {}
    assert done["file"] == f"{run_id}.mcap"
    assert done["download"] == f"{API}/exports/{job_id}/download"
    on_disk = export_dir(data, job_id) / f"{run_id}.mcap"
    assert done["bytes"] == on_disk.stat().st_size
    assert [p.name for p in on_disk.parent.iterdir()] == [on_disk.name]  # nothing partial left

    r = client.get(done["download"])
    assert r.status_code == 200
    assert r.headers["Content-Disposition"] == f"attachment; filename={run_id}.mcap"
    assert r.data == on_disk.read_bytes()
    summary = make_reader(io.BytesIO(r.data)).get_summary()
    assert summary is not None and summary.statistics.message_count >= 10

    listed = client.get(f"{API}/runs/{run_id}/exports").get_json()["exports"]
    assert [e["id"] for e in listed] == [job_id] and listed[0]["state"] == "finished"
    assert [e["id"] for e in client.get(f"{API}/exports").get_json()["exports"]] == [job_id]

    assert client.delete(f"{API}/exports/{job_id}").status_code == 204
    assert not export_dir(data, job_id).exists()
    envelope(client.get(f"{API}/exports/{job_id}"), 404)
    envelope(client.get(f"{API}/exports/{job_id}/download"), 404)
    assert client.get(f"{API}/runs/{run_id}/exports").get_json()["exports"] == []


def test_window_streams_and_a_run_still_recording(client, data, control):
    run = make_run(
        config.runs_dir(data), TIMES_MS,
        streams={"a": ("PULL", "connect"), "b": ("SUB", "connect")},
        owner=["a", "b"] * 5, close=False,
    ).name  # fmt: skip
    body = {"target": "mcap", "streams": ["b"], "start": 0.25}
    job_id = client.post(f"{API}/runs/{run}/exports", json=body).get_json()["id"]
    pending = client.get(f"{API}/exports/{job_id}").get_json()
    assert pending["streams"] == ["b"] and pending["progress"] == 0.0  # as planned
    assert pending["file"] == f"{run}-0.25-end.mcap" and pending["download"] is None
    with running_manager(data):
        done = wait_export(client, job_id)
    assert done["state"] == "finished", done
    assert done["streams"] == ["b"] and done["messages"] == 4  # b at 0.3, 0.5, 0.7, 0.9 s
    assert done["partial"] is True  # the run is still recording: what was committed
    assert control.get_job(job_id)["stats"]["progress"] == 1.0


def test_bad_requests_are_refused_before_any_job(client, control, run_id):
    url = f"{API}/runs/{run_id}/exports"
    assert "no run" in envelope(client.post(f"{API}/runs/nope/exports", json={"target": "mcap"}),
                                404)  # fmt: skip
    envelope(client.post(url, json={"target": "csv"}), 422)
    assert "no stream 'c'" in envelope(
        client.post(url, json={"target": "mcap", "streams": ["a", "c"]}), 404
    )
    msg = envelope(client.post(url, json={"target": "mcap", "start": 2, "end": 1}), 400)
    assert "before" in msg
    envelope(client.post(url, json={"target": "mcap", "start": -1}), 422)
    envelope(client.post(url, json={"target": "mcap", "streams": []}), 422)
    envelope(client.post(url, json={"target": "mcap", "out": "/etc/passwd"}), 422)
    envelope(client.post(url, json={"target": "mcap", "streams": ["../x"]}), 422)
    assert control.list_jobs(kind=KIND_EXPORT) == []


@pytest.mark.parametrize("target", ["nwb", "exdf"])
def test_a_stream_the_target_cannot_hold(client, control, run_id, target):
    url = f"{API}/runs/{run_id}/exports"
    msg = envelope(client.post(url, json={"target": target, "streams": ["a"]}), 400)
    assert msg.startswith(f"{target} cannot hold stream 'a': ")
    msg = envelope(client.post(url, json={"target": target}), 400)
    assert f"has no stream {target} can hold" in msg
    assert control.list_jobs(kind=KIND_EXPORT) == []


def test_a_failed_export_says_why_and_leaves_no_file(client, data, run_id):
    job_id = client.post(f"{API}/runs/{run_id}/exports", json={"target": "mcap"}).get_json()["id"]
    envelope(client.get(f"{API}/exports/{job_id}/download"), 409)  # not finished yet
    folder = export_dir(data, job_id)
    folder.mkdir(parents=True)
    (folder / f"{run_id}.mcap").write_bytes(b"in the way")  # the export cannot write there
    with running_manager(data):
        failed = wait_export(client, job_id)
    assert failed["state"] == "failed"
    assert "exists already" in failed["error"]
    assert failed["download"] is None and not folder.exists()
    assert "failed" in envelope(client.get(f"{API}/exports/{job_id}/download"), 409)
    assert client.delete(f"{API}/exports/{job_id}").status_code == 204
    envelope(client.get(f"{API}/exports/{job_id}"), 404)


def test_deleting_a_pending_export_cancels_it(client, control, run_id):
    job_id = client.post(f"{API}/runs/{run_id}/exports", json={"target": "mcap"}).get_json()["id"]
    assert client.delete(f"{API}/exports/{job_id}").status_code == 204
    envelope(client.get(f"{API}/exports/{job_id}"), 404)
    assert control.list_jobs(kind=KIND_EXPORT) == []


def test_a_folder_export_downloads_as_a_zip(client, control, data, run_id):
    """EXDF writes a folder: it is zipped while it streams (made here by hand, as a worker
    would leave it, so the route is tested without the exdf target)."""
    job = control.create_job(KIND_EXPORT, {"run_id": run_id, "target": "exdf", "file": run_id},
                             run_id=run_id)  # fmt: skip
    control.finish_job(job["id"], FINISHED, stats={"streams": ["a"], "messages": 1, "bytes": 6})
    folder = export_dir(data, job["id"]) / run_id
    folder.mkdir(parents=True)
    (folder / "RAW-R0001-DA01-S00000.h5").write_bytes(b"\x89HDF\r\n")
    r = client.get(f"{API}/exports/{job['id']}/download")
    assert r.status_code == 200 and r.mimetype == "application/zip"
    assert r.headers["Content-Disposition"] == f'attachment; filename="{run_id}.zip"'
    with zipfile.ZipFile(io.BytesIO(r.data)) as zf:
        assert zf.namelist() == [f"{run_id}/RAW-R0001-DA01-S00000.h5"]
        assert zf.read(f"{run_id}/RAW-R0001-DA01-S00000.h5") == b"\x89HDF\r\n"


def test_exports_need_a_token_and_the_same_origin(app, client, run_id):
    anon = app.test_client()
    envelope(anon.get(f"{API}/exports"), 401)
    envelope(anon.post(f"{API}/runs/{run_id}/exports", json={"target": "mcap"}), 401)
    r = client.post(f"{API}/runs/{run_id}/exports", json={"target": "mcap"},
                    headers={"Sec-Fetch-Site": "cross-site"})  # fmt: skip
    envelope(r, 403)


def test_the_openapi_document_describes_exports(client):
    doc = client.get(f"{API}/openapi.json").get_json()
    post = doc["paths"][f"{API}/runs/{{run_id}}/exports"]["post"]
    schema = doc["components"]["schemas"]["ExportCreate"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ExportCreate"
    }
    assert schema["properties"]["target"]["enum"] == ["nwb", "exdf", "hdf5", "mcap"]
    assert {"404", "400", "422"} <= set(post["responses"])
    download = doc["paths"][f"{API}/exports/{{job_id}}/download"]["get"]
    assert "409" in download["responses"]


def long_run(data) -> str:
    """A run whose MCAP export lasts about 2 s on a quiet machine (40k messages took 0.4 s,
    between two polls of a test that wants to see it running), longer under load."""
    return make_run(config.runs_dir(data), [i * 0.01 for i in range(200_000)]).name


@pytest.mark.timeout(180)
def test_progress_while_it_runs_and_a_stop_removes_the_partial_file(client, data):
    """A run long enough to watch: the job's progress rises between 0 and 1, and DELETE stops
    it: the worker removes what it wrote and the job reads `stopped`."""
    run = long_run(data)
    job_id = client.post(f"{API}/runs/{run}/exports", json={"target": "mcap"}).get_json()["id"]
    with running_manager(data):
        deadline = time.monotonic() + 60
        while True:
            job = client.get(f"{API}/exports/{job_id}").get_json()
            if job["state"] == "running" and 0 < job["progress"] < 1:
                break
            assert job["state"] in ("pending", "starting", "running"), job
            assert time.monotonic() < deadline, job
            time.sleep(0.02)
        assert client.delete(f"{API}/exports/{job_id}").status_code == 204  # stops it
        stopped = wait_export(client, job_id)
    assert stopped["state"] == "stopped" and stopped["download"] is None, stopped
    assert not export_dir(data, job_id).exists()
    assert client.delete(f"{API}/exports/{job_id}").status_code == 204  # now forgotten
    envelope(client.get(f"{API}/exports/{job_id}"), 404)


@pytest.mark.timeout(180)
def test_a_worker_killed_mid_export_leaves_no_partial_file(client, control, data):
    run = long_run(data)
    job_id = client.post(f"{API}/runs/{run}/exports", json={"target": "mcap"}).get_json()["id"]
    with running_manager(data):
        deadline = time.monotonic() + 60
        while not (control.get_job(job_id)["stats"] or {}).get("progress"):
            assert time.monotonic() < deadline, control.get_job(job_id)
            time.sleep(0.02)
        assert any(p.name.startswith(".") for p in export_dir(data, job_id).iterdir())
        os.kill(control.get_job(job_id)["pid"], signal.SIGKILL)
        failed = wait_export(client, job_id)
    assert failed["state"] == "failed" and "SIGKILL" in failed["error"], failed
    assert not export_dir(data, job_id).exists()
