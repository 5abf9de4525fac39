"""A run as `RunReader` shows it, from its metadata files alone until more is asked for.

Importing zarr takes longer than starting Python with zmq and numpy. A replayer only needs the
run's and its streams' attributes (docs/format.md: `zarr.json` of the run folder and of each
`streams/NAME` group) to know which sockets to open, so `open_run` reads those JSON files
itself and opens the real `RunReader` (zarr) on the first question they cannot answer:
typically when the first message is read, after the sockets are bound. From then on every
question goes to the real reader, so a refresh (replay --follow) is seen as before.

Only the current format version is read this way; anything unusual (another version, a file
that does not parse) opens the real reader at once, with its errors.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recorder.errors import RunNotFound
from recorder.store import layout

if TYPE_CHECKING:
    from recorder.store.reader import RunReader, StreamReader

_RUN_KNOWN = frozenset({"path", "attrs", "run_id", "name", "status", "started_ns"})
_RUN_CALLS = frozenset({"markers", "pauses", "stream"})
_STREAM_KNOWN = frozenset({"name", "attrs", "protocol", "endpoint", "socket_type", "role", "stats"})


def _attributes(path: Path) -> dict | None:
    """The `attributes` of a group's zarr.json; None if it is not a readable group."""
    try:
        node = json.loads((path / "zarr.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(node, dict) or node.get("node_type") != "group":
        return None
    attrs = node.get("attributes")
    return attrs if isinstance(attrs, dict) else None


def open_run(path: Path) -> RunReader:
    """A `RunReader` for the run at `path`: a `LazyRun` when its metadata reads as JSON (typed
    as the reader it stands in for), else the real one."""
    lazy = LazyRun.read(Path(path))
    if lazy is not None:
        return lazy  # type: ignore[return-value]  # answers as a RunReader does
    from recorder.store.reader import RunReader

    return RunReader(path)


class LazyRun:
    """Stands in for a `RunReader`: metadata from the JSON files, the rest from the real
    reader, opened on first need (once, whichever thread asks first)."""

    def __init__(self, path: Path, attrs: dict, streams: dict[str, dict]):
        self._path = path
        self._attrs = attrs
        self._lock = threading.Lock()
        self._real: RunReader | None = None
        self._streams = {n: LazyStream(self, n, a) for n, a in sorted(streams.items())}

    @classmethod
    def read(cls, path: Path) -> LazyRun | None:
        if not (path / "zarr.json").is_file():
            raise RunNotFound(f"no run at {path}")
        attrs = _attributes(path)
        if (
            attrs is None
            or attrs.get("format") != layout.FORMAT_NAME
            or attrs.get("format_version") != layout.FORMAT_VERSION
            or "run_id" not in attrs
            or "started_ns" not in attrs
        ):
            return None
        streams: dict[str, dict] = {}
        folder = path / layout.STREAMS_GROUP
        if folder.is_dir():
            for sub in folder.iterdir():
                if not (sub / "zarr.json").is_file():
                    continue
                stream_attrs = _attributes(sub)
                if stream_attrs is None:
                    return None
                if stream_attrs:  # none yet: being added, nothing committed (as RunReader)
                    streams[sub.name] = stream_attrs
        return cls(path, attrs, streams)

    def real(self) -> RunReader:
        with self._lock:
            if self._real is None:
                from recorder.store.reader import RunReader

                self._real = RunReader(self._path)
            return self._real

    @property
    def opened(self) -> bool:
        """Whether the real reader (zarr) has been opened."""
        return self._real is not None

    @property
    def streams(self) -> dict[str, LazyStream]:
        return self._streams

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._real is None:
            if name in _RUN_KNOWN:
                return self._known(name)
            if name in _RUN_CALLS:
                return getattr(self, f"_{name}")
        return getattr(self.real(), name)

    def _known(self, name: str) -> Any:
        a = self._attrs
        return {
            "path": self._path,
            "attrs": a,
            "run_id": a["run_id"],
            "name": a.get("name", ""),
            "status": a.get("status"),
            "started_ns": int(a["started_ns"]),
        }[name]

    def _markers(self) -> list:
        return sorted(self._attrs.get("markers") or [], key=lambda m: m["recv_ns"])

    def _pauses(self) -> list:
        return list(self._attrs.get("pauses") or [])

    def _stream(self, name: str) -> LazyStream | StreamReader:
        if name in self._streams:
            return self._streams[name]
        return self.real().stream(name)  # StreamNotFound, worded by the reader

    def close(self) -> None:
        if self._real is not None:
            self._real.close()

    def __enter__(self) -> LazyRun:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LazyStream:
    """Stands in for one `StreamReader` of a `LazyRun`."""

    def __init__(self, run: LazyRun, name: str, attrs: dict):
        self._run, self._name, self._attrs = run, name, attrs

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if not self._run.opened and name in _STREAM_KNOWN:
            a = self._attrs
            return {
                "name": self._name,
                "attrs": a,
                "protocol": a.get("protocol", "raw"),
                "endpoint": a.get("endpoint", ""),
                "socket_type": a.get("socket_type", ""),
                "role": a.get("role", ""),
                "stats": dict(a.get("stats") or {}),
            }[name]
        return getattr(self._run.real().stream(self._name), name)
