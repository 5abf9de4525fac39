"""The runs list shows what a run takes on disk besides its message bytes (89 MB listed while the
folder took 8.0 GB): `disk_bytes` is what `du` counts for the run folder."""

from __future__ import annotations

import subprocess

import pytest

from recorder.web import disk_usage
from tests.web.test_ui_sessions import a_run
from tests.web.webhelp import API


@pytest.fixture
def browser(app, token):
    c = app.test_client()
    assert c.post("/login", data={"token": token}).status_code == 303
    return c


def _du(path) -> int:
    out = subprocess.run(["du", "-s", "-B1", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def test_runs_list_gives_bytes_on_disk(app, client, browser, data):
    run = a_run(app, data)
    path = data / "runs" / run
    item = client.get(f"{API}/runs").get_json()["runs"][0]
    assert item["run_id"] == run
    assert item["disk_bytes"] == _du(path) > item["bytes"]
    html = browser.get("/runs").get_data(as_text=True)
    assert 'data-testid="disk-bytes"' in html and "on disk" in html


def test_a_closed_run_is_measured_once_a_live_one_again(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "a").write_bytes(b"x" * 10_000)
    first = disk_usage.run_disk_bytes(folder, key=("complete", 1, 0), live=False)
    assert first == _du(folder)
    (folder / "b").write_bytes(b"y" * 100_000)
    assert disk_usage.run_disk_bytes(folder, key=("complete", 1, 0), live=False) == first
    assert disk_usage.run_disk_bytes(folder, key=("complete", 2, 0), live=False) == _du(folder)
