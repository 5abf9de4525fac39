"""Running the real `recorder` command in a subprocess, as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import zarr

CLI = [sys.executable, "-m", "recorder"]


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False
    )


def cli_json(*args: str):
    proc = run_cli(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def start_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*CLI, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def committed_messages(run_path, stream: str = "main") -> int:
    try:
        group = zarr.open_group(run_path / "streams" / stream, mode="r")
        return int(group.attrs["committed"]["messages"])
    except (FileNotFoundError, KeyError, ValueError):
        return 0


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


class NumberedPusher(threading.Thread):
    """PUSHes numbered messages (header b'%08d', payload) until stopped, at a bounded rate."""

    def __init__(self, sock, payload: bytes, interval: float = 0.0):
        super().__init__(daemon=True)
        self.sock, self.payload, self.interval = sock, payload, interval
        self.stop = threading.Event()
        self.sent = 0

    @staticmethod
    def header(i: int) -> bytes:
        return b"%08d" % i

    def run(self) -> None:
        import zmq

        while not self.stop.is_set():
            if not self.sock.poll(50, zmq.POLLOUT):
                continue
            self.sock.send_multipart([self.header(self.sent), self.payload])
            self.sent += 1
            if self.interval:
                time.sleep(self.interval)
