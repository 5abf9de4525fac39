"""Start-up: `--help` loads none of the heavy libraries, and a recorder or replayer opens its
sockets before the catalog (SQLAlchemy) is even imported. A source such as the Open Ephys GUI
gives up on a peer that takes seconds to appear; the times are in benchmarks/startup.py.

The order is checked, never a time: a gate in the child process holds the first import of
SQLAlchemy until the test releases it, so a command that needs the catalog before its sockets
never gets to open them.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading

import pytest
import zmq

from recorder import config
from recorder.store.reader import RunReader
from tests.helpers import free_port, local, wait_for
from tests.replayhelp import make_run

HEAVY = (
    "zarr", "sqlalchemy", "alembic", "pydantic", "flask", "werkzeug", "psutil", "gunicorn",
    "xarray", "pandas", "dask", "h5py", "pynwb", "asyncio",
)  # fmt: skip

_HELP_PAGES = """
import json, sys
import click
from recorder.cli.main import main

def pages(cmd, path):
    yield path
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from pages(sub, [*path, name])

for args in list(pages(main, [])):
    try:
        main([*args, "--help"])
    except SystemExit:
        pass
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.argv[1])))
print("LOADED " + json.dumps(heavy))
"""

# Runs `recorder ARGS` with the first import of a module named in argv[1] held until the file
# argv[2] exists (and says so on stderr when it holds one).
_GATED = """
import importlib.machinery, os, sys, time
gated, release = sys.argv[1].split(","), sys.argv[2]
class Held:
    # waits in the loader (under the module's own import lock), not in find_spec: finders run
    # under the global import lock, so a thread held there would stop every other thread's
    # first import of anything (the main thread's, before it binds)
    def __init__(self, name, real):
        self.name, self.real = name, real
    def create_module(self, spec):
        # one write(2): print() writes the line and its newline apart, and with unbuffered
        # stderr (PYTHONUNBUFFERED, as in CI) the main thread's line could land between them
        os.write(2, f"gated {self.name}\\n".encode())
        while not os.path.exists(release):
            time.sleep(0.01)
        spec.loader = self.real
        return self.real.create_module(spec)
    def exec_module(self, module):
        module.__loader__ = self.real
        self.real.exec_module(module)
class Gate:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] not in gated or os.path.exists(release):
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = Held(name, spec.loader)
        return spec
sys.meta_path.insert(0, Gate())
sys.argv = ["recorder", *sys.argv[3:]]
from recorder.cli.main import main
main()
"""


@pytest.mark.timeout(120)
def test_help_pages_load_no_heavy_library():
    proc = subprocess.run(
        [sys.executable, "-c", _HELP_PAGES, json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout
    loaded = json.loads(proc.stdout.rsplit("LOADED ", 1)[1])
    assert loaded == []


def _gated(release, *args, gate: str = "sqlalchemy") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _GATED, gate, str(release), *map(str, args)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _lines(pipe) -> queue.Queue:
    """Lines of a child's pipe as they come, so waiting for one has a timeout."""
    q: queue.Queue = queue.Queue()

    def read():
        for line in pipe:
            q.put(line)
        q.put(None)  # the end

    threading.Thread(target=read, daemon=True).start()
    return q


def _finish(proc: subprocess.Popen, release) -> None:
    release.touch()
    if proc.poll() is None:
        proc.kill()
    proc.wait(30)


class GatedRecording:
    """`recorder record --count N` of an XPUB's stream, started with the first import of the
    modules in `gate` held back; on entering, the recorder has subscribed (while they are still
    held). `release()` lets them through; on leaving, the recording must have ended with exit
    code 0 within 60 s, and `run_id` is what it printed."""

    def __init__(self, ctx, data_dir, tmp_path, gate: str, count: int):
        self.release_file = tmp_path / "release"
        self.pub = ctx.socket(zmq.XPUB)
        port = free_port()
        self.pub.bind(local(port))
        args = ("record", local(port), "--count", str(count), "-q", "--data", data_dir)
        self.gate, self.args, self.run_id = gate, args, ""

    def __enter__(self) -> GatedRecording:
        self.proc = _gated(self.release_file, *self.args, gate=self.gate)
        try:
            self.err = _lines(self.proc.stderr)
            assert self.pub.poll(60_000), f"no subscription while {self.gate} was held back"
            assert self.pub.recv() == b"\x01"  # subscribed to everything
        except BaseException:
            _finish(self.proc, self.release_file)
            raise
        return self

    def release(self) -> None:
        self.release_file.touch()

    def __exit__(self, kind, *_) -> None:
        try:
            if kind is None:
                wait_for(lambda: self.proc.poll() is not None, 60, "the recording to end")
        finally:
            _finish(self.proc, self.release_file)
        if kind is None:
            assert self.proc.returncode == 0, _rest(self.err)
            assert self.proc.stdout is not None
            self.run_id = self.proc.stdout.read().strip()


@pytest.mark.timeout(120)
def test_recorder_subscribes_before_it_loads_the_catalog(ctx, data_dir, tmp_path):
    with GatedRecording(ctx, data_dir, tmp_path, "sqlalchemy", count=1) as rec:
        # then the catalog is opened (and held back until now)
        assert rec.err.get(timeout=60).startswith("gated sqlalchemy")
        rec.release()
        rec.pub.send(b"hello")
    assert (config.runs_dir(data_dir) / rec.run_id).is_dir()
    assert (data_dir / "catalog.sqlite").exists()


@pytest.mark.timeout(120)
def test_recorder_subscribes_before_it_loads_the_store_and_queues_meanwhile(
    ctx, data_dir, tmp_path
):
    with GatedRecording(ctx, data_dir, tmp_path, "zarr", count=2) as rec:
        assert rec.err.get(timeout=60).startswith("gated zarr")  # the run is created only now
        rec.pub.send_multipart([b"sent", b"while the store loads"])
        rec.pub.send(b"second")
        rec.release()
    with RunReader(config.runs_dir(data_dir) / rec.run_id) as run:
        got = [m.frames for m in run.messages()]
    assert [[bytes(f) for f in frames] for frames in got] == [
        [b"sent", b"while the store loads"],
        [b"second"],
    ]


@pytest.mark.timeout(120)
def test_replayer_binds_without_loading_the_catalog(ctx, data_dir, tmp_path):
    release = tmp_path / "release"
    runs = config.runs_dir(data_dir)
    runs.mkdir(parents=True)
    run = make_run(runs, [0.0, 1.0, 2.0])
    endpoint = local(free_port())
    proc = _gated(release, "replay", run.name, "--endpoint", endpoint, "-q", "--data", data_dir)
    try:
        err = _lines(proc.stderr)
        line = err.get(timeout=60)
        assert line.strip() == f"main: PUSH on {endpoint}", line
        pull = ctx.socket(zmq.PULL)
        pull.connect(endpoint)
        got = [pull.recv_multipart() for _ in range(3) if pull.poll(30_000)]
        assert got == [[b"0"], [b"1"], [b"2"]]
        wait_for(lambda: proc.poll() is not None, 60, "the replay to end")
    finally:
        _finish(proc, release)
    assert proc.returncode == 0, _rest(err)
    assert not any(line.startswith("gated") for line in _rest(err))


@pytest.mark.timeout(120)
def test_replayer_binds_before_it_loads_any_heavy_library(ctx, data_dir, tmp_path):
    """Every heavy library held back: the replayer still binds (its plan comes from the run's
    JSON metadata), and serves once they are let through (the run is read with zarr)."""
    release = tmp_path / "release"
    runs = config.runs_dir(data_dir)
    runs.mkdir(parents=True)
    run = make_run(runs, [0.0, 1.0, 2.0])
    endpoint = local(free_port())
    args = ("replay", run.name, "--endpoint", endpoint, "-q", "--data", data_dir)
    proc = _gated(release, *args, gate=",".join(HEAVY))
    try:
        err = _lines(proc.stderr)
        seen = []
        while not any(line.startswith("main: PUSH on") for line in seen):
            seen.append(err.get(timeout=60))  # no line in 60 s: held back before the bind
        # meanwhile the sending thread may have asked for zarr (held), nothing else
        assert {line.split()[1].split(".")[0] for line in seen if line.startswith("gated")} <= {
            "zarr"
        }, seen
        pull = ctx.socket(zmq.PULL)
        pull.connect(endpoint)
        release.touch()
        got = [pull.recv_multipart() for _ in range(3) if pull.poll(30_000)]
        assert got == [[b"0"], [b"1"], [b"2"]]
        wait_for(lambda: proc.poll() is not None, 60, "the replay to end")
    finally:
        _finish(proc, release)
    assert proc.returncode == 0, _rest(err)


@pytest.mark.timeout(120)
def test_recorder_subscribes_before_it_loads_any_heavy_library(ctx, data_dir, tmp_path):
    with GatedRecording(ctx, data_dir, tmp_path, ",".join(HEAVY), count=1) as rec:
        rec.release()
        rec.pub.send(b"hello")
    assert (config.runs_dir(data_dir) / rec.run_id).is_dir()


def _rest(lines: queue.Queue) -> list[str]:
    """The remaining lines, up to the end of a child that has exited."""
    out = []
    while (line := lines.get(timeout=30)) is not None:
        out.append(line)
    return out
