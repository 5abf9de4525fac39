"""A run of every analysed protocol, recorded once per test process (recording takes seconds)."""

from __future__ import annotations

import pytest
import zmq

from tests.analysis.runs import Sent, record_demo_run


@pytest.fixture(scope="session")
def sent(tmp_path_factory) -> Sent:
    data = tmp_path_factory.mktemp("data")
    ctx = zmq.Context()
    try:
        return record_demo_run(data / "runs", ctx)
    finally:
        ctx.destroy(linger=0)
