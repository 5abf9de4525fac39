"""A run's annotations are changed in one place, under one lock: `recorder tag` and the web app
editing one run at the same time lose nothing, in the store or in the catalog."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from recorder import config
from recorder.db.catalog import Catalog
from recorder.errors import StoreError, UsageError
from recorder.store import annotate
from recorder.store.reader import RunReader
from recorder.store.run_writer import RunWriter
from recorder.web import create_app

API = "/api/v1"

# The CLI's path, many times in one process: the `recorder tag` command itself, in-process.
CLI_EDITS = """
import sys, time
from pathlib import Path
from recorder.cli.main import main
run_id, data, n, ready, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.002)
for i in range(n):
    try:
        main(["tag", run_id, f"c{i}", "--data", data])
    except SystemExit as exc:
        assert exc.code == 0, exc.code
"""


def _run(data, tags=("start",)) -> str:
    with RunWriter(config.runs_dir(data), tags=list(tags)) as run:
        run.add_stream("s", protocol="raw", endpoint="tcp://h:1", socket_type="SUB", role="connect")
    return run.run_id


@pytest.mark.timeout(180)
def test_cli_and_web_editing_one_run_at_once_lose_nothing(data, tmp_path):
    run_id = _run(data)
    app = create_app(data)
    secret, _ = app.extensions["recorder"].control.create_token("t")
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    n = 30
    ready, go = tmp_path / "ready", tmp_path / "go"
    cli = subprocess.Popen(
        [sys.executable, "-c", CLI_EDITS, run_id, str(data), str(n), str(ready), str(go)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert cli.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    go.touch()
    web = 0
    while web < n or cli.poll() is None:  # web edits for as long as the CLI edits, at least n
        r = client.post(f"{API}/runs/{run_id}/tags", json={"tag": f"w{web}"})
        assert r.status_code == 200, r.get_json()
        r = client.patch(f"{API}/runs/{run_id}", json={"note": f"n{web}"})
        assert r.status_code == 200, r.get_json()
        web += 1
    assert cli.wait(60) == 0, cli.stderr.read().decode()

    want = sorted({"start"} | {f"c{i}" for i in range(n)} | {f"w{i}" for i in range(web)})
    with RunReader(data / "runs" / run_id) as reader:
        ann = reader.annotations()
    assert ann["tags"] == want
    assert [x["text"] for x in ann["notes"]] == [f"n{i}" for i in range(web)]
    catalog = Catalog(config.catalog_url(None, data))
    assert catalog.get_run(run_id)["tags"] == want
    catalog.close()


def test_edits_are_written_only_when_something_changed(data):
    path = config.runs_dir(data) / _run(data, tags=["a"])
    meta = path / "annotations" / "zarr.json"
    before = meta.stat().st_mtime_ns
    assert annotate.change_tags(path, add=["a"]) == ["a"]
    assert meta.stat().st_mtime_ns == before
    assert annotate.change_tags(path, add=["b"], remove=["a"]) == ["b"]
    with annotate.lock(path), annotate.editing(path) as ann:  # the lock is re-entrant
        ann["notes"].append(annotate.new_note("hello"))
    with RunReader(path) as reader:
        assert reader.annotations()["tags"] == ["b"]
        assert reader.annotations()["notes"][0]["text"] == "hello"


def test_bad_tags_and_missing_runs_are_refused(data):
    path = config.runs_dir(data) / _run(data)
    with pytest.raises(UsageError):
        annotate.change_tags(path, add=["../x"])
    with pytest.raises(StoreError):
        annotate.change_tags(path.with_name("nope"), add=["x"])
