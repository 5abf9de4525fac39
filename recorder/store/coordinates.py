"""The coordinates a format-2 stream gets when it closes, so xarray opens each array labelled.

While recording, a typed array only gets the one thing the writer needs per row: the index of
the message it came from. When the stream closes (and when `recorder recover` repairs a killed
run) the rest is derived from the committed data, in one pass per family: per message `first`
and `count` (the EXDF index: which rows a message carried), per row `recv_ns` and `seq`; for
placed (samples, channels) arrays the sample numbers, their times and the channel names. They
are derived, never a second truth: a reader that finds them missing (a run still being
recorded) works from the message index alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import zarr
from zarr.core.common import JSON

from recorder.contracts import Committed, SegmentInfo
from recorder.store import arrays, fast_nodes, layout, nodes
from recorder.store.nodes import read_rows

TIME_ATTRS: dict[str, JSON] = {
    "units": "nanoseconds since 1970-01-01",
    "calendar": "proleptic_gregorian",
    "long_name": "host receive time",
}


def write_stream(group: zarr.Group, committed: Committed, segments: Sequence[SegmentInfo]) -> None:
    n = int(committed["messages"])
    rows = [int(r) for r in committed["segment_rows"]]
    _describe_source_time(group)
    per_message: tuple[np.ndarray, np.ndarray] | None = None  # only streams with typed rows
    made: list[_Made] = []
    for seg, r in zip(segments, rows, strict=False):
        family = nodes.subgroup(group, seg["path"].rsplit("/", 1)[0])
        values = nodes.array(group, seg["path"])
        if seg.get("placed"):
            _placed(family, values, r)
        elif "index" in seg:
            if per_message is None:
                recv = read_rows(nodes.array(group, "recv_ns"), 0, n)
                per_message = recv, read_rows(nodes.array(group, "seq"), 0, n)
            message = read_rows(nodes.array(group, seg["index"]), 0, r)
            _rows(family, values, message, *per_message, bool(seg.get("ragged")), made)


def _describe_source_time(group: zarr.Group) -> None:
    """source_ns in the source's epoch: CF units when it is a wall clock, so xarray decodes it
    to datetime64 (its -1 'none' becomes NaT)."""
    meaning = nodes.attrs_of(group).get("meaning") or {}
    attrs: dict[str, JSON] = {}
    if meaning.get("source_time"):
        attrs["long_name"] = str(meaning["source_time"])
    epoch = meaning.get("source_epoch")
    if epoch:  # masked only as a time: as a plain number, float64 would lose nanoseconds
        attrs["units"] = f"nanoseconds since {epoch}"
        attrs["calendar"] = "proleptic_gregorian"
        attrs["_FillValue"] = -1
    fast_nodes.update_attributes(nodes.array(group, "source_ns"), attrs)
    if meaning.get("seq"):
        fast_nodes.update_attributes(nodes.array(group, "seq"), {"long_name": str(meaning["seq"])})


class _Made(NamedTuple):
    """Coordinate arrays written for one family, and the message index they came from."""

    message: np.ndarray
    ragged: bool
    arrays: dict[str, zarr.Array]


def _rows(
    family: zarr.Group,
    values: zarr.Array,
    message: np.ndarray,
    recv: np.ndarray,
    seq: np.ndarray,
    ragged: bool,
    made: list[_Made],
) -> None:
    """Per row: recv_ns and seq. Ragged only: per message of the stream, first and count (a
    stacked row is one message, and one index per message for each of up to 256 shapes would
    cost segments x messages).

    The arrays of a train's sources mostly come from the same messages, row for row (every
    stacked array of a Karabo stream has one row per train; the pulse-resolved ones as many
    rows as pulses): a family whose message index equals one already done links that one's
    chunk files (`made`) instead of deriving and encoding the same values again."""
    names = getattr(values.metadata, "dimension_names", None) or (layout.STACKED_DIM,)
    row_dim = str(names[0] or layout.RAGGED_DIM)
    message = message.astype(np.int64)
    for done in made:
        if done.ragged == ragged and np.array_equal(done.message, message):
            for name, source in done.arrays.items():
                dims = [layout.MESSAGE_DIM] if name in ("count", "first") else [row_dim]
                arrays.twin(family, name, source, dict(source.attrs), dims)
            break
    else:
        made.append(_Made(message, ragged, _derive(family, message, recv, seq, ragged, row_dim)))
    fast_nodes.update_attributes(values, {"coordinates": "message recv_ns seq"})


def _derive(
    family: zarr.Group,
    message: np.ndarray,
    recv: np.ndarray,
    seq: np.ndarray,
    ragged: bool,
    row_dim: str,
) -> dict[str, zarr.Array]:
    """_rows' arrays, derived from the message index and written."""
    n = len(recv)
    out: dict[str, zarr.Array] = {}
    valid = (message >= 0) & (message < n)
    if ragged:
        count = np.bincount(message[valid], minlength=n)[:n].astype(np.int64)
        first = np.cumsum(count) - count
        msg_dims = [layout.MESSAGE_DIM]
        out["count"] = arrays.small(
            family, "count", count, msg_dims, {"long_name": "rows of each message"}
        )
        out["first"] = arrays.small(
            family, "first", first, msg_dims, {"long_name": "first row of each message"}
        )
    if n:
        safe = np.where(valid, message, 0)
        row_recv, row_seq = np.where(valid, recv[safe], 0), np.where(valid, seq[safe], -1)
    else:  # rows without a committed message (a run that failed before its first flush)
        row_recv = np.zeros(len(message), np.int64)
        row_seq = np.full(len(message), -1, np.int64)
    out["recv_ns"] = arrays.small(family, "recv_ns", row_recv, [row_dim], TIME_ATTRS)
    out["seq"] = arrays.small(family, "seq", row_seq, [row_dim], fill=-1)
    return out


def _placed(family: zarr.Group, values: zarr.Array, rows: int) -> None:
    attrs = nodes.attrs_of(values)
    first = int(attrs.get("first_sample", 0))
    dim = [layout.SAMPLE_DIM]
    sample = arrays.counting(  # (named as PlacedAppender's chunks written ahead are)
        family, dim[0], first, rows, dim, {"long_name": "sample number"}, ahead_in=values
    )
    rate = attrs.get("sample_rate")
    if isinstance(rate, int | float) and rate > 0:  # CF: time = sample x scale_factor
        time_attrs: dict[str, JSON] = {
            "units": "s",
            "scale_factor": 1.0 / float(rate),
            "long_name": "sample time (sample number / sample rate)",
        }
        arrays.twin(family, "time", sample, time_attrs)
    channels = values.shape[1] if values.ndim == 2 else 0
    names = attrs.get("channel_names")
    if isinstance(names, list) and len(names) == channels:
        labels = np.array([str(x) for x in names], dtype=object)
    else:
        labels = np.arange(channels, dtype=np.int64)
    arrays.small(family, "channel", labels, [layout.CHANNEL_DIM])
