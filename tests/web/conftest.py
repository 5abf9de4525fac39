"""Fixtures for the HTTP API: a real app on a real catalog (SQLite in tmp_path), real tokens,
a real manager with real worker processes, and runs recorded for real from simulators."""

from __future__ import annotations

import pytest

from recorder.simulators import make_simulator
from recorder.web import create_app
from tests.helpers import running_manager
from tests.recordhelp import running


@pytest.fixture
def app(data):
    return create_app(data)


@pytest.fixture
def control(app):
    return app.extensions["recorder"].control


@pytest.fixture
def token(control) -> str:
    secret, _ = control.create_token("tests")
    return secret


@pytest.fixture
def client(app, token):
    """A test client that sends the bearer token with every request."""
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return c


@pytest.fixture
def anon(app):
    return app.test_client()


@pytest.fixture
def manager(data):
    """A real manager (spawning real worker processes) for the test's data folder."""
    with running_manager(data) as m:
        yield m


@pytest.fixture
def adzmq_sim():
    """An ADZMQ (areaDetector) simulator publishing 48 x 64 uint16 frames."""
    sim = make_simulator("adzmq", "tcp://127.0.0.1:* PUB", rate=100)
    endpoint = sim.bind()
    with running(sim):
        yield endpoint
