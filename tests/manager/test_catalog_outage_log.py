"""A manager whose catalog goes away says so once, not at every tick (ten times a second), and
says once that it is back (the PostgreSQL test server stopped and started under it)."""

from __future__ import annotations

import logging

import pytest

from recorder.manager.manager import Manager
from tests.helpers import wait_for


@pytest.mark.timeout(120)
def test_the_manager_says_once_that_the_catalog_is_away_and_once_that_it_is_back(
    pg_server, pg_url, data, caplog
):
    caplog.set_level(logging.INFO, logger="recorder.manager")
    m = Manager(data, pg_url, spares=0)
    m.start()
    try:
        pg_server.stop()
        for _ in range(20):
            m.tick()
        pg_server.start()

        def back() -> bool:
            m.tick()
            return any("answers again" in r.getMessage() for r in caplog.records)

        wait_for(back, 60, "the manager to reach the catalog again", interval=0.1)
        said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len([s for s in said if "trying again until the catalog answers" in s]) == 1
        assert len([s for s in said if "answers again" in s]) == 1
        assert len(said) == 2, said
    finally:
        if not pg_server.running():
            pg_server.start()
        m.shutdown()
