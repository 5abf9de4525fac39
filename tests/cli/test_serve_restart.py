"""`recorder serve` after a SIGKILL: its web server goes with it (parent-death signal), and a
new `serve` on the same port comes up, stopping web servers a killed serve left behind."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import psutil
import pytest

from recorder import config
from recorder.cli.serve import SERVE_PID_ENV, WEB_APP, _is_web_worker, _no_control_socket
from recorder.db.control import Control
from recorder.manager.planning import start_recording
from recorder.simulators import make_simulator
from tests.helpers import CLI, end_process, free_port, wait_for
from tests.recordhelp import running

pytestmark = pytest.mark.reliability  # issue 10's reliability suite: pytest -m reliability


class Served:
    """`recorder serve` in a subprocess, its stdout lines collected, its log in a file."""

    def __init__(self, data, port: int, log):
        self.proc = subprocess.Popen(
            [*CLI, "serve", "--port", str(port), "--data", str(data), "--web-workers", "1",
             "--spares", "1"],
            stdout=subprocess.PIPE, stderr=log, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()

    def link(self, timeout: float = 60.0) -> str:
        def printed():
            assert self.proc.poll() is None, f"serve exited with {self.proc.returncode}"
            return next((ln for ln in self.lines if "#token=" in ln), None)

        return wait_for(printed, timeout, "the sign-in link", interval=0.05)

    def web_server(self) -> psutil.Process:
        [web] = [p for p in psutil.Process(self.proc.pid).children() if WEB_APP in p.cmdline()]
        return web


@pytest.fixture
def log(tmp_path):
    with open(tmp_path / "serve.log", "w+b") as f:
        yield f
        f.seek(0)
        sys.stderr.write(f.read().decode(errors="replace")[-4000:])


def _job(control: Control, job_id: str, pred, what: str) -> dict:
    def check():
        job = control.get_job(job_id)
        return job if pred(job) else None

    return wait_for(check, 60, what, 0.05)


@pytest.mark.timeout(240)
def test_serve_comes_back_on_its_port_after_sigkill_and_adopts_the_recording(tmp_path, log):
    data, port = tmp_path / "data", free_port()
    first = Served(data, port, log)
    first.link()
    web = first.web_server()
    sim = make_simulator("adzmq", "tcp://127.0.0.1:* PUB", rate=100)
    source = {"protocol": "adzmq", "endpoint": sim.bind()}
    control = Control(config.catalog_url(None, data.resolve()))
    with running(sim):
        job = start_recording(control, sources=[source])
        live = _job(control, job["id"], lambda j: j["state"] == "running", "recording")
        first.proc.kill()
        first.proc.wait(10)
        killed = time.monotonic()
        # the web server gets SIGTERM from the kernel: no server without its manager
        wait_for(lambda: not web.is_running() or web.status() == psutil.STATUS_ZOMBIE, 30, "web")
        web_gone = time.monotonic() - killed
        second = Served(data, port, log)
        try:
            assert f":{port}/login#token=" in second.link()
            print(f"web server gone {web_gone:.1f} s after SIGKILL of serve; "
                  f"serve up again after {time.monotonic() - killed:.1f} s")  # fmt: skip
            # the recording went on and the new serve's manager adopted it
            adopted = _job(control, job["id"], lambda j: j["manager"] != live["manager"], "adopt")
            assert adopted["state"] == "running" and adopted["pid"] == live["pid"]
            control.set_desired(job["id"], "stopped")
            _job(control, job["id"], lambda j: j["state"] == "stopped", "stopped")
        finally:
            end_process(second.proc, grace=60)
            control.close()
    assert second.proc.returncode == 0


@pytest.mark.timeout(180)
def test_serve_stops_a_web_server_a_killed_serve_left_behind(tmp_path, log):
    """As a serve without the parent-death signal leaves it: gunicorn serving our folder on
    the port, its serve gone. The new serve stops it and takes the port."""
    data, port = tmp_path / "data", free_port()
    config.data_dir(data)
    folder = data.resolve()
    env = {**os.environ, config.DATA_ENV: str(folder),
           config.CATALOG_ENV: config.catalog_url(None, folder)}  # fmt: skip
    starter = (
        "import os, subprocess, sys\n"
        "env = dict(os.environ, " + SERVE_PID_ENV + "=str(os.getpid()))\n"
        f"subprocess.Popen([sys.executable, '-m', 'gunicorn', '--bind', '127.0.0.1:{port}',"
        f" '--workers', '1', *{_no_control_socket()!r}, {WEB_APP!r}], env=env)\n"
    )
    subprocess.run([sys.executable, "-c", starter], env=env, check=True, timeout=30)

    def orphan():  # the gunicorn master (its parent is no gunicorn), once it listens
        for p in psutil.process_iter(["cmdline"]):
            try:
                if WEB_APP not in (p.info["cmdline"] or []) or _is_web_worker(p):
                    continue
                if p.environ().get(config.DATA_ENV) == str(folder):
                    listening = any(c.laddr.port == port for c in p.net_connections())
                    return p if listening else None
            except psutil.Error:
                continue
        return None

    left = wait_for(orphan, 60, "the left-behind web server listening")
    family = [left, *left.children()]
    try:
        served = Served(data, port, log)
        try:
            served.link()
            assert served.web_server().pid != left.pid
            _, alive = psutil.wait_procs(family, timeout=0)
            assert not alive
        finally:
            end_process(served.proc, grace=60)
    finally:
        for p in family:
            if p.is_running():
                p.kill()
