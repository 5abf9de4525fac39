"""Where data and the catalog live, and the endpoint policy of the server: flag, else
environment, else the embedded default."""

from __future__ import annotations

import os
from pathlib import Path

from recorder.endpoint_policy import DEFAULT_CONNECT, Allowed, EndpointPolicy
from recorder.errors import DataFolderError
from recorder.store import layout

DATA_ENV = "RECORDER_DATA"
CATALOG_ENV = "RECORDER_CATALOG"
DEFAULT_DATA = "recorder-data"


def data_dir(option: str | os.PathLike | None = None, *, create: bool = True) -> Path:
    path = Path(option or os.environ.get(DATA_ENV) or DEFAULT_DATA).expanduser()
    if create:
        try:
            (path / layout.RUNS_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataFolderError(f"cannot use data folder {path}: {exc.strerror or exc}") from exc
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise DataFolderError(f"data folder {path} is not readable and writable")
    return path


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
