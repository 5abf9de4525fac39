"""Start-up of the `recorder` command against `python -c "import zmq, numpy"`.

Five figures, each the wall time from starting a process (its first line is `python ...`):

- baseline: `python -c "import zmq, numpy"` to its exit: what any pyzmq tool pays;
- help: `recorder --help` to its exit (target <= 2 x baseline);
- record: until `recorder record tcp://127.0.0.1:PORT --count 1` has subscribed, as seen by a
  publisher here (an XPUB receives the subscription) (target <= 1.5 x baseline);
- replay: until `recorder replay RUN --endpoint tcp://127.0.0.1:PORT --paused` has bound, as its
  `STREAM: PUSH on ENDPOINT` line on stderr says (printed right after the bind) (target <= 1.5 x);
- replay-sent: until a PULL connected from the start has the run's first message (no target:
  the replayer reads the run, and imports zarr, only after it has bound).

One warm-up round is not counted (page cache, compiled bytecode, a catalog that already exists,
as on a rig; `_common.ENV` keeps the bytecode even where PYTHONDONTWRITEBYTECODE is set); then
N rounds, the order rotating each round, and medians. The recorder runs as `python -m recorder`
from this checkout.

    python benchmarks/startup.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import ENV, RECORDER, free_port, median  # noqa: E402
from recorder.store.run_writer import RunWriter  # noqa: E402


def until_exit(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(args, env=ENV, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def baseline(_work: Path) -> float:
    return until_exit([sys.executable, "-c", "import zmq, numpy"])


def help_page(_work: Path) -> float:
    return until_exit([*RECORDER, "--help"])


def record_subscribed(work: Path) -> float:
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.XPUB)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    pub.bind(endpoint)
    args = [*RECORDER, "record", endpoint, "--count", "1", "-q", "--data", str(work / "data")]
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL)
    try:
        if not pub.poll(120_000):
            raise RuntimeError("the recorder never subscribed")
        took = time.perf_counter() - t0
        pub.recv()
        while proc.poll() is None:  # until it has the message (it may still be starting up)
            pub.send(b"x")
            time.sleep(0.05)
        if proc.returncode != 0:
            raise RuntimeError(f"recorder exited with {proc.returncode}")
        return took
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        pub.close(linger=0)


def replay_bound(work: Path) -> float:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    args = [*RECORDER, "replay", RUN[0], "--endpoint", endpoint, "--paused", "-q"]
    args += ["--data", str(work / "data")]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        args,
        env=ENV,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    assert proc.stdin is not None and proc.stderr is not None
    try:
        for line in proc.stderr:
            if line.startswith("main: PUSH on "):
                took = time.perf_counter() - t0
                break
        else:
            raise RuntimeError("the replayer never bound")
        proc.stdin.write("q\n")
        proc.stdin.flush()
        proc.wait(60)
        return took
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def replay_sent(work: Path) -> float:
    """Until a client connected from the start has the run's first message (the replayer has
    bound, then read the run: zarr is imported after the bind)."""
    ctx = zmq.Context.instance()
    pull = ctx.socket(zmq.PULL)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    pull.connect(endpoint)  # zmq connects once the replayer binds
    args = [*RECORDER, "replay", RUN[0], "--endpoint", endpoint, "-q", "--data", str(work / "data")]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        args, env=ENV, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        if not pull.poll(120_000):
            raise RuntimeError("no message from the replayer")
        took = time.perf_counter() - t0
        proc.terminate()
        proc.wait(60)
        return took
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        pull.close(linger=0)


def make_run(work: Path) -> str:
    """A small run (one stream, recorded with a connecting PULL), in the catalog; its id."""
    runs = work / "data" / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    w = RunWriter(runs, name="bench")
    s = w.add_stream(
        "main", protocol="raw", endpoint="tcp://127.0.0.1:5999", socket_type="PULL", role="connect"
    )
    for i in range(100):
        s.append(w.started_ns + i * 1_000_000, [b"%d" % i])
    w.close()
    subprocess.run(
        [*RECORDER, "tag", w.path.name, "x", "--data", str(work / "data")],  # make the catalog
        env=ENV,
        stdout=subprocess.DEVNULL,
        check=True,
    )
    return w.path.name


RUN: list[str] = []  # the id of the run replayed

FIGURES = {
    "baseline": baseline,
    "help": help_page,
    "record": record_subscribed,
    "replay": replay_bound,
    "replay-sent": replay_sent,
}
TARGETS = {"help": 2.0, "record": 1.5, "replay": 1.5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="startup-bench-"))
    try:
        RUN.append(make_run(work))
        times: dict[str, list[float]] = {k: [] for k in FIGURES}
        names = list(FIGURES)
        for r in range(opts.rounds + 1):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                took = FIGURES[name](work)
                if r:  # round 0 warms up
                    times[name].append(took)
        base = median(times["baseline"])
        print(f"start-up, medians of {opts.rounds} rounds (alternating order):")
        for name in names:
            m = median(times[name])
            target = f"  (target <= {TARGETS[name]:.1f})" if name in TARGETS else ""
            print(
                f"  {name:11s} {m * 1000:7.0f} ms  {m / base:5.2f} x baseline{target}"
                f"   [{', '.join(f'{t * 1000:.0f}' for t in times[name])}]"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
