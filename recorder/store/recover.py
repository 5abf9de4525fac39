"""Finds runs a killed recorder left behind and repairs them.

A run whose status says `recording` but whose recorder process is gone is cut back to its last
committed flush (arrays written after it are truncated, so plain zarr readers see the same rows
as we do) and marked `interrupted`.
"""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path

import psutil
import zarr

from recorder.contracts import RunAttrs, SegmentInfo
from recorder.errors import StoreError, UsageError
from recorder.store import compact, coordinates, layout, nodes, spool
from recorder.store.nodes import array, read_rows


def run_dirs(runs_dir: Path) -> list[Path]:
    """The run folders of a runs folder; for an object store's spool, after copying in the
    metadata of runs only the bucket has (spool.pull_metadata)."""
    if not runs_dir.is_dir():
        return []
    spool.pull_metadata(runs_dir)
    return sorted(
        p for p in runs_dir.iterdir() if not p.name.startswith(".") and (p / "zarr.json").is_file()
    )


def recorder_alive(attrs: RunAttrs) -> bool:
    """Is the process that opened this run still running? (PIDs get reused: check start time.)"""
    if attrs.get("host") != socket.gethostname():
        return False  # cannot see other hosts' processes; recover is explicit there
    pid = attrs.get("pid")
    if not pid:
        return False
    try:
        proc = psutil.Process(int(pid))
        return proc.create_time() * 1e9 <= int(attrs["started_ns"]) + 1e9 and proc.is_running()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def is_abandoned(attrs: RunAttrs) -> bool:
    return attrs.get("status") == layout.STATUS_RECORDING and not recorder_alive(attrs)


def _truncate(array: zarr.Array, rows: int) -> None:
    if array.shape[0] != rows:
        array.resize((rows, *array.shape[1:]))


def repair_run(path: Path) -> RunAttrs:
    """Cut every array back to the committed counts and mark the run interrupted."""
    try:
        root = zarr.open_group(path, mode="r+", zarr_format=3, use_consolidated=False)
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot open run at {path}: {exc}") from exc
    attrs = nodes.run_attrs(root)
    if attrs.get("status") != layout.STATUS_RECORDING:
        raise UsageError(f"run {path.name} is {attrs.get('status')}, not left recording")
    if recorder_alive(attrs):
        raise UsageError(f"run {path.name} is still being recorded by pid {attrs.get('pid')}")
    compact.cleanup(path)  # a compaction the crash cut short
    last_ns = None
    if layout.STREAMS_GROUP in root:
        for _, group in nodes.subgroup(root, layout.STREAMS_GROUP).groups():
            last_ns = max(last_ns or 0, _repair_stream(group) or 0) or last_ns
    attrs["status"] = layout.STATUS_INTERRUPTED
    attrs["ended_ns"] = last_ns or attrs.get("started_ns")
    attrs["error"] = f"recorder stopped without closing the run; recovered at {time.ctime()}"
    layout.reserve_path(path).unlink(missing_ok=True)
    root.attrs.put(nodes.json_attrs(attrs))
    if attrs.get("format_version", 1) >= 2:
        nodes.consolidate(path)
    spool.upload(path)  # a run of an object store: the bucket gets the repaired run
    return attrs


def upload_pending(runs_dir: Path, only: Path | None = None) -> list[Path]:
    """Upload the spooled runs (or run `only`) whose upload did not finish (their recorder was
    killed after closing them, or the bucket refused writes): StoreError if it still refuses.
    Runs left `recording` are not among them: repair_run uploads those once repaired."""
    done = []
    for path in spool.pending(runs_dir):
        if only is not None and path.name != only.name:
            continue
        with contextlib.suppress(StoreError, OSError):
            attrs = nodes.run_attrs(zarr.open_group(path, mode="r", zarr_format=3))
            if attrs.get("status") == layout.STATUS_RECORDING:
                continue  # repair_run uploads it once repaired
        spool.upload(path)
        done.append(path)
    return done


def _repair_stream(group: zarr.Group) -> int | None:
    attrs = nodes.stream_attrs(group)
    c = attrs.get("committed") or {}
    n, f = int(c.get("messages", 0)), int(c.get("frames", 0))
    for name in layout.MESSAGE_COLUMNS:
        _truncate(array(group, name), n)
    frames = nodes.subgroup(group, "frames")
    for name in layout.FRAME_COLUMNS:
        if name in frames:  # `column` is missing in runs written before it existed
            _truncate(array(frames, name), f)
    _truncate(array(group, "heap"), int(c.get("heap_bytes", 0)))
    rows = list(c.get("segment_rows", []))
    segments = list(attrs.get("segments", []))
    for seg, r in zip(segments, rows, strict=False):
        for path in _segment_arrays(seg):
            _truncate(array(group, path), int(r))
    for seg in segments[len(rows) :]:  # created after the last flush: nothing committed
        for path in _segment_arrays(seg):
            if path in group:  # a placed segment gets its array late
                _truncate(array(group, path), 0)
    attrs["segments"] = segments[: len(rows)]
    for key in (attrs.get("columns") or {}).values():
        _truncate(array(group, f"columns/{key}"), n)
    rejects = int(c.get("rejects", 0))
    _truncate(array(group, "rejects/message"), rejects)
    _truncate(array(group, "rejects/reason"), rejects)
    group.attrs.put(nodes.json_attrs(attrs))
    if layout.DATA_GROUP in group:  # format 2: the coordinates a closed stream has
        coordinates.write_stream(group, c, attrs["segments"])
    return int(read_rows(array(group, "recv_ns"), n - 1, n)[0]) if n else None


def _segment_arrays(seg: SegmentInfo) -> list[str]:
    """The arrays of a segment: its rows and, for whole-row segments, their message index."""
    return [seg["path"], *([seg["index"]] if "index" in seg else [])]
