"""The SIGKILL loss bound: flushes on a fixed clock, and a real recorder killed at random points
loses at most one flush interval plus one flush (plus a margin for a loaded machine)."""

from __future__ import annotations

import random
import signal
import struct
import threading
import time

import pytest
import zmq

from recorder.recording.recording import next_flush_after
from recorder.store.reader import RunReader
from tests.clihelp import committed_messages
from tests.helpers import run_cli, start_cli, wait_for

INTERVAL = 0.5
MARGIN = 0.5  # the writer's queue poll, batching and a busy CI machine


def test_flushes_are_scheduled_on_a_fixed_clock():
    # a flush due at 10.0 that ended at 10.3: the next is due at 11.0, not 11.3
    assert next_flush_after(10.0, 1.0, now=10.3) == 11.0
    # one that took 2.5 s skips the ticks it missed instead of flushing back to back
    assert next_flush_after(10.0, 1.0, now=12.5) == 13.0
    assert next_flush_after(10.0, 0.5, now=10.0) == 10.5


class StampingPusher(threading.Thread):
    """PUSHes one frame per message: the send time (time_ns, int64), every ~2 ms."""

    def __init__(self, sock):
        super().__init__(daemon=True)
        self.sock = sock
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            if self.sock.poll(20, zmq.POLLOUT):
                self.sock.send(struct.pack("<q", time.time_ns()))
            time.sleep(0.002)


@pytest.mark.timeout(180)
def test_sigkill_at_random_points_loses_at_most_an_interval_and_a_flush(ctx, data_dir):
    rng = random.Random()
    kills = []
    for _ in range(5):
        sock = ctx.socket(zmq.PUSH)
        sock.linger = 0
        sock.bind("tcp://127.0.0.1:*")
        endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        sender = StampingPusher(sock)
        proc = start_cli(
            "record", endpoint, "--socket", "PULL", "--flush-interval", INTERVAL,
            "--data", data_dir, "-q",
        )  # fmt: skip
        try:
            run_id = proc.stdout.readline().strip()
            run_path = data_dir / "runs" / run_id
            sender.start()
            wait_for(lambda: committed_messages(run_path) > 0, 30, "a first flush")  # noqa: B023
            time.sleep(rng.uniform(1.5, 4.0))  # the random kill point
            killed_ns = time.time_ns()
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            sender.stop.set()
            sender.join(5)
            sock.close()
        kills.append((run_path, killed_ns))
    out = run_cli("recover", "--data", data_dir)
    assert out.returncode == 0, out.stderr
    report = []
    for run_path, killed_ns in kills:
        with RunReader(run_path) as run:
            assert run.status == "interrupted"
            stream = run.stream("main")
            last = max(struct.unpack("<q", bytes(m.frames[0]))[0] for m in run.messages())
            slowest = stream.stats["slowest_flush_ns"] / 1e9
        lost = (killed_ns - last) / 1e9
        report.append((round(lost, 3), round(slowest, 3)))
        assert lost <= INTERVAL + slowest + MARGIN, report
    print("kill loop (lost s, slowest flush s):", report)
