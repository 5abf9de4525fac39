"""Helpers for the API tests: polling the API on a condition, recording a real run."""

from __future__ import annotations

import time
from pathlib import Path

from recorder import config
from recorder.db.catalog import Catalog
from recorder.recording.source_spec import SourceSpec
from recorder.simulators import make_simulator
from tests.recordhelp import record, running

API = "/api/v1"


def wait_json(client, url: str, pred, timeout: float = 20.0, what: str = "") -> dict:
    """GET `url` until `pred(json)` holds; fails with the last answer after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(url)
        body = r.get_json()
        if r.status_code == 200 and pred(body):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or url}: {r.status_code} {body}")
        time.sleep(0.02)


def recorded_run(data: Path, protocol: str, count: int, **sim_options) -> str:
    """Record `count` messages of a simulator into the data folder and index the run."""
    endpoint = {"adzmq": "tcp://127.0.0.1:* PUB", "openephys": "tcp://127.0.0.1:0"}.get(
        protocol, "tcp://127.0.0.1:*"
    )
    sim = make_simulator(protocol, endpoint, rate=500, **sim_options)
    bound = sim.bind()
    with running(sim):
        path = record(
            config.runs_dir(data), SourceSpec(endpoint=bound, protocol=protocol), count=count
        )
    cat = Catalog(config.catalog_url(None, data))
    cat.index_path(path)
    cat.close()
    return path.name
