"""The export targets and importers by name. Each lives in its own module, imported only when
asked for, so `recorder --help` does not load pynwb or h5py."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from recorder.errors import ExportError

if TYPE_CHECKING:  # base loads the store (zarr): not for `recorder --help`
    from recorder.export.base import Target

TARGETS: dict[str, str] = {
    "nwb": "recorder.export.nwb",  # Open Ephys continuous, events, spikes (pynwb)
    "exdf": "recorder.export.exdf",  # Karabo trains in EuXFEL's HDF5 layout (extra_data)
    "hdf5": "recorder.export.hdf5",  # image streams as NDFileHDF5 / NeXus-like HDF5
    "mcap": "recorder.export.mcap",  # every stream, raw frames plus Foxglove schemas
}
TARGET_NAMES = tuple(TARGETS)

#: What `recorder import` reads: an MCAP file, or an EXDF run (a folder of HDF5 files, or one).
IMPORTERS: dict[str, str] = {
    "mcap": "recorder.export.mcap_import",
    "exdf": "recorder.export.exdf_import",
}


def _module(module: str, what: str):
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        # a target whose library is not installed: say which, never a traceback
        raise ExportError(f"{what} is not available here: {exc}") from exc


def target_named(name: str) -> Target:
    module = TARGETS.get(name)
    if module is None:
        raise ExportError(f"unknown export target {name!r}; choose one of {', '.join(TARGETS)}")
    return _module(module, f"export target {name!r}").TARGET


def export_name(run_id: str, suffix: str, start: float | None, end: float | None) -> str:
    """The file (or folder) name of an export: `<run id><suffix>`, with the window in it when
    there is one (`<run id>-<start>-<end><suffix>`), so two windows of one run never collide."""
    stem = run_id
    if start is not None or end is not None:
        stem += f"-{0 if start is None else start:g}-{'end' if end is None else f'{end:g}'}"
    return stem + suffix


def importer_for(source: Path) -> str:
    """Which importer reads `source`: `.mcap` files, EXDF folders and `.h5` files."""
    if source.is_dir():
        if any(source.glob("*.h5")):
            return "exdf"
        raise ExportError(f"{source} is a folder without HDF5 files: not an EXDF run")
    if source.suffix.lower() == ".mcap":
        return "mcap"
    if source.suffix.lower() in (".h5", ".hdf5"):
        return "exdf"
    raise ExportError(
        f"cannot import {source.name}: expected an .mcap file or an EXDF run (.h5 files)"
    )


def import_file(source: Path, runs_dir: Path, name: str = "") -> Path:
    """Write the messages of `source` as a new run in `runs_dir`; returns the run's folder."""
    source = Path(source)
    if not source.exists():
        raise ExportError(f"no file or folder {source}")
    kind = importer_for(source)
    module = _module(IMPORTERS[kind], f"importing {kind}")
    return module.import_file(source, runs_dir, name=name)
