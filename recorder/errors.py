"""The package's own exceptions.

Core code raises these; only the edges (CLI, HTTP) turn them into exit codes or error envelopes,
so the same failure reads the same wherever it surfaces.
"""


class RecorderError(Exception):
    """Base of every error this package raises on purpose."""


class UsageError(RecorderError):
    """The caller asked for something malformed (bad endpoint, bad option value)."""


class RunNotFound(RecorderError):
    """No run with that id in the data folder or catalog."""


class StreamNotFound(RecorderError):
    """The run exists but has no stream of that name."""


class NotFound(RecorderError):
    """No source, job, token (or message, preview) with that name or id."""


class Conflict(RecorderError):
    """The request contradicts the current state (exists already, still running ...)."""


class DataFolderError(RecorderError):
    """The data folder cannot be created, read or written."""


class StoreError(RecorderError):
    """A run store cannot be written or read (disk full, corrupt metadata, unknown version)."""


class MalformedMessage(RecorderError):
    """A message does not fit its protocol; it is kept verbatim as a reject with this reason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ExportError(RecorderError):
    """An export or import cannot be done: unknown target, a stream the target cannot hold, the
    disk filled mid-write (the partial file is removed), a file that is not what it claims."""
