"""Writing a run from messages read out of a file (MCAP, EXDF), as if they had been received:
each message is decoded by its protocol's codec and stored exactly as a recording stores it, so
the imported run replays over ZMQ like any other."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recorder.contracts import WriteItem
from recorder.protocols import codec_for
from recorder.protocols.base import decode_or_reject
from recorder.store import layout
from recorder.store.run_writer import RunWriter
from recorder.store.stream_writer import StreamWriter

_BATCH = 512


@dataclass(frozen=True, slots=True)
class ImportedStream:
    """How the stream was served where it was recorded (what a replay stands in for)."""

    name: str
    protocol: str
    endpoint: str
    socket_type: str
    role: str  # "bind" or "connect"
    options: dict[str, Any] = field(default_factory=dict)


class _StreamImport:
    def __init__(self, writer: StreamWriter, protocol: str):
        self.writer = writer
        self.codec = codec_for(protocol)
        self.items: list[WriteItem] = []
        self.messages = 0
        self.last_ns: int | None = None

    def append(self, recv_ns: int, frames: Sequence[bytes]) -> None:
        self.items.append(decode_or_reject(self.codec, recv_ns, frames))
        self.messages += 1
        self.last_ns = recv_ns if self.last_ns is None else max(self.last_ns, recv_ns)
        if len(self.items) >= _BATCH:
            self.drain()

    def drain(self) -> None:
        if self.items:
            self.writer.append_batch(self.items)
            self.items = []


class RunImport:
    """`with RunImport(runs_dir, started_ns=..., name=...) as imp: s = imp.stream(spec);
    s.append(recv_ns, frames)`. Receive times must not go backwards within a stream. Leaving
    the block with an exception marks the run failed (what was written stays readable)."""

    def __init__(
        self,
        runs_dir: Path,
        *,
        started_ns: int,
        name: str = "",
        meta: dict[str, Any] | None = None,
        tags: list[str] | None = None,
    ):
        self.run = RunWriter(runs_dir, name=name, meta=meta, tags=tags, started_ns=started_ns)
        self._streams: dict[str, _StreamImport] = {}

    @property
    def path(self) -> Path:
        return self.run.path

    def stream(self, spec: ImportedStream) -> _StreamImport:
        if spec.name not in self._streams:
            writer = self.run.add_stream(
                spec.name,
                protocol=spec.protocol,
                endpoint=spec.endpoint,
                socket_type=spec.socket_type,
                role=spec.role,
                options=spec.options,
            )
            self._streams[spec.name] = _StreamImport(writer, spec.protocol)
        return self._streams[spec.name]

    def close(self, status: str = layout.STATUS_COMPLETE, error: str | None = None) -> None:
        lasts = [s.last_ns for s in self._streams.values() if s.last_ns is not None]
        ended = max(lasts) if lasts else self.run.started_ns  # the data's end, not the import's
        try:
            for s in self._streams.values():
                s.drain()
        finally:
            self.run.close(status, error, ended_ns=ended)

    def __enter__(self) -> RunImport:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.close()
        else:
            self.close(layout.STATUS_FAILED, f"import failed: {exc}")
