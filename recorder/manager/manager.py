"""The manager: one per host and data folder, it makes the jobs in the catalog happen.

It reconciles desired state with processes ten times a second: a pending job is claimed and
handed to a worker process; a job asked to stop whose worker does not stop in time gets SIGTERM,
then SIGKILL. Nothing is restarted silently: a worker that dies is marked `failed` with its exit
reason, and its run is repaired (cut back to the last flush, marked `interrupted`) and indexed,
so it stays readable. The manager publishes its heartbeat and each worker's CPU and memory every
second; the workers publish their own counters (see recorder/workers.py).

A manager that restarts finds the workers of the previous one still running (they live in their
own sessions) and adopts them instead of losing track.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import threading
import time
from pathlib import Path

import psutil

from recorder import config
from recorder.contracts import JobRow
from recorder.db.catalog import Catalog
from recorder.db.control import Control
from recorder.db.jobs import DESIRED_STOPPED, FAILED, FINISHED, KIND_EXPORT, PENDING
from recorder.db.managers import HEARTBEAT_INTERVAL_S, MANAGER_TIMEOUT_S, check_host, hostname
from recorder.errors import RecorderError, RunNotFound
from recorder.manager.procs import Spare, WorkerProcess, exit_reason, find_worker, logs_dir, spawn

log = logging.getLogger("recorder.manager")

LOCK_FILE = "manager.lock"
SPARES = 6
"""Spare workers kept by default: six recordings started together each find one waiting, and
are `running` in well under two seconds instead of importing for several (each costs ~50 MB)."""
SPARE_STAGGER_S = 1.0
"""Spares are started one at a time this far apart, and not right after a job was handed out:
a new spare's imports must not take the CPU from the workers that are just starting."""


class ManagerRunning(RecorderError):
    """Another manager already serves this data folder."""


class Manager:
    def __init__(
        self,
        data: Path,
        catalog_url: str,
        *,
        poll_s: float = 0.1,
        spares: int = SPARES,
        stop_grace_s: float = 30.0,  # a recording drains its queue (up to 1 GiB) on stop
        kill_grace_s: float = 30.0,
        host: str | None = None,
        lost_after_s: float = MANAGER_TIMEOUT_S,
    ):
        self.data = Path(data).resolve()
        self.runs_dir = config.runs_dir(self.data)
        self.catalog_url = catalog_url
        self.poll_s, self.spares = poll_s, spares
        self.stop_grace_s, self.kill_grace_s = stop_grace_s, kill_grace_s
        self.host = check_host(host) if host else hostname()
        #: Another host whose managers have not beaten for this long is lost: its jobs fail.
        self.lost_after_s = lost_after_s
        self._outage_since: float | None = None  # the catalog stopped answering (monotonic)
        self.started_ns = time.time_ns()
        self.id = f"{self.host}/{os.getpid()}/{self.started_ns}"
        self.procs: dict[str, WorkerProcess] = {}
        self._spares: list[Spare] = []
        self._spare_serial = 0
        self._spare_failures = 0
        self._next_spare = 0.0
        self._next_beat = 0.0
        self._lock_fd: int | None = None
        self.catalog: Catalog | None = None
        self.control: Control | None = None

    @property
    def spare_pids(self) -> list[int]:
        """The spare workers waiting for a job (some may still be importing)."""
        return [s.popen.pid for s in list(self._spares) if s.alive()]

    def _control(self) -> Control:
        if self.control is None:
            raise RecorderError("the manager is not started")
        return self.control

    def _catalog(self) -> Catalog:
        if self.catalog is None:
            raise RecorderError("the manager is not started")
        return self.catalog

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Take the data folder's lock, announce ourselves, adopt or fail orphaned jobs."""
        self._lock()
        try:
            self.catalog = Catalog(self.catalog_url)
            self.control = Control(self.catalog.engine)
            self._beat()
            self._adopt()
            self._repair_lost()
        except BaseException:
            self._unlock()
            raise

    def serve(self, stop: threading.Event) -> None:
        """Reconcile until `stop` is set (after `start()`), then shut down."""
        try:
            while not stop.wait(self.poll_s):
                self.tick()
        finally:
            self.shutdown()

    def tick(self) -> None:
        """One reconciliation. While the catalog is away every tick fails the same way: that
        is said once when it goes, once when it is back (not ten times a second)."""
        try:
            self._tick()
        except RecorderError as exc:  # the catalog is busy or gone: try again next tick
            if self._outage_since is None:
                self._outage_since = time.monotonic()
                log.warning("manager: %s (trying again until the catalog answers)", exc)
            return
        if self._outage_since is not None:
            away = time.monotonic() - self._outage_since
            self._outage_since = None
            log.warning("manager: the catalog answers again (after %.1f s)", away)
            with contextlib.suppress(RecorderError):  # cut off this long, we may have been lost
                self._repair_lost()

    def shutdown(self, timeout: float | None = None) -> None:
        """Ask every worker to stop, wait for their final flush, force the stragglers."""
        control = self.control
        if control is not None:
            for job_id in list(self.procs):
                with contextlib.suppress(RecorderError):
                    control.set_desired(job_id, DESIRED_STOPPED)
        deadline = time.monotonic() + (self.stop_grace_s if timeout is None else timeout)
        while self.procs and time.monotonic() < deadline:
            self._reap_all()
            time.sleep(0.05)
        for p in self.procs.values():
            p.terminate()
        deadline = time.monotonic() + self.kill_grace_s
        while self.procs and time.monotonic() < deadline:
            self._reap_all()
            time.sleep(0.05)
        for p in self.procs.values():
            p.kill()
        while self.procs:
            self._reap_all()
            time.sleep(0.02)
        for s in self._spares:
            s.release()  # all at once: each exits as soon as its imports are done
        for s in self._spares:
            s.close()
        self._spares = []
        if control is not None:
            with contextlib.suppress(RecorderError):
                control.remove_manager(self.id)
        if self.catalog is not None:
            self.catalog.close()
        self._unlock()

    # -- the lock ------------------------------------------------------------------------------

    def _lock(self) -> None:
        path = self.data / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ManagerRunning(
                f"a manager is already running for {self.data} (pid {other})"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- reconciling ---------------------------------------------------------------------------

    def _tick(self) -> None:
        control = self._control()
        now = time.monotonic()
        if now >= self._next_beat:
            self._next_beat = now + HEARTBEAT_INTERVAL_S
            self._beat()
        for job in control.list_jobs(active=True):
            if job["state"] == PENDING:
                if job["host"] in (None, self.host) and job["desired"] == DESIRED_STOPPED:
                    control.finish_unbegun(job["id"])
            elif job["id"] in self.procs:
                self._enforce_stop(job, self.procs[job["id"]])
        while (claimed := control.claim_next(self.id, self.host)) is not None:
            self._launch(claimed)
        self._reap_all()
        self._keep_spares()

    def _beat(self) -> None:
        self._control().heartbeat(
            self.id, pid=os.getpid(), data=str(self.data), started_ns=self.started_ns,
            host=self.host, info=self._host_info(),
        )  # fmt: skip
        for job_id, p in list(self.procs.items()):
            usage = p.usage()
            if usage is not None:
                self._control().update_job(job_id, proc=usage)
        self._fail_lost_hosts()

    def _host_info(self) -> dict:
        """What the Hosts page shows of this host: its data folder's disk."""
        try:
            disk = shutil.disk_usage(self.data)
        except OSError:
            return {}
        return {"disk": {"total_bytes": disk.total, "free_bytes": disk.free}}

    def _fail_lost_hosts(self) -> None:
        """Jobs of other hosts whose managers stopped beating are failed here (any live
        manager may: the first to look does it, the row update decides)."""
        since = time.time_ns() - int(self.lost_after_s * 1e9)
        for job in self._control().fail_lost_jobs(since, besides=self.host):
            log.warning("manager: %s failed: host %r stopped beating", job["id"], job["host"])

    def _repair_lost(self) -> None:
        """This host's jobs that another manager failed while it was away: their runs are cut
        back to their last flush and indexed; a worker that is still alive (it was asked to
        stop) is watched until it ends, then the same."""
        control = self._control()
        for job in control.lost_jobs(self.host):
            if job["id"] in self.procs:
                continue
            proc = find_worker(job["pid"], job["id"])
            if proc is not None:
                log_path = logs_dir(self.data) / f"{job['id']}.log"
                self.procs[job["id"]] = WorkerProcess(
                    job["id"], job["kind"], log_path, adopted=proc
                )
                continue  # _reap repairs and clears it when the worker ends
            for run_id in _recorded_runs(job):
                self._salvage(run_id)
            if job["kind"] == KIND_EXPORT:
                self._discard_export(job["id"])
            control.update_job(job["id"], lost_ns=None)
            log.info("manager: repaired the runs of %s (lost while this host was away)", job["id"])

    def _launch(self, job: JobRow) -> None:
        job_id, kind = job["id"], job["kind"]
        log_path = logs_dir(self.data) / f"{job_id}.log"
        proc = None
        self._next_spare = max(self._next_spare, time.monotonic() + SPARE_STAGGER_S)
        while self._spares and proc is None:
            proc = self._spares.pop(0).assign(kind, job_id, log_path)
        if proc is not None:
            self._spare_failures = 0
        if proc is None:
            try:
                popen = spawn(kind, job_id, self.data, self.catalog_url, log_path)
            except OSError as exc:
                self._control().finish_job(job_id, FAILED, error=f"cannot start a worker: {exc}")
                return
            proc = WorkerProcess(job_id, kind, log_path, popen=popen)
        self.procs[job_id] = proc
        self._control().update_job(job_id, pid=proc.pid)
        log.info("manager: %s %s started as pid %d", kind, job_id, proc.pid)

    def _enforce_stop(self, job: JobRow, proc: WorkerProcess) -> None:
        if job["desired"] != DESIRED_STOPPED or not job["stop_requested_ns"]:
            return
        waited = (time.time_ns() - job["stop_requested_ns"]) / 1e9
        if proc.terminated_at is None and waited > self.stop_grace_s:
            log.warning("manager: %s did not stop in %.0f s: SIGTERM", job["id"], waited)
            proc.terminate()
        elif (
            proc.terminated_at is not None
            and not proc.killed
            and time.monotonic() - proc.terminated_at > self.kill_grace_s
        ):
            log.warning("manager: %s ignored SIGTERM: SIGKILL", job["id"])
            proc.kill()

    def _reap_all(self) -> None:
        for job_id, proc in list(self.procs.items()):
            ended, rc = proc.poll()
            if ended:
                del self.procs[job_id]
                self._reap(job_id, proc, rc)

    def _reap(self, job_id: str, proc: WorkerProcess, rc: int | None) -> None:
        """A worker ended: keep its own final word, else record why it died; save its run."""
        control = self._control()
        try:
            job = control.get_job(job_id)
            for run_id in _recorded_runs(job):
                self._salvage(run_id)  # first: whoever sees `failed` finds it readable
            if job["kind"] == KIND_EXPORT and job["state"] != FINISHED:
                self._discard_export(job_id)
            reason = exit_reason(rc, proc.log)
            if control.finish_job(job_id, FAILED, error=reason, exit_code=rc):
                log.warning("manager: %s failed: %s", job_id, reason)
                keep_log = True
            else:
                control.update_job(job_id, exit_code=rc, lost_ns=None)
                keep_log = rc not in (0, None)
        except RecorderError as exc:
            log.warning("manager: cannot record the end of %s: %s", job_id, exc)
            keep_log = True
        if not keep_log:
            with contextlib.suppress(OSError):
                proc.log.unlink()

    def _salvage(self, run_id: str) -> None:
        """A run whose recorder died is cut back to its last flush and marked interrupted."""
        from recorder.store.find import resolve_run
        from recorder.store.reader import RunReader
        from recorder.store.recover import is_abandoned, repair_run

        try:
            path = resolve_run(self.runs_dir, run_id, prefix=False)
        except RunNotFound:
            return
        try:
            with RunReader(path) as reader:
                abandoned = is_abandoned(reader.attrs)
            if abandoned:
                repair_run(path)
            self._catalog().index_path(path)
        except RecorderError as exc:
            log.warning("manager: cannot repair run %s: %s", run_id, exc)

    def _discard_export(self, job_id: str) -> None:
        """An export whose worker died leaves at most a partial file: never offer it."""
        import shutil

        from recorder.manager.planning import export_dir

        shutil.rmtree(export_dir(self.data, job_id), ignore_errors=True)

    def _adopt(self) -> None:
        """Jobs another manager on this host left behind: adopt live workers, fail the rest."""
        live = set()
        for other in self._control().live_managers():
            if other["id"] == self.id:
                continue
            if other["host"] == self.host and not psutil.pid_exists(other["pid"]):
                self._control().remove_manager(other["id"])  # died moments ago: not live
                continue
            live.add(other["id"])
        for job in self._control().list_jobs(active=True):
            owner = job["manager"]
            if job["state"] == PENDING or not owner or owner in live:
                continue
            if owner.split("/", 1)[0] != self.host:
                continue  # another host's worker: only its own manager can tell
            proc = find_worker(job["pid"], job["id"])
            log_path = logs_dir(self.data) / f"{job['id']}.log"
            if proc is not None:
                self.procs[job["id"]] = WorkerProcess(
                    job["id"], job["kind"], log_path, adopted=proc
                )
                self._control().update_job(job["id"], manager=self.id)
                log.info("manager: adopted %s (pid %d)", job["id"], proc.pid)
                continue
            for run_id in _recorded_runs(job):
                self._salvage(run_id)
            if job["kind"] == KIND_EXPORT:
                self._discard_export(job["id"])
            self._control().finish_job(
                job["id"], FAILED, error="worker lost: it ended while no manager was watching"
            )

    def _keep_spares(self) -> None:
        self._spares = [s for s in self._spares if s.alive() or self._spare_died(s)]
        now = time.monotonic()
        if len(self._spares) < self.spares and now >= self._next_spare:
            self._spare_serial += 1
            self._next_spare = now + SPARE_STAGGER_S
            try:
                self._spares.append(Spare(self.data, self.catalog_url, self._spare_serial))
            except OSError as exc:
                log.warning("manager: cannot start a spare worker: %s", exc)
                self._next_spare = now + 5.0

    def _spare_died(self, spare: Spare) -> bool:
        """A spare that dies on its own is broken (bad install?): back off, don't spin."""
        self._spare_failures += 1
        delay = min(60.0, 0.5 * 2 ** min(self._spare_failures, 7))
        self._next_spare = time.monotonic() + delay
        log.warning(
            "manager: spare worker exited: %s (retry in %.0f s)",
            exit_reason(spare.popen.returncode, spare.log),
            delay,
        )
        return False


def _recorded_runs(job: JobRow) -> list[str]:
    """The runs a dead record worker may have left open: the job's current run, and the one
    before it (a split or triggered recording closes the previous run just after the next
    begins). Closed runs are left as they are (`_salvage` repairs abandoned ones only)."""
    if job["kind"] != "record":
        return []
    recent = ((job["stats"] or {}).get("runs") or [])[-2:]
    return list(dict.fromkeys([*([job["run_id"]] if job["run_id"] else []), *recent]))
