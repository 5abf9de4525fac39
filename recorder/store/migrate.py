"""Rewrites a run of an older format version as the current one, without losing a byte.

Every message is read back from the old run, decoded again by its protocol's codec (as a
recording's writer thread decodes it, so the new run gets everything the current format keeps
of it) and appended through the current writer. Nothing the old run holds is lost: a rejected
message stays rejected with its reason; values recorded beside the messages (the request/reply
proxy's `request_ns` and `latency_ns`) and any column the current codec no longer gives are
carried over; identity, times, status, host, annotations, each stream's settings and its drop
count are kept. The new run is written beside the old one, every message of it compared with
the old one frame by frame, and only then swapped in; the old run is kept as a backup unless
asked otherwise. Whatever fails before the swap leaves the old run as it was.

Temporary and backup folders live in `<runs>/.migrate/`: a folder with a zarr.json directly in
the runs folder would be listed as a run (`recover.run_dirs`), and a backup has the run's id.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import zarr

from recorder import protocols
from recorder.contracts import ColumnValue, RunAttrs, WriteItem
from recorder.errors import Conflict, MalformedMessage, RecorderError, StoreError, UsageError
from recorder.store import annotate, layout, nodes
from recorder.store.reader import DECODED_PREFIX, RunReader, StreamReader
from recorder.store.recover import recorder_alive
from recorder.store.run_writer import RunWriter
from recorder.store.stream_writer import StreamWriter

WORK_DIR = ".migrate"
"""Beside the runs: never a run id (ids start with a letter or digit), never listed as a run."""

_BATCH_MESSAGES = 256
_BATCH_BYTES = 16 << 20
_FLUSH_BYTES = 64 << 20  # what the writer may hold in memory before it writes
_COLUMN_BLOCK = 4096  # old column values read at once

#: Stream attributes the writer sets itself; the old run's other stream attributes are kept.
_WRITER_STREAM_ATTRS = frozenset({"segments", "columns", "stats", "committed"})


def backup_path(path: Path, version: int) -> Path:
    """Where `migrate_run` keeps the old run: `<runs>/.migrate/<run id>.format<N>-backup`."""
    real = Path(path).resolve()
    return real.parent / WORK_DIR / f"{real.name}.format{version}-backup"


def run_attrs(path: Path) -> RunAttrs:
    """The attributes of the run at `path`, refused if it is being recorded or was left
    recording (recover it first: its arrays may be longer than what was committed)."""
    with RunReader(path) as reader:
        attrs = reader.attrs
    if attrs.get("status") == layout.STATUS_RECORDING:
        if recorder_alive(attrs):
            raise Conflict(
                f"run {path.name} is being recorded by pid {attrs.get('pid')}: migrate it "
                "once it is finished"
            )
        raise UsageError(
            f"run {path.name} was left recording by a recorder that stopped: run "
            f"`recorder recover {path.name}` first"
        )
    return attrs


def is_current(attrs: RunAttrs) -> bool:
    return attrs.get("format_version") == layout.FORMAT_VERSION


def migrate_run(path: Path, *, backup: bool = True, force: bool = False) -> Path:
    """Rewrite the run at `path` in the current format, in place; returns its path.

    The old run is kept at `backup_path(path, old version)` unless `backup` is False (then it
    is deleted once the new one is verified). A run in the current format already is refused
    unless `force` (rewriting it is harmless: the same checks apply). Raises StoreError, saying
    why, when anything fails; the run is then left as it was.
    """
    path = Path(path)
    real = path.resolve()
    attrs = run_attrs(real)
    if is_current(attrs) and not force:
        raise UsageError(
            f"run {real.name} is in format {layout.FORMAT_VERSION} already: nothing to migrate"
        )
    run_id = attrs["run_id"]
    old_version = int(attrs.get("format_version") or 0)
    work = real.parent / WORK_DIR
    kept = backup_path(real, old_version)
    try:
        work.mkdir(exist_ok=True)
    except OSError as exc:
        raise _failed(run_id, exc) from exc
    with _migrating(work, real.name):
        if kept.exists():
            raise UsageError(
                f"cannot migrate run {run_id}: a backup of it exists already at {kept}; "
                "move it away first"
            )
        scratch = work / f"{real.name}.new"
        shutil.rmtree(scratch, ignore_errors=True)  # left by a migration that was killed
        try:
            new = _write(real, scratch, attrs)
            _verify(real, new)
        except Exception as exc:
            shutil.rmtree(scratch, ignore_errors=True)
            raise _failed(run_id, exc) from exc
        try:
            _swap(real, new, kept)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    if not backup:
        shutil.rmtree(kept, ignore_errors=True)
    return path


def _failed(run_id: str, exc: BaseException) -> StoreError:
    why = str(exc) if isinstance(exc, RecorderError) else f"{type(exc).__name__}: {exc}"
    if isinstance(exc, OSError):
        why = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    return StoreError(f"cannot migrate run {run_id}: {why}; the run is left as it was")


@contextlib.contextmanager
def _migrating(work: Path, name: str) -> Iterator[None]:
    """One migration of a run at a time (a second one is refused, not queued)."""
    lock = work / f"{name}.lock"
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise _failed(name, exc) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict(f"run {name} is being migrated by another process") from None
        yield
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            lock.unlink()


# -- writing ---------------------------------------------------------------------------------


def _annotations(path: Path) -> dict[str, Any]:
    """The annotations group's attributes as stored (every key, not only the known ones)."""
    root = zarr.open_group(path, mode="r", zarr_format=3)
    if layout.ANNOTATIONS_GROUP not in root:
        return annotate.empty()
    return dict(nodes.subgroup(root, layout.ANNOTATIONS_GROUP).attrs)


def _write(old: Path, scratch: Path, attrs: RunAttrs) -> Path:
    ann = _annotations(old)
    w = RunWriter(
        scratch,
        run_id=attrs["run_id"],
        name=attrs.get("name", ""),
        tags=list(ann.get("tags") or []),
        meta=attrs.get("meta") or {},
    )
    try:
        w.started_ns = int(attrs["started_ns"])
        w._attrs["started_ns"] = w.started_ns
        w._attrs["host"] = attrs.get("host", "")
        w._attrs["pid"] = attrs.get("pid", 0)
        nodes.subgroup(w.root, layout.ANNOTATIONS_GROUP).attrs.put(ann)
        with RunReader(old) as reader:
            for name, stream in reader.streams.items():
                _copy_stream(stream, _new_stream(w, name, stream))
    except BaseException:
        with contextlib.suppress(Exception):
            w.close(layout.STATUS_FAILED, "migration failed")
        raise
    status = attrs.get("status") or layout.STATUS_COMPLETE
    w.close(status, attrs.get("error"))
    if w.status != status:  # the final flush failed
        raise StoreError(f"the new run could not be written: {w.error}")
    # the writer stamps the end with the clock; the run keeps its own (the root attributes are
    # RunAttrs exactly: `recorder_version` now names the recorder that wrote these arrays)
    _put_attrs(w.path, "", {"ended_ns": attrs.get("ended_ns")})
    return w.path


def _new_stream(w: RunWriter, name: str, old: StreamReader) -> StreamWriter:
    a = old.attrs
    writer = w.add_stream(
        name,
        protocol=a.get("protocol", protocols.RAW),
        endpoint=a.get("endpoint", ""),
        socket_type=a.get("socket_type", ""),
        role=a.get("role", "connect"),
        options=a.get("options") or {},
        compression=a.get("compression"),
    )
    own = set(nodes.stream_attrs(writer.group)) | _WRITER_STREAM_ATTRS
    extra = cast(dict[str, Any], writer.attrs)
    for key, value in a.items():  # e.g. `protocol_detected`
        if key not in own:
            extra[key] = value
    return writer


class _OldColumns:
    """The old run's decoded columns, message by message, read a block at a time."""

    def __init__(self, stream: StreamReader):
        self.stream = stream
        self.keys = list((stream.attrs.get("columns") or {}).keys())
        self.start = self.stop = 0
        self.block: dict[str, np.ndarray] = {}

    def at(self, index: int) -> dict[str, ColumnValue]:
        if not self.keys:
            return {}
        if not self.start <= index < self.stop:
            self.start, self.stop = index, index + _COLUMN_BLOCK
            self.block = {
                k: self.stream.column(
                    DECODED_PREFIX + k if k in layout.MESSAGE_COLUMNS else k,
                    self.start,
                    self.stop,
                )
                for k in self.keys
            }
        return {k: _python(v[index - self.start]) for k, v in self.block.items()}


def _python(value: Any) -> ColumnValue:
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer | int):
        return int(value)
    if isinstance(value, np.floating | float):
        return float(value)
    return str(value)


def _copy_stream(old: StreamReader, writer: StreamWriter) -> None:
    codec = protocols.lookup(old.protocol).codec()
    reasons = dict(old.rejects())
    columns = _OldColumns(old)
    batch: list[WriteItem] = []
    size = unflushed = 0
    for m in old.messages():
        nbytes = sum(f.nbytes for f in m.frames)
        if m.rejected or m.index in reasons:
            batch.append((m.recv_ns, m.frames, None, reasons.get(m.index, "rejected")))
        else:
            try:
                decoded = codec.decode(m.frames)
            except MalformedMessage as exc:
                batch.append((m.recv_ns, m.frames, None, exc.reason))
            else:
                # what the codec does not give (values recorded beside the message, columns
                # an older codec made) comes from the old run: no column is lost
                for key, value in columns.at(m.index).items():
                    decoded.columns.setdefault(key, value)
                batch.append((m.recv_ns, m.frames, decoded, None))
        size += nbytes
        if len(batch) >= _BATCH_MESSAGES or size >= _BATCH_BYTES:
            writer.append_batch(batch)
            batch, unflushed, size = [], unflushed + size, 0
            if unflushed >= _FLUSH_BYTES:
                writer.flush()
                unflushed = 0
    writer.append_batch(batch)
    writer.add_drops(int(old.stats.get("drops", 0)))
    writer.flush()
    old_gaps, new_gaps = int(old.stats.get("gaps", 0)), writer.gaps.missing
    if old_gaps != new_gaps:
        raise StoreError(
            f"stream {old.name}: {old_gaps} gaps in the old run, {new_gaps} in the new"
        )


def _put_attrs(run: Path, group: str, values: dict[str, Any], *, replace: bool = False) -> None:
    """Update (or `replace`) attributes of a closed run's root or of its `group`, keeping the
    run's consolidated metadata, if the writer made one when it closed the run, in step."""
    consolidated = json.loads((run / "zarr.json").read_text()).get("consolidated_metadata")
    root = zarr.open_group(run, mode="r+", zarr_format=3, use_consolidated=False)
    node = root if not group else nodes.subgroup(root, group)
    node.attrs.put(nodes.json_attrs(values if replace else {**dict(node.attrs), **values}))
    if consolidated is not None:
        nodes.consolidate(run)


# -- checking and swapping -------------------------------------------------------------------


def _verify(old: Path, new: Path) -> None:
    """Every message of the new run is the old one: same receive time, same frames."""
    with RunReader(old) as a, RunReader(new) as b:
        if sorted(a.streams) != sorted(b.streams):
            raise StoreError(f"streams differ: {sorted(a.streams)} != {sorted(b.streams)}")
        for name, sa in a.streams.items():
            sb = b.streams[name]
            if (sa.n_messages, sa.n_frames) != (sb.n_messages, sb.n_frames):
                raise StoreError(
                    f"stream {name}: {sb.n_messages} messages, {sb.n_frames} frames written "
                    f"of {sa.n_messages}, {sa.n_frames}"
                )
            for ma, mb in zip(sa.messages(), sb.messages(), strict=True):
                if ma.recv_ns != mb.recv_ns or len(ma.frames) != len(mb.frames):
                    raise StoreError(f"stream {name}: message {ma.index} differs")
                for fa, fb in zip(ma.frames, mb.frames, strict=True):
                    if fa.nbytes != fb.nbytes or bytes(fa) != bytes(fb):
                        raise StoreError(f"stream {name}: message {ma.index} differs")


def _swap(old: Path, new: Path, kept: Path) -> None:
    """Old run to the backup, new run into its place; annotations users changed meanwhile
    are carried over under their lock, so no tag or note is lost in between."""
    with annotate.lock(old):
        ann = _annotations(old)
        if ann != _annotations(new):
            _put_attrs(new, layout.ANNOTATIONS_GROUP, ann, replace=True)
        try:
            os.rename(old, kept)
        except OSError as exc:
            raise _failed(old.name, exc) from exc
        try:
            os.rename(new, old)
        except OSError as exc:
            os.rename(kept, old)
            raise _failed(old.name, exc) from exc
