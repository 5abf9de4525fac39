"""NWB export: Open Ephys streams as the file DANDI and pynwb users open (docs/export/nwb.md).

Continuous data becomes one ElectricalSeries per Open Ephys data stream and placed segment
(a restart or a jump in sample numbers starts a new series, as it starts a new segment in the
store), with the sample numbers beside it; TTL events and spike waveforms become plain
TimeSeries and SpikeEventSeries, so no extension is needed to read the file. pynwb writes every
dataset from hdmf chunk iterators that read the store block by block.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from hdmf.backends.hdf5 import H5DataIO  # type: ignore[import-untyped, unused-ignore]
from pynwb import NWBHDF5IO, NWBFile, TimeSeries  # type: ignore[import-untyped, unused-ignore]
from pynwb.ecephys import ElectricalSeries, SpikeEventSeries  # type: ignore[import-untyped, unused-ignore]

from recorder import __version__
from recorder.errors import ExportError
from recorder.export.base import ExportContext, Progress, Tally
from recorder.export.nwb_data import Blocks, Counting, SegmentRows
from recorder.export.nwb_scan import (
    ContinuousPart,
    Regularity,
    Scan,
    SpikePart,
    TtlPart,
    scan_window,
    seconds,
    ttl_events,
)
from recorder.export.nwb_session import (
    UNKNOWN_SPECIES,
    add_markers_and_pauses,
    electrode_location,
    session_fields,
    subject,
)
from recorder.store.reader import StreamReader

PROTOCOL = "openephys"
_VOLTS = {"v": 1.0, "mv": 1e-3, "uv": 1e-6, "µv": 1e-6, "μv": 1e-6, "microvolts": 1e-6}
_DEFAULT_UNITS = "uV"  # the GUI's buffers for electrode channels (protocol meaning "continuous/")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\- ]")


def _safe(name: str) -> str:
    """An NWB object name: no '/' or ':' (the real names stay in descriptions and columns)."""
    return _UNSAFE.sub("_", name).strip() or "_"


def volts_per_unit(units: str | None) -> float | None:
    """Volts per unit of the stored values, None for units that are not a voltage."""
    return _VOLTS.get((units or _DEFAULT_UNITS).strip().lower())


class _Names:
    """Unique NWB names: a second object that would get the same name gets `_2`, `_3` ..."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, name: str) -> str:
        name, n, base = _safe(name), 1, _safe(name)
        while name in self.used:
            n += 1
            name = f"{base}_{n}"
        self.used.add(name)
        return name


class NwbTarget:
    name = "nwb"
    suffix = ".nwb"
    description = (
        "Neurodata Without Borders (pynwb, DANDI): Open Ephys continuous data as "
        "ElectricalSeries, TTL events and spike waveforms"
    )

    def cannot_hold(self, stream: StreamReader) -> str | None:
        if stream.protocol != PROTOCOL:
            return f"protocol {stream.protocol}: NWB holds Open Ephys streams only"
        return None

    def write(self, ctx: ExportContext, out: Path, progress: Progress) -> None:
        scan = Scan()
        for window in ctx.windows:
            scan_window(window, scan, ctx.run.started_ns)
        total = (
            sum(p.rows for p in scan.continuous)
            + sum(p.count for p in scan.ttl)
            + sum(p.count for p in scan.spikes)
        )
        tally = Tally(total, progress)
        nwbfile = _Builder(ctx, scan, tally).build()
        with warnings.catch_warnings():  # `out` is base's temporary name, not *.nwb
            warnings.filterwarnings("ignore", "The file path provided", UserWarning)
            io = NWBHDF5IO(str(out), mode="w")
        with io:
            io.write(nwbfile)


TARGET = NwbTarget()


def _session_description(ctx: ExportContext) -> str:
    name = ctx.run.annotations().get("name") or ctx.run.name
    return name or f"zmq-recorder run {ctx.run.run_id}"


def _gzip(data: Any) -> Any:
    return H5DataIO(data, compression="gzip", compression_opts=4)


class _Builder:
    """Builds the NWBFile (lazy datasets only) from a scan of the export's windows."""

    def __init__(self, ctx: ExportContext, scan: Scan, tally: Tally):
        self.ctx, self.scan, self.tally = ctx, scan, tally
        self.t0 = ctx.run.started_ns
        self.location = electrode_location(ctx.session)
        self.names = _Names()
        self.devices: dict[tuple[str, str], Any] = {}
        self.groups: dict[tuple[str, ...], tuple[Any, int, int]] = {}  # key -> group, row0, n

    def build(self) -> Any:
        ctx = self.ctx
        start = _dt.datetime.fromtimestamp(self.t0 / 1e9, tz=_dt.UTC)
        self.nwb = NWBFile(
            **session_fields(ctx, _session_description(ctx)),
            identifier=ctx.run.run_id,
            session_start_time=start,
            notes=json.dumps(ctx.provenance, sort_keys=True),
            source_script=(
                f"zmq-recorder {__version__}: recorder export {ctx.run.run_id} --to nwb "
                f"(streams {', '.join(w.name for w in ctx.windows)}; start {ctx.start}, "
                f"end {ctx.end}; partial {ctx.partial})"
            ),
            source_script_file_name="recorder/export/nwb.py",
            data_collection=self._streams_text(),
            subject=subject(ctx.session),
        )
        self._electrodes()
        for part in self.scan.continuous:
            self._continuous(part)
        for ttl in self.scan.ttl:
            self._ttl(ttl)
        for spikes in self.scan.spikes:
            self._spikes(spikes)
        add_markers_and_pauses(self.nwb, ctx)
        return self.nwb

    def _streams_text(self) -> str:
        lines = ["Recorded with zmq-recorder from ZeroMQ streams:"]
        for w in self.ctx.windows:
            r = w.reader
            lines.append(
                f"{w.name}: protocol {r.protocol}, {r.socket_type} {r.role} {r.endpoint}, "
                f"messages {w.lo}..{w.hi}"
            )
        return "\n".join(lines)

    # ------------------------------------------------------------------ electrodes

    def _device(self, window_name: str, oe_stream: str) -> Any:
        key = (window_name, oe_stream)
        if key not in self.devices:
            endpoint = self.ctx.window(window_name).reader.endpoint
            self.devices[key] = self.nwb.create_device(
                name=self.names(f"OpenEphys_{window_name}_{oe_stream}"),
                description=(
                    f"Open Ephys GUI (open-ephys.org) data stream {oe_stream!r}, sent by its "
                    f"ZMQ Interface and received from {endpoint} "
                    f"(recorder stream {window_name!r})"
                ),
            )
        return self.devices[key]

    def _group(self, key: tuple[str, ...], names: list[str], description: str) -> None:
        if key in self.groups:
            return
        group = self.nwb.create_electrode_group(
            name=self.names("_".join(key)),
            description=description,
            location=self.location,
            device=self._device(key[0], key[1]),
        )
        row0 = len(self.nwb.electrodes) if self.nwb.electrodes is not None else 0
        for channel, name in enumerate(names):
            self.nwb.add_electrode(
                group=group, location=self.location, channel_name=name, channel_index=channel
            )
        self.groups[key] = (group, row0, len(names))

    def _electrodes(self) -> None:
        if not self.scan.continuous and not self.scan.spikes:
            return
        self.nwb.add_electrode_column(
            name="channel_name", description="channel name the Open Ephys messages carried"
        )
        self.nwb.add_electrode_column(
            name="channel_index",
            description="channel number within its Open Ephys data stream (channel_num), or "
            "within a spike electrode's waveform",
        )
        widest: dict[tuple[str, ...], ContinuousPart] = {}
        for part in self.scan.continuous:
            key: tuple[str, ...] = (part.window.name, part.oe_stream)
            if key not in widest or part.channels > widest[key].channels:
                widest[key] = part
        for key, part in widest.items():
            self._group(
                key,
                part.channel_names,
                f"channels of Open Ephys data stream {part.oe_stream!r}",
            )
        electrodes: dict[tuple[str, ...], int] = {}  # spike electrode -> most channels
        for spikes in self.scan.spikes:
            key = (spikes.window.name, spikes.oe_stream, spikes.electrode)
            electrodes[key] = max(electrodes.get(key, 0), spikes.channels)
        for key, channels in electrodes.items():
            self._group(
                key,
                [f"{key[2]} {c}" for c in range(channels)],
                f"spike electrode {key[2]!r} of Open Ephys data stream {key[1]!r} (the "
                "messages do not say which continuous channels it records from)",
            )

    def _region(self, key: tuple[str, ...], channels: int, what: str) -> Any:
        _, row0, _ = self.groups[key]
        return self.nwb.create_electrode_table_region(
            region=list(range(row0, row0 + channels)), description=what
        )

    # ------------------------------------------------------------------ continuous

    def _continuous(self, part: ContinuousPart) -> None:
        w = part.window
        if part.rate is None:
            raise ExportError(
                f"stream {w.name!r}: Open Ephys data {part.oe_stream!r} has no sample rate"
            )
        units = part.units or _DEFAULT_UNITS
        per_unit = volts_per_unit(units)
        if per_unit is None:
            raise ExportError(
                f"stream {w.name!r}: Open Ephys data {part.oe_stream!r} is in {units!r}, "
                "not a voltage; NWB ElectricalSeries hold volts"
            )
        starting = max(0.0, (part.first_recv_ns - self.t0) / 1e9)
        name = self.names(f"ElectricalSeries_{w.name}_{part.oe_stream}")
        last = part.first_sample + part.rows - 1
        kwargs: dict[str, Any] = {}
        if part.scale and any(s is not None for s in part.scale):
            kwargs["channel_conversion"] = [1.0 if s is None else s for s in part.scale]
        key = (w.name, part.oe_stream)
        series = ElectricalSeries(
            name=name,
            data=_gzip(SegmentRows(w.reader, part.seg.index, part.row_lo, part.row_hi,
                                   part.channels, self.tally)),
            electrodes=self._region(key, part.channels, f"channels of {part.oe_stream}"),
            starting_time=starting,
            rate=float(part.rate),
            conversion=per_unit,
            description=(
                f"Open Ephys data stream {part.oe_stream!r} from recorder stream {w.name!r}: "
                f"float32 values as the ZMQ Interface sent them, in {units} (x conversion = "
                f"volts); sample numbers {part.first_sample}..{last} (row i is sample "
                f"{part.first_sample} + i, see {name}_sample_numbers); NaN where no message "
                "brought a sample; starting_time is the host receive time of the block that "
                "carried the first sample"
            ),
            comments=json.dumps(
                {
                    "recorder_stream": w.name,
                    "openephys_stream": part.oe_stream,
                    "first_sample": part.first_sample,
                    "store_segment": part.seg.path,
                    "store_rows": [part.row_lo, part.row_hi],
                    "units": units,
                }
            ),
            **kwargs,
        )  # fmt: skip
        self.nwb.add_acquisition(series)
        self.nwb.add_acquisition(
            TimeSeries(
                name=self.names(f"{name}_sample_numbers"),
                data=_gzip(Counting(part.first_sample, part.rows)),
                unit="samples",
                starting_time=starting,
                rate=float(part.rate),
                description=f"Open Ephys sample number of each row of {name}",
            )
        )

    # ------------------------------------------------------------------ events

    def _times(self, times: Regularity, stamps: Any) -> dict[str, Any]:
        """Time arguments of an event series: evenly spaced times as starting_time and rate
        (what the NWB Inspector asks for), else timestamps from the block iterator over
        `stamps()` (its companions link to them)."""
        if times.rate is not None:
            return {"starting_time": times.first, "rate": times.rate}
        return {"timestamps": _gzip(Blocks(stamps, times.n, np.float64))}

    def _add_events(self, series: Any, times: Regularity, companions: list[dict]) -> None:
        self.nwb.add_acquisition(series)
        for kwargs in companions:
            if times.rate is not None:
                kwargs.update(starting_time=times.first, rate=times.rate)
            else:
                kwargs.update(timestamps=series)
            self.nwb.add_acquisition(TimeSeries(continuity="instantaneous", **kwargs))

    def _ttl(self, part: TtlPart) -> None:
        w, n = part.window, part.count
        name = self.names(f"TTL_{w.name}_{part.oe_stream or 'events'}")

        def of(fn: Any) -> Any:
            def make() -> Iterator[np.ndarray]:
                for ev in ttl_events(part):
                    yield fn(ev)

            return make

        def states(ev: dict[str, np.ndarray]) -> np.ndarray:
            return np.where(ev["state"], 1, -1) * (ev["line"] + 1)

        def stamps() -> Iterator[np.ndarray]:
            for ev in ttl_events(part):
                yield seconds(w.reader, ev["message"], self.t0)

        timing = self._times(part.times, stamps)
        series = TimeSeries(
            name=name,
            data=_gzip(Blocks(of(states), n, np.int16, tally=self.tally)),
            unit="n.a.",
            continuity="instantaneous",
            description=(
                f"TTL events of Open Ephys data stream {part.oe_stream!r} (recorder stream "
                f"{w.name!r}): +(line + 1) when line went high, -(line + 1) when it went low, "
                "lines counted from 0 (the Open Ephys 'states' convention); times are host "
                f"receive times; {name}_sample_numbers and {name}_full_words hold the rest"
            ),
            **timing,
        )
        self._add_events(
            series,
            part.times,
            [
                {
                    "name": self.names(f"{name}_sample_numbers"),
                    "data": _gzip(Blocks(of(lambda ev: ev["sample"]), n, np.int64)),
                    "unit": "samples",
                    "description": f"Open Ephys sample number of each event of {name} "
                    "(-1: not sent)",
                },
                {
                    "name": self.names(f"{name}_full_words"),
                    "data": _gzip(Blocks(of(lambda ev: ev["word"].view(np.uint64)), n, np.uint64)),
                    "unit": "n.a.",
                    "description": "TTL word (bit mask of all line states) after each event "
                    f"of {name}",
                },
            ],
        )

    def _spikes(self, part: SpikePart) -> None:
        w, n = part.window, part.count
        reader = w.reader
        channels, samples = part.channels, part.samples
        name = self.names(f"Spikes_{w.name}_{part.oe_stream}_{part.electrode}")
        key = (w.name, part.oe_stream, part.electrode)

        def per_message(fn: Any) -> Any:
            def make() -> Iterator[np.ndarray]:
                for messages, _ in part.frames():
                    yield fn(messages)

            return make

        def column(col: str) -> Any:
            def values(messages: np.ndarray) -> np.ndarray:
                if col not in reader.column_names() or not len(messages):
                    return np.full(len(messages), -1, np.int64)
                lo = int(messages[0])
                return reader.column(col, lo, int(messages[-1]) + 1)[messages - lo]

            return values

        timing = self._times(part.times, per_message(lambda m: seconds(reader, m, self.t0)))
        series = SpikeEventSeries(
            name=name,
            data=_gzip(Blocks(part.waveforms, n, np.float32, (channels, samples), self.tally)),
            electrodes=self._region(key, channels, f"channels of {part.electrode}"),
            conversion=1e-6,
            description=(
                f"spike waveforms of electrode {part.electrode!r}, Open Ephys data stream "
                f"{part.oe_stream!r} (recorder stream {w.name!r}): float32 in uV (x conversion "
                "= volts), (events, channels, samples) as the ZMQ Interface sent them; "
                f"times are host receive times; {name}_sample_numbers and "
                f"{name}_sorted_ids hold the rest"
            ),
            **timing,
        )
        self._add_events(
            series,
            part.times,
            [
                {
                    "name": self.names(f"{name}_{suffix}"),
                    "data": _gzip(Blocks(per_message(column(col)), n, np.int64)),
                    "unit": "samples" if col == "sample_num" else "n.a.",
                    "description": f"{what} of each spike of {name}",
                }
                for suffix, col, what in (
                    ("sample_numbers", "sample_num", "Open Ephys sample number"),
                    ("sorted_ids", "sorted_id", "sorted unit id (0: unsorted)"),
                )
            ],
        )


__all__ = ["PROTOCOL", "TARGET", "UNKNOWN_SPECIES", "NwbTarget", "volts_per_unit"]
