"""A recorder that is killed, terminated or runs out of disk loses at most one flush interval."""

from __future__ import annotations

import os
import signal

import pytest
import zmq

from recorder.store.reader import RunReader
from tests.clihelp import NumberedPusher, committed_messages
from tests.helpers import cli_json, run_cli, start_cli, wait_for


@pytest.fixture
def pusher(ctx):
    sock = ctx.socket(zmq.PUSH)
    sock.sndhwm = 1000
    sock.linger = 0
    sock.bind("tcp://127.0.0.1:*")
    endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    threads = []

    def start(payload: bytes, interval: float = 0.0) -> NumberedPusher:
        t = NumberedPusher(sock, payload, interval)
        threads.append(t)
        t.start()
        return t

    yield endpoint, start
    for t in threads:
        t.stop.set()
        t.join(5)
    sock.close()


def assert_numbered_prefix(run_path, payload: bytes, at_least: int) -> int:
    with RunReader(run_path) as run:
        n = 0
        for i, m in enumerate(run.messages()):
            assert bytes(m.frames[0]) == NumberedPusher.header(i)
            assert bytes(m.frames[1]) == payload
            n += 1
    assert n >= at_least
    return n


@pytest.mark.timeout(90)
def test_sigkill_then_recover_keeps_everything_flushed(pusher, data_dir):
    endpoint, start = pusher
    payload = os.urandom(50_000)
    proc = start_cli(
        "record", endpoint, "--socket", "PULL", "--flush-interval", "0.2", "--data", data_dir, "-q"
    )
    run_id = proc.stdout.readline().strip()
    run_path = data_dir / "runs" / run_id
    sender = start(payload, interval=0.0005)
    observed = wait_for(
        lambda: (n := committed_messages(run_path)) >= 300 and n, 30, "300 committed messages"
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    sender.stop.set()

    [row] = cli_json("ls", "--data", data_dir)
    assert row["status"] == "recording"
    out = run_cli("recover", "--data", data_dir)
    assert out.returncode == 0, out.stderr
    assert run_id in out.stdout
    info = cli_json("info", run_id, "--data", data_dir)
    assert info["status"] == "interrupted"
    assert info["messages"] >= observed
    n = assert_numbered_prefix(run_path, payload, observed)
    assert n == info["messages"]
    [row] = cli_json("ls", "--data", data_dir)
    assert row["status"] == "interrupted"
    # nothing left to do the second time
    again = run_cli("recover", "--data", data_dir)
    assert again.returncode == 0 and "nothing to recover" in again.stderr


@pytest.mark.timeout(60)
def test_sigterm_flushes_and_completes(pusher, data_dir):
    endpoint, start = pusher
    payload = b"x" * 1000
    proc = start_cli("record", endpoint, "--socket", "PULL", "--data", data_dir, "-q")
    run_id = proc.stdout.readline().strip()
    sender = start(payload, interval=0.0005)
    wait_for(lambda: sender.sent > 200, 20, "200 messages sent")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    sender.stop.set()
    info = cli_json("info", run_id, "--data", data_dir)
    assert info["status"] == "complete"
    assert info["messages"] > 0
    assert_numbered_prefix(data_dir / "runs" / run_id, payload, info["messages"])


@pytest.mark.timeout(90)
def test_disk_full_fails_the_run_and_keeps_what_was_flushed(pusher, small_disk, tmp_path):
    endpoint, start = pusher
    payload = os.urandom(1 << 20)
    catalog = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    proc = start_cli(
        "record", endpoint, "--socket", "PULL", "--flush-interval", "0.2",
        "--data", small_disk, "--catalog", catalog, "-q",
    )  # fmt: skip
    run_id = proc.stdout.readline().strip()
    sender = start(payload, interval=0.02)
    rc = proc.wait(60)
    sender.stop.set()
    err = proc.stderr.read()
    assert rc == 1, err
    assert "No space left on device" in err
    assert err.count("\n") <= 2 and "Traceback" not in err
    info = cli_json("info", run_id, "--data", small_disk, "--catalog", catalog)
    assert info["status"] == "failed"
    assert "No space left on device" in info["error"]
    assert info["messages"] > 0
    assert_numbered_prefix(small_disk / "runs" / run_id, payload, 1)
    [row] = cli_json("ls", "--data", small_disk, "--catalog", catalog)
    assert row["status"] == "failed"
