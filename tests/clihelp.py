"""The `recorder` command as a user runs it: a stream to record from, what a run has committed
so far, and `recorder serve --demo` with its sign-in link. Running the command itself
(run_cli, start_cli, cli_json) is in tests/helpers.py."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import zarr

from tests.helpers import CLI, end_process, free_port


def committed_messages(run_path, stream: str = "main") -> int:
    try:
        group = zarr.open_group(run_path / "streams" / stream, mode="r")
        return int(group.attrs["committed"]["messages"])
    except (FileNotFoundError, KeyError, ValueError):
        return 0


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
            try:  # never blocks: the peer can go between the poll and the send (a PUSH with
                # no peer blocks for good, and closing the socket under it aborts the process)
                self.sock.send_multipart([self.header(self.sent), self.payload], zmq.NOBLOCK)
            except zmq.Again:
                continue
            self.sent += 1
            if self.interval:
                time.sleep(self.interval)


@contextmanager
def serve_demo(
    folder: Path, timeout: float = 60.0, extra: tuple[str, ...] = (), spares: int = 2
) -> Iterator[tuple[str, subprocess.Popen]]:
    """`recorder serve --demo` on a free port with its data in folder/data and its log in
    folder/serve.log; yields the sign-in link it prints and the process. Always ended
    afterwards (SIGTERM, then SIGKILL). Two spare workers, not the production six: each
    costs a second of imports while the suite's two cores are shared (more recordings than
    spares still start, a worker's imports later)."""
    port = free_port()
    log = open(folder / "serve.log", "w+b")  # noqa: SIM115  closed below
    proc = subprocess.Popen(
        [*CLI, "serve", "--demo", "--port", str(port), "--data", str(folder / "data"),
         "--spares", str(spares), *extra],
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
        yield next(ln.strip() for ln in lines if "#token=" in ln), proc
    finally:
        end_process(proc, grace=60)
        log.close()
