"""Open Ephys GUI streams: the ZMQ Interface plugin and the Event Broadcaster plugin.

ZMQ Interface (open-ephys-plugins/zmq-interface, Source/ZmqInterface.cpp) publishes on PUB
``tcp://*:5556`` three kinds of multipart message, each with a JUCE ``JSON::toString`` header:

* ``b"DATA\\0"``, header, float32 samples of *one* channel (one message per channel per block);
* ``b"EVENT\\0"``, header, optional payload (TTL: uint8 line, uint8 state, uint64 word);
* ``b"EVENT\\0"``, header with key ``spike``, float32 waveform ``[num_channels][num_samples]``.

``message_num`` counts every message of an acquisition from 1, so it is one gap-accounting
sequence (``seq_key`` ""). Plugin versions up to 0.2.x used ``message_no`` and sent the whole
block ``[n_channels][n_samples]`` in one message. The Event Broadcaster sends two frames: a
uint16 type (0 TTL, 1 spike) and a JUCE JSON text or a raw serialized event.

The GUI also binds REP on data port + 1 and drops clients that stop sending heartbeats, so a
recorder must heartbeat like the plugin's own python client: `HeartbeatClient`.

Encoders rebuild the GUI's bytes exactly (CRLF, 2-space indent, JUCE's double formatting, key
order of the C++ source) so simulators and replayers are indistinguishable from the real GUI.
"""

from __future__ import annotations

import functools
import json
import math
import operator
import re
import struct
import time
import uuid as uuid_module
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import zmq

from recorder.endpoints import port_plus_one
from recorder.errors import MalformedMessage, UsageError
from recorder.protocols.base import (
    NO_SEQ,
    NO_TIME,
    BulkFrame,
    Decoded,
    FrameBytes,
    PlacedRun,
    as_array,
    frame_sizes,
)
from recorder.protocols.descriptor import (
    HEARTBEAT,
    Demo,
    ProtocolDescriptor,
    StreamMeaning,
    head,
    json_map,
    sniffer,
)
from recorder.protocols.json_columns import ShapeColumns
from recorder.protocols.json_shapes import Shape, ShapeCache

NAME = "openephys"
DATA_ENVELOPE = b"DATA\x00"
EVENT_ENVELOPE = b"EVENT\x00"
EVENT_TYPES = {
    0: "TIMESTAMP",
    1: "BUFFER_SIZE",
    2: "PARAMETER_CHANGE",
    3: "TTL",
    4: "SPIKE",
    5: "MESSAGE",
    6: "BINARY_MSG",
}
TTL = 3
HEARTBEAT_REPLY = b"heartbeat received"
EVENT_REPLY = b"message correctly parsed"
BAD_JSON_REPLY = b"JSON message could not be read"
BROADCAST_TTL, BROADCAST_SPIKE = 0, 1

_TTL = struct.Struct("<BBq")  # word is a uint64 bit mask; kept as its int64 bit pattern
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_NL = "\r\n"  # JUCE's newLine
_MAX_REQUEST = 64000 - 1  # ZmqInterface reads heartbeats into a 64000-byte buffer


# --------------------------------------------------------------------------- JUCE JSON


def _reduce_float_string(s: str) -> str:
    """JUCE ``reduceLengthOfFloatString``: drop redundant zeros of mantissa and exponent."""
    end = len(s)
    trim_start = trim_end = exp_start = exp_end = end
    current = ""
    c = end - 1
    while c > 0:
        current = s[c]
        if current == "0" and c + 1 == trim_start:
            trim_start -= 1
        elif current == ".":
            if trim_start == c + 1 and trim_start != end and s[trim_start] == "0":
                trim_start += 1
            break
        elif current in "eE":
            nxt = c + 1
            if nxt != end:
                if s[nxt] == "-":
                    nxt += 1
                exp_start = nxt
                if nxt != end and s[nxt] == "+":
                    nxt += 1
                exp_end = nxt
            while nxt != end and s[nxt] == "0":
                nxt += 1
                exp_end = nxt
            if exp_end == end:
                exp_start = c
            trim_start = trim_end = c
        c -= 1
    if (trim_start != trim_end and current == ".") or exp_start != exp_end:
        if trim_start == trim_end:
            return s[:exp_start] + s[exp_end:]
        if exp_start == exp_end:
            return s[:trim_start] + s[trim_end:]
        if trim_end == exp_start:
            return s[:trim_start] + s[exp_end:]
        return s[:trim_start] + s[trim_end:exp_start] + s[exp_end:]
    return s


_PLACES_BELOW_1 = ((1e-1, 16), (1e-2, 17), (1e-3, 18), (1e-4, 19))
_PLACES_FROM_1 = ((1e1, 15), (1e2, 14), (1e3, 13), (1e4, 12), (1e5, 11))
"""Decimal places serialiseDouble uses by magnitude (then trimmed): ~17 significant digits."""


def juce_double(x: float) -> str:
    """A double as JUCE's JSON writer prints it (``serialiseDouble``): ``30000.0``, ``0.1``,
    ``1.234567e6``; non-finite values become ``null``."""
    x = float(x)
    if not math.isfinite(x):
        return "null"
    a = abs(x)
    if a >= 1.0e6 or a <= 1.0e-5:
        return _reduce_float_string(f"{x:.15e}")
    if float(int(x)) == x:
        return f"{x:.1f}"
    if a < 1.0:
        places = next((p for limit, p in _PLACES_BELOW_1 if a >= limit), 20)
    else:
        places = next((p for limit, p in _PLACES_FROM_1 if a < limit), 10)
    return _reduce_float_string(f"{x:.{places}f}")


_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\t": "\\t",
    "\r": "\\r",
    "\n": "\\n",
}


_PLAIN = re.compile(r"[ !#-\[\]-~]*")
"""Printable ASCII but `"` and `\\`: written as it is (every key and most values)."""


def juce_string(s: str) -> str:
    """JUCE ``JSONFormatter::writeString``: ASCII kept, the rest as lowercase ``\\uXXXX``
    (UTF-16 surrogate pairs above U+FFFF); a NUL ends the string as in C."""
    if _PLAIN.fullmatch(s):
        return '"' + s + '"'
    out = []
    for ch in s.split("\0", 1)[0]:
        code = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif 32 <= code < 127:
            out.append(ch)
        elif code > 0xFFFF:
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:
            out.append(f"\\u{code:04x}")
    return '"' + "".join(out) + '"'


def juce_json(value: Any, indent: int = 0) -> str:
    """``JSON::toString(var)`` with JUCE defaults (multi-line). Python int = JUCE int/int64,
    float = double, dict keeps its insertion order like ``DynamicObject``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return juce_double(float(value))
    if isinstance(value, str):
        return juce_string(value)
    inner = " " * (indent + 2)
    if isinstance(value, Mapping):
        items = [
            f"{inner}{juce_string(str(k))}: {juce_json(v, indent + 2)}" for k, v in value.items()
        ]
        return "{" + _NL + ("," + _NL).join(items) + (_NL if items else "") + " " * indent + "}"
    if isinstance(value, Sequence):
        if not value:
            return "[]"
        items = [inner + juce_json(v, indent + 2) for v in value]
        return "[" + _NL + ("," + _NL).join(items) + _NL + " " * indent + "]"
    raise TypeError(f"cannot write {type(value).__name__} as JUCE JSON")


# --------------------------------------------------------------------------- encoders


def _header(obj: Mapping[str, Any]) -> bytes:
    return juce_json(obj).encode("utf-8")


def _f32(x: float) -> float:
    """The GUI passes C++ floats; JUCE stores them as doubles, so print the float32 value."""
    return float(np.float32(x))


def encode_data(
    samples: Any,
    *,
    message_num: int,
    stream: str,
    channel_num: int,
    sample_num: int,
    sample_rate: float,
    timestamp_ms: int | None = None,
    channel_name: str | None = None,
) -> list[bytes]:
    """One channel's block as ZmqInterface::sendData sends it. ``timestamp_ms=None`` omits the
    key (older plugins); `channel_name` (newer plugins) goes right after channel_num."""
    data = np.ascontiguousarray(samples, dtype="<f4").reshape(-1)
    content: dict[str, Any] = {"stream": stream, "channel_num": channel_num}
    if channel_name is not None:
        content["channel_name"] = channel_name
    content.update(num_samples=data.size, sample_num=sample_num, sample_rate=_f32(sample_rate))
    header: dict[str, Any] = {
        "message_num": message_num,
        "type": "data",
        "content": content,
        "data_size": data.size * 4,
    }
    if timestamp_ms is not None:
        header["timestamp"] = timestamp_ms
    return [DATA_ENVELOPE, _header(header), data.tobytes()]


def encode_event(
    *,
    message_num: int,
    stream: str,
    source_node: int,
    event_type: int,
    sample_num: int,
    data: bytes = b"",
    timestamp_ms: int | None = None,
) -> list[bytes]:
    """ZmqInterface::sendEvent: the payload frame is only sent when there is data."""
    content = {
        "stream": stream,
        "source_node": source_node,
        "type": event_type,
        "sample_num": sample_num,
    }
    header: dict[str, Any] = {
        "message_num": message_num,
        "type": "event",
        "content": content,
        "data_size": len(data),
    }
    if timestamp_ms is not None:
        header["timestamp"] = timestamp_ms
    return [EVENT_ENVELOPE, _header(header), *([bytes(data)] if data else [])]


def encode_ttl(
    *,
    message_num: int,
    stream: str,
    source_node: int,
    sample_num: int,
    line: int,
    state: bool,
    word: int | None = None,
    timestamp_ms: int | None = None,
) -> list[bytes]:
    """A TTL event; `word` (the line-state bit mask) defaults to just this line's bit."""
    if word is None:
        word = (1 << line) if state else 0
    payload = struct.pack("<BBQ", line, int(bool(state)), word)
    return encode_event(
        message_num=message_num,
        stream=stream,
        source_node=source_node,
        event_type=TTL,
        sample_num=sample_num,
        data=payload,
        timestamp_ms=timestamp_ms,
    )


def encode_spike(
    waveforms: Any,
    *,
    message_num: int,
    stream: str,
    source_node: int,
    electrode: str,
    sample_num: int,
    sorted_id: int = 0,
    threshold: Sequence[float] | None = None,
    timestamp_ms: int | None = None,
) -> list[bytes]:
    """ZmqInterface::sendSpikeEvent: key ``spike``, no ``data_size``, float32 thresholds."""
    wave = np.ascontiguousarray(waveforms, dtype="<f4")
    if wave.ndim != 2:
        raise ValueError("spike waveforms must be 2-D (num_channels, num_samples)")
    n_ch, n_s = wave.shape
    thr = [0.0] * n_ch if threshold is None else list(threshold)
    spike = {
        "stream": stream,
        "source_node": source_node,
        "electrode": electrode,
        "sample_num": sample_num,
        "num_channels": n_ch,
        "num_samples": n_s,
        "sorted_id": sorted_id,
        "threshold": [_f32(t) for t in thr],
    }
    header: dict[str, Any] = {"message_num": message_num, "type": "spike", "spike": spike}
    if timestamp_ms is not None:
        header["timestamp"] = timestamp_ms
    return [EVENT_ENVELOPE, _header(header), wave.tobytes()]


def encode_legacy(
    buffer: Any,
    *,
    message_no: int,
    timestamp: int,
    sample_rate: int,
    n_real_samples: int | None = None,
) -> list[bytes]:
    """Plugin 0.2.0 and older: the whole block ``[n_channels][n_samples]`` in one message;
    ``timestamp`` is a sample count and ``sample_rate`` an int."""
    buf = np.ascontiguousarray(buffer, dtype="<f4")
    if buf.ndim != 2:
        raise ValueError("legacy buffer must be 2-D (n_channels, n_samples)")
    n_ch, n_s = buf.shape
    content = {
        "n_channels": n_ch,
        "n_samples": n_s,
        "n_real_samples": n_s if n_real_samples is None else n_real_samples,
        "timestamp": timestamp,
        "sample_rate": int(sample_rate),
    }
    header = {
        "message_no": message_no,
        "type": "data",
        "content": content,
        "data_size": n_ch * n_s * 4,
    }
    return [DATA_ENVELOPE, _header(header), buf.tobytes()]


def encode_broadcast(kind: int, body: Mapping[str, Any] | bytes) -> list[bytes]:
    """Event Broadcaster: uint16 type (0 TTL, 1 spike), then JUCE JSON or raw bytes.
    Its JSON uses e.g. ``sample_number`` and boolean ``state`` (EventBroadcaster.cpp)."""
    payload = bytes(body) if isinstance(body, bytes | bytearray) else _header(body)
    return [struct.pack("<H", kind), payload]


def channel_of(frames: Sequence[FrameBytes]) -> tuple[str, int] | None:
    """(stream, channel) of a one-channel data message, read from its header alone; None for
    anything else (events, spikes, legacy whole blocks, malformed messages: the codec judges
    those). The live view's per-channel window (ProtocolDescriptor.channel_of)."""
    if len(frames) < 3 or bytes(frames[0][:5]) != DATA_ENVELOPE:
        return None
    try:
        content = _json_object(frames[1], "header").get("content")
        if not isinstance(content, dict):
            return None
        return str(content["stream"]), int(content["channel_num"])
    except (MalformedMessage, ValueError, TypeError, KeyError):
        return None


def heartbeat_request(application: str, uuid: str) -> bytes:
    """What the plugin's python client sends every 2 s (``json.dumps`` separators)."""
    return json.dumps({"application": application, "uuid": uuid, "type": "heartbeat"}).encode()


def heartbeat_reply(request: FrameBytes) -> bytes:
    """The GUI's REP answer to one request (ZmqInterface::run).

    JUCE's parser wants ``{`` or ``[`` after whitespace, ignores trailing text and accepts an
    empty text; Python's json stands in for it. ``"type": "event"`` gets its own answer.
    """
    text = bytes(request)[:_MAX_REQUEST].split(b"\0", 1)[0].decode("utf-8", "replace").lstrip()
    if not text:
        return HEARTBEAT_REPLY
    if text[0] not in "{[":
        return BAD_JSON_REPLY
    try:
        value, _ = json.JSONDecoder().raw_decode(text)
    except (ValueError, RecursionError):
        return BAD_JSON_REPLY
    if isinstance(value, dict) and value.get("type") == "event":
        return EVENT_REPLY
    return HEARTBEAT_REPLY


# --------------------------------------------------------------------------- decoder helpers


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _nbytes(frame: FrameBytes) -> int:
    return memoryview(frame).nbytes


def _json_object(frame: FrameBytes, what: str) -> dict:
    try:
        value = json.loads(bytes(frame).decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise MalformedMessage(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise MalformedMessage(f"{what} is JSON {type(value).__name__}, not an object")
    return value


def _get(obj: dict, key: str, where: str) -> Any:
    if key not in obj:
        raise MalformedMessage(f"{where} has no {key!r}")
    return obj[key]


def _int(obj: dict, key: str, where: str, minimum: int = _INT64_MIN) -> int:
    v = _get(obj, key, where)
    if not isinstance(v, int) or isinstance(v, bool):
        raise MalformedMessage(f"{where}.{key} is {type(v).__name__}, not an integer")
    if not minimum <= v <= _INT64_MAX:
        raise MalformedMessage(f"{where}.{key} = {v} is out of range")
    return v


def _number(obj: dict, key: str, where: str) -> float:
    v = _get(obj, key, where)
    if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
        raise MalformedMessage(f"{where}.{key} is {type(v).__name__}, not a finite number")
    return float(v)


def _str(obj: dict, key: str, where: str) -> str:
    v = _get(obj, key, where)
    if not isinstance(v, str):
        raise MalformedMessage(f"{where}.{key} is {type(v).__name__}, not a string")
    return v


def _dict(obj: dict, key: str, where: str) -> dict:
    v = _get(obj, key, where)
    if not isinstance(v, dict):
        raise MalformedMessage(f"{where}.{key} is {type(v).__name__}, not an object")
    return v


def _scalars(
    obj: dict, out: dict[str, int | float | str | bool] | None = None, skip: frozenset = frozenset()
) -> dict[str, int | float | str | bool]:
    """Columns from a JSON object's members (but `skip`): scalars typed as they are, lists and
    objects as compact JSON text so they stay findable (the header frame keeps the original)."""
    if out is None:
        out = {}
    for k, v in obj.items():
        if k in skip:
            continue
        fits_int = isinstance(v, int) and _INT64_MIN <= v <= _INT64_MAX
        if fits_int or isinstance(v, bool | str) or (isinstance(v, float) and math.isfinite(v)):
            out[k] = v
        elif isinstance(v, list | dict):
            out[k] = json.dumps(v, separators=(",", ":"))
    return out


_DATA_KEYS = frozenset(
    ("stream", "channel_num", "channel_name", "num_samples", "sample_num", "sample_rate")
)
"""content keys of a data message the codec reads itself."""


def _frame_count(frames: Sequence, expected: int, what: str) -> None:
    if len(frames) != expected:
        raise MalformedMessage(f"{what} needs {expected} frames, got {len(frames)}")


def _floats(frame: FrameBytes, shape: tuple[int, ...], what: str) -> np.ndarray:
    """float32 view of `frame`; sizes compared in Python ints first (no int64 overflow)."""
    need = math.prod(shape) * 4
    if _nbytes(frame) != need:
        raise MalformedMessage(f"{what} payload is {_nbytes(frame)} bytes, header says {need}")
    return as_array(frame, "<f4", shape)


_UNSAFE = re.compile(r"[^A-Za-z0-9 _.\-]")


def _safe(name: str) -> str:
    """One path component of a bulk array name: no '/', no '..' (the original is a column)."""
    clean = _UNSAFE.sub("_", name)
    return "_" if clean in ("", ".", "..") else clean


def _source_ns(header: dict) -> int:
    if "timestamp" not in header:
        return NO_TIME
    ms = _int(header, "timestamp", "header", minimum=_INT64_MIN // 1_000_000)
    if ms > _INT64_MAX // 1_000_000:
        raise MalformedMessage(f"header.timestamp = {ms} ms is out of range")
    return ms * 1_000_000


# --------------------------------------------------------------------------- decoder


_RUN_PATHS = {
    ("message_num",): int,
    ("type",): str,
    ("content", "stream"): str,
    ("content", "channel_num"): int,
    ("content", "num_samples"): int,
    ("content", "sample_num"): int,
    ("data_size",): int,
}
_RATE = ("content", "sample_rate")
_NAME = ("content", "channel_name")
_STAMP = ("timestamp",)
_MS_MIN, _MS_MAX = _INT64_MIN // 1_000_000, _INT64_MAX // 1_000_000


def _same_until(values: tuple, want: bytes, end: int) -> int:
    """How many of the first `end` values equal `want`."""
    if values[:end].count(want) == end:
        return end
    for k in range(end):
        if values[k] != want:
            return k
    return end


def _ints_until(raw: tuple, end: int, low: int, high: int) -> tuple[list[int], int]:
    """The first `end` values as ints, and how many of them lie in [low, high]. A field that
    is the same in every message of the run (num_samples, data_size; sample_num within a
    block) is converted once."""
    raw = raw[:end]
    if raw and raw.count(raw[0]) == len(raw):
        values = [int(raw[0])] * len(raw)
    else:
        values = list(map(int, raw))
    if values and (min(values) < low or max(values) > high):
        end = next(k for k, v in enumerate(values) if not low <= v <= high)
    return values, end


def _texts_or_none(raw: Sequence[bytes]) -> list[str | None]:
    """The values as text, None where one is not UTF-8."""
    try:
        return list(map(bytes.decode, raw))
    except UnicodeDecodeError:
        pass
    out: list[str | None] = []
    for value in raw:
        try:
            out.append(value.decode("utf-8"))
        except UnicodeDecodeError:
            out.append(None)
    return out


def _matched(
    messages: Sequence[Sequence[FrameBytes]],
    groups,
    same: Sequence[tuple[int, bytes]],
    first_step: int = 0,
) -> tuple[list[tuple], list]:
    """The header groups and data frames of the leading messages that are three frames, the
    data envelope and a header `groups` matches, whose group i equals `want` for each (i, want)
    in `same` (the run's kind, stream and sample rate).

    A step of messages at a time, in columns (C loops, not a Python step per message): each
    test cuts the step at the first message that fails it, and a cut ends the run. Steps grow
    from `first_step` (at least _FIRST_STEP), so a run costs the matching of its own headers and
    at most one step more: matching the whole rest of a batch at each run made the work
    quadratic (three probes in one batch end a run every 384 messages; 6 headers were matched
    for each one stored). A caller that expects runs as long as the last passes its length + 1:
    the first step then ends one past the cut."""
    found: list[tuple] = []
    data: list = []
    for part in _steps(messages, first_step):
        got, frames = _matched_step(part, groups)
        n = len(got)
        for i, want in same:
            n = _same_until(tuple(map(operator.itemgetter(i), got)), want, n)
        found += got[:n]
        data += frames[:n]
        if n < len(part):
            break
    return found, data


def _steps(messages: Sequence, first_step: int) -> Iterator[Sequence]:
    """The messages a step at a time, steps doubling from `first_step` (at least
    _FIRST_STEP) to _LAST_STEP: the caller stops at the step where its run ends."""
    pos, step = 0, max(_FIRST_STEP, first_step)
    while pos < len(messages):
        yield messages[pos : pos + step]
        pos += step
        step = min(2 * step, _LAST_STEP)


_FIRST_STEP, _LAST_STEP = 64, 1024


def _matched_step(messages: Sequence[Sequence[FrameBytes]], groups) -> tuple[list[tuple], list]:
    """_matched's tests but `same`, on one step of messages."""
    at, headers, data = _data_frames(messages)
    n = _leading(at)
    matches = list(map(groups, map(bytes, headers)))
    if None in matches:
        n = matches.index(None)
    return list(map(_GROUPS, matches[:n])), data[:n]


def _data_frames(messages: Sequence[Sequence[FrameBytes]]) -> tuple[list[int], list, list]:
    """The indexes, header and data frames of the messages that are three frames, the first
    the data envelope; the others (events between runs, anything malformed) left out."""
    n = len(messages)
    if list(map(len, messages)).count(3) == n and n:
        envelopes, headers, data = zip(*messages, strict=True)
        if list(map(bytes, envelopes)).count(DATA_ENVELOPE) == n:
            return list(range(n)), list(headers), list(data)
    at = [k for k, m in enumerate(messages) if len(m) == 3 and bytes(m[0]) == DATA_ENVELOPE]
    return at, [messages[k][1] for k in at], [messages[k][2] for k in at]


def _leading(at: list[int], first: int = 0) -> int:
    """How many of the indexes are first, first + 1, ... (messages one after the other)."""
    n = len(at)
    if not n or at[-1] == first + n - 1:
        return n
    return next(k for k, i in enumerate(at) if i != first + k)


def _read_columns(
    messages: Sequence[Sequence[FrameBytes]],
    columns: ShapeColumns,
    want: dict[int, bytes],
    first_step: int,
) -> tuple[np.ndarray, list[list[bytes]], list, list[int]]:
    """_matched by `ShapeColumns` (numpy over each step's headers instead of a regex match
    each): the int values (n, ints), the text values, the data frames and the indexes of the
    data messages whose headers the columns read with the fixed values `want`, up to the
    first they cannot. Across the events between data messages: a run ends at each, and a
    read costs ~200 us however few headers it holds, so the runs after an event are read with
    the one before (decode_run keeps them). Steps as _matched."""
    ints: list[np.ndarray] = []
    texts: list[list[list[bytes]]] = []
    data: list = []
    at: list[int] = []
    pos = 0
    for part in _steps(messages, first_step):
        where, headers, frames = _data_frames(part)
        n, values, raw = columns.read(headers, want)
        ints.append(values)
        texts.append(raw)
        data += frames[:n]
        at += [pos + k for k in where[:n]]
        if n < len(headers):
            break
        pos += len(part)
    joined = [[v for part in texts for v in part[j]] for j in range(len(columns.texts))]
    return np.concatenate(ints) if len(ints) > 1 else ints[0], joined, data, at


_GROUPS = operator.methodcaller("groups")


class _RunLayout:
    """Where a data header shape keeps the values a run needs (group indexes), or why not."""

    def __init__(self, shape: Shape):
        slots = shape.slots
        content = {p for p in shape.paths if p[0] == "content"}
        wanted = {p for p in _RUN_PATHS if p[0] == "content"} | {_RATE}
        if not all(slots.get(p, (0, None))[1] is kind for p, kind in _RUN_PATHS.items()):
            raise ValueError("not a data header")
        if content - {_NAME} != wanted or _RATE not in slots:
            raise ValueError("content keys beyond today's: decode() makes their columns")
        if _NAME in content and slots.get(_NAME, (0, None))[1] is not str:
            raise ValueError("channel_name is not a string")
        if _STAMP in shape.paths and slots.get(_STAMP, (0, None))[1] is not int:
            raise ValueError("timestamp is not an integer")
        at = {p: slots[p][0] for p in (*_RUN_PATHS, _RATE)}
        self.seq, self.kind = at[("message_num",)], at[("type",)]
        self.stream, self.channel = at[("content", "stream")], at[("content", "channel_num")]
        self.n, self.sample = at[("content", "num_samples")], at[("content", "sample_num")]
        self.rate, self.rate_is_int = at[_RATE], slots[_RATE][1] is int
        self.size = at[("data_size",)]
        self.name = slots[_NAME][0] if _NAME in content else None
        self.stamp = slots[_STAMP][0] if _STAMP in shape.paths else None
        self.groups = shape.groups
        # the int values a run reads, in the order _run_by_columns takes them
        ints = [self.seq, self.channel, self.n, self.sample, self.size]
        if self.stamp is not None:
            ints.append(self.stamp)
        texts = [self.name] if self.name is not None else []
        try:  # (another key at the top level: the regex reads the run, as before)
            self.columns: ShapeColumns | None = ShapeColumns(
                shape, ints, texts, [self.kind, self.stream, self.rate]
            )
        except ValueError:
            self.columns = None


class _RunValues(NamedTuple):
    """The values of data messages that pass decode()'s checks, and where those messages are
    (`at`: indexes in the messages read); `read`: how many headers were read before the
    checks."""

    read: int
    seq: list[int]
    channel: list[int]
    num_samples: list[int]
    sample: list[int]
    stamp: list[int]
    names: list[str | None]
    data: list
    at: list[int]

    def cut(self, n: int, offset: int) -> tuple[_RunValues, _RunValues]:
        """The first n values and the rest, the rest's indexes moved by `offset`."""
        head, tail = self.taking(slice(0, n)), self.taking(slice(n, None))
        return head, tail._replace(at=[offset + i for i in tail.at]) if offset else tail

    def taking(self, which: slice | list[int]) -> _RunValues:
        """The values at `which` (a slice, or indexes)."""

        def take(values: list) -> list:
            return values[which] if isinstance(which, slice) else [values[k] for k in which]

        return _RunValues(
            self.read,
            take(self.seq),
            take(self.channel),
            take(self.num_samples),
            take(self.sample),
            take(self.stamp),
            take(self.names),
            take(self.data),
            take(self.at),
        )


_NO_VALUES = _RunValues(0, [], [], [], [], [], [], [], [])


def _run_by_regex(
    messages: Sequence[Sequence[FrameBytes]], layout: _RunLayout, want: dict[int, bytes], step: int
) -> _RunValues:
    """A run's values from one regex match a header (_matched)."""
    found, data = _matched(messages, layout.groups, list(want.items()), step)
    end = len(found)
    if end == 0:
        return _NO_VALUES
    sizes = frame_sizes(data)
    fields = list(zip(*found, strict=True))
    seqs, end = _ints_until(fields[layout.seq], end, _INT64_MIN, _INT64_MAX)
    chans, end = _ints_until(fields[layout.channel], end, _INT64_MIN, _INT64_MAX)
    samples, end = _ints_until(fields[layout.sample], end, _INT64_MIN, _INT64_MAX)
    counts, end = _ints_until(fields[layout.n], end, 0, _INT64_MAX)
    data_sizes, end = _ints_until(fields[layout.size], end, _INT64_MIN, _INT64_MAX)
    for k in range(end):
        if data_sizes[k] != counts[k] * 4 or sizes[k] != counts[k] * 4:
            end = k
            break
    if layout.stamp is not None:
        ms, end = _ints_until(fields[layout.stamp], end, _MS_MIN, _MS_MAX)
        stamps = [t * 1_000_000 for t in ms[:end]]
    else:
        stamps = [NO_TIME] * end
    names: list[str | None] = [None] * end
    if layout.name is not None:
        names = _texts_or_none(fields[layout.name][:end])
        if None in names:
            end = names.index(None)
    return _RunValues(
        len(found),
        seqs[:end],
        chans[:end],
        counts[:end],
        samples[:end],
        stamps[:end],
        names[:end],
        data[:end],
        list(range(end)),
    )


def _run_by_columns(
    messages: Sequence[Sequence[FrameBytes]], layout: _RunLayout, want: dict[int, bytes], step: int
) -> _RunValues:
    """The values of data messages whose headers were read together (ShapeColumns, across
    events): the same checks as _run_by_regex, on whole columns. The ints are plain digits of
    at most 15 (ShapeColumns reads no others), so only the sizes, the timestamp's range and a
    name that is not UTF-8 can fail here. A message that fails is left out, as an event is:
    the run before it ends there, and decode() says what it is."""
    assert layout.columns is not None
    ints, texts, data, at = _read_columns(messages, layout.columns, want, step)
    if not data:
        return _NO_VALUES
    seq, chan, count, sample, size = (ints[:, j] for j in range(5))
    sizes = np.array(frame_sizes(data), dtype=np.int64)
    bad = (size != count * 4) | (sizes != count * 4)
    if layout.stamp is not None:
        bad |= ints[:, 5] > _MS_MAX
    stamps = ints[:, 5] * 1_000_000 if layout.stamp is not None else np.full(len(data), NO_TIME)
    names: list[str | None] = [None] * len(data)
    if layout.name is not None:
        names = _texts_or_none(texts[0])
        if None in names:
            bad |= np.array([name is None for name in names])
    values = _RunValues(
        len(data),
        seq.tolist(),
        chan.tolist(),
        count.tolist(),
        sample.tolist(),
        stamps.tolist(),
        names,
        data,
        at,
    )
    if not bad.any():
        return values
    return values.taking(np.flatnonzero(~bad).tolist())


class _Ahead(NamedTuple):
    """Values read for data messages past the run they were read with (the runs after its
    events), kept for the decode_run calls that reach them: of which batch, read how."""

    messages: Sequence[Sequence[FrameBytes]]
    after: int  # where the run returned last ends: from there to the first value, no run
    values: _RunValues  # `at`: indexes in `messages`
    layout: _RunLayout
    stream: str
    rate: float


class OpenEphysCodec:
    """Decoder of ZMQ Interface (current and legacy) and Event Broadcaster messages."""

    name = NAME

    def __init__(self) -> None:
        self._shapes = ShapeCache()
        self._layouts: dict[int, _RunLayout | None] = {}  # by id of the shape
        # how many messages the last few reads spanned: the next likely spans as many as the
        # longest (a read that a batch's end cut short says nothing, and a long stretch read in
        # steps from a short guess cost a read per step: on the simulator's stream, 409 reads
        # for 241 runs)
        self._recent_reads: deque[int] = deque(maxlen=4)
        self._ahead: _Ahead | None = None  # runs read with an earlier one, not yet asked for

    def decode_run(self, messages: Sequence[Sequence[FrameBytes]], start: int) -> PlacedRun | None:
        """Continuous data messages from `start` decoded together (base.RunCodec): those whose
        header has a learnt shape and whose values pass every check decode() makes, with one
        stream and one sample rate. Anything else ends the run and goes through decode().
        Column by column: the headers of a run are read together (ShapeColumns), with those of
        the runs after it that the events between them cut off (kept for the calls that reach
        them), or with one regex match each where a header's layout is beyond what those read."""
        ahead = self._ahead
        if (
            ahead is not None
            and ahead.messages is messages
            and ahead.after <= start <= ahead.values.at[0]
        ):
            if start < ahead.values.at[0]:
                return None  # left out by the read: an event, or a message decode() must judge
            v, layout, stream, rate = ahead.values, ahead.layout, ahead.stream, ahead.rate
            run, rest = v.cut(_leading(v.at, start), 0)
        else:
            read = self._read_run(messages, start)
            if read is None:
                return None
            v, layout, stream, rate = read
            if v.at:
                self._recent_reads.append(v.at[-1] + 1)
            run, rest = v.cut(_leading(v.at), start)
        end = len(run.seq)
        self._ahead = _Ahead(messages, start + end, rest, layout, stream, rate) if rest.at else None
        if end == 0:
            return None
        columns: dict[str, list] = {
            "stream": [stream] * end,
            "channel_num": run.channel,
            "num_samples": run.num_samples,
            "sample_num": run.sample,
            "sample_rate": [rate] * end,
        }
        if layout.name is not None:
            columns["channel_name"] = run.names
        return PlacedRun(
            seq=run.seq,
            source_ns=run.stamp,
            columns=columns,
            frame=2,
            name=f"continuous/{_safe(stream)}",
            rows=columns["sample_num"],
            cols=columns["channel_num"],
            arrays=list(map(functools.partial(np.frombuffer, dtype="<f4"), run.data)),
            channel_names=run.names,
            sample_rate=rate,
            units=None,
        )

    def _read_run(
        self, messages: Sequence[Sequence[FrameBytes]], start: int
    ) -> tuple[_RunValues, _RunLayout, str, float] | None:
        """The values of the data messages from `start` on that one read takes (`at` from
        `start`), with the layout, stream and sample rate of the first; None: it is no data
        message a run can start with."""
        layout, first = self._layout_of(messages[start])
        if layout is None or first is None:
            return None
        try:
            stream = first[layout.stream].decode("utf-8")
            rate = float(first[layout.rate])
        except UnicodeDecodeError:
            return None
        if not math.isfinite(rate):
            return None
        want = {
            layout.kind: b"data",
            layout.stream: first[layout.stream],
            layout.rate: first[layout.rate],
        }
        rest, step = messages[start:], max(self._recent_reads, default=0) + 1
        v = _run_by_columns(rest, layout, want, step) if layout.columns is not None else None
        if v is None or v.read == 0:  # (a first header the columns cannot read: a sign, ...)
            v = _run_by_regex(rest, layout, want, step)
        return v, layout, stream, rate

    def _layout_of(self, frames: Sequence[FrameBytes]) -> tuple[_RunLayout | None, tuple | None]:
        """The run layout of a message's header (learnt from it when new), with its groups."""
        if len(frames) != 3:
            return None, None
        header = bytes(frames[1])
        shape = self._shapes.match(header)
        if shape is None:
            if self._shapes.full:
                return None, None
            try:
                json.loads(header)
            except (ValueError, RecursionError):
                return None, None
            shape = self._shapes.learn(header)
            if shape is None:
                return None, None
        key = id(shape)
        if key not in self._layouts:
            try:
                self._layouts[key] = _RunLayout(shape)
            except ValueError:
                self._layouts[key] = None
        layout = self._layouts[key]
        if layout is None:
            return None, None
        m = layout.groups(header)
        return (layout, m.groups()) if m is not None else (None, None)

    def decode(self, frames: Sequence[FrameBytes]) -> Decoded:
        sizes = frame_sizes(frames)
        n = len(sizes)
        if n == 0:
            raise MalformedMessage("empty message")
        if n == 2 and sizes[0] == 2:
            return self._broadcast(frames)
        envelope = bytes(frames[0]) if sizes[0] <= 8 else b""
        if envelope not in (DATA_ENVELOPE, EVENT_ENVELOPE):
            raise MalformedMessage(f"unknown envelope {bytes(memoryview(frames[0])[:16])!r}")
        if n < 2:
            raise MalformedMessage(f"{envelope!r} message has no header frame")
        header = _json_object(frames[1], "header")
        if "message_num" not in header and "message_no" in header:
            return self._legacy(envelope, header, frames)
        seq = _int(header, "message_num", "header")
        kind = _str(header, "type", "header")
        expected = ("data",) if envelope == DATA_ENVELOPE else ("event", "spike")
        if kind not in expected:
            raise MalformedMessage(f"type {kind!r} does not fit envelope {envelope!r}")
        source_ns = _source_ns(header)
        if kind == "data":
            return self._data(header, frames, seq, source_ns)
        if kind == "event":
            return self._event(header, frames, seq, source_ns)
        return self._spike(header, frames, seq, source_ns)

    @staticmethod
    def _data(header: dict, frames: Sequence, seq: int, source_ns: int) -> Decoded:
        _frame_count(frames, 3, "data message")
        c = _dict(header, "content", "header")
        stream = _str(c, "stream", "content")
        num_samples = _int(c, "num_samples", "content", minimum=0)
        channel = _int(c, "channel_num", "content")
        sample = _int(c, "sample_num", "content")
        rate = _number(c, "sample_rate", "content")
        columns: dict[str, int | float | str | bool] = {
            "stream": stream,
            "channel_num": channel,
            "num_samples": num_samples,
            "sample_num": sample,
            "sample_rate": rate,
        }
        channel_name = _str(c, "channel_name", "content") if "channel_name" in c else None
        if channel_name is not None:
            columns["channel_name"] = channel_name
        units = None
        if len(c) > 5 + (channel_name is not None):  # keys beyond today's (bit_volts, units)
            _scalars(c, columns, _DATA_KEYS)
            units = c.get("units") if isinstance(c.get("units"), str) else None
        data_size = _int(header, "data_size", "header", minimum=0)
        if data_size != num_samples * 4:
            raise MalformedMessage(f"data_size {data_size} != 4 * num_samples ({num_samples})")
        array = _floats(frames[2], (num_samples,), "data")
        # Placed at (sample_num, channel_num): the store keeps one (samples, channels) array
        # per Open Ephys stream.
        bulk = [
            BulkFrame(
                2,
                f"continuous/{_safe(stream)}",
                array,
                row=sample,
                column=channel,
                sample_rate=rate,
                channel_name=channel_name,
                units=units,
            )
        ]
        return Decoded("data", seq, "", source_ns, bulk, columns)

    @staticmethod
    def _event(header: dict, frames: Sequence, seq: int, source_ns: int) -> Decoded:
        c = _dict(header, "content", "header")
        event_type = _int(c, "type", "content")
        columns: dict[str, int | float | str | bool] = {
            "sample_num": _int(c, "sample_num", "content"),
            "event_type": event_type,
            "source_node": _int(c, "source_node", "content"),
            "stream": _str(c, "stream", "content"),
        }
        data_size = _int(header, "data_size", "header", minimum=0)
        _frame_count(frames, 3 if data_size else 2, f"event with data_size {data_size}")
        if data_size:
            if _nbytes(frames[2]) != data_size:
                raise MalformedMessage(
                    f"event payload is {_nbytes(frames[2])} bytes, data_size says {data_size}"
                )
            if event_type == TTL and data_size == _TTL.size:
                line, state, word = _TTL.unpack(bytes(frames[2]))
                columns.update(line=line, state=bool(state), word=word)
        return Decoded("event", seq, "", source_ns, [], columns)

    @staticmethod
    def _spike(header: dict, frames: Sequence, seq: int, source_ns: int) -> Decoded:
        _frame_count(frames, 3, "spike message")
        s = _dict(header, "spike", "header")
        stream = _str(s, "stream", "spike")
        electrode = _str(s, "electrode", "spike")
        n_ch = _int(s, "num_channels", "spike", minimum=0)
        n_s = _int(s, "num_samples", "spike", minimum=0)
        columns: dict[str, int | float | str | bool] = {
            "sample_num": _int(s, "sample_num", "spike"),
            "sorted_id": _int(s, "sorted_id", "spike"),
            "electrode": electrode,
            "stream": stream,
            "source_node": _int(s, "source_node", "spike"),
            "num_channels": n_ch,
            "num_samples": n_s,
        }
        array = _floats(frames[2], (n_ch, n_s), "spike")
        where = f"{_safe(stream)}/{_safe(electrode)}"
        bulk = [BulkFrame(2, f"spikes/{where}", array, dims=("channel", "sample"))]
        derived: list[tuple[str, np.ndarray] | BulkFrame] = []
        threshold = s.get("threshold")
        if isinstance(threshold, list) and threshold:
            try:  # C++ floats: float32 holds them exactly
                derived.append((f"spike_threshold/{where}", np.asarray(threshold, "<f4")))
            except (TypeError, ValueError, OverflowError):
                columns["threshold"] = json.dumps(threshold, separators=(",", ":"))
        return Decoded("spike", seq, "", source_ns, bulk, columns, derived)

    @staticmethod
    def _legacy(envelope: bytes, header: dict, frames: Sequence) -> Decoded:
        """message_no formats (plugin <= 0.2.x): whole-block data, loose events and spikes."""
        seq = _int(header, "message_no", "header")
        kind = _str(header, "type", "header")
        if kind == "spike" and envelope == EVENT_ENVELOPE:
            # The old plugin copied num_channels*num_samples *bytes* of float data: keep verbatim.
            _frame_count(frames, 3, "legacy spike")
            return Decoded(
                "spike", seq, "", NO_TIME, [], _scalars(_dict(header, "spike", "header"))
            )
        c = _dict(header, "content", "header")
        data_size = _int(header, "data_size", "header", minimum=0)
        if kind == "event" and envelope == EVENT_ENVELOPE:
            _frame_count(frames, 3 if data_size else 2, f"legacy event with data_size {data_size}")
            if data_size and _nbytes(frames[2]) != data_size:
                raise MalformedMessage(
                    f"event payload is {_nbytes(frames[2])} bytes, data_size says {data_size}"
                )
            return Decoded("event", seq, "", NO_TIME, [], _scalars(c))
        if kind != "data" or envelope != DATA_ENVELOPE:
            raise MalformedMessage(f"legacy type {kind!r} does not fit envelope {envelope!r}")
        _frame_count(frames, 3, "legacy data message")
        n_s = _int(c, "n_samples", "content", minimum=0)
        if "n_channels" in c:
            shape: tuple[int, ...] = (_int(c, "n_channels", "content", minimum=0), n_s)
            name = "continuous_legacy"
        else:  # 0.2.x on GUI 0.5+: one channel per message, like today but with message_no
            _int(c, "channel_num", "content")
            shape, name = (n_s,), f"continuous_legacy/{_safe(str(c.get('stream_id', '')))}"
        _int(c, "timestamp", "content")
        _number(c, "sample_rate", "content")
        if data_size != math.prod(shape) * 4:
            raise MalformedMessage(f"data_size {data_size} does not fit shape {list(shape)}")
        array = _floats(frames[2], shape, "legacy data")
        dims = ("channel", "sample") if len(shape) == 2 else ("sample",)
        bulk = [BulkFrame(2, name, array, dims=dims)]
        return Decoded("data", seq, "", NO_TIME, bulk, _scalars(c))

    @staticmethod
    def _broadcast(frames: Sequence) -> Decoded:
        kind = int.from_bytes(bytes(frames[0]), "little")
        if kind not in (BROADCAST_TTL, BROADCAST_SPIKE):
            raise MalformedMessage(f"Event Broadcaster type {kind} is not 0 (TTL) or 1 (spike)")
        body = bytes(memoryview(frames[1])[:64]).lstrip()
        if body.startswith(b"{"):
            columns = _scalars(_json_object(frames[1], "Event Broadcaster JSON"))
            columns["format"] = "json"
        else:
            head = bytes(memoryview(frames[1])[:_BINARY_TTL_SIZE])
            columns = _broadcast_binary(kind, head, _nbytes(frames[1]))
        return Decoded(
            "event" if kind == BROADCAST_TTL else "spike", NO_SEQ, "", NO_TIME, [], columns
        )


_BINARY_HEAD = struct.Struct("<BBHHHq")  # base type, sub-type, processor, stream, channel, sample
_BINARY_TTL_SIZE = 24 + _TTL.size  # EVENT_BASE_SIZE (the header, then a double time) + TTL data
_PROCESSOR_EVENT, _SPIKE_EVENT, _TTL_CHANNEL = 1, 2, 3


def _broadcast_binary(kind: int, head: bytes, size: int) -> dict[str, int | float | str | bool]:
    """What the GUI's serialized event says in its header (EventBase: Event.h, Spike.h):
    processor id and sample number, and for a TTL event without metadata line, state and word.
    Anything shorter or of another layout is kept as bytes only."""
    columns: dict[str, int | float | str | bool] = {"format": "binary"}
    if size < _BINARY_HEAD.size:
        return columns
    base, sub, node, _stream, _channel, sample = _BINARY_HEAD.unpack_from(head)
    if (kind, base) not in ((BROADCAST_TTL, _PROCESSOR_EVENT), (BROADCAST_SPIKE, _SPIKE_EVENT)):
        return columns
    columns.update(source_node=node, sample_number=sample)
    if kind == BROADCAST_TTL and sub == _TTL_CHANNEL and size == _BINARY_TTL_SIZE:
        line, state, word = _TTL.unpack_from(head, 24)
        columns.update(line=line, state=bool(state), word=word)
    return columns


_EVENT_BROADCASTER_TYPES = (b"\x00\x00", b"\x01\x00")


@sniffer
def sniff(frames: Sequence[FrameBytes]) -> str | None:
    """``openephys`` for a ZMQ Interface envelope followed by a JSON header, or an Event
    Broadcaster uint16 type frame; None otherwise."""
    n = len(frames)
    first = head(frames[0]) if n else b""
    if n >= 2 and first in (DATA_ENVELOPE, EVENT_ENVELOPE):
        return NAME if json_map(frames[1]) is not None else None
    if n == 2 and first in _EVENT_BROADCASTER_TYPES:
        return NAME
    return None


# --------------------------------------------------------------------------- heartbeat client


def heartbeat_endpoint(data_endpoint: str) -> str:
    """The GUI's REP socket listens on the data port + 1."""
    try:
        return port_plus_one(data_endpoint)
    except UsageError:
        raise UsageError(
            f"cannot derive the Open Ephys heartbeat port from {data_endpoint!r}"
        ) from None


class HeartbeatClient:
    """REQ side of the GUI's heartbeat, as Resources/python_client/test_app.py does it.

    Every 2 s a JSON heartbeat goes out; while a reply is outstanding the check repeats every
    second, and after 10 s without any reply the REQ socket is closed and reopened (lazy
    pirate). Drive it from a poll loop: register `socket` for POLLIN, call `on_readable` when it
    fires and `tick(time.monotonic())` on every turn. `tick` returns True when it replaced the
    socket, so the caller re-registers it. Times are seconds on any monotonic clock.
    """

    INTERVAL = 2.0
    RETRY = 1.0
    TIMEOUT = 10.0

    def __init__(
        self,
        ctx: zmq.Context,
        data_endpoint: str,
        application: str = "zmq-recorder",
        *,
        uuid: str | None = None,
        now: float | None = None,
    ):
        self.endpoint = heartbeat_endpoint(data_endpoint)
        self.application = application
        self.uuid = uuid or str(uuid_module.uuid4())
        self._ctx = ctx
        self._waiting = False
        self._last_sent = -math.inf
        self._last_reply = time.monotonic() if now is None else now
        self.replies = 0
        self.reconnects = 0
        self.last_reply: bytes | None = None
        self.socket: zmq.Socket = self._open()

    def _open(self) -> zmq.Socket:
        sock = self._ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        return sock

    @property
    def waiting(self) -> bool:
        """A heartbeat is out and its reply has not come back yet."""
        return self._waiting

    def due(self, now: float) -> bool:
        """True when a new heartbeat should go out now."""
        return not self._waiting and now - self._last_sent > self.INTERVAL

    def send(self, now: float) -> None:
        self._last_sent = now
        try:
            self.socket.send(heartbeat_request(self.application, self.uuid), zmq.NOBLOCK)
        except zmq.Again:  # nothing to queue on yet: try again next interval
            return
        self._waiting = True

    def on_readable(self, now: float) -> bytes | None:
        """Take the GUI's reply off the socket (None if nothing was there)."""
        try:
            reply = self.socket.recv(zmq.NOBLOCK)
        except zmq.Again:
            return None
        self._waiting = False
        self._last_reply = now
        self.replies += 1
        self.last_reply = reply
        return reply

    def tick(self, now: float) -> bool:
        """Send, retry or reconnect as due. True when `socket` was replaced."""
        if now - self._last_sent <= self.INTERVAL:
            return False
        if not self._waiting:
            self.send(now)
            return False
        self._last_sent += self.RETRY
        if now - self._last_reply > self.TIMEOUT:
            self.reconnect(now)
            return True
        return False

    def reconnect(self, now: float) -> None:
        """Lazy pirate: a REQ stuck waiting for a lost reply can only be replaced."""
        self.socket.close(linger=0)
        self.socket = self._open()
        self._waiting = False
        self._last_reply = now
        self.reconnects += 1

    def close(self) -> None:
        self.socket.close(linger=0)


DESCRIPTOR = ProtocolDescriptor(
    name=NAME,
    codec=OpenEphysCodec,
    default_socket="SUB",  # the GUI binds PUB (data) and REP (heartbeat) on port + 1
    receive_apart=True,  # one message per channel per block: ~11k msg/s per Neuropixels probe
    companions=(HEARTBEAT,),
    replay_controls=(HEARTBEAT,),
    sniff=sniff,
    simulator="recorder.simulators.openephys:OpenEphysSimulator",
    demo=Demo(options={"rate": 30}),
    meaning=StreamMeaning(
        seq="message_num: counts every ZMQ Interface message (data, event, spike) of an "
        "acquisition from 1 (message_no before plugin 0.3); none for Event Broadcaster messages",
        source_time="header timestamp: milliseconds since the Unix epoch on the GUI "
        "computer's clock when the message was sent (absent in plugin 0.3.0 and legacy "
        "messages); sample times are sample_num / sample_rate",
        source_epoch="1970-01-01",
        columns={
            "stream": "name of the GUI data stream the message belongs to",
            "channel_num": "channel index within the stream, from 0",
            "channel_name": "channel name (newer plugins only)",
            "num_samples": "samples in the block",
            "sample_num": "sample number (within the stream, from acquisition start) of the "
            "block's first sample, or of the event / spike",
            "sample_rate": "samples per second (Hz) of the stream",
            "bit_volts": "if sent: the channel's bit_volts (physical units per ADC count)",
            "units": "if sent: the channel's physical units",
            "event_type": "Open Ephys event type code: "
            + ", ".join(f"{k} {v}" for k, v in EVENT_TYPES.items()),
            "source_node": "id of the GUI processor that made the event or spike",
            "line": "TTL line (0-based)",
            "state": "TTL state: true = line went high",
            "word": "TTL word: bit mask of all line states after the event (uint64 bits "
            "stored as int64)",
            "electrode": "spike: electrode name",
            "sorted_id": "spike: sorted unit id (0 = unsorted)",
            "num_channels": "spike: channels of the waveform",
            "n_channels": "legacy: channels of the block",
            "n_samples": "legacy: samples per channel of the block",
            "n_real_samples": "legacy: valid samples per channel",
            "timestamp": "legacy data: sample number of the block's first sample",
            "sample_number": "Event Broadcaster: sample number of the event",
            "format": "Event Broadcaster: json or binary body",
            "continuous/": "float32 samples placed at (sample_num, channel_num): the GUI's "
            "buffers are in physical units already (uV for electrode channels, V for ADC "
            "channels), not ADC counts; the ZMQ Interface sends no bit_volts or units",
            "spikes/": "float32 spike waveforms (num_channels, num_samples), uV",
            "spike_threshold/": "float32 detection threshold per spike channel, uV",
            "continuous_legacy": "legacy float32 blocks (n_channels, n_samples); only the "
            "first n_real_samples of each channel are valid",
        },
    ),
    channel_of=channel_of,
)
