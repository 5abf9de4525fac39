"""Finds runs a killed recorder left behind and repairs them.

A run whose status says `recording` but whose recorder process is gone is cut back to its last
committed flush (arrays written after it are truncated, so plain zarr readers see the same rows
as we do) and marked `interrupted`.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import psutil
import zarr

from recorder.errors import StoreError, UsageError
from recorder.store import layout


def run_dirs(runs_dir: Path) -> list[Path]:
    if not runs_dir.is_dir():
        return []
    return sorted(p for p in runs_dir.iterdir() if (p / "zarr.json").is_file())


def recorder_alive(attrs: dict) -> bool:
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


def is_abandoned(attrs: dict) -> bool:
    return attrs.get("status") == layout.STATUS_RECORDING and not recorder_alive(attrs)


def _truncate(array: zarr.Array, rows: int) -> None:
    if array.shape[0] != rows:
        array.resize((rows, *array.shape[1:]))


def repair_run(path: Path) -> dict:
    """Cut every array back to the committed counts and mark the run interrupted."""
    try:
        root = zarr.open_group(path, mode="r+", zarr_format=3)
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot open run at {path}: {exc}") from exc
    attrs = dict(root.attrs)
    if attrs.get("status") != layout.STATUS_RECORDING:
        raise UsageError(f"run {path.name} is {attrs.get('status')}, not left recording")
    if recorder_alive(attrs):
        raise UsageError(f"run {path.name} is still being recorded by pid {attrs.get('pid')}")
    last_ns = None
    if layout.STREAMS_GROUP in root:
        for _, group in root[layout.STREAMS_GROUP].groups():
            last_ns = max(last_ns or 0, _repair_stream(group) or 0) or last_ns
    attrs.update(
        status=layout.STATUS_INTERRUPTED,
        ended_ns=last_ns or attrs.get("started_ns"),
        error=f"recorder stopped without closing the run; recovered at {time.ctime()}",
    )
    layout.reserve_path(path).unlink(missing_ok=True)
    root.attrs.put(attrs)
    return attrs


def _repair_stream(group: zarr.Group) -> int | None:
    attrs = dict(group.attrs)
    c = attrs.get("committed") or {}
    n, f = int(c.get("messages", 0)), int(c.get("frames", 0))
    for name in layout.MESSAGE_COLUMNS:
        _truncate(group[name], n)
    for name in layout.FRAME_COLUMNS:
        if name in group["frames"]:  # `column` is missing in runs written before it existed
            _truncate(group["frames"][name], f)
    _truncate(group["heap"], int(c.get("heap_bytes", 0)))
    rows = list(c.get("segment_rows", []))
    segments = list(attrs.get("segments", []))
    for seg, r in zip(segments, rows, strict=False):
        for key in ("path", "index"):
            if key in seg:
                _truncate(group[seg[key]], int(r))
    for seg in segments[len(rows) :]:  # created after the last flush: nothing committed
        for key in ("path", "index"):
            if key in seg and seg[key] in group:  # a placed segment gets its array late
                _truncate(group[seg[key]], 0)
    attrs["segments"] = segments[: len(rows)]
    for key in (attrs.get("columns") or {}).values():
        _truncate(group["columns"][key], n)
    rejects = int(c.get("rejects", 0))
    _truncate(group["rejects/message"], rejects)
    _truncate(group["rejects/reason"], rejects)
    group.attrs.put(attrs)
    return int(group["recv_ns"][n - 1]) if n else None
