"""Live managers (`managers`): each publishes a heartbeat, so the web app can tell whether
anyone will act on the jobs it writes, and a restarted manager can tell a dead one's workers
from a live one's."""

from __future__ import annotations

import os
import re
import socket
import time

import sqlalchemy as sa

from recorder.db.engine import Queries, guard_db_errors, row_dict, serialize
from recorder.db.tables import managers
from recorder.errors import UsageError

#: How often a manager publishes its heartbeat.
HEARTBEAT_INTERVAL_S = 1.0
#: A manager whose heartbeat is older than this is considered gone: ten missed beats, because a
#: loaded host (a flush, a busy disk, the catalog locked by a writer) delays a beat by 2-3 s
#: routinely, and a live manager reported dead sends users after a problem that is not there.
MANAGER_TIMEOUT_S = 10 * HEARTBEAT_INTERVAL_S


#: Environment: the name this host's manager goes by (default: the machine's host name).
HOST_ENV = "RECORDER_HOST"
#: What a host name may be: it is a column value, a label in the UI and part of a manager id
#: (host/pid/start), so no slash, no spaces, no control characters.
HOST_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$"


def check_host(name: str) -> str:
    if not re.fullmatch(HOST_PATTERN, name or ""):
        raise UsageError(
            f"host name {name!r}: letters, digits, '.', '_' and '-' (up to 255), "
            "starting with a letter or digit"
        )
    return name


def hostname() -> str:
    """The name this host's manager goes by: $RECORDER_HOST, else the machine's host name."""
    return check_host(os.environ.get(HOST_ENV, "").strip() or socket.gethostname())


class Managers(Queries):
    @guard_db_errors()
    def heartbeat(
        self,
        manager_id: str,
        *,
        pid: int,
        data: str,
        started_ns: int,
        host: str | None = None,
        info: dict | None = None,
    ) -> None:
        """Say this manager is alive; `info` is what it tells about its host (its data
        folder's disk), shown on the Hosts page."""
        now = time.time_ns()
        values: dict = {"heartbeat_ns": now}
        if info is not None:
            values["info"] = info
        with self.engine.begin() as conn:
            serialize(conn, f"manager:{manager_id}")
            done = conn.execute(
                managers.update().where(managers.c.id == manager_id).values(**values)
            ).rowcount
            if not done:
                conn.execute(
                    managers.insert().values(
                        id=manager_id,
                        host=host or hostname(),
                        pid=pid,
                        data=data,
                        started_ns=started_ns,
                        **values,
                    )
                )

    @guard_db_errors()
    def remove_manager(self, manager_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(managers.delete().where(managers.c.id == manager_id))

    @guard_db_errors()
    def all_managers(self) -> list[dict]:
        """Every manager that announced itself and did not sign off, live or not (a host whose
        manager was killed keeps its row until that host's next manager starts), newest beat
        first."""
        with self.engine.connect() as conn:
            return [
                row_dict(r)
                for r in conn.execute(
                    sa.select(managers).order_by(managers.c.heartbeat_ns.desc(), managers.c.id)
                )
            ]

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
