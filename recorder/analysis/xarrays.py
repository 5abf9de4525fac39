"""A stream as one lazy xarray.Dataset: what xarray users expect to open and slice.

Layout of the Dataset (docs/analysis.md shows it):

* dimension ``message``: every per-message column as a variable (``recv_ns`` is the coordinate
  ``recv_time``, datetime64; ``seq`` a coordinate); the integer sentinels stay as they are,
  named by each variable's ``missing_value`` attribute (xarray has no integer NA).
* per array family ``<name>`` (``/`` in names becomes ``.``: DataTree nodes forbid it): the
  rows as variable ``<name>`` with dimensions ``<name>.row`` and ``<name>.dim_k`` (or the names
  the run gives them), and per row the coordinates ``<name>.message``, ``<name>.recv_time`` and
  ``<name>.seq``;
* placed families (Open Ephys continuous data) as (``<name>.sample``, ``<name>.channel``) with
  the sample numbers, their time in seconds (sample number / sample rate) and channel names.

Values stay in the run until computed: arrays are dask arrays over the run's zarr arrays.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np

from recorder.analysis import arrays, columns
from recorder.store.reader import StreamReader

if TYPE_CHECKING:
    import xarray


def var_name(name: str) -> str:
    """A run's name as an xarray variable name: DataTree forbids '/' (the real name is the
    variable's ``name`` attribute)."""
    return name.replace("/", ".")


def json_text(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True)


def _plain(value: Any) -> Any:
    """Attribute values xarray (and netCDF/zarr writers) accept: nested maps become JSON."""
    if isinstance(value, dict) or (
        isinstance(value, list | tuple) and any(isinstance(v, dict | list) for v in value)
    ):
        return json_text(value)
    return "" if value is None else value


def message_dataset(reader: StreamReader) -> dict[str, Any]:
    """Variables and coordinates of dimension ``message``."""
    data_vars: dict[str, Any] = {}
    coords: dict[str, Any] = {"message": np.arange(reader.n_messages)}
    epoch = columns.source_epoch(reader)
    for name in columns.column_names(reader):
        values = columns.lazy_column(reader, name)
        attrs: dict[str, Any] = {}
        missing = columns.missing_of(reader, name, values.dtype)
        if missing is not None and values.dtype.kind in "iu":
            attrs["missing_value"] = missing
        if var_name(name) != name:
            attrs["name"] = name
        if name == "recv_ns":
            coords["recv_time"] = (
                "message",
                values.astype("datetime64[ns]"),
                {"long_name": "host receive time (UTC)"},
            )
        elif name == "seq":
            coords["seq"] = ("message", values, attrs)
        elif name == "source_ns" and epoch is not None:
            data_vars[name] = ("message", values, attrs)
            times = columns.source_times(reader.column(name), epoch).to_numpy("datetime64[ns]")
            coords["source_time"] = ("message", times, {"long_name": f"source time since {epoch}"})
        else:
            data_vars[var_name(name)] = ("message", values, attrs)
    return {"data_vars": data_vars, "coords": coords}


def _row_coords(
    reader: StreamReader, var: str, dim: str, messages: np.ndarray
) -> dict[str, tuple[str, np.ndarray]]:
    recv = reader.column("recv_ns")[messages] if len(messages) else np.zeros(0, np.int64)
    seq = reader.column("seq")[messages] if len(messages) else np.zeros(0, np.int64)
    return {
        f"{var}.message": (dim, messages),
        f"{var}.recv_time": (dim, recv.astype("datetime64[ns]")),
        f"{var}.seq": (dim, seq),
    }


def _inner_dim(given: tuple[str | None, ...] | None, ndim: int, d: int) -> str:
    """Name of a row's axis d: the one the source gave (``y``, ``x``), else ``dim_<d>``
    (format 2 names unnamed axes ``dim_<d + 1>``, counting the row axis: not used, so names
    are the same whatever the run's format)."""
    name = given[d + 1] if given and len(given) == ndim else None
    return name if name and not re.fullmatch(r"dim_\d+", name) else f"dim_{d}"


def _family_vars(reader: StreamReader, family: arrays.Family) -> tuple[dict, dict]:
    import dask.array as da

    data_vars: dict[str, Any] = {}
    coords: dict[str, Any] = {}
    if family.placed:
        var = var_name(family.name)
        whole = arrays.placed(family)
        attrs = {k: _plain(v) for k, v in whole.attrs.items()}
        attrs["name"] = family.name
        sample, channel = f"{var}.sample", f"{var}.channel"
        rate = attrs.get("sample_rate")
        coords[f"{var}.sample_number"] = (sample, whole.sample_numbers)
        if isinstance(rate, int | float) and rate > 0:
            coords[f"{var}.time"] = (sample, whole.sample_numbers / float(rate), {"units": "s"})
        names = attrs.pop("channel_names", None)
        if isinstance(names, list) and len(names) == whole.values.shape[1]:
            coords[f"{var}.channel_name"] = (channel, np.asarray(names, dtype=object))
        for key in ("first_sample", "first_message", "segment", "kind"):
            attrs.pop(key, None)  # of one segment: the coordinates say it for all of them
        data_vars[var] = ((sample, channel), whole.values, attrs)
        return data_vars, coords
    groups = list(family.row_shapes().values())
    for g, members in enumerate(groups):
        var = var_name(family.name) if g == 0 else f"{var_name(family.name)}#{g}"
        parts = [family.dask(k) for k in members]
        values = parts[0] if len(parts) == 1 else da.concatenate(parts, axis=0)
        attrs = {k: _plain(v) for k, v in family.attrs(members[0]).items()}
        attrs["name"] = family.name
        given = arrays.dimension_names(reader, family.segments[members[0]])
        inner = [f"{var}.{_inner_dim(given, values.ndim, d)}" for d in range(values.ndim - 1)]
        row = f"{var}.row"
        messages = np.concatenate([family.messages[k] for k in members])
        coords.update(_row_coords(reader, var, row, messages))
        data_vars[var] = ((row, *inner), values, attrs)
    return data_vars, coords


def stream_attrs(reader: StreamReader) -> dict[str, Any]:
    attrs = {
        "stream": reader.name,
        "protocol": reader.protocol,
        "endpoint": reader.endpoint,
        "socket_type": reader.socket_type,
        "role": reader.role,
    }
    stored: dict[str, Any] = dict(reader.attrs)
    for key in ("meaning", "meta"):  # format 2: what seq, source_ns and the columns mean
        if key in stored:
            attrs[key] = json_text(stored[key])
    return attrs


def to_xarray(reader: StreamReader) -> xarray.Dataset:
    import xarray as xr

    parts = message_dataset(reader)
    data_vars, coords = parts["data_vars"], parts["coords"]
    for family in arrays.families(reader).values():
        more_vars, more_coords = _family_vars(reader, family)
        data_vars.update(more_vars)
        coords.update(more_coords)
    return xr.Dataset(data_vars, coords=coords, attrs=stream_attrs(reader))
