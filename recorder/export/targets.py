"""The export targets by name. Each lives in its own module, imported only when asked for, so
`recorder --help` does not load pynwb or h5py."""

from __future__ import annotations

import importlib

from recorder.errors import ExportError
from recorder.export.base import Target

TARGETS: dict[str, str] = {
    "nwb": "recorder.export.nwb",  # Open Ephys continuous, events, spikes (pynwb)
    "exdf": "recorder.export.exdf",  # Karabo trains in EuXFEL's HDF5 layout (extra_data)
    "hdf5": "recorder.export.hdf5",  # image streams as NDFileHDF5 / NeXus-like HDF5
    "mcap": "recorder.export.mcap",  # every stream, raw frames plus Foxglove schemas
}
TARGET_NAMES = tuple(TARGETS)


def target_named(name: str) -> Target:
    module = TARGETS.get(name)
    if module is None:
        raise ExportError(f"unknown export target {name!r}; choose one of {', '.join(TARGETS)}")
    return importlib.import_module(module).TARGET
