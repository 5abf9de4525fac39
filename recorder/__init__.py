"""zmq-recorder: record ZeroMQ instrument streams into zarr runs and replay them byte for byte."""

from typing import Any

__version__ = "0.2.0"


def __getattr__(name: str) -> Any:
    """`recorder.open_run`, imported on first use so the command line starts fast."""
    if name == "open_run":
        from recorder.analysis import open_run

        return open_run
    raise AttributeError(f"module 'recorder' has no attribute {name!r}")
