"""Saved stream configurations (`sources`), which recordings name instead of repeating them."""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa

from recorder.db.engine import Queries, guard_db_errors, row_dict, serialize
from recorder.db.tables import sources
from recorder.errors import Conflict, NotFound


def _new_source(name: str, config: dict, now: int) -> dict:
    return {"name": name, "config": config, "created_ns": now, "updated_ns": now}


class Sources(Queries):
    @guard_db_errors()
    def list_sources(self) -> list[dict]:
        with self.engine.connect() as conn:
            return [row_dict(r) for r in conn.execute(sa.select(sources).order_by(sources.c.name))]

    @guard_db_errors()
    def get_source(self, name: str) -> dict:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(sources).where(sources.c.name == name)).first()
        if row is None:
            raise NotFound(f"no source {name!r}")
        return row_dict(row)

    @guard_db_errors()
    def create_source(self, name: str, config: dict) -> dict:
        now = time.time_ns()
        try:
            with self.engine.begin() as conn:
                conn.execute(sources.insert().values(**_new_source(name, config, now)))
        except sa.exc.IntegrityError:
            raise Conflict(f"source {name!r} exists already") from None
        return self.get_source(name)

    @guard_db_errors()
    def put_source(self, name: str, config: dict) -> tuple[dict, bool]:
        """Create or replace; returns the source and whether it was created."""
        now = time.time_ns()
        with self.engine.begin() as conn:
            serialize(conn, f"source:{name}")
            done = conn.execute(
                sources.update().where(sources.c.name == name).values(config=config, updated_ns=now)
            ).rowcount
            if not done:
                conn.execute(sources.insert().values(**_new_source(name, config, now)))
        return self.get_source(name), not done

    @guard_db_errors()
    def update_source(self, name: str, change: Callable[[dict], dict]) -> dict:
        """Change an existing source's configuration with `change(old config) -> new config`,
        in one transaction, so two partial edits of different fields both land."""
        now = time.time_ns()
        with self.engine.begin() as conn:
            serialize(conn, f"source:{name}")
            # writing first takes the write lock (SQLite) or the row's lock (PostgreSQL) before
            # the read, so a concurrent edit waits and then reads this one's result
            touched = sources.update().where(sources.c.name == name).values(updated_ns=now)
            if not conn.execute(touched).rowcount:
                raise NotFound(f"no source {name!r}")
            row = conn.execute(sa.select(sources).where(sources.c.name == name)).one()
            config = change(dict(row_dict(row)["config"]))
            conn.execute(
                sources.update().where(sources.c.name == name).values(config=config, updated_ns=now)
            )
        return self.get_source(name)

    @guard_db_errors()
    def delete_source(self, name: str) -> None:
        with self.engine.begin() as conn:
            if not conn.execute(sources.delete().where(sources.c.name == name)).rowcount:
                raise NotFound(f"no source {name!r}")
