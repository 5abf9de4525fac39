"""Where data and the catalog live: flag, else environment, else the embedded default."""

from __future__ import annotations

import os
from pathlib import Path

from recorder.errors import DataFolderError
from recorder.store import layout

DATA_ENV = "RECORDER_DATA"
CATALOG_ENV = "RECORDER_CATALOG"
DEFAULT_DATA = "recorder-data"


def data_dir(option: str | os.PathLike | None = None, *, create: bool = True) -> Path:
    """The data folder, made ready for writing; with `create=False`, an existing folder that
    is only read (listing must work on a read-only or full disk and must make nothing)."""
    path = Path(option or os.environ.get(DATA_ENV) or DEFAULT_DATA).expanduser()
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


def runs_dir(data: Path) -> Path:
    return data / layout.RUNS_DIR


def catalog_url(option: str | None, data: Path) -> str:
    url = option or os.environ.get(CATALOG_ENV)
    if url:
        return url
    return f"sqlite:///{(data / 'catalog.sqlite').resolve()}"
