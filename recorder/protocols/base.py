"""What every wire protocol module provides to the recorder.

A protocol module turns one received multipart message into a `Decoded`: which frames are bulk
payloads (typed arrays the store writes as zarr arrays, so users get images and sample blocks
without our code), the protocol's sequence number for gap accounting, the source's own timestamp
and a few scalar columns. Frames that are not bulk are stored verbatim. Decoding never copies or
re-encodes a payload: arrays are views on the received bytes, so the store can give the exact
bytes back for replay.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, cast

import numpy as np
from numpy.typing import DTypeLike

from recorder.errors import MalformedMessage

NO_SEQ = -1
NO_TIME = -1

#: Anything a zmq frame can arrive as: bytes, memoryview, zmq.Frame buffer.
FrameBytes = bytes | bytearray | memoryview


@dataclass(slots=True)
class BulkFrame:
    """One frame of a message whose bytes are exactly `array.tobytes()`.

    Unplaced (``row``/``column`` None), the array is one row of a segment stacked per message.
    Placed, a 1-D array fills cells of a 2-D (samples, channels) segment: rows ``row ..
    row + n`` (absolute sample numbers) of column ``column``, so one channel-per-message stream
    (Open Ephys) reads back as one (samples, channels) array.
    """

    frame: int
    """Index of the frame inside the multipart message."""
    name: str
    """Array family inside the stream, e.g. ``image`` or ``SA1_XTD2_XGM/DOOCS/MAIN:data.intensity``.
    Rows of one name with one shape and dtype go to one zarr array (a segment)."""
    array: np.ndarray
    """Zero-copy view of the frame with the dtype and shape the header announces."""
    row: int | None = None
    """Placed frames: absolute sample number of the first value."""
    column: int | None = None
    """Placed frames: channel index (column of the 2-D segment)."""
    sample_rate: float | None = None
    """Placed frames: rows per second, if known (a change starts a new segment)."""
    channel_name: str | None = None
    """Placed frames: name of the channel, if known (segment attribute ``channel_names``)."""
    ragged: bool = False
    """Rows along the first axis: messages may carry different counts of them (pulses per
    train). Stored as one array of rows with a per-message (first, count) index, as EuXFEL's
    EXDF files do, instead of one array per shape."""
    units: str | None = None
    """Physical unit of the values after `scale` (Open Ephys: ``uV``), if the source says."""
    scale: float | None = None
    """Multiply the stored values by this to get `units` (Open Ephys ``bit_volts``); placed
    segments keep one per channel (attribute ``scale``)."""
    dims: tuple[str, ...] | None = None
    """Names of the array's dimensions as the source means them (``("y", "x")`` for an image;
    for a ragged array the first one names the ragged axis). None: generic names."""


@dataclass(slots=True)
class Decoded:
    """What a protocol understood of one message."""

    kind: str = "message"
    """Message kind within the protocol (``data``, ``event``, ``spike``, ``train`` ...)."""
    seq: int = NO_SEQ
    """Protocol sequence number (frame id, message_num, train id); NO_SEQ when there is none."""
    seq_key: str = ""
    """Gap accounting runs per key: messages of different keys are separate sequences."""
    source_ns: int = NO_TIME
    """The source's own timestamp in ns in the source's epoch; NO_TIME when absent."""
    bulk: list[BulkFrame] = field(default_factory=list)
    columns: dict[str, int | float | str | bool] = field(default_factory=dict)
    """Per-message scalar values worth a column of their own (ndattr values, train ids ...)."""
    derived: list[tuple[str, np.ndarray] | BulkFrame] = field(default_factory=list)
    """Typed copies of arrays that live inside a verbatim frame (Karabo 1.0 keeps everything
    in one msgpack frame): stored as rows of their own, so users get typed arrays there too."""


@dataclass
class PlacedRun:
    """Consecutive messages of one layout, decoded together: each has one placed bulk frame
    (frame `frame`) and the same column keys. What `decode()` would make of each message, in
    columns instead of one Decoded per message, so a source sending tens of thousands of
    small messages a second (Open Ephys: one per channel per block) costs a few microseconds a
    message. The store places and counts them exactly as it would the Decoded messages."""

    seq: list[int]
    source_ns: list[int]
    columns: dict[str, list]  # every message has every key, values as decode() types them
    frame: int  # index of the placed frame in each message
    name: str  # the placed family (BulkFrame.name), one for the run
    rows: list[int]
    cols: list[int]
    arrays: list[np.ndarray]  # 1-D views of the placed frames
    channel_names: list[str | None]
    sample_rate: float | None
    units: str | None
    seq_key: str = ""

    @property
    def count(self) -> int:
        return len(self.seq)

    def bulk(self, k: int) -> BulkFrame:
        """Message k's placed frame as decode() would have given it."""
        return BulkFrame(
            self.frame,
            self.name,
            self.arrays[k],
            row=self.rows[k],
            column=self.cols[k],
            sample_rate=self.sample_rate,
            channel_name=self.channel_names[k],
            units=self.units,
        )


@dataclass
class ArrayBlock:
    """One typed array of every message of an AlikeRun (what each message's BulkFrame of
    this frame would be), all messages' arrays in one piece."""

    frame: int
    name: str
    ragged: bool
    dtype: np.dtype
    shape: tuple[int, ...]
    """Of each message's array (one shape for the run)."""
    rows: np.ndarray | list[np.ndarray]
    """The arrays joined: (count, *shape), or ragged (count * shape[0], *shape[1:]); or, when
    large, the arrays themselves (views of the received frames: no copy)."""


@dataclass
class AlikeRun:
    """Consecutive messages of one layout (the same frames, array shapes and column keys:
    a Karabo bridge's trains), decoded together: what `decode()` would make of each message,
    in columns and joined arrays, with no object per message. The store keeps them exactly as
    it would keep the Decoded messages."""

    seq: np.ndarray  # int64 per message
    source_ns: np.ndarray  # int64 per message
    columns: dict[str, np.ndarray | list]
    """Every message has every key: int64, float64 or bool arrays, or lists (strings)."""
    arrays: list[ArrayBlock]  # in the order of decode()'s bulk
    decode: Callable[[int], Decoded]
    """Message k of the run as decode() gives it (the store makes segments with the first)."""
    seq_key: str = ""

    @property
    def count(self) -> int:
        return len(self.seq)


class Codec(Protocol):
    """Decoder of one wire protocol. Must raise MalformedMessage, never anything else.

    A codec with a true `verbatim` attribute reads nothing: its decode() is an empty Decoded
    for every message and never raises (raw). Batches of it are stored as they came
    (decode_batch gives a Verbatim), without a Decoded per message."""

    name: str

    def decode(self, frames: Sequence[FrameBytes]) -> Decoded: ...


class RunCodec(Codec, Protocol):
    """A codec that can also decode many messages of one layout at once."""

    def decode_run(self, messages: Sequence[Sequence[FrameBytes]], start: int) -> PlacedRun | None:
        """The longest run of messages from `start` that fit one layout (None: not even the
        first; it goes through decode()). Never raises: a message that does not fit ends the
        run, and decode() says what is wrong with it."""
        ...


def decode_or_reject(
    codec: Codec,
    recv_ns: int,
    frames: Sequence[FrameBytes],
    extra: dict[str, int | float | str | bool] | None = None,
) -> tuple[int, Sequence[FrameBytes], Decoded | None, str | None]:
    """A received message as the store takes it (`contracts.WriteItem`): decoded, with the
    values recorded beside it (`extra`) as columns, or kept verbatim as a reject with the
    codec's reason. One rule for recordings, imports and golden runs alike."""
    try:
        decoded = codec.decode(frames)
    except MalformedMessage as exc:
        return (recv_ns, frames, None, exc.reason)
    if extra:
        decoded.columns.update(extra)
    return (recv_ns, frames, decoded, None)


class AlikeCodec(Codec, Protocol):
    """A codec that can decode a batch's runs of messages of one layout together."""

    def decode_alike(
        self, messages: Sequence[Sequence[FrameBytes]]
    ) -> list[tuple[int, int, AlikeRun | Decoded | None]]:
        """(start, end, what) spans covering the batch in order: a run of messages decoded
        together, or one message (end = start + 1) with its Decoded, or None for decode() to
        say (a reject). Never raises."""
        ...


class Verbatim(NamedTuple):
    """Messages of a verbatim codec, stored frames only (StreamWriter.append_verbatim): what a
    list of their empty Decoded would store, for none of their cost."""

    recv: list[int]
    messages: list[Sequence[FrameBytes]]


#: A batch as the store takes it: lists of single messages, runs decoded together with their
#: receive times and frames, and messages of a codec that reads nothing.
DecodedPart = (
    list["tuple[int, Sequence[FrameBytes], Decoded | None, str | None]"]
    | tuple[list[int], list[Sequence[FrameBytes]], PlacedRun | AlikeRun]
    | Verbatim
)


# a received message's parts (recv_ns, frames, extra), taken in C maps: batches are thousands
_RECV, _FRAMES, _EXTRA = (operator.itemgetter(i) for i in range(3))
_NBYTES = operator.attrgetter("nbytes")
_VIEW = cast("Callable[[Any], memoryview]", memoryview)  # (typeshed: generic in its items)


def decode_batch(
    codec: Codec,
    batch: Sequence[tuple[int, Sequence[FrameBytes], dict | None]],
    min_run: int = 8,
) -> list[DecodedPart]:
    """A received batch decoded: runs of one layout together where the codec can (RunCodec),
    every other message on its own (decode_or_reject). In receive order."""
    if getattr(codec, "verbatim", False) and not any(map(_EXTRA, batch)):
        return [Verbatim(list(map(_RECV, batch)), list(map(_FRAMES, batch)))]
    decode_alike = getattr(codec, "decode_alike", None)
    if decode_alike is not None and len(batch) >= min_run and not any(map(_EXTRA, batch)):
        return _decode_alike(codec, decode_alike, batch)
    decode_run = getattr(codec, "decode_run", None)
    if decode_run is None or len(batch) < min_run or any(map(_EXTRA, batch)):
        return [[decode_or_reject(codec, r, f, x) for r, f, x in batch]]
    messages = list(map(_FRAMES, batch))
    parts: list[DecodedPart] = []
    single: list = []
    i, n = 0, len(batch)
    while i < n:
        run = decode_run(messages, i)
        if run is not None and run.count:
            if single:
                parts.append(single)
                single = []
            j = i + run.count
            parts.append((list(map(_RECV, batch[i:j])), messages[i:j], run))
            i = j
            continue
        single.append(decode_or_reject(codec, batch[i][0], messages[i], None))
        i += 1
    if single:
        parts.append(single)
    return parts


def _decode_alike(
    codec: Codec,
    decode_alike: Callable,
    batch: Sequence[tuple[int, Sequence[FrameBytes], dict | None]],
) -> list[DecodedPart]:
    messages = list(map(_FRAMES, batch))
    parts: list[DecodedPart] = []
    single: list = []
    for start, end, what in decode_alike(messages):
        if isinstance(what, AlikeRun):
            if single:
                parts.append(single)
                single = []
            parts.append((list(map(_RECV, batch[start:end])), messages[start:end], what))
        elif isinstance(what, Decoded):
            single.append((batch[start][0], messages[start], what, None))
        else:
            single.append(decode_or_reject(codec, batch[start][0], messages[start], None))
    if single:
        parts.append(single)
    return parts


def frame_sizes(frames: Sequence[FrameBytes]) -> list[int]:
    """Byte size of every frame; anything that is not a list of buffers is a reject, not a
    crash (codecs are fed whatever the network sends, and fuzzed)."""
    try:
        return list(map(_NBYTES, map(_VIEW, frames)))  # C maps: a run sizes thousands
    except TypeError:
        raise MalformedMessage("frames are not a sequence of byte buffers") from None


def as_array(buf: FrameBytes, dtype: DTypeLike, shape: Sequence[int]) -> np.ndarray:
    """View `buf` as an array of `dtype` and `shape`, or say why it cannot be one."""
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError, SyntaxError) as exc:  # numpy parses dtype strings itself
        raise MalformedMessage(f"unknown dtype {dtype!r}") from exc
    if dt.hasobject or dt.itemsize == 0:
        raise MalformedMessage(f"dtype {dtype!r} cannot hold raw payload bytes")
    try:
        dims = tuple(int(d) for d in shape)
    except (TypeError, ValueError) as exc:
        raise MalformedMessage(f"shape {shape!r} is not a list of integers") from exc
    if any(d < 0 for d in dims):
        raise MalformedMessage(f"negative dimension in shape {list(dims)}")
    expected = math.prod(dims) * dt.itemsize  # Python ints: a huge shape cannot overflow
    size = memoryview(buf).nbytes
    if size != expected:
        raise MalformedMessage(
            f"payload is {size} bytes but shape {list(dims)} of {dt.name} needs {expected}"
        )
    return np.frombuffer(buf, dtype=dt).reshape(dims)
