"""Reliability of a real recording: hostile field names from the wire, the counters of a stream
that hit its caps in `recorder info`, and the SIGKILL loss bound: flushes on a fixed clock, and a
real recorder killed at random points loses at most one flush interval plus one flush (plus a
margin for a loaded machine)."""

from __future__ import annotations

import random
import signal
import struct
import threading
import time

import pytest
import zmq

from recorder.protocols.base import Decoded
from recorder.recording.recording import SourceSpec, next_flush_after
from recorder.simulators import AdzmqSimulator
from recorder.store import layout
from recorder.store.reader import RunReader
from recorder.store.run_writer import RunWriter
from tests.clihelp import committed_messages
from tests.helpers import run_cli, start_cli, wait_for
from tests.recordhelp import record, running

pytestmark = pytest.mark.reliability  # issue 10's reliability suite: pytest -m reliability

LONG = "Detector" + "_very_long_attribute_name" * 12  # 300 bytes, as an EPICS site may have


class HostileNames(AdzmqSimulator):
    """NDAttributes whose names are a file name that is too long, paths and odd characters (a NUL
    would be a malformed header here: the store-level fuzz test has it)."""

    def ndattr(self, i):
        return {LONG: 1.0 * i, "../../etc/passwd": 2.0, "Ω/b c": 3.0, "zarr.json": 4.0}


@pytest.mark.timeout(60)
def test_a_recording_survives_any_ndattr_name(tmp_path):
    sim = HostileNames("tcp://127.0.0.1:* PUB", rate=200, height=4, width=4)
    spec = SourceSpec(sim.bind(), protocol="adzmq", subscribe=[b"{"])
    with running(sim):
        path = record(tmp_path, spec, count=20)
    with RunReader(path) as run:
        assert run.status == "complete"
        stream = run.stream("main")
        first = int(stream.column("seq")[0]) - 1  # message i of the simulator is frame i + 1
        assert stream.column(f"ndattr.{LONG}").tolist() == [float(first + k) for k in range(20)]
        assert set(stream.column("ndattr.../../etc/passwd").tolist()) == {2.0}
        assert set(stream.column("ndattr.Ω/b c").tolist()) == {3.0}
        assert set(stream.column("ndattr.zarr.json").tolist()) == {4.0}
    assert not (tmp_path / "etc").exists()


@pytest.mark.timeout(60)
def test_info_shows_what_a_stream_kept_only_verbatim(tmp_path, monkeypatch):
    monkeypatch.setattr(layout, "MAX_COLUMNS", 2)
    runs = tmp_path / "data" / "runs"
    run = RunWriter(runs, name="t")
    s = run.add_stream("s", protocol="raw", endpoint="tcp://h:1", socket_type="SUB", role="connect")
    s.append(1, [b"m"], Decoded(seq=0, columns={f"k{i}": i for i in range(5)}))
    run.close()
    out = run_cli("info", run.run_id, "--data", tmp_path / "data")
    assert out.returncode == 0, out.stderr
    assert "stream s: 3 values past the column cap, 0 arrays past the segment cap" in out.stdout


INTERVAL = 0.5
MARGIN = 1.0  # the writer's queue poll, batching and a busy CI machine (0.5 s failed under -n 2)


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
            time.sleep(rng.uniform(2.5, 4.5))  # the random kill point, later than INTERVAL + MARGIN
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
