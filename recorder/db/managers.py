"""Live managers (`managers`): each publishes a heartbeat, so the web app can tell whether
anyone will act on the jobs it writes, and a restarted manager can tell a dead one's workers
from a live one's."""

from __future__ import annotations

import socket
import time

import sqlalchemy as sa

from recorder.db.engine import Queries, guard_db_errors, row_dict, serialize
from recorder.db.tables import managers

#: How often a manager publishes its heartbeat.
HEARTBEAT_INTERVAL_S = 1.0
#: A manager whose heartbeat is older than this is considered gone: ten missed beats, because a
#: loaded host (a flush, a busy disk, the catalog locked by a writer) delays a beat by 2-3 s
#: routinely, and a live manager reported dead sends users after a problem that is not there.
MANAGER_TIMEOUT_S = 10 * HEARTBEAT_INTERVAL_S


def hostname() -> str:
    return socket.gethostname()


class Managers(Queries):
    @guard_db_errors()
    def heartbeat(self, manager_id: str, *, pid: int, data: str, started_ns: int) -> None:
        now = time.time_ns()
        with self.engine.begin() as conn:
            serialize(conn, f"manager:{manager_id}")
            done = conn.execute(
                managers.update().where(managers.c.id == manager_id).values(heartbeat_ns=now)
            ).rowcount
            if not done:
                conn.execute(
                    managers.insert().values(
                        id=manager_id,
                        host=hostname(),
                        pid=pid,
                        data=data,
                        started_ns=started_ns,
                        heartbeat_ns=now,
                    )
                )

    @guard_db_errors()
    def remove_manager(self, manager_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(managers.delete().where(managers.c.id == manager_id))

    @guard_db_errors()
    def live_managers(self) -> list[dict]:
        since = time.time_ns() - int(MANAGER_TIMEOUT_S * 1e9)
        with self.engine.connect() as conn:
            return [
                row_dict(r)
                for r in conn.execute(
                    sa.select(managers)
                    .where(managers.c.heartbeat_ns >= since)
                    .order_by(managers.c.heartbeat_ns.desc())
                )
            ]
