"""Bad days with an object store: unreachable or refusing at start (one line, exit 2), a bucket
that stops taking writes mid-recording (stops like a full disk, data kept in the spool, uploaded
by `recover` later), and a recorder killed mid-recording (`recover` repairs and uploads)."""

from __future__ import annotations

import signal

import pytest

from recorder import config
from recorder.errors import DataFolderError
from recorder.recording.recording import Recording, SourceSpec
from recorder.simulators.adzmq import AdzmqSimulator
from recorder.store import spool
from recorder.store.reader import RunReader
from tests.clihelp import committed_messages
from tests.helpers import cli_json, free_port, run_cli, start_cli, wait_for
from tests.recordhelp import running
from tests.s3.s3help import BUCKET, keys


@pytest.mark.timeout(60)
def test_an_unreachable_store_or_wrong_credentials_stop_the_command_at_once(s3, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONG")
    out = run_cli("ls", "--data", s3.data_url)
    assert out.returncode == 2
    [line] = out.stderr.strip().splitlines()
    assert "access key" in line and f"bucket {BUCKET}" in line, line

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    missing = run_cli("ls", "--data", "s3://no-such-bucket/x")
    assert missing.returncode == 2 and "no such bucket" in missing.stderr, missing.stderr

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    down = run_cli("record", "tcp://127.0.0.1:5555", "--data", s3.data_url, "-q")
    assert down.returncode == 2
    [line] = down.stderr.strip().splitlines()
    assert "cannot reach the object store" in line and BUCKET in line, line
    with pytest.raises(DataFolderError, match="cannot reach"):
        config.data_dir(s3.data_url)  # what `serve` and `manager` call before starting


@pytest.mark.timeout(90)
def test_a_bucket_refusing_writes_stops_the_recording_and_keeps_the_data(s3, state):
    sim = AdzmqSimulator("tcp://127.0.0.1:* PUB", rate=200, height=16, width=16)
    spec = SourceSpec(sim.bind(), protocol="adzmq", subscribe=[b"{"], stream="cam")
    with running(sim):
        rec = Recording(config.runs_dir(state), [spec], flush_interval=0.05)
        rec.start()
        try:
            # written, not received: under load the writer lags the receive thread, and what
            # was still queued when the bucket refused is not in the run
            wait_for(lambda: rec.streams[0].counters.written >= 30, 20, "30 messages written")
            s3.refuse_writes = "QuotaExceeded"
            wait_for(lambda: rec.done, 20, "the recording to stop")
        finally:
            status = rec.finish()
    assert status == "failed"
    assert "quota" in str(rec.error) and BUCKET in str(rec.error), rec.error
    assert "recorder recover" in str(rec.error)
    path = rec.run.path
    assert spool.upload_state(path) == spool.UPLOADING
    with RunReader(path) as run:  # whole in the spool
        kept = run.stream("cam").n_messages
        assert run.status == "failed" and kept >= 30

    s3.refuse_writes = None  # the quota was raised
    out = run_cli("recover", "--data", s3.data_url)
    assert out.returncode == 0, out.stderr
    assert f"{path.name}: uploaded" in out.stdout
    with RunReader(f"{s3.data_url}/runs/{path.name}") as run:
        assert run.stream("cam").n_messages == kept


@pytest.mark.timeout(120)
def test_sigkill_then_recover_uploads_everything_flushed(s3, state):
    sim = AdzmqSimulator("tcp://127.0.0.1:* PUB", rate=300, height=32, width=32)
    endpoint = sim.bind()
    with running(sim):
        proc = start_cli(
            "record", endpoint, "--protocol", "adzmq", "--subscribe", "{", "--stream", "main",
            "--flush-interval", "0.2", "--data", s3.data_url, "-q",
        )  # fmt: skip
        run_id = proc.stdout.readline().strip()
        run_path = config.runs_dir(state) / run_id
        observed = wait_for(
            lambda: (n := committed_messages(run_path)) >= 100 and n, 30, "100 committed"
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert spool.upload_state(run_path) == spool.UPLOADING
    out = run_cli("recover", "--data", s3.data_url)
    assert out.returncode == 0, out.stderr
    assert f"{run_id}: interrupted" in out.stdout
    assert spool.upload_state(run_path) == spool.UPLOADED
    assert f"runs/{run_id}/zarr.json" in keys(s3, "runs/")
    with RunReader(f"{s3.data_url}/runs/{run_id}") as run:
        assert run.status == "interrupted"
        n = run.stream("main").n_messages
        assert n >= observed
        seqs = [m.seq for m in run.messages()]
        assert seqs == sorted(seqs) and len(seqs) == n
    info = cli_json("info", run_id, "--data", s3.data_url)
    assert info["status"] == "interrupted" and info["messages"] == n
