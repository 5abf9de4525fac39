"""The Karabo bridge protocol (European XFEL): one train = one multipart message.

Protocol 2.2 sends header/data frame pairs: a msgpack header ``{'source', 'content': 'msgpack',
'metadata'}`` followed by the msgpack map of a source's non-array values, then one header
``{'source', 'content': 'array', 'path', 'dtype', 'shape'}`` plus the raw buffer per array.
The raw buffers become bulk frames (zero-copy views), so detector images land in typed zarr
arrays. Protocol 1.0 packs a whole train into one msgpack frame with arrays as msgpack-numpy maps
inside it: that frame is kept verbatim (replay needs its exact bytes) and `v1_arrays` gives typed
copies for the store on the side.

The encoder mirrors ``karabo_bridge.serializer.serialize`` byte for byte (same msgpack packer
settings, same key order, sources sorted for 2.2, insertion order for 1.0), so a simulator or a
replayer built on it is indistinguishable from the real bridge. Nothing here ever unpickles:
msgpack-numpy object arrays (pickled inside the map) are left undecoded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import msgpack
import numpy as np

from recorder.errors import MalformedMessage
from recorder.protocols.base import (
    NO_SEQ,
    NO_TIME,
    AlikeRun,
    BulkFrame,
    Decoded,
    FrameBytes,
    as_array,
)
from recorder.protocols.descriptor import (
    Demo,
    ProtocolDescriptor,
    StreamMeaning,
    msgpack_map,
    sniffer,
)
from recorder.protocols.karabo_batch import TrainBatches

NAME = "karabo"
NEXT_REQUEST = b"next"
"""The only request a bridge REP server answers with a train."""

_INT64_MAX = 2**63 - 1


def bad_request_reply(request: bytes) -> bytes:
    """The one-frame reply of the real REP server to anything but ``next``.

    karabo_bridge.server.Sender.send: ``b'Error: bad request %b' % msg``; that train is dropped.
    """
    return b"Error: bad request " + bytes(request)


def refuse_request(request: list[bytes]) -> list[bytes] | None:
    """What a REP server answers to a request other than ``next`` (no train is consumed);
    None for ``next``, which gets the next train."""
    if request == [NEXT_REQUEST]:
        return None
    return [bad_request_reply(request[0] if request else b"")]


# --------------------------------------------------------------------------- encoder


def _numpy_default(obj: Any) -> Any:
    """msgpack `default` hook producing the maps msgpack-numpy 0.4.x writes (protocol 1.0).

    Object arrays would need pickling; the real serializer pickles them, we refuse.
    """
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind == "O":
            raise TypeError("object arrays are not supported (msgpack-numpy would pickle them)")
        if obj.dtype.kind == "V":
            kind, descr = b"V", obj.dtype.descr
        else:
            kind, descr = b"", obj.dtype.str
        return {
            b"nd": True,
            b"type": descr,
            b"kind": kind,
            b"shape": obj.shape,
            b"data": obj.tobytes(),
        }
    if isinstance(obj, np.bool_ | np.number):
        return {b"nd": False, b"type": obj.dtype.str, b"data": obj.tobytes()}
    if isinstance(obj, complex):
        return {b"complex": True, b"data": repr(obj)}
    raise TypeError(f"can not serialize {type(obj).__name__!r} object")


def encode_train(
    data: Mapping[str, Mapping[str, Any]],
    metadata: Mapping[str, Mapping[str, Any]] | None = None,
    protocol: str = "2.2",
) -> list[bytes]:
    """Frames of one train, identical to ``karabo_bridge.serializer.serialize`` output.

    `metadata` defaults to each source's ``data[src]['metadata']`` like the real serializer.
    No dummy timestamps: they come from the wall clock, which would break determinism.
    """
    if protocol not in ("1.0", "2.2"):
        raise ValueError(f"unknown Karabo bridge protocol version {protocol!r}")
    if metadata is None:
        metadata = {src: v.get("metadata", {}) for src, v in data.items()}
    if protocol == "1.0":
        train = {}
        for src, values in data.items():
            train[src] = dict(values)
            train[src]["metadata"] = dict(metadata[src])
        return [msgpack.packb(train, use_bin_type=True, default=_numpy_default)]

    pack = msgpack.Packer(use_bin_type=True).pack
    frames: list[bytes] = []
    for src in sorted(data):
        plain: dict[str, Any] = {}
        arrays: list[tuple[str, np.ndarray]] = []
        for key, value in data[src].items():
            if isinstance(value, np.ndarray):
                arrays.append((key, value))
            elif isinstance(value, np.number):
                plain[key] = value.item()
            else:
                plain[key] = value
        header = {"source": src, "content": "msgpack", "metadata": dict(metadata[src])}
        frames += [pack(header), pack(plain)]
        for key, array in arrays:
            if not array.flags["C_CONTIGUOUS"]:  # as the real one: 0-d arrays stay 0-d
                array = np.ascontiguousarray(array)
            header = {
                "source": src,
                "content": "array",
                "path": key,
                "dtype": str(array.dtype),
                "shape": array.shape,
            }
            frames += [pack(header), array.tobytes()]
    return frames


# --------------------------------------------------------------------------- decoder


def _unpack(buf: FrameBytes, what: str, **kwargs: Any) -> Any:
    try:
        return msgpack.unpackb(buf, raw=False, **kwargs)
    except MalformedMessage:
        raise
    except Exception as exc:  # msgpack raises a zoo of types on garbage
        raise MalformedMessage(f"{what} is not valid msgpack: {exc}") from None


def _dtype(spec: Any) -> np.dtype:
    if not isinstance(spec, str | list):
        raise MalformedMessage(f"dtype {spec!r} is neither a string nor a field list")
    try:
        return np.dtype(spec)
    except Exception:  # TypeError, ValueError, even SyntaxError for strings like 'i4,('
        raise MalformedMessage(f"unknown dtype {spec!r}") from None


def _array(buf: FrameBytes, dtype: np.dtype, shape: Any) -> np.ndarray:
    """`as_array`, also turning its rare non-MalformedMessage failures (a shape whose size
    overflows int64 and so passes the length check) into MalformedMessage."""
    try:
        return as_array(buf, dtype, shape)
    except MalformedMessage:
        raise
    except Exception as exc:
        raise MalformedMessage(f"shape {shape!r} does not fit the payload: {exc}") from None


def _v1_hook(obj: dict) -> Any:
    """msgpack object_hook turning msgpack-numpy maps into arrays, never unpickling."""
    if b"nd" in obj:
        try:
            data, descr = obj[b"data"], obj[b"type"]
        except KeyError as exc:
            raise MalformedMessage(f"msgpack-numpy map without {exc.args[0]!r}") from None
        if not isinstance(data, bytes):
            raise MalformedMessage("msgpack-numpy data is not binary")
        if obj[b"nd"] is True:
            kind = obj.get(b"kind", b"")
            if kind == b"O":
                return obj  # a pickle: left as it is
            if kind == b"V" and isinstance(descr, list):
                descr = [tuple(field) if isinstance(field, list) else field for field in descr]
            shape = obj.get(b"shape", ())
            if not isinstance(shape, list | tuple):
                raise MalformedMessage(f"msgpack-numpy shape {shape!r} is not a list")
            return _array(data, _dtype(descr), shape)
        arr = _array(data, _dtype(descr), (1,))
        return arr[0]
    if obj.get(b"complex") is True and isinstance(obj.get(b"data"), str):
        try:
            return complex(obj[b"data"])
        except ValueError:
            raise MalformedMessage(f"bad complex number {obj[b'data']!r}") from None
    return obj


def _source_ns(meta: Mapping[str, Any]) -> int:
    """ns since the Unix epoch: exact from timestamp.sec/.frac, else from the float."""
    sec, frac = meta.get("timestamp.sec"), meta.get("timestamp.frac")
    if (
        isinstance(sec, str)
        and isinstance(frac, str)
        and sec.isascii()
        and sec.isdigit()
        and frac.isascii()
        and frac.isdigit()
        and len(sec) < 12
    ):
        return int(sec) * 1_000_000_000 + int(frac.ljust(9, "0")[:9])
    ts = meta.get("timestamp")
    if isinstance(ts, int | float) and not isinstance(ts, bool) and math.isfinite(ts):
        x = ts * 1e9
        if math.isfinite(x):  # 1e300 s is finite, its ns are not (round would raise)
            ns = round(x)
            if 0 <= ns <= _INT64_MAX:
                return ns
    return NO_TIME


def _train_id(src: str, meta: Mapping[str, Any]) -> int | None:
    tid = meta.get("timestamp.tid")
    if tid is None:
        return None
    if not isinstance(tid, int) or isinstance(tid, bool) or not 0 <= tid <= _INT64_MAX:
        raise MalformedMessage(f"source {src!r}: timestamp.tid {tid!r} is not a train id")
    return tid


def _meta_of(src: str, meta: Any) -> dict:
    if not isinstance(meta, dict):
        raise MalformedMessage(f"source {src!r}: metadata is {type(meta).__name__}, not a map")
    return meta


class _Train:
    """What one message holds: per source its metadata and non-array values, plus the bulk."""

    def __init__(self, version: str):
        self.version = version
        self.meta: dict[str, dict] = {}
        self.values: dict[str, dict] = {}
        self.bulk: list[BulkFrame] = []


def _parse_v1(frame: FrameBytes) -> _Train:
    train = _Train("1.0")
    top = _unpack(frame, "protocol 1.0 train", object_hook=_v1_hook)
    if not isinstance(top, dict):
        raise MalformedMessage(f"protocol 1.0 train is {type(top).__name__}, not a map")
    for src, values in top.items():
        if not isinstance(src, str):
            raise MalformedMessage(f"source name {src!r} is not a string")
        if not isinstance(values, dict):
            raise MalformedMessage(f"source {src!r} data is {type(values).__name__}, not a map")
        train.meta[src] = _meta_of(src, values.get("metadata", {}))
        train.values[src] = values
    return train


_MAX_KNOWN_HEADERS = 1024
_KNOWN_HEADER_BYTES = 1024


class _KnownArray:
    """What an array header frame's bytes say, kept so the same bytes are not parsed again
    (a detector sends the same array headers train after train)."""

    __slots__ = ("dtype", "flat", "name", "nbytes", "shape", "source")

    def __init__(self, source: str, name: str, array: np.ndarray):
        self.source = source
        self.name = name
        self.dtype = array.dtype
        self.shape = array.shape
        self.nbytes = array.nbytes
        self.flat = array.ndim == 1  # frombuffer alone gives the shape: no reshape

    def view(self, data: FrameBytes) -> np.ndarray | None:
        """The data frame as this array (what `_array` gives), or None when it does not fit
        (the full parse then says what is wrong)."""
        try:
            if memoryview(data).nbytes != self.nbytes:
                return None
            if self.flat:
                return np.frombuffer(data, self.dtype)
            return np.ndarray(self.shape, self.dtype, data)  # one call, not frombuffer+reshape
        except Exception:  # not a buffer, or one numpy will not view
            return None


#: An array header frame's bytes -> what they say.
KnownHeaders = dict[bytes, _KnownArray]


def _known_key(header: FrameBytes) -> bytes | None:
    if type(header) is bytes:
        return header
    try:
        return memoryview(header).tobytes()
    except Exception:  # not a buffer: the full parse says so
        return None


def _parse_v2(frames: Sequence[FrameBytes], known: KnownHeaders | None = None) -> _Train:
    train = _Train("2.2")
    values_of, bulk = train.values, train.bulk
    for i in range(0, len(frames), 2):
        if known and i:
            key = _known_key(frames[i])
            entry = known.get(key) if key is not None else None
            if entry is not None and entry.source in values_of:
                array = entry.view(frames[i + 1])
                if array is not None:
                    bulk.append(BulkFrame(i + 1, entry.name, array, ragged=array.ndim >= 1))
                    continue
        header = _unpack(frames[i], f"header frame {i}")
        if not isinstance(header, dict):
            raise MalformedMessage(f"header frame {i} is {type(header).__name__}, not a map")
        src, content = header.get("source"), header.get("content")
        if not isinstance(src, str):
            raise MalformedMessage(f"header frame {i} has no source name")
        if content == "msgpack":
            if src in values_of:
                raise MalformedMessage(f"source {src!r} appears twice (frame {i})")
            values = _unpack(frames[i + 1], f"data frame {i + 1} of {src!r}")
            if not isinstance(values, dict):
                raise MalformedMessage(f"data frame {i + 1} of {src!r} is not a map")
            train.meta[src] = _meta_of(src, header.get("metadata", {}))
            values_of[src] = values
        elif content == "array":
            path = header.get("path")
            if src not in values_of:
                raise MalformedMessage(f"array frame {i} of {src!r} before its msgpack frame")
            if not isinstance(path, str):
                raise MalformedMessage(f"array header frame {i} of {src!r} has no path")
            shape = header.get("shape")
            if not isinstance(shape, list):
                raise MalformedMessage(f"array {src}:{path} shape {shape!r} is not a list")
            dtype = header.get("dtype")
            if not isinstance(dtype, str):
                raise MalformedMessage(f"array {src}:{path} dtype {dtype!r} is not a string")
            try:
                array = _array(frames[i + 1], _dtype(dtype), shape)
            except MalformedMessage as exc:
                raise MalformedMessage(f"array {src}:{path} (frame {i + 1}): {exc}") from None
            name = f"{src}:{path}"
            bulk.append(BulkFrame(i + 1, name, array, ragged=array.ndim >= 1))
            if known is not None:
                key = bytes(frames[i])
                if len(key) <= _KNOWN_HEADER_BYTES:
                    if len(known) >= _MAX_KNOWN_HEADERS:
                        known.clear()
                    known[key] = _KnownArray(src, name, array)
        else:
            raise MalformedMessage(f"header frame {i} of {src!r} has unknown content {content!r}")
    if len(bulk) > 1:
        names = {b.name for b in bulk}
        if len(names) != len(bulk):
            raise MalformedMessage("the same array path is sent twice for one source")
    return train


def _parse(frames: Sequence[FrameBytes], known: KnownHeaders | None = None) -> _Train:
    """A train's sources and arrays; `known` (array headers read before) spares parsing
    headers that repeat."""
    if len(frames) == 0:
        raise MalformedMessage("empty message")
    if len(frames) == 1:
        return _parse_v1(frames[0])
    if len(frames) % 2:
        raise MalformedMessage(
            f"{len(frames)} frames: protocol 2.2 sends header/data pairs (an even count)"
        )
    return _parse_v2(frames, known)


def _plain(value: Any) -> Any:
    """Non-array values as plain Python: numpy scalars unwrapped, arrays in maps dropped (they
    are bulk or `v1_arrays`), the rare array inside a list turned into a list."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if not isinstance(v, np.ndarray)}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    return value


def train_values(frames: Sequence[FrameBytes]) -> dict[str, dict]:
    """Per source, the decoded non-array values of a train (what the recorder keeps per train).

    Each source's dict also carries ``metadata``: the map ``Client.next()`` returns as that
    source's metadata (the 2.2 header's, or the 1.0 in-data one).
    """
    train = _parse(frames)
    out = {}
    try:
        for src, values in train.values.items():
            plain = _plain(values)
            plain["metadata"] = _plain(train.meta[src])
            out[src] = plain
    except RecursionError:
        raise MalformedMessage("values nested too deeply") from None
    return out


def v1_arrays(frame: FrameBytes) -> dict[str, np.ndarray]:
    """Typed arrays inside a protocol 1.0 train, named ``<source>:<path>`` like 2.2 bulk frames.

    Nested maps give dotted paths; arrays inside lists and pickled object arrays are skipped.
    """
    out: dict[str, np.ndarray] = {}

    def walk(prefix: str, values: dict) -> None:
        for key, value in values.items():
            name = f"{prefix}{key}" if isinstance(key, str) else f"{prefix}{key!r}"
            if isinstance(value, np.ndarray):
                out[name] = value
            elif isinstance(value, dict):
                walk(name + ".", value)

    try:
        for src, values in _parse_v1(frame).values.items():
            walk(f"{src}:", values)
    except RecursionError:
        raise MalformedMessage("values nested too deeply") from None
    return out


_MAX_SCALAR_COLUMNS = 256
_INT64 = (-(2**63), 2**63 - 1)
_TIME_KEYS = frozenset(("source", "timestamp", "timestamp.sec", "timestamp.frac", "timestamp.tid"))
"""Metadata keys that become `<source>:metadata.timestamp_ns` / `.timestamp.tid` (or, for
``source``, are the column prefix itself)."""

_MAX_CACHED_JSON = 4096
_MAX_CACHED_NAMES = 4096

Scalar = int | float | str | bool


def _scalar(value: Any) -> Scalar | None:
    """A value that fits a typed column as it is (numpy scalars of 1.0 trains unwrapped)."""
    if isinstance(value, np.generic):
        if value.dtype.kind not in "biuf":
            return None
        value = value.item()
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if _INT64[0] <= value <= _INT64[1] else None
    if isinstance(value, float):
        return value
    return None


def _numeric_array(value: list) -> np.ndarray | None:
    """A non-empty list of numbers (or of equal-length lists of them) as a typed array."""
    if not value or isinstance(value[0], str | dict):  # names (passports, sources): JSON
        return None
    try:
        arr = np.asarray(value)
    except (ValueError, OverflowError, TypeError):
        return None
    if arr.dtype.kind == "f" and all(type(v) is int for v in value):
        return None  # int64 and uint64 values mixed: float64 would round them; JSON keeps them
    return arr if arr.dtype.kind in "biuf" and arr.size else None


def _json_text(value: Any) -> str:
    return json.dumps(_plain(value), default=repr, ensure_ascii=False, allow_nan=True)


def _derived(name: str, array: np.ndarray) -> BulkFrame:
    """A typed copy of an array inside a verbatim frame (1.0 trains, lists): ragged like 2.2's
    arrays (the first axis is pulses and varies per train). frame -1: no frame is these bytes."""
    return BulkFrame(-1, name, array, ragged=array.ndim >= 1)


def _same_json(a: Any, b: Any) -> bool:
    """`a` and `b` make the same JSON text: equal with the same types all the way down and
    maps in the same key order (Python has 1 == 1.0 == True, and maps equal in any order).
    Arrays (inside 1.0 trains' lists) are never taken as the same."""
    t = type(a)
    if t is not type(b):
        return False
    if t is list or t is tuple:
        return len(a) == len(b) and all(map(_same_json, a, b))
    if t is dict:
        return (
            len(a) == len(b)
            and all(map(_same_json, a, b))
            and all(map(_same_json, a.values(), b.values()))
        )
    if t is float:
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)  # 0.0 is not -0.0
    if t is str or t is int or t is bool or a is None:
        return a == b
    return False


class _TrainColumns:
    """Collects one train's columns and typed copies. Kept by the codec between trains so
    JSON text of list values that repeat train after train is not rebuilt each time."""

    def __init__(
        self,
        json_cache: dict[str, tuple[Any, str]],
        names: dict[tuple[str, bool, tuple], list[str | None]] | None = None,
        meta_names: dict[str, tuple[str, str, str]] | None = None,
    ):
        self.columns: dict[str, Scalar] = {}
        self.derived: list[tuple[str, np.ndarray] | BulkFrame] = []
        self._json_cache = json_cache
        self._names = {} if names is None else names
        self._meta_names = {} if meta_names is None else meta_names

    def full(self) -> bool:
        return len(self.columns) >= _MAX_SCALAR_COLUMNS

    def json(self, name: str, value: Any) -> None:
        cached = self._json_cache.get(name)
        if cached is not None and _same_json(cached[0], value):
            self.columns[name] = cached[1]
            return
        try:
            text = _json_text(value)
        except (TypeError, ValueError, RecursionError):
            return  # what JSON cannot hold stays in the verbatim frame
        if len(self._json_cache) >= _MAX_CACHED_JSON:
            self._json_cache.clear()
        self._json_cache[name] = (value, text)
        self.columns[name] = text

    def metadata(self, src: str, meta: Mapping[str, Any], ns: int) -> None:
        """Per-source timestamps (sources of one train may differ; `ns` is this source's
        `_source_ns`) and the other keys."""
        prefix, ns_name, tid_name = self._metadata_names(src)
        if ns != NO_TIME:
            self.columns[ns_name] = ns
        tid = meta.get("timestamp.tid")
        if tid is not None:
            self.columns[tid_name] = tid
        if meta.keys() <= _TIME_KEYS:  # nothing else (what a bridge sends): no walk
            return
        for key, value in meta.items():
            if key in _TIME_KEYS or not isinstance(key, str) or self.full():
                continue
            self.value(prefix + key, value)

    def value(self, name: str, value: Any) -> None:
        scalar = _scalar(value)
        if scalar is not None:
            self.columns[name] = scalar
        elif isinstance(value, np.ndarray):
            if value.dtype.kind in "biufc":
                self.derived.append(_derived(name, value))
        elif isinstance(value, list | tuple):
            arr = _numeric_array(list(value))
            if arr is not None:
                self.derived.append(_derived(name, arr))
            else:
                self.json(name, value)
        elif isinstance(value, dict):
            self.json(name, value)

    def _metadata_names(self, src: str) -> tuple[str, str, str]:
        """(prefix, timestamp_ns column, timestamp.tid column) of a source, made once."""
        names = self._meta_names.get(src)
        if names is None:
            prefix = f"{src}:metadata."
            names = (prefix, prefix + "timestamp_ns", prefix + "timestamp.tid")
            if len(self._meta_names) >= _MAX_CACHED_NAMES:
                self._meta_names.clear()
            self._meta_names[src] = names
        return names

    def _remember(self, key: tuple[str, bool, tuple], names: list[str | None]) -> list[str | None]:
        if len(self._names) >= _MAX_CACHED_NAMES:
            self._names.clear()
        self._names[key] = names
        return names

    def walk(self, prefix: str, node: dict, top: bool = True) -> None:
        """A source's values as `<source>:<dotted.path>`: scalars as typed columns, arrays
        (1.0 trains) and numeric lists as typed copies, other lists as JSON text.

        The column names of a map's keys are made once and kept while the keys repeat (a
        source sends the same keys train after train); floats, strings and bools, which
        and int64 integers, which `value` would keep as they are, are put in without the call."""
        key = (prefix, top, tuple(node))
        names = self._names.get(key)
        if names is None:
            names = self._remember(
                key,
                [
                    None if not isinstance(k, str) or (top and k == "metadata") else prefix + k
                    for k in key[2]
                ],
            )
        columns = self.columns
        for name, value in zip(names, node.values(), strict=True):
            if name is None:
                continue
            t = type(value)
            if (
                t is float
                or t is str
                or t is bool
                or (t is int and _INT64[0] <= value <= _INT64[1])
            ):
                if len(columns) < _MAX_SCALAR_COLUMNS:
                    columns[name] = value
            elif isinstance(value, dict):
                self.walk(name + ".", value, False)
            elif isinstance(value, np.ndarray):
                self.value(name, value)  # typed copies are not capped as columns are
            elif len(columns) < _MAX_SCALAR_COLUMNS:
                self.value(name, value)


def scalar_columns(values: dict[str, dict]) -> dict[str, int | float | str | bool]:
    """The non-array values of a train as `<source>:<dotted.path>` columns, so per-train
    scalars (XGM pulse counts, motor positions) are a column away instead of a msgpack parse.
    At most _MAX_SCALAR_COLUMNS per train: detector sources can carry thousands of keys.
    Lists that are not numbers are JSON text (numeric ones are typed arrays, see the codec)."""
    out = _TrainColumns({})
    for src in sorted(values):
        out.walk(f"{src}:", values[src])
    return out.columns


class KaraboCodec:
    """Decoder of Karabo bridge trains, protocol 2.2 (frame pairs) and 1.0 (one frame)."""

    name = NAME

    def __init__(self) -> None:
        self._json_cache: dict[str, tuple[Any, str]] = {}
        self._names: dict[tuple[str, bool, tuple], list[str | None]] = {}
        self._meta_names: dict[str, tuple[str, str, str]] = {}
        self._sources: tuple[tuple[str, ...], str] = ((), "")
        self._known: KnownHeaders = {}
        self._batches = TrainBatches(self.decode, _TIME_KEYS, _MAX_SCALAR_COLUMNS)

    def _source_list(self, names: list[str]) -> str:
        key = tuple(names)
        if key != self._sources[0]:
            self._sources = (key, ",".join(key))
        return self._sources[1]

    def decode(self, frames: Sequence[FrameBytes]) -> Decoded:
        train = _parse(frames, self._known)
        tids = [t for src, m in train.meta.items() if (t := _train_id(src, m)) is not None]
        source_ns = {src: _source_ns(m) for src, m in train.meta.items()}
        times = [ns for ns in source_ns.values() if ns != NO_TIME]
        seq = min(tids) if tids else NO_SEQ
        sources = sorted(train.meta)
        out = _TrainColumns(self._json_cache, self._names, self._meta_names)
        out.columns.update(
            train_id=seq,
            sources=self._source_list(sources),
            protocol_version=train.version,
            tid_mismatch=len(set(tids)) > 1,
        )
        try:
            for src in sources:
                out.metadata(src, train.meta[src], source_ns[src])
            for src in sources:
                out.walk(f"{src}:", train.values[src])
        except RecursionError:
            raise MalformedMessage("values nested too deeply") from None
        return Decoded(
            kind="train",
            seq=seq,
            seq_key="",
            source_ns=min(times) if times else NO_TIME,
            bulk=train.bulk,  # ragged set by _parse_v2: arrays of >= 1 dimension
            derived=out.derived,
            columns=out.columns,
        )

    def decode_alike(
        self, messages: Sequence[Sequence[FrameBytes]]
    ) -> list[tuple[int, int, AlikeRun | Decoded | None]]:
        """A batch's trains, those of one layout decoded together (karabo_batch)."""
        return self._batches.decode_alike(messages)


@sniffer
def sniff(frames: Sequence[FrameBytes]) -> str | None:
    """``karabo`` for 2.2 header/data pairs (a msgpack header with ``source`` and ``content``)
    or a 1.0 train (one msgpack map of sources, each with ``metadata``); None otherwise."""
    n = len(frames)
    if n >= 2 and n % 2 == 0:
        header = msgpack_map(frames[0])
        return NAME if header and {"source", "content"} <= set(header) else None
    if n == 1:
        train = msgpack_map(frames[0], limit=None)
        if train and all(isinstance(v, dict) and "metadata" in v for v in train.values()):
            return NAME
    return None


DESCRIPTOR = ProtocolDescriptor(
    name=NAME,
    codec=KaraboCodec,
    default_socket="REQ",  # the bridge server binds REP by default and answers `next`
    refuse_request=refuse_request,
    trains=True,
    sniff=sniff,
    simulator="recorder.simulators.karabo:KaraboSimulator",
    demo=Demo(options={"socket": "PUB", "rate": 10}, source={"socket_type": "SUB"}),
    meaning=StreamMeaning(
        seq="train id: the lowest metadata timestamp.tid of the train's sources",
        source_time="the earliest source timestamp of the train (metadata timestamp.sec and "
        ".frac, else the float timestamp); per source in <source>:metadata.timestamp_ns",
        source_epoch="1970-01-01",
        columns={
            "train_id": "train id (seq), -1 when no source sends timestamp.tid",
            "sources": "names of the train's sources, sorted, comma-separated",
            "protocol_version": "bridge protocol of the train: 2.2 (frame pairs) or 1.0",
            "tid_mismatch": "the sources of one train carry different train ids",
            "<source>:metadata.timestamp_ns": "that source's timestamp in ns since the Unix epoch "
            "(timestamp.sec/.frac exactly, else the float timestamp)",
            "<source>:metadata.timestamp.tid": "that source's train id",
            "<source>:metadata.<key>": "other metadata keys of that source, typed as values are",
            "<source>:<key>": "values: numbers, strings and bools as typed "
            "columns (at most 256 per train); lists of numbers as typed arrays of the same "
            "name; other lists and maps as JSON text",
        },
    ),
)
