"""Replaying a session: its runs on one clock; a stream split over consecutive runs (one recording
cut in pieces) is one stream on one socket, every message once and in order; `skip_gaps` cuts
the idle time between runs; `recorder replay --session` finds the runs in the catalog."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import zmq

from recorder.contracts import SessionAttrs
from recorder.replay import Replayer
from recorder.replay.timeline import GAP_KEPT_S
from recorder.store.run_writer import RunWriter
from recorder.store.sessions import SessionFiles
from tests.helpers import free_port, local, run_cli
from tests.replayhelp import client, quiet, receive, replaying, wait_clients


def split_runs(
    runs_dir: Path,
    port: int,
    pieces: list[list[float]],
    *,
    session: SessionAttrs | None = None,
    t0: int | None = None,
    stream: str = "main",
    markers: dict[int, list[str]] | None = None,
) -> list[Path]:
    """Consecutive runs of one stream recorded by a PULL connected to `port` (replayed by a
    PUSH binding there, which never drops): `pieces[k]` are run k's receive times in ms after
    `t0`; messages are numbered across the runs (b"0", b"1", ...), as one recording split.
    `markers[k]`: texts of markers in run k, 20 ms apart from its start."""
    t0 = time.time_ns() if t0 is None else t0
    paths, n = [], 0
    for k, times in enumerate(pieces):
        started = t0 + int(times[0] * 1e6) - 1_000_000 if times else t0
        w = RunWriter(runs_dir, name=f"piece {k}", started_ns=started, session=session)
        s = w.add_stream(
            stream, protocol="raw", endpoint=local(port), socket_type="PULL", role="connect"
        )
        for t in times:
            s.append(t0 + int(t * 1e6), [b"%d" % n])
            n += 1
        for i, text in enumerate((markers or {}).get(k, [])):
            w.add_marker(text, recv_ns=started + 20_000_000 * (i + 1), author="ada")
        w.close()
        paths.append(w.path)
    return paths


PIECES = [[10.0 + 2 * i for i in range(40)], [95.0 + 2 * i for i in range(40)], [180.0, 181.0]]
TOTAL = sum(len(p) for p in PIECES)


@pytest.mark.timeout(60)
def test_split_runs_play_as_one_stream_on_one_socket(ctx, tmp_path):
    port = free_port()
    paths = split_runs(tmp_path, port, PIECES)
    with replaying(paths, chain=True, paused=True) as rp:
        assert list(rp.plans) == ["main"]
        assert rp.plans["main"].endpoint == f"tcp://*:{port}"
        pull = client(ctx, zmq.PULL, local(port))
        wait_clients(rp)
        rp.resume()
        got = receive(pull, TOTAL)
        assert quiet(pull, 200), "a message came twice"
        assert rp.wait(10)
        assert rp.status()["messages"] == TOTAL and rp.status()["error"] is None
        # on one clock: the whole session's span
        assert rp.duration_s == pytest.approx((181.0 - 9.0) / 1000, abs=2e-3)
    pull.close()
    assert got == [[b"%d" % i] for i in range(TOTAL)]


@pytest.mark.timeout(60)
def test_without_chain_the_runs_are_streams_of_their_own(tmp_path):
    paths = split_runs(tmp_path, free_port(), PIECES)
    ids = [p.name for p in paths]
    rp = Replayer(paths, endpoints={f"{i}/main": "auto" for i in ids})
    try:
        assert sorted(rp.plans) == sorted(f"{i}/main" for i in ids)
    finally:
        rp.close()


@pytest.mark.timeout(60)
def test_runs_at_the_same_time_are_not_chained(ctx, tmp_path):
    """Two recorders with a stream of one name at once (overlapping in time): two streams,
    RUN/NAME each, the chain's first run naming it; a third run later joins the first chain."""
    t0 = time.time_ns()
    a = split_runs(tmp_path, free_port(), [[10.0, 20.0, 30.0]], t0=t0)[0]
    b = split_runs(tmp_path, free_port(), [[15.0, 25.0]], t0=t0)[0]
    rp = Replayer([a, b], chain=True, endpoints={f"{a.name}/main": "auto",
                                                  f"{b.name}/main": "auto"})  # fmt: skip
    try:
        assert sorted(rp.plans) == sorted([f"{a.name}/main", f"{b.name}/main"])
    finally:
        rp.close()
    # recorded elsewhere (another endpoint): a stream of its own even when it follows in time
    c = split_runs(tmp_path, free_port(), [[50.0, 60.0]], t0=t0)[0]
    rp = Replayer([a, c], chain=True)
    try:
        assert sorted(rp.plans) == sorted([f"{a.name}/main", f"{c.name}/main"])
    finally:
        rp.close()


@pytest.mark.timeout(60)
def test_a_chain_seeks_and_windows_across_its_runs(ctx, tmp_path):
    port = free_port()
    paths = split_runs(tmp_path, port, PIECES)
    # start in the second run's span: [100, 185) ms after the first run's start (t0 + 9 ms)
    with replaying(paths, chain=True, paused=True, max_speed=True, start=0.1) as rp:
        pull = client(ctx, zmq.PULL, local(port))
        wait_clients(rp)
        rp.resume()
        first = next(i for i, t in enumerate(PIECES[0] + PIECES[1]) if t >= 109.0)
        got = receive(pull, TOTAL - first)
        assert rp.wait(10)
    pull.close()
    assert got == [[b"%d" % i] for i in range(first, TOTAL)]


@pytest.mark.timeout(60)
def test_skip_gaps_cuts_the_idle_time_between_runs(ctx, tmp_path):
    port = free_port()
    pieces = [[10.0, 20.0], [60_010.0, 60_020.0], [60_025.0]]  # a minute between two runs
    paths = split_runs(tmp_path, port, pieces)
    rp = Replayer(paths, chain=True)
    try:
        assert rp.duration_s == pytest.approx(60.016, abs=2e-3)
    finally:
        rp.close()
    with replaying(paths, chain=True, skip_gaps=True, paused=True) as rp:
        assert rp.duration_s == pytest.approx(0.011 + GAP_KEPT_S + 0.015, abs=2e-3)
        pull = client(ctx, zmq.PULL, local(port))
        wait_clients(rp)
        began = time.monotonic()
        rp.resume()
        got = receive(pull, 5, timeout=10)
        took = time.monotonic() - began
        assert rp.wait(10)
    pull.close()
    assert got == [[b"%d" % i] for i in range(5)]
    assert GAP_KEPT_S <= took < 10


def new_session(data: Path) -> SessionAttrs:
    return SessionFiles(data).create(
        {"name": "mouse 12", "experimenters": ["Ada"], "subject": {"subject_id": "m12"}}
    )


@pytest.mark.timeout(90)
def test_cli_replays_a_session_from_the_catalog(ctx, data):
    from recorder import config
    from recorder.db.catalog import Catalog

    session = new_session(data)
    port = free_port()
    paths = split_runs(config.runs_dir(data), port, PIECES, session=session)
    other = new_session(data)  # a run of another session is not replayed
    split_runs(config.runs_dir(data), free_port(), [[300.0]], session=other)
    cat = Catalog(config.catalog_url(None, data))
    try:
        for p in config.runs_dir(data).iterdir():
            cat.index_path(p)
        assert cat.session_run_ids(session["id"]) == [p.name for p in paths]
    finally:
        cat.close()
    pull = client(ctx, zmq.PULL, local(port))
    proc = run_cli("replay", "--session", session["id"], "--data", data, "-q", "--skip-gaps")
    assert proc.returncode == 0, proc.stderr
    assert f"main: PUSH on tcp://*:{port}" in proc.stderr
    assert receive(pull, TOTAL) == [[b"%d" % i] for i in range(TOTAL)]
    pull.close()
    proc = run_cli("replay", "--session", "ses-20990101-000000-abcdef", "--data", data)
    assert proc.returncode != 0 and "no session" in proc.stderr
    proc = run_cli("replay", paths[0].name, "--session", session["id"], "--data", data)
    assert proc.returncode != 0 and "not both" in proc.stderr
    proc = run_cli("replay", "--data", data)
    assert proc.returncode != 0 and "--session" in proc.stderr
