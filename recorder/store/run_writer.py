"""Creates a run: the zarr group, its identity and status, and one StreamWriter per stream.

The run's root attributes are written only by this class; tags and notes live in a separate
`annotations` group so a user tagging a run while it records cannot race the recorder.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any

import zarr

from recorder import __version__
from recorder.contracts import Marker, Pause, RunAttrs, SessionAttrs
from recorder.errors import StoreError, UsageError
from recorder.store import layout, nodes, spool
from recorder.store.stream_writer import StreamWriter


def new_run_id(now_ns: int | None = None) -> str:
    """Sortable by start time, readable, unique enough across hosts: 20261121-184512-3fa2c1."""
    t = time.gmtime((now_ns or time.time_ns()) / 1e9)
    return time.strftime("%Y%m%d-%H%M%S", t) + "-" + secrets.token_hex(3)


class RunWriter:
    """Context manager: `with RunWriter(path, name=...) as run: s = run.add_stream(...)`.

    Leaving the block normally marks the run complete; leaving it with an exception marks it
    failed with that error. Either way everything appended is flushed first when possible.
    """

    def __init__(
        self,
        runs_dir: Path,
        *,
        run_id: str | None = None,
        name: str = "",
        tags: list[str] | None = None,
        meta: dict[str, Any] | None = None,
        started_ns: int | None = None,
        session: SessionAttrs | None = None,
    ):
        """`started_ns`: now if not given; a recording gives when its sockets opened (no message
        is older), a run imported from a file its data's own start.
        `session`: the session the run is recorded in; a copy goes into its annotations."""
        self.started_ns = time.time_ns() if started_ns is None else int(started_ns)
        self.run_id = layout.check_name("run id", run_id or new_run_id(self.started_ns))
        self.path = Path(runs_dir) / self.run_id
        self.streams: dict[str, StreamWriter] = {}
        self.status = layout.STATUS_RECORDING
        self.error: str | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.root = zarr.open_group(self.path, mode="w-", zarr_format=3)
        except FileExistsError as exc:
            raise UsageError(f"run {self.run_id} exists already") from exc
        except OSError as exc:
            raise StoreError(f"cannot create run at {self.path}: {exc.strerror or exc}") from exc
        self._attrs: RunAttrs = {
            "format": layout.FORMAT_NAME,
            "format_version": layout.FORMAT_VERSION,
            "run_id": self.run_id,
            "name": name,
            "status": self.status,
            "started_ns": self.started_ns,
            "ended_ns": None,
            "error": None,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "recorder_version": __version__,
            "meta": meta or {},
            "format_doc": layout.FORMAT_DOC,
        }
        self.root.attrs.put(nodes.json_attrs(self._attrs))
        self._attrs_lock = threading.Lock()  # markers and pauses come from other threads
        self._reserve = layout.reserve_path(self.path)
        self._reserve.write_bytes(bytes(layout.RESERVE_BYTES))
        self._streams_group = self.root.create_group(layout.STREAMS_GROUP)
        notes = self.root.create_group(layout.ANNOTATIONS_GROUP)
        first: dict[str, Any] = {"tags": sorted(set(tags or [])), "notes": []}
        if session is not None:
            first["session"] = nodes.json_attrs(session)
        notes.attrs.put(first)
        self._upload = spool.start(self.path)  # None unless the data folder is an object store

    def add_stream(
        self,
        name: str,
        *,
        protocol: str,
        endpoint: str,
        socket_type: str,
        role: str,
        options: dict[str, Any] | None = None,
        compression: str | None = None,
    ) -> StreamWriter:
        """`compression` (one of layout.COMPRESSIONS, None: none) applies to the stream's
        typed arrays and heap: it trades write speed for disk (docs/format.md)."""
        layout.check_name("stream name", name)
        compression = layout.check_compression(compression)
        if name in self.streams:
            raise UsageError(f"stream {name!r} is in the run already")
        if role not in ("bind", "connect"):
            raise UsageError(f"role must be bind or connect, not {role!r}")
        group = self._streams_group.create_group(name)
        writer = StreamWriter(
            group,
            {
                "protocol": protocol,
                "endpoint": endpoint,
                "socket_type": socket_type,
                "role": role,
                "options": options or {},
                "compression": compression,
            },
        )
        if self._upload is not None:
            writer.after_flush = self._upload.check
        self.streams[name] = writer
        return writer

    def flush(self) -> None:
        for stream in self.streams.values():
            stream.flush()

    def set_attr(self, key: str, value: Any) -> None:
        """Set one optional run attribute (`trigger`, ...) and commit it now."""
        with self._attrs_lock:
            self._attrs[key] = value  # type: ignore[literal-required]
            self.root.attrs.put(nodes.json_attrs(self._attrs))

    def add_marker(self, text: str, recv_ns: int | None = None, author: str = "") -> Marker:
        """A user's event, committed at once (markers are few, and each one matters)."""
        at = time.time_ns() if recv_ns is None else int(recv_ns)
        marker: Marker = {"recv_ns": at, "text": text}
        if author:
            marker["author"] = author
        with self._attrs_lock:
            markers = self._attrs.setdefault("markers", [])
            markers.append(marker)
            markers.sort(key=lambda m: m["recv_ns"])
            self.root.attrs.put(nodes.json_attrs(self._attrs))
        return marker

    def set_pauses(self, pauses: list[Pause]) -> None:
        """The run's pauses so far (the last may still be open), committed at once."""
        with self._attrs_lock:
            self._attrs["pauses"] = [dict(p) for p in pauses]  # type: ignore[misc]
            self.root.attrs.put(nodes.json_attrs(self._attrs))

    def close(
        self,
        status: str = layout.STATUS_COMPLETE,
        error: str | None = None,
        *,
        ended_ns: int | None = None,
    ) -> None:
        """`ended_ns` is now, except for an imported run: its last message's receive time."""
        if self.status != layout.STATUS_RECORDING:
            return
        try:
            self.flush()
        except Exception as exc:  # whatever it was, the run must not stay `recording`
            status, error = layout.STATUS_FAILED, error or f"flush failed: {exc!r}"
        finally:
            for stream in self.streams.values():
                stream.close()
        self.status, self.error = status, error
        # On a full disk the final status still needs room: free the reserve first.
        self._reserve.unlink(missing_ok=True)
        with self._attrs_lock:
            self._attrs["status"], self._attrs["error"] = status, error
            self._attrs["ended_ns"] = time.time_ns() if ended_ns is None else int(ended_ns)
            self.root.attrs.put(nodes.json_attrs(self._attrs))
        with contextlib.suppress(OSError):  # a full disk: the run reads without it
            nodes.consolidate(self.path)
        if self._upload is not None:
            self._uploaded()

    def _uploaded(self) -> None:
        """Finish the run's upload; a bucket that refused it leaves the run failed (and whole
        in the spool, for `recorder recover` to upload)."""
        assert self._upload is not None
        failure = self._upload.finish()
        if failure is None or self.status == layout.STATUS_FAILED:
            return
        self.status, self.error = layout.STATUS_FAILED, str(failure)
        with self._attrs_lock:
            self._attrs["status"], self._attrs["error"] = self.status, self.error
            self.root.attrs.put(nodes.json_attrs(self._attrs))

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.close()
        else:
            # the original error says more than a second failure to write would
            with contextlib.suppress(OSError):
                self.close(layout.STATUS_FAILED, f"{type(exc).__name__}: {exc}")
