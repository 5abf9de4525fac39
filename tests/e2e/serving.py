"""`recorder serve --demo` as a user starts it, for browser tests: a free port, the printed
sign-in link, and a teardown that always ends the server (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

CLI = [sys.executable, "-m", "recorder"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_demo(folder: Path, timeout: float = 60.0):
    """Yields the sign-in link `recorder serve --demo` prints."""
    port = free_port()
    log = open(folder / "serve.log", "w+b")  # noqa: SIM115  closed below
    proc = subprocess.Popen(
        [*CLI, "serve", "--demo", "--port", str(port), "--data", str(folder / "data")],
        stdout=subprocess.PIPE, stderr=log, text=True,
    )  # fmt: skip
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    try:
        deadline = time.monotonic() + timeout
        while not any("#token=" in ln for ln in lines):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError("serve printed no link: " + log.read().decode(errors="replace"))
            time.sleep(0.05)
        yield next(ln.strip() for ln in lines if "#token=" in ln)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
