"""The CLI as users drive it: record, ls, info, tag, reindex, and one-line errors for bad input."""

from __future__ import annotations

import contextlib
import subprocess
import threading

import pytest
import zmq

from recorder.store import layout
from recorder.store.reader import RunReader
from tests.helpers import cli_json, run_cli, run_cli_process


def serve_replies(ctx, n: int) -> tuple[str, threading.Thread]:
    rep = ctx.socket(zmq.REP)
    rep.linger = 1000
    rep.bind("tcp://127.0.0.1:*")
    endpoint = rep.getsockopt_string(zmq.LAST_ENDPOINT)

    def serve():
        for i in range(n):
            if not rep.poll(20_000):
                break
            rep.recv()
            rep.send_multipart([b"reply", b"%d" % i, bytes(100 * i)])
        rep.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return endpoint, t


@pytest.fixture
def recorded(ctx, data_dir):
    endpoint, t = serve_replies(ctx, 5)
    out = run_cli_process(  # the real command, in its own process
        "record", endpoint, "--socket", "REQ", "--count", "5", "--name", "first run",
        "--tag", "calib", "--tag", "day1", "--data", data_dir,
    )  # fmt: skip
    t.join(5)
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.strip().splitlines()[0]
    return run_id, endpoint


@pytest.mark.timeout(60)
def test_record_prints_run_id_and_info_shows_the_run(recorded, data_dir):
    run_id, endpoint = recorded
    info = cli_json("info", run_id, "--data", data_dir)
    assert info["run_id"] == run_id
    assert info["name"] == "first run"
    assert info["status"] == "complete"
    assert info["messages"] == 5
    assert info["bytes"] == sum(len(b"reply") + len(b"%d" % i) + 100 * i for i in range(5))
    assert info["tags"] == ["calib", "day1"]
    [stream] = info["streams"]
    assert stream["endpoint"] == endpoint
    assert (stream["socket_type"], stream["role"], stream["protocol"]) == ("REQ", "connect", "raw")
    assert stream["frames"] == 15 and stream["gaps"] == 0 and stream["drops"] == 0
    assert info["format_version"] == layout.FORMAT_VERSION
    text = run_cli("info", run_id[:12], "--data", data_dir)  # a unique prefix is enough
    assert text.returncode == 0 and run_id in text.stdout and "REQ/connect" in text.stdout


@pytest.mark.timeout(60)
def test_ls_tag_and_reindex(recorded, data_dir):
    run_id, _ = recorded
    [row] = cli_json("ls", "--data", data_dir)
    assert set(row) >= {
        "run_id",
        "name",
        "status",
        "started_ns",
        "ended_ns",
        "messages",
        "bytes",
        "gaps",
        "drops",
        "rejects",
        "protocols",
        "tags",
        "path",
    }
    assert row["tags"] == ["calib", "day1"] and row["protocols"] == ["raw"]
    out = run_cli("tag", run_id, "keep", "--data", data_dir)
    assert out.returncode == 0, out.stderr
    out = run_cli("tag", run_id, "day1", "--remove", "--data", data_dir)
    assert out.returncode == 0, out.stderr
    assert cli_json("ls", "--tag", "keep", "--data", data_dir)[0]["tags"] == ["calib", "keep"]
    assert cli_json("ls", "--tag", "day1", "--data", data_dir) == []
    # the catalog is only an index: delete it and rebuild it from the stores
    (data_dir / "catalog.sqlite").unlink()
    for extra in ("catalog.sqlite-wal", "catalog.sqlite-shm"):
        (data_dir / extra).unlink(missing_ok=True)
    # ls makes no catalog: it reads the stores themselves
    assert [r["run_id"] for r in cli_json("ls", "--data", data_dir)] == [row["run_id"]]
    assert not (data_dir / "catalog.sqlite").exists()
    out = run_cli("reindex", "--data", data_dir)
    assert out.returncode == 0 and "indexed 1 runs" in out.stdout
    [again] = cli_json("ls", "--data", data_dir)
    assert again["tags"] == ["calib", "keep"]
    assert {k: again[k] for k in ("run_id", "messages", "bytes", "status")} == {
        k: row[k] for k in ("run_id", "messages", "bytes", "status")
    }


@pytest.mark.timeout(60)
def test_data_folder_from_environment(ctx, tmp_path, monkeypatch):
    monkeypatch.setenv("RECORDER_DATA", str(tmp_path / "envdata"))
    endpoint, t = serve_replies(ctx, 1)
    out = run_cli("record", endpoint, "--socket", "REQ", "--count", "1", "-q")
    t.join(5)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "envdata" / "runs" / out.stdout.strip()).is_dir()


@pytest.mark.timeout(60)
def test_record_compression_is_the_streams_choice(ctx, data_dir):
    endpoint, t = serve_replies(ctx, 3)
    out = run_cli(
        "record", endpoint, "--socket", "REQ", "--count", "3", "--compression", "zstd",
        "--data", data_dir, "-q",
    )  # fmt: skip
    t.join(5)
    assert out.returncode == 0, out.stderr
    with RunReader(data_dir / "runs" / out.stdout.strip()) as reader:
        stream = reader.streams["main"]
        assert stream.attrs["compression"] == "zstd"
        assert [m.frames[2] for m in stream.messages(0, 3)] == [bytes(100 * i) for i in range(3)]


@pytest.mark.timeout(60)
def test_duration_stops_a_quiet_stream(data_dir):
    out = run_cli("record", "tcp://127.0.0.1:9", "--duration", "0.5", "--data", data_dir, "-q")
    assert out.returncode == 0, out.stderr
    info = cli_json("info", out.stdout.strip(), "--data", data_dir)
    assert info["status"] == "complete" and info["messages"] == 0


BAD = [
    (["record", "tcp://nohost"], "unknown endpoint syntax"),
    (["record", "udp://1.2.3.4:5"], "unknown endpoint syntax"),
    (["record", "tcp://*:5555"], "only works with --bind"),
    (["record", "tcp://127.0.0.1:70000"], "port out of range"),
    (["record", "tcp://127.0.0.1:5555", "--socket", "DEALER"], "--socket"),
    (["record", "tcp://127.0.0.1:5555", "--count", "0"], "--count must be positive"),
    (["record", "tcp://127.0.0.1:5555", "--socket", "REQ", "--bind"], "--bind"),
    (["record", "tcp://127.0.0.1:5555", "--stream", "../x"], "invalid stream name"),
    (["record", "tcp://127.0.0.1:5555", "--duration", "abc"], "--duration"),
    (["record", "tcp://127.0.0.1:5555", "--compression", "lz4"], "--compression"),
    (["info", "no-such-run"], "no run 'no-such-run'"),
    (["info", "../../etc"], "no run"),
    (["tag", "no-such-run", "x"], "no run"),
    (["recover", "no-such-run"], "no run"),
    (["frobnicate"], "No such command"),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_and_exit_2(args, message, data_dir):
    out = run_cli(*args, "--data", data_dir)
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: ") and message in lines[0]


@pytest.mark.timeout(30)
def test_unusable_data_folder_is_one_line_and_exit_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    out = run_cli("recover", "--data", blocker / "data")
    assert out.returncode == 2
    assert out.stderr.startswith("error: cannot use data folder") and out.stderr.count("\n") == 1
    out = run_cli("ls", "--data", blocker / "data")
    assert out.returncode == 2
    assert out.stderr == f"error: no data folder {blocker / 'data'}\n"


@pytest.mark.timeout(60)
def test_simulate_serves_a_protocol_until_count(ctx):
    import socket as pysocket

    with pysocket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pull = ctx.socket(zmq.PULL)
    pull.connect(f"tcp://127.0.0.1:{port}")
    from tests.helpers import start_cli

    proc = start_cli(
        "simulate", "karabo", "--bind", f"tcp://127.0.0.1:{port}", "--set", "socket=PUSH",
        "--count", "3", "--rate", "0",
    )  # fmt: skip
    from karabo_bridge.serializer import deserialize

    trains = []
    for _ in range(3):
        assert pull.poll(20_000), proc.stderr.read() if proc.poll() is not None else "no train"
        trains.append(deserialize(pull.recv_multipart(copy=False)))
    assert proc.wait(20) == 0
    assert "simulating karabo" in proc.stderr.read()
    tids = [next(iter(meta.values()))["timestamp.tid"] for _, meta in trains]
    assert tids == sorted(tids) and len(set(tids)) == 3
    pull.close()


@pytest.mark.timeout(30)
def test_simulate_bad_option_is_one_line_and_exit_2():
    out = run_cli("simulate", "adzmq", "--set", "colour=blue", "--count", "1")
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1
    assert "colour" in out.stderr


# ----------------------------------------------------------------------------- simulate


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("protocol", "settings"),
    [
        ("openephys", []),
        ("adzmq", []),
        ("pymultivideo", []),
        ("karabo", ["--set", "socket=PUB", "--set", "protocol=1.0"]),  # the README's example
        ("raw", []),
    ],
)
def test_simulate_count_waits_for_a_subscriber(ctx, protocol, settings):
    """`--count N` sends N messages to someone: a PUB simulator holds the first until a
    subscriber joins (regression: it sent them into the void at once and exited; and the
    Karabo simulator's `protocol` option crashed `simulate` with a TypeError)."""
    from tests.helpers import end_process, free_port, start_cli

    endpoint = f"tcp://127.0.0.1:{free_port(2)}"  # Open Ephys, pyMultiVideo: control on + 1
    suffix = " PUB" if protocol == "adzmq" else ""
    proc = start_cli(
        "simulate", protocol, "--bind", endpoint + suffix, "--count", "3", "--rate", "20",
        *settings,
    )  # fmt: skip
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # printed once bound: sending would start right now
        assert line.startswith(f"simulating {protocol} on "), line + proc.stderr.read()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(1)  # nobody listens yet: it must not send its messages and end
        assert proc.poll() is None, "sent its messages to nobody: " + proc.stderr.read()
        sub.subscribe(b"")
        sub.connect(endpoint)
        got = []
        while len(got) < 3 and sub.poll(20_000 if not got else 5_000):
            got.append(sub.recv_multipart())
        # the Karabo bridge's PUB has a send high-water mark of 1, as the real one: a client
        # slower than the trains loses some, by design; the first always arrives
        assert len(got) == 3 or (protocol == "karabo" and got)
        assert proc.wait(20) == 0
        assert "sent 3 messages" in proc.stderr.read()
    finally:
        sub.close()
        end_process(proc)


# ----------------------------------------------------------------------------- silent sources


@pytest.mark.timeout(60)
def test_silent_source_is_warned_about_and_its_run_marked_empty(recorded, data_dir):
    """Regression: a silent endpoint gave an empty `complete` run, exit 0 and not a word."""
    from tests.helpers import free_port

    endpoint = f"tcp://127.0.0.1:{free_port()}"
    out = run_cli(
        "record", endpoint, "--duration", "1.5", "--warn-after", "0.5", "--data", data_dir, "-q"
    )
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.strip()
    assert out.stderr.splitlines() == [
        f"warning: no message from {endpoint} after 0.5 s: is the source running, and does it "
        "bind (this recorder's SUB connects)?",
        f"warning: run {run_id} is empty: no message arrived",
    ]
    runs = {r["run_id"]: r for r in cli_json("ls", "--data", data_dir)}
    assert runs[run_id]["status"] == "complete" and runs[run_id]["empty"] is True
    assert runs[recorded[0]]["empty"] is False  # a run with messages is not marked
    table = run_cli("ls", "--data", data_dir).stdout
    [line] = [x for x in table.splitlines() if run_id in x]
    assert "complete (empty)" in line
    [other] = [x for x in table.splitlines() if recorded[0] in x]
    assert "(empty)" not in other
    text = run_cli("info", run_id, "--data", data_dir).stdout
    assert "complete  (empty: no message arrived)" in text
    assert "empty" not in run_cli("info", recorded[0], "--data", data_dir).stdout
