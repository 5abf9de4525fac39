"""Helpers every test folder shares: waiting on a condition (never a bare sleep), free TCP
ports, the `recorder` command run in this process, and the real command in a subprocess,
ended for sure afterwards.

Protocol- and room-specific helpers live beside their users: recordhelp (a recording against a
live source), replayhelp (runs made to order, replay clients), clihelp (the CLI as a user runs
it), karabotools (the karabo-bridge tools as peers), web/webhelp (the API)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

#: The `recorder` command of the code under test (PYTHONPATH decides which checkout).
CLI = [sys.executable, "-m", "recorder"]


# Below Linux's ephemeral range (32768-60999): no connecting socket is handed one of these.
def _port_range() -> tuple[int, int]:
    """Ports 20000-31999, split between the xdist workers (gw0, gw1, ...): two tests running at
    once in two workers never pick the same port between checking it and binding it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    width = 12000 // max(1, count)
    low = 20000 + (index % max(1, count)) * width
    return low, low + width


_PORTS = _port_range()


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.01) -> T:
    """The first truthy value of `condition()`, polled every `interval` s; fails the test
    with `what` after `timeout` s (the condition is always checked once more at the end)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def free_port(span: int = 1) -> int:
    """A TCP port P such that P .. P+span-1 are free on every interface (Open Ephys and
    pyMultiVideo replays bind a control socket on P+1)."""
    rng = random.Random()
    for _ in range(500):
        port = rng.randrange(_PORTS[0], _PORTS[1] - span)
        socks = []
        try:
            for k in range(span):
                s = socket.socket()
                socks.append(s)
                s.bind(("", port + k))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port found")


def local(port: int) -> str:
    return f"tcp://127.0.0.1:{port}"


def run_cli(*args, cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    """`recorder ARGS...` to completion in this process, as the command line runs it: the same
    command tree and error handling (`recorder.cli.main.main`), stdin at its end, stdout and
    stderr captured as text, the exit code; never raises on an exit code. An unexpected
    exception is a traceback on stderr and exit code 1, and warnings (Python's default filters)
    and log records of WARNING and up (Python's last-resort handler) go to stderr, as they would
    from `python -m recorder`. The database connections the command opened are closed when it
    returns, as a process's are when it exits (an open one would keep a catalog file in use),
    and the environment variables and signal handlers it changed are put back (`serve` sets its
    endpoint policy in os.environ for its workers). `cwd`: the working folder during the
    command (this process's, restored afterwards).

    In process because a fresh interpreter costs seconds of imports per call on a loaded
    machine; the command's behaviour is the same. Tests about the process itself (start-up
    imports, signals, a second process racing) use run_cli_process or start_cli."""
    import logging
    import traceback
    import warnings

    import sqlalchemy as sa
    from click.testing import CliRunner

    from recorder.cli.main import main

    here, environ = os.getcwd(), dict(os.environ)
    signals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    with CliRunner().isolation(input=b"") as (out, err, _):
        last_resort = logging.StreamHandler(sys.stderr)  # the runner's stderr
        last_resort.setLevel(logging.WARNING)
        root = logging.getLogger()
        root.addHandler(last_resort)
        engines: dict[int, sa.Engine] = {}

        def opened(conn) -> None:
            engines.setdefault(id(conn.engine), conn.engine)

        sa.event.listen(sa.Engine, "engine_connect", opened)
        try:
            if cwd is not None:
                os.chdir(cwd)
            with warnings.catch_warnings():
                _python_default_warnings()
                try:
                    main.main(args=[str(a) for a in args], prog_name="recorder")
                    code = 0
                except SystemExit as exc:
                    code = _exit_code(exc.code)
                except Exception:
                    traceback.print_exc()
                    code = 1
        finally:
            os.chdir(here)
            for key in set(os.environ) - set(environ):
                del os.environ[key]
            os.environ.update({k: v for k, v in environ.items() if os.environ.get(k) != v})
            for signum, handler in signals.items():
                if signal.getsignal(signum) is not handler:
                    signal.signal(signum, handler)
            sa.event.remove(sa.Engine, "engine_connect", opened)
            for engine in engines.values():
                engine.dispose()
            root.removeHandler(last_resort)
            sys.stdout.flush()
            sys.stderr.flush()
        stdout, stderr = out.getvalue(), err.getvalue()
    return subprocess.CompletedProcess(
        ["recorder", *map(str, args)], code, stdout.decode(), stderr.decode()
    )


def _exit_code(code: object) -> int:
    """What the interpreter makes of sys.exit(code): None is 0, an int itself, anything else
    printed on stderr and 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _python_default_warnings() -> None:
    """The warning filters and output of a plain `python` (no -W): deprecations in __main__
    only, printed on sys.stderr (pytest otherwise records them for its own summary)."""
    import warnings

    warnings.resetwarnings()
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter("ignore", category)
    warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")
    warnings.simplefilter("default", append=True)

    def show(message, category, filename, lineno, file=None, line=None):
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    warnings.showwarning = show


def run_cli_process(
    *args, cwd: str | os.PathLike | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """`recorder ARGS...` to completion in its own process (`python -m recorder`), text output
    captured; never raises on an exit code."""
    return subprocess.run(
        [*CLI, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout,
        check=False,
    )  # fmt: skip


def cli_json(*args):
    """The parsed stdout of `recorder ARGS... --json`, which must succeed."""
    proc = run_cli(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def start_cli(*args) -> subprocess.Popen:
    """`recorder ARGS...` in the background, stdout and stderr as text pipes."""
    return subprocess.Popen(
        [*CLI, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def end_process(proc: subprocess.Popen, grace: float = 30.0) -> None:
    """SIGTERM (a clean shutdown), then SIGKILL if it takes longer than `grace` s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def running_manager(data, spares: int = 1, url: str | None = None, join_s: float = 30) -> Iterator:
    """A real manager (spawning real worker processes) for a data folder (and catalog `url`,
    the folder's own by default), serving on a thread until the block ends; it must shut down
    within `join_s`. One spare worker, not the production six: each spare costs a second of
    imports, and the suite's two cores are shared."""
    from recorder import config
    from recorder.manager.manager import Manager

    url = url or config.catalog_url(None, data)
    m = Manager(data, url, stop_grace_s=5.0, kill_grace_s=3.0, spares=spares)
    m.start()
    stop = threading.Event()
    t = threading.Thread(target=m.serve, args=(stop,), name="manager", daemon=True)
    t.start()
    try:
        yield m
    finally:
        stop.set()
        t.join(join_s)
    assert not t.is_alive(), "manager did not shut down"
