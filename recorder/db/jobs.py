"""Recordings and replays (`jobs`) and runtime commands to them (`job_commands`).

The web app never talks to a worker process: it writes what it wants here (start this recording,
pause that replay) and reads back what the manager and the workers report. So any of the three can
restart without the others losing track, and several web processes (gunicorn workers, several
hosts with PostgreSQL) see one truth.
"""

from __future__ import annotations

import secrets
import time
from typing import NamedTuple, cast

import sqlalchemy as sa

from recorder.contracts import JobRow
from recorder.db.engine import Queries, guard_db_errors, row_dict
from recorder.db.tables import commands, jobs
from recorder.errors import NotFound

KIND_RECORD = "record"
KIND_REPLAY = "replay"
KIND_EXPORT = "export"
#: A job id starts with its kind's prefix, so an id in a log says what it is.
ID_PREFIX = {KIND_RECORD: "rec", KIND_REPLAY: "rep", KIND_EXPORT: "exp"}

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

REPLAY_COMMANDS = ("seek", "speed", "step")
#: A recording's commands. `marker` carries its text in `job_commands.text` as JSON
#: `{"text", "author", "at_ns"}` (the author is the name of the token or browser session that
#: asked; `at_ns` when the request arrived, so the marker is where the user pressed the button).
RECORD_COMMANDS = ("trigger", "pause", "resume", "split", "marker")
COMMANDS = REPLAY_COMMANDS + RECORD_COMMANDS


class Command(NamedTuple):
    """One command as its worker takes it: `text` is None but for markers."""

    op: str
    arg: float
    text: str | None = None


#: The run id a job keeps when it is stopped before it began: none for a recording (it made no
#: run, and the planned id must send no page or client to one), its run for a replay or export.
_RUN_OF_UNBEGUN = sa.case((jobs.c.kind == KIND_RECORD, None), else_=jobs.c.run_id)


class Jobs(Queries):
    @guard_db_errors()
    def create_job(
        self,
        kind: str,
        params: dict,
        *,
        run_id: str | None = None,
        desired: str = DESIRED_RUNNING,
        host: str | None = None,
    ) -> JobRow:
        now = time.time_ns()
        job_id = f"{ID_PREFIX[kind]}-{secrets.token_hex(6)}"
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

    @guard_db_errors()
    def get_job(self, job_id: str, kind: str | None = None) -> JobRow:
        q = sa.select(jobs).where(jobs.c.id == job_id)
        if kind:
            q = q.where(jobs.c.kind == kind)
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        if row is None:
            raise NotFound(f"no {kind or 'job'} {job_id!r}")
        return _job_row(row)

    @guard_db_errors()
    def list_jobs(
        self,
        *,
        kind: str | None = None,
        active: bool | None = None,
        run_id: str | None = None,
        limit: int | None = None,
    ) -> list[JobRow]:
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
            return [_job_row(r) for r in conn.execute(q)]

    @guard_db_errors()
    def desired_of(self, job_id: str) -> str | None:
        """What the worker polls ten times a second: one indexed column."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(jobs.c.desired).where(jobs.c.id == job_id)).scalar()

    @guard_db_errors()
    def set_desired(self, job_id: str, desired: str) -> JobRow:
        """Ask for a job to run, pause or stop. A job that ended already stays as it is
        (stopping it twice is not an error); a pending one is stopped on the spot (as
        finish_unbegun: a pending recording made no run, its planned run id is cleared)."""
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
                        run_id=_RUN_OF_UNBEGUN,
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

    @guard_db_errors()
    def claim(self, job_id: str, manager_id: str, host: str | None = None) -> bool:
        """Atomically take a pending job for one manager: exactly one of several wins, on any
        number of hosts. One UPDATE whose WHERE requires `pending`: SQLite runs writers one at a
        time; PostgreSQL makes a second writer wait for the first's row lock and then checks
        the WHERE again on the row as the first left it (READ COMMITTED), so it updates nothing.
        The row count says who won (tests/db/test_claims.py races two processes for 200 jobs).

        With `host`, only a job for that host or for any host is taken, and a job for any host
        is pinned to it (`host` then says where it runs)."""
        where = [jobs.c.id == job_id, jobs.c.state == PENDING]
        values: dict = {"state": STARTING, "manager": manager_id, "updated_ns": time.time_ns()}
        if host is not None:
            where.append(sa.or_(jobs.c.host.is_(None), jobs.c.host == host))
            values["host"] = host
        with self.engine.begin() as conn:
            return bool(conn.execute(jobs.update().where(*where).values(**values)).rowcount)

    @guard_db_errors()
    def claim_next(self, manager_id: str, host: str) -> JobRow | None:
        """The oldest pending job this host may run (its own or any host's), taken for
        `manager_id`; None when there is none. PostgreSQL locks the chosen row and skips rows
        other managers hold (FOR UPDATE SKIP LOCKED), so managers claiming at once take
        different jobs instead of queueing on one; SQLite's single writer makes the same
        conditional UPDATE as `claim` safe, and a lost race tries the next job."""
        mine = sa.or_(jobs.c.host.is_(None), jobs.c.host == host)
        pick = (
            sa.select(jobs.c.id)
            .where(jobs.c.state == PENDING, jobs.c.desired != DESIRED_STOPPED, mine)
            .order_by(jobs.c.created_ns, jobs.c.id)
            .limit(1)
        )
        take = (
            jobs.update()
            .where(jobs.c.state == PENDING, mine)
            .values(state=STARTING, manager=manager_id, host=host, updated_ns=time.time_ns())
        )
        if self.engine.dialect.name == "postgresql":
            with self.engine.begin() as conn:
                job_id = conn.execute(pick.with_for_update(skip_locked=True)).scalar()
                if job_id is None:
                    return None
                conn.execute(take.where(jobs.c.id == job_id))
            return self.get_job(job_id)
        for _ in range(100):  # SQLite: another manager took the one we saw; next one
            # read, then write in a transaction of its own: a read transaction that turns into
            # a write after another writer committed fails at once in WAL mode (busy snapshot)
            with self.engine.connect() as conn:
                job_id = conn.execute(pick).scalar()
            if job_id is None:
                return None
            with self.engine.begin() as conn:
                won = conn.execute(take.where(jobs.c.id == job_id)).rowcount
            if won:
                return self.get_job(job_id)
        return None

    @guard_db_errors()
    def fail_lost_jobs(self, live_since_ns: int, *, besides: str) -> list[JobRow]:
        """Fail the started jobs of every host (but `besides`, this manager's own) where no
        manager has beaten since `live_since_ns`: their host is down or cut off, and nobody
        else can tell what became of them. Each is also asked to stop (a worker that outlived
        its manager ends its run cleanly when it reads that) and marked `lost_ns`, so its
        host's manager repairs and indexes its runs when it comes back. Returns them as they
        were before."""
        from recorder.db.tables import managers

        live_hosts = sa.select(managers.c.host).where(managers.c.heartbeat_ns >= live_since_ns)
        q = sa.select(jobs).where(
            jobs.c.state.in_((STARTING, RUNNING, PAUSED)),
            jobs.c.host.is_not(None),
            jobs.c.host != besides,
            jobs.c.host.not_in(live_hosts),
        )
        now = time.time_ns()
        lost: list[JobRow] = []
        with self.engine.begin() as conn:
            for row in conn.execute(q).all():
                job = _job_row(row)
                age = (now - live_since_ns) / 1e9
                done = conn.execute(
                    jobs.update()
                    .where(jobs.c.id == job["id"], jobs.c.state.in_(ACTIVE_STATES))
                    .values(
                        state=FAILED,
                        desired=DESIRED_STOPPED,
                        stop_requested_ns=sa.func.coalesce(jobs.c.stop_requested_ns, now),
                        error=f"host lost: the manager of {job['host']!r} stopped beating "
                        f"(no heartbeat for more than {age:.0f} s); its runs are repaired "
                        "when it comes back",
                        lost_ns=now,
                        ended_ns=now,
                        updated_ns=now,
                    )
                ).rowcount
                if done:
                    lost.append(job)
        return lost

    @guard_db_errors()
    def lost_jobs(self, host: str) -> list[JobRow]:
        """This host's jobs that another manager gave up on while it was away (fail_lost_jobs),
        whose runs it has not repaired yet."""
        q = sa.select(jobs).where(jobs.c.host == host, jobs.c.lost_ns.is_not(None))
        with self.engine.connect() as conn:
            return [_job_row(r) for r in conn.execute(q.order_by(jobs.c.created_ns))]

    @guard_db_errors()
    def update_job(self, job_id: str, **values) -> None:
        """Write a job's columns. A change of `state` applies to an active job only: a job that
        ended (another host's manager failed it as lost, a stop on a pending one) stays ended
        whatever a late report of its worker says."""
        values["updated_ns"] = time.time_ns()
        where = [jobs.c.id == job_id]
        if "state" in values:
            where.append(jobs.c.state.in_(ACTIVE_STATES))
        with self.engine.begin() as conn:
            conn.execute(jobs.update().where(*where).values(**values))

    @guard_db_errors()
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

    def finish_unbegun(self, job_id: str) -> bool:
        """Finish as stopped a job stopped before its worker began anything: a recording made
        no run, so its planned run id is cleared (a replay or export keeps the run it names)."""
        return self.finish_job(job_id, STOPPED, run_id=_RUN_OF_UNBEGUN)

    @guard_db_errors()
    def delete_job(self, job_id: str) -> None:
        """Forget a job that has ended (an export whose file was removed)."""
        with self.engine.begin() as conn:
            conn.execute(commands.delete().where(commands.c.job_id == job_id))
            conn.execute(jobs.delete().where(jobs.c.id == job_id, jobs.c.state.in_(FINAL_STATES)))

    # -- commands ------------------------------------------------------------------------------

    @guard_db_errors()
    def add_command(self, job_id: str, op: str, arg: float = 0.0, text: str | None = None) -> None:
        if op not in COMMANDS:
            raise ValueError(f"unknown command {op!r}")
        with self.engine.begin() as conn:
            conn.execute(
                commands.insert().values(
                    job_id=job_id, op=op, arg=arg, text=text, created_ns=time.time_ns()
                )
            )

    @guard_db_errors()
    def take_commands(self, job_id: str) -> list[Command]:
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
        return [Command(r.op, r.arg, r.text) for r in rows]


def _job_row(row: sa.Row) -> JobRow:
    """A row of the jobs table as its contract: the columns are JobRow's keys (tests check)."""
    return cast(JobRow, row_dict(row))
