"""Desired and reported state shared by the web app, the manager and the workers, in one object.

`Control` is the query classes of the control tables together (sources.py, jobs.py, managers.py,
tokens.py), for callers that use several of them on one engine. The tables live in the catalog's
database but are not part of the run index, so the index can still be rebuilt from the stores
without touching them; their schema is versioned (recorder/db/schema.py).
"""

from __future__ import annotations

import sqlalchemy as sa

from recorder.db.browser_sessions import BrowserSessions
from recorder.db.jobs import Jobs
from recorder.db.managers import Managers
from recorder.db.schema import ready_engine
from recorder.db.sources import Sources
from recorder.db.tokens import Tokens


class Control(Sources, Jobs, Managers, Tokens, BrowserSessions):
    """Every method raises StoreError (never a driver error) when the database fails."""

    def __init__(self, engine_or_url: sa.Engine | str):
        super().__init__(ready_engine(engine_or_url), own=isinstance(engine_or_url, str))
