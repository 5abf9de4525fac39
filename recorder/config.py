"""Where data and the catalog live, the server's endpoint policy and session lifetimes: flag,
else environment, else the embedded default."""

from __future__ import annotations

import os
import re
from pathlib import Path

from recorder.endpoint_policy import DEFAULT_CONNECT, Allowed, EndpointPolicy
from recorder.errors import DataFolderError, UsageError
from recorder.store import layout, location

DATA_ENV = "RECORDER_DATA"
CATALOG_ENV = "RECORDER_CATALOG"
DEFAULT_DATA = "recorder-data"


def data_dir(option: str | os.PathLike | None = None, *, create: bool = True) -> Path:
    """The data folder, made ready for writing; with `create=False`, an existing folder that
    is only read (listing must work on a read-only or full disk and must make nothing).

    An object store URL (`s3://bucket/prefix`, store/location.py) is checked once (reachable,
    credentials, writable unless only read) and gives its local state folder: the catalog,
    sessions, and the spool runs are recorded into before their upload."""
    chosen = option or os.environ.get(DATA_ENV) or DEFAULT_DATA
    if location.is_url(chosen):
        return _object_store_state(str(chosen), create=create)
    path = Path(chosen).expanduser()
    if not create:
        if not path.is_dir():
            raise DataFolderError(f"no data folder {path}")
        if not os.access(path, os.R_OK | os.X_OK):
            raise DataFolderError(f"data folder {path} is not readable")
        return path
    try:
        (path / layout.RUNS_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataFolderError(f"cannot use data folder {path}: {exc.strerror or exc}") from exc
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise DataFolderError(f"data folder {path} is not readable and writable")
    return path


def _object_store_state(url: str, *, create: bool) -> Path:
    loc = location.parse(url)
    location.check(loc, write=create)
    state = location.state_folder(loc)
    try:
        (state / layout.RUNS_DIR).mkdir(parents=True, exist_ok=True)
        location.bind(state, loc)
    except OSError as exc:
        raise DataFolderError(
            f"cannot use state folder {state} for {loc.url}: {exc.strerror or exc}"
        ) from exc
    return state


def runs_dir(data: Path) -> Path:
    return data / layout.RUNS_DIR


def catalog_url(option: str | None, data: Path) -> str:
    url = option or os.environ.get(CATALOG_ENV)
    if url:
        return url
    return f"sqlite:///{(data / 'catalog.sqlite').resolve()}"


IPC_DIR_ENV = "RECORDER_IPC_DIR"
ALLOW_BIND_ENV = "RECORDER_ALLOW_BIND"
ALLOW_CONNECT_ENV = "RECORDER_ALLOW_CONNECT"


def endpoint_policy(
    data: Path,
    *,
    ipc_dir: str | os.PathLike | None = None,
    allow_bind: str | None = None,
    allow_connect: str | None = None,
) -> EndpointPolicy:
    """The rules for endpoints given over HTTP: options, else the environment, else the
    defaults (no ipc://, binds on loopback, connects to loopback and private networks)."""
    folder = ipc_dir or os.environ.get(IPC_DIR_ENV) or None
    bind = allow_bind if allow_bind is not None else os.environ.get(ALLOW_BIND_ENV, "")
    connect = allow_connect if allow_connect is not None else os.environ.get(ALLOW_CONNECT_ENV)
    return EndpointPolicy(
        ipc_dir=Path(folder).expanduser() if folder else None,
        data_dir=data,
        allow_bind=Allowed.parse(bind),
        allow_connect=Allowed.parse(DEFAULT_CONNECT if connect is None else connect),
    )


SESSION_IDLE_ENV = "RECORDER_SESSION_IDLE"
SESSION_MAX_ENV = "RECORDER_SESSION_MAX"
SESSION_IDLE_DEFAULT = "12h"
SESSION_MAX_DEFAULT = "7d"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``15m``, ``12h``, ``30d`` or ``2w`` (UsageError otherwise),
    at most limits.LIFETIME_MAX_S (ten years): a longer one would not fit a nanosecond column."""
    from recorder.limits import LIFETIME_MAX_S

    m = _DURATION.match(text or "")
    if not m or float(m[1]) <= 0:
        raise UsageError(f"not a duration: {text!r} (e.g. 90s, 15m, 12h, 30d, 2w)")
    seconds = float(m[1]) * _UNIT_S[m[2]]
    if seconds > LIFETIME_MAX_S:
        raise UsageError(f"duration too long: {text!r} (at most {LIFETIME_MAX_S // 86400}d)")
    return seconds


def session_lifetimes() -> tuple[float, float]:
    """How long a browser session lasts without use, and at most (seconds), from the
    environment: RECORDER_SESSION_IDLE (default 12h), RECORDER_SESSION_MAX (default 7d)."""
    idle = parse_duration(os.environ.get(SESSION_IDLE_ENV) or SESSION_IDLE_DEFAULT)
    most = parse_duration(os.environ.get(SESSION_MAX_ENV) or SESSION_MAX_DEFAULT)
    return min(idle, most), most
