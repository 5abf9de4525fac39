"""Worker processes as the manager sees them: spawned, handed a job, watched, stopped.

Workers are started with subprocess (fork + exec of a fresh interpreter), never a bare fork, so
each builds its own zmq Context and the manager's threads and sockets never leak into them.
Importing numpy, zarr and zmq takes a second or two, so the manager keeps *spares*: workers
that have imported everything, opened the catalog and wait on stdin for their job; starting a
recording is then one line written to a pipe (manager.SPARES of them, for a burst of starts).
Each worker gets its own session (a Ctrl-C at the terminal reaches the manager, which stops
workers in order) and its own log file, whose last line explains a crash.
Workers deliberately outlive a manager (or `serve`) that is killed: a recording goes on and
keeps everything, the workers follow the stop requests in the catalog themselves, and the next
manager for the folder adopts them (a spare, whose stdin closes, just exits). Only the web
server, which would serve without a manager, dies with `serve` (see recorder/cli/serve.py).
The catalog URL goes through the environment, not argv, so a password in it never shows in
`ps` output.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from recorder import config

LOGS_DIR = "workers"


def logs_dir(data: Path) -> Path:
    d = data / LOGS_DIR
    d.mkdir(parents=True, exist_ok=True)
    return d


def spawn(mode: str, job_id: str | None, data: Path, catalog_url: str, log: Path):
    """Start `python -m recorder.manager.worker MODE`; a spare (no job) reads one on stdin."""
    cmd = [sys.executable, "-m", "recorder.manager.worker", mode, "--data", str(data)]
    if job_id:
        cmd += ["--job", job_id]
    env = {**os.environ, config.CATALOG_ENV: catalog_url, "PYTHONUNBUFFERED": "1"}
    with open(log, "ab") as err:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE if job_id is None else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
            start_new_session=True,
            close_fds=True,
        )


def exit_reason(returncode: int | None, log: Path | None) -> str:
    """Why a worker ended, in one line: the signal or exit code, and the last thing it said."""
    if returncode is None:
        why = "worker process disappeared (exit code unknown)"
    elif returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        why = f"worker killed by {name}"
    else:
        why = f"worker exited with code {returncode}"
    last = last_line(log) if log else ""
    return f"{why}: {last}" if last else why


def last_line(log: Path, limit: int = 4096) -> str:
    try:
        with open(log, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines()]
    except OSError:
        return ""
    lines = [ln for ln in lines if ln]
    return lines[-1][:500] if lines else ""


class WorkerProcess:
    """A worker running one job: our child (Popen) or, after a manager restart, adopted."""

    def __init__(self, job_id: str, kind: str, log: Path, popen=None, adopted=None):
        self.job_id, self.kind, self.log = job_id, kind, log
        self.popen: subprocess.Popen | None = popen
        self.adopted: psutil.Process | None = adopted
        self.pid = popen.pid if popen is not None else adopted.pid
        self.terminated_at: float | None = None
        self.killed = False
        self._ps: psutil.Process | None = adopted

    def poll(self) -> tuple[bool, int | None]:
        """(ended?, return code or None when unknown)."""
        if self.popen is not None:
            rc = self.popen.poll()
            return rc is not None, rc
        if self.adopted is None:  # one of the two is always set
            return True, None
        try:
            alive = self.adopted.is_running() and self.adopted.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            alive = False
        return not alive, None

    def terminate(self) -> None:
        self.terminated_at = time.monotonic()
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self.killed = True
        self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, psutil.NoSuchProcess):
            if self.popen is not None:
                self.popen.send_signal(sig)
            elif self.adopted is not None:
                self.adopted.send_signal(sig)

    def usage(self) -> dict | None:
        """CPU and memory of the worker, for the dashboard."""
        try:
            if self._ps is None:
                self._ps = psutil.Process(self.pid)
                self._ps.cpu_percent(None)
            with self._ps.oneshot():
                return {
                    "cpu_percent": self._ps.cpu_percent(None),
                    "rss_bytes": self._ps.memory_info().rss,
                }
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None


class Spare:
    """A worker that has done its imports and waits for `MODE JOB_ID` on stdin."""

    def __init__(self, data: Path, catalog_url: str, serial: int):
        self.log = logs_dir(data) / f"spare-{os.getpid()}-{serial}.log"
        self.popen = spawn("spare", None, data, catalog_url, self.log)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def assign(self, kind: str, job_id: str, log: Path) -> WorkerProcess | None:
        """Hand over a job; None if the spare is gone (the caller spawns one directly)."""
        if not self.alive():
            return None
        try:
            self.popen.stdin.write(f"{kind} {job_id}\n".encode())
            self.popen.stdin.close()
        except (BrokenPipeError, OSError, ValueError):
            return None
        with contextlib.suppress(OSError):
            os.replace(self.log, log)  # the open descriptor follows the file
        return WorkerProcess(job_id, kind, log if log.exists() else self.log, popen=self.popen)

    def release(self) -> None:
        """No job will come: the spare exits once it reads the end of its stdin."""
        with contextlib.suppress(OSError, ValueError):
            self.popen.stdin.close()

    def close(self, timeout: float = 3.0) -> None:
        self.release()
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout)
        with contextlib.suppress(OSError):
            self.log.unlink()


def find_worker(pid: int | None, job_id: str) -> psutil.Process | None:
    """The live worker process of a job (after a manager restart), checked by its command line
    so a reused pid is never mistaken for it."""
    if not pid:
        return None
    try:
        p = psutil.Process(pid)
        cmd = p.cmdline()
        environ_ok = "recorder.manager.worker" in cmd
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    if not environ_ok or p.status() == psutil.STATUS_ZOMBIE:
        return None
    if job_id in cmd or "spare" in cmd:
        return p
    return None
