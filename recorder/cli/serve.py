"""`recorder serve`, `recorder manager` and `recorder token`: the web app and the manager.

`serve` is the embedded default in one command: gunicorn serving `recorder.web:create_app()` in
its own process, the manager in this one (it starts workers with subprocess, never fork), and
with `--demo` a simulator of every protocol saved as a source. It prints a sign-in link. The
commands are plain click commands; recorder/cli.py adds them to the `recorder` group.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import click

from recorder import config
from recorder.cli.options import data_options, open_data, read_data
from recorder.errors import RecorderError
from recorder.manager import lifeline

SERVE_TOKEN_NAME = "serve sign-in link"
WEB_APP = "recorder.web:create_app()"
#: Set in the web server's environment: the pid of the `serve` that started it, so a later
#: `serve` can tell a web server left behind by a killed one from a live one's.
SERVE_PID_ENV = "RECORDER_SERVE_PID"


def _control(data, catalog):
    from recorder.db.control import Control

    folder, cat = open_data(data, catalog)
    return folder, cat, Control(cat.engine)


def _stop_on_signals(stop: threading.Event) -> dict:
    return {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}


def _log_to_stderr() -> None:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s"
    )


# -- token -------------------------------------------------------------------------------------


@click.group()
def token():
    """Create, list and revoke API tokens (stored hashed; shown once)."""


@token.command("create")
@click.option("--name", default="", help="What the token is for (shown by `token list`).")
@click.option("--expires", default=None, metavar="DURATION",
              help="Valid for this long, e.g. 12h, 30d, 2w (default: until revoked).")  # fmt: skip
@data_options
def token_create(name, expires, data, catalog):
    """Print a new API token alone on the last line of stdout."""
    expires_s = None if expires is None else config.parse_duration(expires)
    _, _, control = _control(data, catalog)
    secret, rec = control.create_token(name, expires_s=expires_s)
    click.echo(
        f"token {rec['id']}{f' ({name})' if name else ''} created; it is shown only now", err=True
    )
    click.echo(secret)
    return 0


@token.command("list")
@data_options
def token_list(data, catalog):
    """List tokens (ids and names; the tokens themselves are not stored)."""
    from recorder.cli.text import human_time, table
    from recorder.db.control import Control

    _, cat, why = read_data(data, catalog)  # only reads: a missing catalog is not created
    if cat is None and why:
        raise RecorderError(why)
    rows = Control(cat.engine).list_tokens() if cat is not None else []
    if not rows:
        click.echo("no tokens", err=True)
        return 0
    now = time.time_ns()

    def expiry(ns: int | None) -> str:
        if ns is None:
            return "never"
        return human_time(ns) + (" (expired)" if ns <= now else "")

    body = [
        [r["id"], r["name"] or "-", human_time(r["created_ns"]),
         human_time(r["last_used_ns"]) if r["last_used_ns"] else "-", expiry(r["expires_ns"])]
        for r in rows
    ]  # fmt: skip
    click.echo(table(["ID", "NAME", "CREATED", "LAST USED", "EXPIRES"], body))
    return 0


@token.command("revoke")
@click.argument("token_id")
@data_options
def token_revoke(token_id, data, catalog):
    """Revoke the token with id TOKEN_ID (see `token list`) and end the browser sessions signed
    in with it."""
    _, _, control = _control(data, catalog)
    control.revoke_token(token_id)
    click.echo(f"revoked token {token_id} (and its browser sessions)", err=True)
    return 0


# -- manager -----------------------------------------------------------------------------------


#: Workers the manager keeps started ahead (`manager` and `serve`): each costs a second of
#: imports at start and some memory at rest, and lets a recording start at once.
spares_option = click.option(
    "--spares", type=click.IntRange(0, 8), default=6, show_default=True,
    help="Workers kept started ahead, so a recording starts at once.",
)  # fmt: skip


@click.command()
@spares_option
@click.option("--host", "host_name", envvar="RECORDER_HOST", metavar="NAME",
              help="The name this host goes by in a shared catalog: it runs the jobs and "
              "sources that name it, and any host's (default: the machine's host name; "
              "environment: RECORDER_HOST).")  # fmt: skip
@data_options
def manager(spares, host_name, data, catalog):
    """Run the manager for a data folder: start and stop recordings and replays as the catalog
    asks (one per host and data folder; `serve` includes one)."""
    from recorder.manager.manager import Manager

    folder = config.data_dir(data).resolve()
    mgr = Manager(folder, config.catalog_url(catalog, folder), spares=spares, host=host_name)
    _log_to_stderr()
    stop = threading.Event()
    old = _stop_on_signals(stop)
    try:
        mgr.start()
        click.echo(f"manager {mgr.host} running for {folder} (pid {os.getpid()})", err=True)
        mgr.serve(stop)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return 0


# -- serve -------------------------------------------------------------------------------------


def _display_host(host: str) -> str:
    if host in ("", "0.0.0.0", "*"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check_free(host: str, port: int) -> None:
    """Fail at once, clearly, when the address is taken (gunicorn would retry for seconds)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise RecorderError(
                f"cannot listen on {_bind(host, port)}: {exc.strerror}{_listener(port)}"
            ) from None


def _listener(port: int) -> str:
    """Who listens on the port, when we may know (" (pid N: name)"), else nothing. The name
    only: another user's command line may hold secrets."""
    import psutil

    try:
        for c in psutil.net_connections("tcp"):
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
                return f" (pid {c.pid}: {psutil.Process(c.pid).name()})"
    except (psutil.Error, OSError):
        pass
    return ""


def orphaned_web_servers(folder) -> list:
    """Web servers (gunicorn masters) that a `serve` of this data folder started and that
    outlived it (it was SIGKILLed before the parent-death signal existed, or they ignored it):
    marked with SERVE_PID_ENV, serving this folder, and no longer that serve's children."""
    import psutil

    found = []
    for p in psutil.process_iter(["ppid", "cmdline"]):
        cmd = p.info["cmdline"] or []
        if WEB_APP not in cmd or not any("gunicorn" in c for c in cmd):
            continue
        try:
            env = p.environ()
            owner = env.get(SERVE_PID_ENV)
            if not owner or env.get(config.DATA_ENV) != str(folder):
                continue
            if p.info["ppid"] == int(owner):
                continue  # its serve is alive
        except (psutil.Error, ValueError):
            continue
        if _is_web_worker(p):
            continue  # it goes with its master
        found.append(p)
    return found


def _is_web_worker(p) -> bool:
    """A gunicorn worker: its parent is the master, the same command."""
    import psutil

    try:
        parent = p.parent()
        return parent is not None and WEB_APP in parent.cmdline()
    except psutil.Error:
        return False


def end_orphans(folder, timeout: float = 15.0) -> list[int]:
    """Stop what a killed `serve` of this folder left behind (ours: same data folder); their
    pids. SIGTERM (gunicorn finishes its requests), SIGKILL after `timeout` s."""
    import psutil

    masters = orphaned_web_servers(folder)
    family = []
    for p in masters:
        family.append(p)
        with contextlib.suppress(psutil.Error):
            family += p.children(recursive=True)
        with contextlib.suppress(psutil.Error):
            p.terminate()  # even when its children could not be listed
    _, alive = psutil.wait_procs(family, timeout=timeout)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=5)
    return [p.pid for p in masters]


def _wait_ready(host: str, port: int, web: subprocess.Popen, timeout: float = 60) -> None:
    """Until our app answers (its sign-in page), not merely until something accepts."""
    import urllib.request  # here, not at the top: `recorder --help` needs no HTTP client

    url = f"http://{_display_host(host)}:{port}/login"
    # our own server on this host: never through an HTTP proxy from the environment
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if web.poll() is not None:
            raise RecorderError(f"the web server exited with code {web.returncode}")
        try:
            with direct.open(url, timeout=2) as resp:
                if resp.status == 200 and b"zmq-recorder" in resp.read():
                    return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise RecorderError(f"the web server did not answer on {_bind(host, port)} in {timeout:g} s")


def _no_control_socket() -> list[str]:
    """gunicorn >= 24 opens a control socket at one fixed path in $HOME by default: several
    servers (or test runs) on one machine would fight over it, and serve does not need it."""
    from gunicorn.config import KNOWN_SETTINGS

    return (
        ["--no-control-socket"]
        if any(s.name == "control_socket_disable" for s in KNOWN_SETTINGS)
        else []
    )


def start_web(
    host: str, port: int, workers: int, folder, catalog_url: str, policy_env: dict | None = None
) -> subprocess.Popen:
    """gunicorn in its own process: it forks its workers, which only serve HTTP. It gets SIGTERM
    when this process dies, even by SIGKILL (a web server without its manager would accept
    recordings nobody starts, and keep the port from the next `serve`); its workers follow
    their master on their own. The endpoint policy reaches the app as its environment
    variables (config.endpoint_policy)."""
    cmd = [
        sys.executable, "-m", "gunicorn",
        "--bind", _bind(host, port),
        "--workers", str(workers),
        "--worker-class", "gthread",
        "--threads", "4",
        "--timeout", "60",
        "--graceful-timeout", "5",
        "--log-level", "warning",
        *_no_control_socket(),
        WEB_APP,
    ]  # fmt: skip
    env = {
        **os.environ,
        config.DATA_ENV: str(folder),
        config.CATALOG_ENV: catalog_url,
        SERVE_PID_ENV: str(os.getpid()),
        **(policy_env or {}),
    }
    return subprocess.Popen(
        lifeline.command(signal.SIGTERM, cmd),
        env=env,
        stdout=sys.stderr.fileno(),
        stdin=subprocess.DEVNULL,
    )


def _end(web: subprocess.Popen, timeout: float = 10) -> None:
    if web.poll() is None:
        web.terminate()
        try:
            web.wait(timeout)
        except subprocess.TimeoutExpired:
            web.kill()
            web.wait()


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--demo", is_flag=True, help="Also simulate every protocol, saved as sources.")
@click.option("--web-workers", type=click.IntRange(1, 64), default=2, show_default=True)
@click.option("--ipc-dir", type=click.Path(file_okay=False), default=None,
              help="The only folder where requests may use ipc:// endpoints "
                   f"[env {config.IPC_DIR_ENV}; default: none, ipc:// refused].")  # fmt: skip
@click.option("--allow-bind", default=None, metavar="LIST",
              help="Comma-separated networks, addresses or interface names (or *) requests may "
                   f"bind on besides loopback [env {config.ALLOW_BIND_ENV}].")  # fmt: skip
@click.option("--allow-connect", default=None, metavar="LIST",
              help="Comma-separated networks, addresses or hosts (or *) requests may connect "
                   f"to [env {config.ALLOW_CONNECT_ENV}; default: loopback and private "
                   "networks].")  # fmt: skip
@spares_option
@data_options
def serve(host, port, demo, web_workers, ipc_dir, allow_bind, allow_connect, spares, data, catalog):
    """Serve the web UI and API with a manager, all in one command (SQLite, local data)."""
    from recorder.db.control import Control
    from recorder.manager.demo import DemoSources
    from recorder.manager.manager import Manager

    folder = config.data_dir(data).resolve()
    url = config.catalog_url(catalog, folder)
    policy = config.endpoint_policy(
        folder, ipc_dir=ipc_dir, allow_bind=allow_bind, allow_connect=allow_connect
    )  # refuses a malformed list now rather than in every web worker
    policy_env = {
        config.IPC_DIR_ENV: str(policy.ipc_dir or ""),
        config.ALLOW_BIND_ENV: str(policy.allow_bind),
        config.ALLOW_CONNECT_ENV: str(policy.allow_connect),
    }
    for pid in end_orphans(folder):
        click.echo(f"stopped web server pid {pid}, left behind by a killed serve", err=True)
    _check_free(host, port)
    _log_to_stderr()
    os.environ.update(policy_env)  # the manager's workers check API jobs against it again
    mgr = Manager(folder, url, spares=spares)
    mgr.start()  # refuses a second manager for this folder before anything else starts
    stop = threading.Event()
    old = _stop_on_signals(stop)
    mgr_thread = threading.Thread(target=mgr.serve, args=(stop,), name="manager")
    mgr_thread.start()
    demos = web = None
    try:
        control = Control(mgr.catalog.engine)
        if demo:
            demos = DemoSources(control)
            names = demos.start()
            click.echo(f"demo sources: {', '.join(names)}", err=True)
        control.revoke_tokens_named(SERVE_TOKEN_NAME)
        secret, _ = control.create_token(SERVE_TOKEN_NAME)
        web = start_web(host, port, web_workers, folder, url, policy_env)
        _wait_ready(host, port, web)
        base = f"http://{_display_host(host)}:{port}"
        click.echo(f"recorder serving {base} (data {folder}); Ctrl-C stops", err=True)
        click.echo("sign in (this link holds an API token; valid until the next serve):", err=True)
        click.echo(f"{base}/login#token={secret}")
        sys.stdout.flush()
        while not stop.wait(0.2):
            if web.poll() is not None:
                raise RecorderError(f"the web server exited with code {web.returncode}")
            if not mgr_thread.is_alive():
                raise RecorderError("the manager stopped unexpectedly (see the log above)")
    finally:
        stop.set()
        if web is not None:
            _end(web)
        if demos is not None:
            demos.close()
        mgr_thread.join()
        for s, h in old.items():
            signal.signal(s, h)
    click.echo("stopped", err=True)
    return 0


COMMANDS = [serve, manager, token]
