"""What every export target shares: the selection (streams, time window), provenance, progress,
and the rule that a file is either whole or not there.

A target only writes; choosing streams, cutting the window, writing to a temporary name and
renaming it into place (or removing it when the disk fills) happen here, once, so `--stream`,
`--start` and `--end` mean the same for NWB as for MCAP.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from recorder import __version__
from recorder.contracts import Marker, Pause, SessionAttrs
from recorder.errors import ExportError, StreamNotFound
from recorder.store.reader import RunReader, StreamReader

Progress = Callable[[float], None]
"""Called with the fraction done (0..1) as a target writes; cheap to call often."""


def no_progress(_done: float) -> None:
    pass


class Tally:
    """Turns "n more messages written" into progress calls, at most every 1 %, so a target
    can report per message or per chunk without flooding the job row."""

    def __init__(self, total: int, progress: Progress, *, upto: float = 0.99):
        self.total, self.progress, self.upto = max(1, total), progress, upto
        self.done = 0
        self._said = -1.0

    def add(self, n: int = 1) -> None:
        self.done += n
        frac = min(self.upto, self.done / self.total * self.upto)
        if frac - self._said >= 0.01:
            self._said = frac
            self.progress(frac)


@dataclass(frozen=True, slots=True)
class ExportRequest:
    run_path: Path
    target: str
    out: Path
    streams: tuple[str, ...] = ()  # empty: every stream the target can hold
    start: float | None = None  # seconds from the run's start, as `recorder replay --start`
    end: float | None = None
    session: SessionAttrs | None = None  # default: the run's copy of its session, if any


@dataclass(frozen=True, slots=True)
class StreamWindow:
    """The messages [lo, hi) of one stream that fall in the export window."""

    name: str
    reader: StreamReader
    lo: int
    hi: int

    @property
    def count(self) -> int:
        return self.hi - self.lo


@dataclass
class ExportContext:
    """What a target gets: the open run, the chosen streams cut to the window, provenance."""

    run: RunReader
    windows: list[StreamWindow]
    start: float | None
    end: float | None
    partial: bool  # the run is still recording: only what was committed is exported
    skipped: dict[str, str] = field(default_factory=dict)  # stream -> why the target left it out
    session: SessionAttrs | None = None  # the session the run was recorded in (metadata)

    def _bounds_ns(self) -> tuple[int | None, int | None]:
        t0 = self.run.started_ns
        lo = None if self.start is None else t0 + int(self.start * 1e9)
        hi = None if self.end is None else t0 + int(self.end * 1e9)
        return lo, hi

    def markers(self) -> list[Marker]:
        """The run's markers received in the export window, oldest first."""
        lo, hi = self._bounds_ns()
        return [
            m
            for m in self.run.markers()
            if (lo is None or m["recv_ns"] >= lo) and (hi is None or m["recv_ns"] < hi)
        ]

    def pauses(self) -> list[Pause]:
        """The run's deliberate pauses that overlap the export window, cut to it; a pause
        still open (the run ended paused) ends where the run ended."""
        lo, hi = self._bounds_ns()
        out: list[Pause] = []
        for p in self.run.pauses():
            start, end = p["start_ns"], p["end_ns"]
            if end is None:
                end = self.run.attrs.get("ended_ns") or self.run.summary()["ended_ns"] or start
            end = max(start, end)
            if (hi is not None and start >= hi) or (lo is not None and end <= lo):
                continue
            start = start if lo is None else max(lo, start)
            end = end if hi is None else min(hi, end)
            out.append({"start_ns": start, "end_ns": end, "messages": p["messages"]})
        return out

    @property
    def provenance(self) -> dict:
        """Which run, streams and window a file came from, and what wrote it; every target
        stores this (as attributes, metadata records or NWB fields)."""
        return {
            "exported_by": f"zmq-recorder {__version__}",
            "recorder_version": __version__,
            "exported_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "run_id": self.run.run_id,
            "run_name": self.run.name,
            "run_started_ns": self.run.started_ns,
            "streams": [w.name for w in self.windows],
            "start_s": self.start,
            "end_s": self.end,
            "messages": {w.name: [w.lo, w.hi] for w in self.windows},
            "partial": self.partial,
            "session_id": None if self.session is None else self.session["id"],
        }

    def window(self, name: str) -> StreamWindow:
        for w in self.windows:
            if w.name == name:
                return w
        raise StreamNotFound(f"stream {name!r} is not in this export")


@dataclass
class ExportResult:
    out: Path
    target: str
    run_id: str
    streams: list[str]
    messages: int
    bytes: int
    partial: bool
    skipped: dict[str, str] = field(default_factory=dict)  # stream -> why the target left it out

    def as_dict(self) -> dict:
        return {
            "out": str(self.out),
            "target": self.target,
            "run_id": self.run_id,
            "streams": self.streams,
            "messages": self.messages,
            "bytes": self.bytes,
            "partial": self.partial,
            "skipped": self.skipped,
        }


class Target(Protocol):
    """One export format. `cannot_hold` says why a stream does not fit (None when it does);
    `write` writes the whole file (or folder) at `out`, calling `progress` as it goes."""

    name: str
    suffix: str  # of the file written ("" for a folder)
    description: str

    def cannot_hold(self, stream: StreamReader) -> str | None: ...

    def write(self, ctx: ExportContext, out: Path, progress: Progress) -> None: ...


def _windows(run: RunReader, names: list[str], start: float | None, end: float | None):
    return [StreamWindow(n, run.stream(n), *run.window(n, start, end)) for n in names]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def plan(run: RunReader, target: Target, request: ExportRequest) -> ExportContext:
    """Choose the streams and cut the window; raise ExportError for what cannot be done."""
    if request.start is not None and request.end is not None and request.end < request.start:
        raise ExportError(f"--end {request.end:g} is before --start {request.start:g}")
    skipped: dict[str, str] = {}
    if request.streams:
        names = list(dict.fromkeys(request.streams))
        for name in names:
            why = target.cannot_hold(run.stream(name))  # StreamNotFound for unknown names
            if why:
                raise ExportError(f"{target.name} cannot hold stream {name!r}: {why}")
    else:
        names = []
        for name, reader in run.streams.items():
            why = target.cannot_hold(reader)
            if why:
                skipped[name] = why
            else:
                names.append(name)
        if not names:
            reasons = "; ".join(f"{n}: {w}" for n, w in skipped.items()) or "the run has none"
            raise ExportError(f"run {run.run_id} has no stream {target.name} can hold ({reasons})")
    ctx = ExportContext(
        run=run,
        windows=_windows(run, names, request.start, request.end),
        start=request.start,
        end=request.end,
        partial=run.status == "recording",
        skipped=skipped,
        session=request.session or run.annotations().get("session"),
    )
    return ctx


def export_run(request: ExportRequest, progress: Progress = no_progress) -> ExportResult:
    """Export one run. The file appears at `request.out` only when complete: it is written
    beside it under a temporary name and renamed; on any failure the partial file is removed."""
    from recorder.export.targets import target_named

    target = target_named(request.target)
    out = Path(request.out)
    if out.exists():
        raise ExportError(f"{out} exists already; choose another --out or remove it")
    if not out.parent.is_dir():
        raise ExportError(f"cannot write {out}: folder {out.parent} does not exist")
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}-{time.monotonic_ns()}")
    with RunReader(request.run_path) as run:
        ctx = plan(run, target, request)
        try:
            target.write(ctx, tmp, progress)
            os.replace(tmp, out)
        except OSError as exc:
            _remove(tmp)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise ExportError(
                    f"disk full while writing {out}; the partial file was removed"
                ) from exc
            raise ExportError(f"cannot write {out}: {exc}; the partial file was removed") from exc
        except BaseException:
            _remove(tmp)
            raise
        progress(1.0)
        size = (
            sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
            if out.is_dir()
            else out.stat().st_size
        )
        return ExportResult(
            out=out,
            target=target.name,
            run_id=run.run_id,
            streams=[w.name for w in ctx.windows],
            messages=sum(w.count for w in ctx.windows),
            bytes=size,
            partial=ctx.partial,
            skipped=dict(ctx.skipped),
        )


__all__ = [
    "ExportContext",
    "ExportRequest",
    "ExportResult",
    "Progress",
    "StreamWindow",
    "Tally",
    "Target",
    "export_run",
    "no_progress",
    "plan",
]
