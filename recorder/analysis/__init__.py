"""Reading runs for analysis: ``open_run`` gives a `Run` with pandas tables, lazy xarray
Datasets, an xarray DataTree and, per protocol, the shapes of each system's own tools
(docs/analysis.md). Built only on the store's reader, so it reads every run format it reads."""

from recorder.analysis.run import Run, open_run
from recorder.analysis.stream import Stream

__all__ = ["Run", "Stream", "open_run"]
