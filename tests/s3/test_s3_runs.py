"""Runs recorded into an object store (moto over real HTTP) read back as a local recording of
the same stream does, byte for byte, and the spool keeps the crash rule."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recorder import config
from recorder.recording.recording import SourceSpec
from recorder.simulators import make_simulator
from recorder.store import spool
from recorder.store.reader import RunReader
from tests.recordhelp import frames_of, record
from tests.s3.s3help import BUCKET, keys

N = 40


def _messages() -> list[list[bytes]]:
    sim = make_simulator("adzmq", height=64, width=80)
    return [sim.message(i) for i in range(N)]


def _record(runs_dir, sender) -> str:
    src = sender("PUSH", _messages())
    spec = SourceSpec(src.endpoint, socket_type="PULL", protocol="adzmq", stream="cam")
    return record(runs_dir, spec, count=N).name


@pytest.mark.timeout(60)
def test_a_run_recorded_to_s3_reads_back_as_the_local_one(s3, state, sender, tmp_path):
    local_runs = config.runs_dir(config.data_dir(tmp_path / "local"))
    local_id = _record(local_runs, sender)
    run_id = _record(config.runs_dir(state), sender)

    stored = keys(s3, f"runs/{run_id}/")
    assert f"runs/{run_id}/zarr.json" in stored
    assert any("/heap/" in k or "/data/" in k for k in stored), stored
    spooled = config.runs_dir(state) / run_id
    assert spool.upload_state(spooled) == spool.UPLOADED
    # the spool keeps metadata only: every chunk file now lives in the bucket
    left = [p for p in spooled.rglob("*") if p.is_file() and p.name[0] != "."]
    assert {p.name for p in left} == {"zarr.json"}

    with RunReader(local_runs / local_id) as want:
        expect = frames_of(want.stream("cam"))
        expect_image = want.stream("cam").arrays()[0]
    # through the spool (metadata local, chunks from the bucket) and straight from the bucket
    for where in (spooled, f"{s3.data_url}/runs/{run_id}"):
        with RunReader(where) as got:
            assert got.status == "complete"
            assert frames_of(got.stream("cam")) == expect
            np.testing.assert_array_equal(got.stream("cam").arrays()[0], expect_image)
    # the bucket's copy is a plain zarr group other readers open
    key = f"{s3.prefix}/runs/{run_id}/zarr.json"
    doc = json.loads(s3.client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert doc["attributes"]["run_id"] == run_id


@pytest.mark.timeout(120)
def test_another_host_finds_indexes_replays_and_exports_the_bucket_s_runs(
    s3, state, sender, tmp_path, monkeypatch, ctx
):
    import zmq

    from tests.helpers import cli_json, run_cli
    from tests.replayhelp import client, receive, replaying, wait_clients

    run_id = _record(config.runs_dir(state), sender)
    # a second host: its own, empty state folder, the same bucket
    monkeypatch.setenv("RECORDER_STATE", str(tmp_path / "other-host"))
    out = run_cli("reindex", "--data", s3.data_url)
    assert out.returncode == 0, out.stderr
    assert "indexed 1 runs" in out.stdout
    [row] = cli_json("ls", "--data", s3.data_url)
    assert row["run_id"] == run_id and row["messages"] == N
    info = cli_json("info", run_id[:12], "--data", s3.data_url)
    assert info["status"] == "complete" and info["streams"][0]["arrays"]

    # replay from the bucket to a real subscriber, byte for byte
    spooled = tmp_path / "other-host" / "runs" / run_id
    want = [list(m) for m in _messages()]
    with replaying(spooled, endpoints={"": "auto"}, paused=True, max_speed=True) as rp:
        [plan] = rp.plans.values()
        pull = client(ctx, zmq.PULL, plan.endpoint)
        wait_clients(rp, 1)
        rp.resume()
        assert receive(pull, N) == want

    h5 = tmp_path / "x.h5"
    out = run_cli("export", run_id, "--to", "hdf5", "--out", h5, "--data", s3.data_url)
    assert out.returncode == 0, out.stderr
    import h5py

    with h5py.File(h5) as f:
        shapes = []
        f.visititems(lambda _, obj: shapes.append(getattr(obj, "shape", None)))
        assert (N, 64, 80) in shapes, shapes


@pytest.mark.timeout(60)
def test_a_download_of_an_uploaded_run_holds_its_chunks_from_the_bucket(s3, state, sender):
    import io
    import zipfile

    from recorder.web.download import zip_pieces

    run_id = _record(config.runs_dir(state), sender)
    blob = b"".join(zip_pieces(config.runs_dir(state) / run_id, run_id))
    names = set(zipfile.ZipFile(io.BytesIO(blob)).namelist())
    stored = {f"{run_id}/{k.split('/', 2)[2]}" for k in keys(s3, f"runs/{run_id}/")}
    assert stored <= names and any("/c." in n or "/c/" in n for n in stored)


@pytest.mark.timeout(120)
def test_tags_and_notes_given_after_the_upload_reach_the_bucket(
    s3, state, sender, tmp_path, monkeypatch
):
    """An edit of an uploaded run goes to the bucket too: another host that indexes the bucket
    sees the run's tags and notes as they are now, not as they were when it was uploaded."""
    from recorder.store import annotate
    from tests.helpers import cli_json, run_cli

    run_id = _record(config.runs_dir(state), sender)
    spooled = config.runs_dir(state) / run_id
    annotate.change_tags(spooled, add=["good"])
    annotate.add_note(spooled, "beam came back at 10:02", author="ana")
    monkeypatch.setenv("RECORDER_STATE", str(tmp_path / "other-host"))
    out = run_cli("reindex", "--data", s3.data_url)
    assert out.returncode == 0, out.stderr
    [row] = cli_json("ls", "--data", s3.data_url)
    assert row["run_id"] == run_id and row["tags"] == ["good"]
    with RunReader(f"{s3.data_url}/runs/{run_id}") as got:
        assert [n["text"] for n in got.summary()["notes"]] == ["beam came back at 10:02"]
