"""Desired and reported state shared by the web app, the manager and the workers.

The web app never talks to a worker process: it writes what it wants here (start this recording,
pause that replay) and reads back what the manager and the workers report. So any of the three can
restart without the others losing track, and several web processes (gunicorn workers, several
hosts with PostgreSQL) see one truth. The tables live in the catalog's database but in their own
`MetaData`, so the run index can still be rebuilt from the stores without touching them.

Tables: saved stream configurations (`sources`), recordings and replays (`jobs`), runtime commands
to a replay (`job_commands`: seek, speed, step), live managers (`managers`) and API tokens
(`tokens`, stored as SHA-256 hashes only).
"""

from __future__ import annotations

import hashlib
import secrets
import socket
import time

import sqlalchemy as sa
from sqlalchemy import event

from recorder.db.catalog import create_tables, guard_db_errors
from recorder.errors import RecorderError, StoreError

control_metadata = sa.MetaData()

sources = sa.Table(
    "sources",
    control_metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("created_ns", sa.BigInteger, nullable=False),
    sa.Column("updated_ns", sa.BigInteger, nullable=False),
)
jobs = sa.Table(
    "jobs",
    control_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(8), nullable=False),  # KIND_RECORD or KIND_REPLAY
    sa.Column("host", sa.String(256)),  # the host that must run it; NULL: any manager
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("desired", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("manager", sa.String(320)),  # id of the manager that claimed it
    sa.Column("pid", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("exit_code", sa.Integer),
    sa.Column("stats", sa.JSON),  # written by the worker
    sa.Column("proc", sa.JSON),  # written by the manager: cpu, memory of the worker process
    sa.Column("created_ns", sa.BigInteger, nullable=False),
    sa.Column("started_ns", sa.BigInteger),
    sa.Column("ended_ns", sa.BigInteger),
    sa.Column("updated_ns", sa.BigInteger, nullable=False),
    sa.Column("stop_requested_ns", sa.BigInteger),
    sa.Index("ix_jobs_state", "state"),
)
commands = sa.Table(
    "job_commands",
    control_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(32), nullable=False, index=True),
    sa.Column("op", sa.String(16), nullable=False),
    sa.Column("arg", sa.Float, nullable=False),
    sa.Column("created_ns", sa.BigInteger, nullable=False),
)
managers = sa.Table(
    "managers",
    control_metadata,
    sa.Column("id", sa.String(320), primary_key=True),
    sa.Column("host", sa.String(256), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("started_ns", sa.BigInteger, nullable=False),
    sa.Column("heartbeat_ns", sa.BigInteger, nullable=False),
)
tokens = sa.Table(
    "tokens",
    control_metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_ns", sa.BigInteger, nullable=False),
    sa.Column("last_used_ns", sa.BigInteger),
)

KIND_RECORD = "record"
KIND_REPLAY = "replay"

DESIRED_RUNNING = "running"
DESIRED_PAUSED = "paused"
DESIRED_STOPPED = "stopped"

PENDING = "pending"  # asked for, no manager has taken it yet
STARTING = "starting"  # a manager started the worker process
RUNNING = "running"
PAUSED = "paused"  # replays only
FINISHED = "finished"  # ended on its own: duration, count, end of the run
STOPPED = "stopped"  # ended because someone asked
FAILED = "failed"  # error, or the worker died: `error` says why
ACTIVE_STATES = (PENDING, STARTING, RUNNING, PAUSED)
FINAL_STATES = (FINISHED, STOPPED, FAILED)

COMMANDS = ("seek", "speed", "step")
#: A manager whose heartbeat is older than this is considered gone.
MANAGER_TIMEOUT_S = 3.0
_TOKEN_PREFIX = "rec_"


class NotFound(RecorderError):
    """No source, job or token with that name or id."""


class Conflict(RecorderError):
    """The request contradicts the current state (exists already, still running ...)."""


def hostname() -> str:
    return socket.gethostname()


def token_hash(token: str) -> str:
    """Tokens are 256-bit random strings, so one fast hash is enough to make a leaked table
    useless (no password-style key stretching needed), and lookup stays an indexed equality."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _new_source(name: str, config: dict, now: int) -> dict:
    return {"name": name, "config": config, "created_ns": now, "updated_ns": now}


def _row(r) -> dict | None:
    return None if r is None else dict(r._mapping)


class Control:
    """Every method raises StoreError (never a driver error) when the database fails."""

    def __init__(self, engine_or_url: sa.Engine | str):
        if isinstance(engine_or_url, str):
            try:
                engine = sa.create_engine(engine_or_url)
            except (sa.exc.ArgumentError, ImportError) as exc:
                raise StoreError(f"cannot use catalog {engine_or_url!r}: {exc}") from exc
            if engine.dialect.name == "sqlite":
                event.listen(engine, "connect", _sqlite_pragmas)
            self._own_engine = True
        else:
            engine = engine_or_url
            self._own_engine = False
        self.engine = engine
        self._create()

    def _create(self) -> None:
        create_tables(control_metadata, self.engine)

    def close(self) -> None:
        if self._own_engine:
            self.engine.dispose()

    # -- sources -------------------------------------------------------------------------------

    def list_sources(self) -> list[dict]:
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(sa.select(sources).order_by(sources.c.name))]

    def get_source(self, name: str) -> dict:
        with self.engine.connect() as conn:
            row = _row(conn.execute(sa.select(sources).where(sources.c.name == name)).first())
        if row is None:
            raise NotFound(f"no source {name!r}")
        return row

    def create_source(self, name: str, config: dict) -> dict:
        now = time.time_ns()
        try:
            with self.engine.begin() as conn:
                conn.execute(sources.insert().values(**_new_source(name, config, now)))
        except sa.exc.IntegrityError:
            raise Conflict(f"source {name!r} exists already") from None
        return self.get_source(name)

    def put_source(self, name: str, config: dict) -> tuple[dict, bool]:
        """Create or replace; returns the source and whether it was created."""
        now = time.time_ns()
        with self.engine.begin() as conn:
            done = conn.execute(
                sources.update().where(sources.c.name == name).values(config=config, updated_ns=now)
            ).rowcount
            if not done:
                conn.execute(sources.insert().values(**_new_source(name, config, now)))
        return self.get_source(name), not done

    def delete_source(self, name: str) -> None:
        with self.engine.begin() as conn:
            if not conn.execute(sources.delete().where(sources.c.name == name)).rowcount:
                raise NotFound(f"no source {name!r}")

    # -- jobs ----------------------------------------------------------------------------------

    def create_job(
        self,
        kind: str,
        params: dict,
        *,
        run_id: str | None = None,
        desired: str = DESIRED_RUNNING,
        host: str | None = None,
    ) -> dict:
        now = time.time_ns()
        job_id = f"{'rec' if kind == KIND_RECORD else 'rep'}-{secrets.token_hex(6)}"
        with self.engine.begin() as conn:
            conn.execute(
                jobs.insert().values(
                    id=job_id,
                    kind=kind,
                    host=host,
                    params=params,
                    desired=desired,
                    state=PENDING,
                    run_id=run_id,
                    created_ns=now,
                    updated_ns=now,
                )
            )
        return self.get_job(job_id)

    def get_job(self, job_id: str, kind: str | None = None) -> dict:
        q = sa.select(jobs).where(jobs.c.id == job_id)
        if kind:
            q = q.where(jobs.c.kind == kind)
        with self.engine.connect() as conn:
            row = _row(conn.execute(q).first())
        if row is None:
            raise NotFound(f"no {kind or 'job'} {job_id!r}")
        return row

    def list_jobs(
        self,
        *,
        kind: str | None = None,
        active: bool | None = None,
        run_id: str | None = None,
        limit: int | None = None,
    ) -> list[dict]:
        q = sa.select(jobs).order_by(jobs.c.created_ns.desc(), jobs.c.id)
        if kind:
            q = q.where(jobs.c.kind == kind)
        if active is not None:
            states = ACTIVE_STATES if active else FINAL_STATES
            q = q.where(jobs.c.state.in_(states))
        if run_id:
            q = q.where(jobs.c.run_id == run_id)
        if limit:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(q)]

    def desired_of(self, job_id: str) -> str | None:
        """What the worker polls ten times a second: one indexed column."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(jobs.c.desired).where(jobs.c.id == job_id)).scalar()

    def set_desired(self, job_id: str, desired: str) -> dict:
        """Ask for a job to run, pause or stop. A job that ended already stays as it is
        (stopping it twice is not an error); a pending one is stopped on the spot."""
        now = time.time_ns()
        with self.engine.begin() as conn:
            if desired == DESIRED_STOPPED:
                conn.execute(
                    jobs.update()
                    .where(jobs.c.id == job_id, jobs.c.state == PENDING)
                    .values(
                        desired=desired,
                        state=STOPPED,
                        ended_ns=now,
                        updated_ns=now,
                        stop_requested_ns=now,
                    )
                )
            values: dict = {"desired": desired, "updated_ns": now}
            if desired == DESIRED_STOPPED:
                values["stop_requested_ns"] = sa.func.coalesce(jobs.c.stop_requested_ns, now)
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.state.in_(ACTIVE_STATES))
                .values(**values)
            )
        return self.get_job(job_id)

    def claim(self, job_id: str, manager_id: str) -> bool:
        """Atomically take a pending job for one manager: exactly one of several wins."""
        with self.engine.begin() as conn:
            return bool(
                conn.execute(
                    jobs.update()
                    .where(jobs.c.id == job_id, jobs.c.state == PENDING)
                    .values(state=STARTING, manager=manager_id, updated_ns=time.time_ns())
                ).rowcount
            )

    def update_job(self, job_id: str, **values) -> None:
        values["updated_ns"] = time.time_ns()
        with self.engine.begin() as conn:
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(**values))

    def finish_job(self, job_id: str, state: str, *, error: str | None = None, **values) -> bool:
        """Record a final state unless one is recorded already (the worker's own word wins
        over the manager's guess); returns whether this call set it."""
        now = time.time_ns()
        with self.engine.begin() as conn:
            return bool(
                conn.execute(
                    jobs.update()
                    .where(jobs.c.id == job_id, jobs.c.state.in_(ACTIVE_STATES))
                    .values(state=state, error=error, ended_ns=now, updated_ns=now, **values)
                ).rowcount
            )

    # -- commands ------------------------------------------------------------------------------

    def add_command(self, job_id: str, op: str, arg: float) -> None:
        if op not in COMMANDS:
            raise ValueError(f"unknown command {op!r}")
        with self.engine.begin() as conn:
            conn.execute(
                commands.insert().values(job_id=job_id, op=op, arg=arg, created_ns=time.time_ns())
            )

    def take_commands(self, job_id: str) -> list[tuple[str, float]]:
        """Commands in the order they were given, each handed out once."""
        with self.engine.begin() as conn:
            rows = conn.execute(
                sa.select(commands).where(commands.c.job_id == job_id).order_by(commands.c.id)
            ).all()
            if rows:
                conn.execute(
                    commands.delete().where(
                        commands.c.job_id == job_id, commands.c.id <= rows[-1].id
                    )
                )
        return [(r.op, r.arg) for r in rows]

    # -- managers ------------------------------------------------------------------------------

    def heartbeat(self, manager_id: str, *, pid: int, data: str, started_ns: int) -> None:
        now = time.time_ns()
        with self.engine.begin() as conn:
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

    def remove_manager(self, manager_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(managers.delete().where(managers.c.id == manager_id))

    def live_managers(self) -> list[dict]:
        since = time.time_ns() - int(MANAGER_TIMEOUT_S * 1e9)
        with self.engine.connect() as conn:
            return [
                _row(r)
                for r in conn.execute(
                    sa.select(managers)
                    .where(managers.c.heartbeat_ns >= since)
                    .order_by(managers.c.heartbeat_ns.desc())
                )
            ]

    # -- tokens --------------------------------------------------------------------------------

    def create_token(self, name: str = "") -> tuple[str, dict]:
        """A new token: the plain text is returned once and never stored."""
        token = _TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = {
            "id": secrets.token_hex(4),
            "name": name,
            "hash": token_hash(token),
            "created_ns": time.time_ns(),
        }
        with self.engine.begin() as conn:
            conn.execute(tokens.insert().values(**row))
        return token, {k: v for k, v in row.items() if k != "hash"}

    def verify_token(self, token: str) -> dict | None:
        """The token's record if it is valid, else None."""
        if not token or len(token) > 200:
            return None
        digest = token_hash(token)
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(tokens).where(tokens.c.hash == digest)).first()
        if row is None or not secrets.compare_digest(row.hash, digest):
            return None
        out = _row(row)
        out.pop("hash")
        now = time.time_ns()
        if not out["last_used_ns"] or now - out["last_used_ns"] > 60e9:  # at most once a minute
            with self.engine.begin() as conn:
                conn.execute(
                    tokens.update().where(tokens.c.id == out["id"]).values(last_used_ns=now)
                )
        return out

    def list_tokens(self) -> list[dict]:
        cols = [c for c in tokens.columns if c.name != "hash"]
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(sa.select(*cols).order_by(tokens.c.created_ns))]

    def revoke_token(self, token_id: str) -> None:
        with self.engine.begin() as conn:
            if not conn.execute(tokens.delete().where(tokens.c.id == token_id)).rowcount:
                raise NotFound(f"no token {token_id!r}")

    def revoke_tokens_named(self, name: str) -> int:
        with self.engine.begin() as conn:
            return conn.execute(tokens.delete().where(tokens.c.name == name)).rowcount


for _name, _value in list(vars(Control).items()):
    if callable(_value) and not _name.startswith("__") and _name != "close":
        setattr(Control, _name, guard_db_errors(_value))
