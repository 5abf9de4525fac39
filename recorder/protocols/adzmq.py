"""areaDetector NDPluginZMQ streams (paulscherrerinstitute/ADZMQ and the Diamond fork).

One NDArray = two frames: a one-line JSON header built by hand in C++ and the raw array buffer.
Three header dialects exist and all are still deployed:

* ``psi`` (ADZMQ >= 1.4): ``"htype":"array-1.0"`` and ``shape`` in numpy C order;
* ``pre14`` (ADZMQ < 1.4): ``"htype":["array-1.0"]`` and ``shape`` in NDArray x,y,z order;
* ``chunk`` (blondejamtart/ADZMQ, Diamond): ``"htype":["chunk-1.0"]``, x,y order, no timeStamp,
  ndattr values wrapped as ``{ "value":v,"dataType":"uint32"}``.

The buffer is always C-contiguous with x fastest, so the bulk array's shape is the C-order
(z,y,x) shape whatever the header says. A non-empty ``encoding`` means a compressed buffer
(ADCore >= 3 codecs): it is kept verbatim and not typed. The ZMQDriver side aborts a receive
on a single 4-byte ``STOP`` frame, which decodes as kind ``stop``.

`encode_array` rebuilds the plugin's header byte for byte: ``", "`` between fields, no spaces
after colons, ``%.17g`` timestamps, float32 ndattrs with 9 and float64 with 17 significant
digits, strings quoted but not escaped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

import numpy as np

from recorder.errors import MalformedMessage
from recorder.protocols.base import NO_TIME, BulkFrame, Decoded, FrameBytes, as_array, frame_sizes
from recorder.protocols.descriptor import (
    CONTROLLED_DRIVER,
    NEUTRAL,
    Demo,
    ProtocolDescriptor,
    StreamMeaning,
    head,
    json_map,
    sniffer,
)

NAME = "adzmq"
STOP = b"STOP"
DTYPES = (
    "int8",
    "uint8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "float32",
    "float64",
)
"""Array types NDPluginZMQ can send (ZMQDriver itself only takes int8..uint32)."""
MAX_DIMS = 10  # ND_ARRAY_MAX_DIMS
VARIANTS = ("psi", "pre14", "chunk")
_HTYPES = {"psi": '"array-1.0"', "pre14": '["array-1.0"]', "chunk": '["chunk-1.0"]'}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


# --------------------------------------------------------------------------- encoder


def _attr_value(value: Any, chunk: bool) -> tuple[str, str]:
    """(text, dataType) of one NDAttribute as ``std::stringstream <<`` prints it.

    epicsInt8/epicsUInt8 are chars, so the stream writes the raw byte, not a number (as the C++
    does). PSI sets precision 9 (float32) / 17 (float64); the Diamond fork keeps the default 6.
    """
    if isinstance(value, bool):
        raise TypeError("NDAttributes have no boolean type")
    if value is None:
        if chunk:
            raise ValueError("the chunk-1.0 sender cannot write undefined attributes")
        return '"Undefined"', "undefined"
    if isinstance(value, str):
        return f'"{value}"', "string"
    if isinstance(value, np.int8 | np.uint8):
        byte = int(value) & 0xFF  # raw byte; surrogateescape keeps it one byte in the header
        return chr(byte) if byte < 0x80 else chr(0xDC00 + byte), value.dtype.name
    if isinstance(value, np.integer):
        return str(int(value)), value.dtype.name
    if isinstance(value, int):
        return str(value), "int32"
    if isinstance(value, np.float32):
        return ("%g" if chunk else "%.9g") % float(value), "float32"
    if isinstance(value, float | np.floating):
        return ("%g" if chunk else "%.17g") % float(value), "float64"
    raise TypeError(f"cannot send {type(value).__name__} as an NDAttribute")


def encode_ndattr(ndattr: Mapping[str, Any], variant: str = "psi") -> str:
    """The ``ndattr`` object as NDPluginZMQ::getAttributesAsJSON writes it."""
    parts = []
    for name, value in ndattr.items():
        text, dtype = _attr_value(value, variant == "chunk")
        if variant == "chunk":
            parts.append(f'"{name}":{{ "value":{text},"dataType":"{dtype}"}}')
        else:
            parts.append(f'"{name}":{text}')
    return "{" + ",".join(parts) + "}"


def encode_array(
    array: np.ndarray,
    frame: int,
    timestamp: float,
    ndattr: Mapping[str, Any] | None = None,
    variant: str = "psi",
    *,
    encoding: str | None = "",
    payload: bytes | None = None,
) -> list[bytes]:
    """Header and data frames of one NDArray exactly as NDPluginZMQ sends them.

    `array` is in numpy C order; pre14/chunk headers list its shape reversed. `encoding=None`
    leaves the key out (ADCore < 3); a non-empty `encoding` needs the compressed `payload`.
    The Diamond chunk variant has neither timeStamp nor encoding.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown ADZMQ variant {variant!r} (known: {', '.join(VARIANTS)})")
    arr = np.ascontiguousarray(array)
    if arr.dtype.name not in DTYPES:
        raise ValueError(f"NDPluginZMQ cannot send {arr.dtype.name} arrays")
    arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    dims = list(arr.shape) if variant == "psi" else list(reversed(arr.shape))
    fields = [
        f'"htype":{_HTYPES[variant]}',
        f'"type":"{arr.dtype.name}"',
        f'"shape":[{",".join(str(d) for d in dims)}]',
        f'"frame":{int(frame)}',
    ]
    if variant != "chunk":
        fields.append(f'"timeStamp":{float(timestamp):.17g}')
        if encoding is not None:
            fields.append(f'"encoding":"{encoding}"')
    fields.append('"ndattr":' + encode_ndattr(ndattr or {}, variant))
    header = "{" + ", ".join(fields) + "}"
    if encoding and variant != "chunk":
        if payload is None:
            raise ValueError("a compressed array needs its compressed payload")
        data = bytes(payload)
    else:
        data = arr.tobytes()
    return [header.encode("utf-8", "surrogateescape"), data]


# --------------------------------------------------------------------------- decoder


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _header(frame: FrameBytes) -> dict:
    try:
        value = json.loads(bytes(frame).decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise MalformedMessage(f"header is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise MalformedMessage(f"header is JSON {type(value).__name__}, not an object")
    return value


def _is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _variant(htype: Any) -> str:
    if htype == "array-1.0":
        return "psi"
    if htype == ["array-1.0"]:
        return "pre14"
    if htype == ["chunk-1.0"]:
        return "chunk"
    raise MalformedMessage(f"htype {htype!r} is not array-1.0 or chunk-1.0")


def _shape(value: Any, variant: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(_is_int(d) and 0 <= d <= _INT64_MAX for d in value):
        raise MalformedMessage(f"shape {value!r} is not a list of non-negative integers")
    if len(value) > MAX_DIMS:
        raise MalformedMessage(f"shape has {len(value)} dimensions, at most {MAX_DIMS} allowed")
    return tuple(value) if variant == "psi" else tuple(reversed(value))


def _seconds_to_ns(ts: float) -> int:
    """Seconds (float) to int ns without losing the fraction to float64 rounding at 1e18."""
    whole = math.floor(ts)
    ns = whole * 1_000_000_000 + round((ts - whole) * 1e9)
    if not _INT64_MIN <= ns <= _INT64_MAX:
        raise MalformedMessage(f"timeStamp {ts!r} is out of range")
    return ns


_ATTR_KINDS = {name: ("float" if name.startswith("float") else "int") for name in DTYPES}
_ATTR_KINDS.update(string="str", undefined="undefined")
"""Column kind of each NDAttribute ``dataType`` the chunk-1.0 header names."""
_COLOR_DIMS = {2: ("y", "x", "color"), 3: ("y", "color", "x"), 4: ("color", "y", "x")}
"""C-order dimension names of a 3-D array by its ``ColorMode`` NDAttribute (NDColorMode_t:
2 RGB1 = dims [3, x, y], 3 RGB2 = [x, 3, y], 4 RGB3 = [x, y, 3] in NDArray order)."""
FLOAT_SUFFIX = ".float64"
"""Column of an NDAttribute whose first value was printed as an integer and a later one with
a fraction: a float64 attribute that happened to be integral (``%.17g`` prints 1.0 as ``1``).
Its values from then on go to ``ndattr.<name>.float64``, so no value is stored as missing."""


def _dims(shape: tuple[int, ...], color_mode: Any) -> tuple[str, ...] | None:
    """What the axes of the C-order array are: NDArray dims[0] is x (fastest), dims[1] y."""
    if len(shape) == 1:
        return ("x",)
    if len(shape) == 2:
        return ("y", "x")
    if len(shape) == 3 and _is_int(color_mode):
        return _COLOR_DIMS.get(color_mode)
    return None


class AdzmqCodec:
    """Decoder of NDPluginZMQ messages in all three dialects.

    Keeps, per stream, the column kind each NDAttribute got first (a stored column keeps its
    first type): the psi and pre14 headers carry no attribute types, only the printed values.
    """

    name = NAME

    def __init__(self) -> None:
        self._kinds: dict[str, str] = {}
        self._widened: set[str] = set()

    def decode(self, frames: Sequence[FrameBytes]) -> Decoded:
        sizes = frame_sizes(frames)
        n = len(sizes)
        if n == 1 and sizes[0] == 4 and bytes(frames[0]) == STOP:
            return Decoded(kind="stop")
        if n != 2:
            raise MalformedMessage(f"an ADZMQ array needs 2 frames (header, data), got {n}")
        h = _header(frames[0])
        variant = _variant(h.get("htype"))
        dtype = h.get("type")
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise MalformedMessage(f"type {dtype!r} is not an allowed array type")
        if "shape" not in h:
            raise MalformedMessage("header has no 'shape'")
        shape = _shape(h["shape"], variant)
        frame = h.get("frame")
        if not _is_int(frame) or not _INT64_MIN <= frame <= _INT64_MAX:
            raise MalformedMessage(f"frame {frame!r} is not an integer")
        columns: dict[str, int | float | str | bool] = {}
        source_ns = NO_TIME
        if "timeStamp" in h:
            ts = h["timeStamp"]
            if not _is_number(ts):
                raise MalformedMessage(f"timeStamp {ts!r} is not a finite number")
            source_ns = _seconds_to_ns(float(ts))
            columns["timeStamp"] = float(ts)
        encoding = h.get("encoding", "")
        if not isinstance(encoding, str):
            raise MalformedMessage(f"encoding {encoding!r} is not a string")
        for key in ("statusMessage", "dataSource"):  # Diamond senders report back through these
            if isinstance(h.get(key), str):
                columns[key] = h[key]
        ndattr = h.get("ndattr", {})
        self._ndattr(ndattr, variant, columns)
        bulk = []
        if encoding:
            # no typed array: what the compressed buffer holds is only in these columns
            columns["encoding"] = encoding
            columns["type"] = dtype
            columns["shape"] = ",".join(str(d) for d in shape)
        else:
            need = math.prod(shape) * np.dtype(dtype).itemsize
            if sizes[1] != need:
                raise MalformedMessage(
                    f"data is {sizes[1]} bytes but shape {list(shape)} of {dtype} needs {need}"
                )
            array = as_array(frames[1], np.dtype(dtype).newbyteorder("<"), shape)
            color = ndattr.get("ColorMode") if len(shape) == 3 else None
            if variant == "chunk" and isinstance(color, dict):
                color = color.get("value")
            bulk.append(BulkFrame(1, "image", array, dims=_dims(shape, color)))
        return Decoded("array", frame, "", source_ns, bulk, columns)

    def _ndattr(self, ndattr: Any, variant: str, out: dict[str, int | float | str | bool]) -> None:
        """NDAttributes as ``ndattr.<Name>`` columns typed as the header says.

        chunk-1.0 names each attribute's dataType. psi/pre14 only print the value: an integer
        literal is an integer attribute (int64 column), one with a fraction or exponent a
        float, a quoted text a string. ``"Undefined"`` (an attribute without a value) is
        skipped for an attribute already known as a number.
        """
        if not isinstance(ndattr, dict):
            raise MalformedMessage(f"ndattr is {type(ndattr).__name__}, not an object")
        kinds = self._kinds
        for name, value in ndattr.items():
            if variant == "chunk" and isinstance(value, dict):
                data_type = value.get("dataType")
                declared = _ATTR_KINDS.get(data_type) if isinstance(data_type, str) else None
                value = value.get("value")
                if declared == "float" and _is_int(value):
                    value = float(value)  # %g prints 1.0 as 1; the dataType says float
                elif declared == "undefined":
                    continue
            if isinstance(value, bool) or value is None:
                continue
            if isinstance(value, int):
                if not _INT64_MIN <= value <= _INT64_MAX:
                    continue
                kind = "int"
            elif isinstance(value, float):
                if not math.isfinite(value):
                    continue
                kind = "float"
            elif isinstance(value, str):
                kind = "str"
            else:
                continue
            key = "ndattr." + name
            first = kinds.get(name)
            if first is None:
                kinds[name] = first = kind
            if first == kind or (first == "float" and kind == "int"):
                if name in self._widened:
                    out[key + FLOAT_SUFFIX] = float(value)
                else:
                    out[key] = value
            elif first == "int" and kind == "float":
                self._widened.add(name)
                out[key + FLOAT_SUFFIX] = value
            # anything else ("Undefined" for a number, a number for a text) stays in the header


_SNIFF_HTYPES = ("array-1.0", ["array-1.0"], ["chunk-1.0"])


@sniffer
def sniff(frames: Sequence[FrameBytes]) -> str | None:
    """``adzmq`` for a 2-frame message whose JSON header has an ADZMQ ``htype``, `NEUTRAL` for
    the driver's ``STOP`` frame (it fits but identifies nothing); None otherwise."""
    n = len(frames)
    first = head(frames[0]) if n else b""
    if n == 1 and first == STOP:
        return NEUTRAL
    if n == 2 and first.lstrip().startswith(b"{"):
        header = json_map(frames[0])
        return NAME if header and header.get("htype") in _SNIFF_HTYPES else None
    return None


DESCRIPTOR = ProtocolDescriptor(
    name=NAME,
    codec=AdzmqCodec,
    default_socket="SUB",  # NDPluginZMQ binds PUB for `tcp://*:port`
    controlled_by=CONTROLLED_DRIVER,
    # the frame number is the NDArray uniqueId, which counts from 1 again when the driver's
    # array counter is reset (a new acquisition, an IOC restart)
    restart_first_seq=1,
    sniff=sniff,
    simulator="recorder.simulators.adzmq:AdzmqSimulator",
    demo=Demo(options={"rate": 20}),
    meaning=StreamMeaning(
        seq="frame: the NDArray uniqueId (counts from 1 again after the driver's array "
        "counter is reset)",
        source_time="timeStamp: the NDArray timeStamp (seconds, usually from the IOC's "
        "epicsTimeStamp at acquisition); absent in chunk-1.0 headers",
        source_epoch="1990-01-01",
        columns={
            "timeStamp": "NDArray timeStamp in seconds since the EPICS epoch (1990-01-01 UTC), "
            "as the header prints it",
            "ndattr.": "NDAttributes by name, typed as the header says: an integer literal "
            "(or a chunk-1.0 int dataType) as int64, a fraction or float dataType as float64, "
            "a string as str; see ndattr.<name>.float64",
            "ndattr.<name>.float64": "values of an NDAttribute first printed as an integer and "
            "later with a fraction (a float64 attribute that was integral at first), from "
            "the first fractional value on",
            "encoding": "ADCore codec of a compressed buffer (no typed array then)",
            "type": "element type of a compressed array",
            "shape": "C-order shape of a compressed array, comma-separated",
            "statusMessage": "Diamond data server status text for the IOC",
            "dataSource": "Diamond data server source name",
            "image": "the NDArray in C order: dims (y, x) for 2-D, by ColorMode for 3-D",
        },
    ),
)
