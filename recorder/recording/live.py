"""The live view: each stream's latest message, published by the worker for the web app to read.

The web app never opens a stream socket, so a worker that records (or previews) writes every
stream's latest message to a file, `<data>/live/<job id>/<stream>`, and the web app reads and
renders it. The files are written whole (a temporary name, then a rename), so a reader sees the
previous message or the next one, never half of one. Bounded on both sides:

* at most `RATE_HZ` files a second per stream, and only when a new message arrived;
* at most `MAX_BYTES` of frames per file (a frame past that keeps its first `HEAD_BYTES`,
  with its full size), and a big message waits until the stream has written no more than
  `BYTES_PER_S` a second on average, so a fast 60 MiB-image stream costs the disk a few
  hundred MB/s at worst, not its own rate.

A preview (a job that only feeds this view, never a run) stops itself when nobody reads it:
each read of its live files by the web app touches `<data>/live/<job id>/.read`
(`mark_read`); with `idle_s` set, the publisher calls `on_idle` once that mark (or, before any
read, the publisher's start) is older than `idle_s`. The worker then asks for its own stop. The
check runs in the worker, so a preview whose browser went away stops even when no request ever
reaches the web app again.

An Open Ephys data message holds one channel's block, so its latest message alone would show
one channel. For such streams the publisher also keeps the latest block of each channel
(`ChannelBlocks`: the newest batch the receive thread handed on is scanned back to the first
channel seen twice; at most `MAX_CHANNELS` channels, the lowest, are kept, the others only
counted) and publishes them beside the latest message.

File format (version 1): two msgpack objects back to back. First a header map (`v`, `stream`,
`protocol` (None while `auto` has not decided), `recv_ns`, `published_ns`, `sizes` (every
frame's full size), `kept` (bytes stored of each frame), `extra` (values recorded beside the
message), and only with channel blocks `blocks` (how many) and `channels` (how many channels
were seen)); then an array of the frames' stored bytes; then, if `blocks`, an array of
`[recv_ns, [frame bytes]]`, one per channel block. The header reads alone, so listing the
streams of a job does not read their frames; a reader that knows no blocks reads the message.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import msgpack

from recorder.errors import Conflict, MalformedMessage, NotFound, RecorderError
from recorder.store import layout

LIVE_DIR = "live"
VERSION = 1
RATE_HZ = 4.0
MAX_BYTES = 64 << 20
HEAD_BYTES = 4096
BYTES_PER_S = 256 << 20
READ_MARK = ".read"
MAX_CHANNELS = 64  # channel blocks kept and shown per stream; more are only counted
_SCAN = 4096  # messages of the newest batch looked at for channel blocks, at most
_SEEN = 4096  # channels counted per stream, at most
_STALE_NS = 5_000_000_000  # a block this much older than the newest is dropped
_JOB_ID = re.compile(r"^[a-z]+-[0-9a-f]{1,32}$")
_HEADER_READ = 1 << 16


def live_root(data: Path) -> Path:
    return Path(data) / LIVE_DIR


def job_folder(data: Path, job_id: str) -> Path:
    """`<data>/live/<job id>`; job ids are checked before they name a folder."""
    if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
        raise NotFound(f"no job {job_id!r}")
    return live_root(data) / job_id


def stream_file(folder: Path, stream: str) -> Path:
    """A stream's live file; names are checked (a wire name never names a file)."""
    try:
        return folder / layout.check_name("stream", stream)
    except RecorderError:
        raise NotFound(f"no stream {stream!r}") from None


@dataclass
class LiveMessage:
    """One published message, as the web app reads it back."""

    stream: str
    protocol: str | None
    recv_ns: int
    published_ns: int
    sizes: list[int]
    kept: list[int]
    extra: dict[str, Any] = field(default_factory=dict)
    frames: list[bytes] = field(default_factory=list)
    """Empty when only the header was read."""
    blocks: list[tuple[int, list[bytes]]] = field(default_factory=list)
    """Per-channel streams: each channel's latest block, (recv_ns, frames); empty when only
    the header was read."""
    channels: int | None = None
    """Per-channel streams: how many channels were seen (more than `blocks` holds if over
    `MAX_CHANNELS`)."""

    @property
    def size(self) -> int:
        return sum(self.sizes)

    @property
    def truncated(self) -> bool:
        return self.kept != self.sizes


# -- writing (the worker) ----------------------------------------------------------------------


def _bin_header(n: int) -> bytes:
    """msgpack's bin 32 header: frames are written after it straight from their buffers."""
    return b"\xc6" + n.to_bytes(4, "big")


def _buffers(frames: Iterable[Any]) -> list[memoryview]:
    out = []
    for f in frames:
        buf = f if isinstance(f, bytes | bytearray | memoryview) else f.buffer  # zmq.Frame
        out.append(memoryview(buf).cast("B"))
    return out


def write_message(
    folder: Path,
    stream: str,
    protocol: str | None,
    recv_ns: int,
    frames: Iterable[Any],
    extra: dict | None = None,
    *,
    max_bytes: int = MAX_BYTES,
    blocks: Sequence[tuple[int, Sequence[Any]]] = (),
    channels: int | None = None,
) -> int:
    """Publish one message whole (temporary file, then rename); the bytes written. `blocks`
    (channel blocks, `(recv_ns, frames)`) go after it whole, as many as fit in `max_bytes`."""
    target = stream_file(folder, stream)
    bufs = _buffers(frames)
    sizes = [b.nbytes for b in bufs]
    kept, budget = [], max_bytes
    for n in sizes:
        keep = n if n <= budget else min(n, HEAD_BYTES)
        budget -= keep
        kept.append(keep)
    whole: list[tuple[int, list[memoryview]]] = []
    for block_ns, block_frames in blocks:
        block = _buffers(block_frames)
        budget -= sum(b.nbytes for b in block)
        if budget < 0:
            break
        whole.append((int(block_ns), block))
    header = {
        "v": VERSION,
        "stream": stream,
        "protocol": protocol,
        "recv_ns": int(recv_ns),
        "published_ns": time.time_ns(),
        "sizes": sizes,
        "kept": kept,
        "extra": dict(extra or {}),
    }
    if blocks:
        header.update(blocks=len(whole), channels=channels)
    tmp = folder / f".{stream}.tmp"
    written = 0
    with open(tmp, "wb") as f:
        written += f.write(msgpack.packb(header, use_bin_type=True, default=str))
        written += _write_frames(f, bufs, kept)
        if blocks:
            written += f.write(_array_header(len(whole)))
            for block_ns, block in whole:
                written += f.write(_array_header(2) + msgpack.packb(block_ns))
                written += _write_frames(f, block, [b.nbytes for b in block])
    os.replace(tmp, target)
    return written


def _write_frames(f: BinaryIO, bufs: list[memoryview], kept: list[int]) -> int:
    """A msgpack array of bin objects, each written straight from its buffer."""
    written = f.write(_array_header(len(bufs)))
    for buf, keep in zip(bufs, kept, strict=True):
        written += f.write(_bin_header(keep))
        written += f.write(buf[:keep])
    return written


def _array_header(n: int) -> bytes:
    return bytes([0x90 | n]) if n < 16 else b"\xdd" + n.to_bytes(4, "big")


def _channel_of(protocol: str | None) -> Callable[[Sequence[Any]], tuple[str, int] | None] | None:
    """The protocol's reader of a message's channel, if its messages hold one channel each."""
    from recorder.protocols import lookup  # as the views below: loaded when first needed

    return lookup(protocol).channel_of if protocol else None


class ChannelBlocks:
    """The latest block of each channel of a stream whose data messages hold one channel.

    Fed the newest batch the receive thread handed on, each time the publisher looks (4 times
    a second): the batch is scanned back from its end to the first channel seen twice (one
    block of every channel, when the sender sends channel after channel) or `_SCAN` messages.
    At most `shown` channels are kept, the lowest (stream, channel); more are counted (up to
    `_SEEN`). A channel that stopped sending is dropped once its block is `_STALE_NS` older
    than the newest."""

    def __init__(
        self,
        channel_of: Callable[[Sequence[Any]], tuple[str, int] | None],
        shown: int = MAX_CHANNELS,
    ):
        self.channel_of = channel_of  # the protocol's (ProtocolDescriptor.channel_of)
        self.shown = shown
        self.latest: dict[tuple[str, int], tuple[int, list[bytes]]] = {}
        self.seen: set[tuple[str, int]] = set()

    def add(self, batch: Sequence[tuple[int, Sequence[Any], Any]]) -> None:
        found: dict[tuple[str, int], tuple[int, Sequence[Any]]] = {}
        for recv_ns, frames, _extra in reversed(batch[-_SCAN:]):
            key = self.channel_of(_buffers(frames))
            if key is None:
                continue
            if key in found:
                break
            found[key] = (int(recv_ns), frames)
        for key in found:
            if len(self.seen) >= _SEEN:
                break
            self.seen.add(key)
        kept: dict[tuple[str, int], tuple[int, list[bytes]]] = {}
        for key in sorted(self.latest.keys() | found.keys())[: self.shown]:
            if key in found:  # copied only if kept: the receive thread's frames are not ours
                recv_ns, frames = found[key]
                kept[key] = (recv_ns, [bytes(b) for b in _buffers(frames)])
            else:
                kept[key] = self.latest[key]
        self.latest = kept
        if self.latest:
            newest = max(ns for ns, _ in self.latest.values())
            for key in [k for k, (ns, _) in self.latest.items() if ns < newest - _STALE_NS]:
                del self.latest[key]

    def blocks(self) -> list[tuple[int, list[bytes]]]:
        """The kept blocks, by (stream, channel)."""
        return [self.latest[k] for k in sorted(self.latest)]


class LivePublisher:
    """Publishes the latest message of each stream a source of streams gives, on a thread.

    `streams()` returns objects with `.spec.stream`, `.protocol` and `.latest` (a
    `StreamRecorder`): `latest` is `(recv_ns, frames, extra)` or None. Close removes the
    folder: a live view ends with its job."""

    def __init__(
        self,
        folder: Path,
        streams: Callable[[], Iterable[Any]],
        *,
        rate_hz: float = RATE_HZ,
        max_bytes: int = MAX_BYTES,
        bytes_per_s: float = BYTES_PER_S,
        idle_s: float | None = None,
        on_idle: Callable[[], None] | None = None,
    ):
        self.folder = folder
        self.streams = streams
        self.interval = 1.0 / rate_hz
        self.max_bytes = max_bytes
        self.bytes_per_s = bytes_per_s
        self.idle_s = idle_s
        self.on_idle = on_idle
        self.published: dict[str, int] = {}
        """Files written per stream (for tests and the worker's log)."""
        self.error: str | None = None
        """The last write that failed (a full disk must not stop the recording)."""
        self._last: dict[str, tuple[int, int]] = {}  # stream -> (recv_ns, id(latest))
        self._channels: dict[str, ChannelBlocks] = {}  # per-channel streams' latest blocks
        self._due: dict[str, float] = {}  # stream -> monotonic time it may publish again
        self._stop = threading.Event()
        self._started = time.time()
        self._idle_called = False
        self._thread = threading.Thread(target=self._run, name="live", daemon=True)

    @classmethod
    def for_job(cls, data: Path, job_id: str, streams, **options) -> LivePublisher:
        return cls(job_folder(data, job_id), streams, **options)

    def start(self) -> LivePublisher:
        with contextlib.suppress(OSError):  # writes then fail and say why; recording goes on
            self.folder.mkdir(parents=True, exist_ok=True)
        self._started = time.time()
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.ident:
            self._thread.join(5)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> LivePublisher:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.publish_once()
            self._check_idle()

    def publish_once(self) -> int:
        """Write every stream whose latest message changed and whose turn has come."""
        count = 0
        now = time.monotonic()
        for s in list(self.streams()):
            latest = getattr(s, "latest", None)
            if latest is None:
                continue
            name = s.spec.stream
            recv_ns, frames, extra = latest
            mark = (int(recv_ns), id(latest))
            if self._last.get(name) == mark or now < self._due.get(name, 0.0):
                continue
            per_channel = None
            channel_of = _channel_of(s.protocol)
            if channel_of is not None:
                per_channel = self._channels.setdefault(name, ChannelBlocks(channel_of))
                per_channel.add(getattr(s, "latest_batch", None) or [latest])
            try:
                n = write_message(
                    self.folder, name, s.protocol, recv_ns, frames, extra,
                    max_bytes=self.max_bytes,
                    blocks=per_channel.blocks() if per_channel else (),
                    channels=len(per_channel.seen) if per_channel else None,
                )  # fmt: skip
            except (OSError, ValueError, TypeError) as exc:
                self.error = f"live view of {name}: {exc}"
                self._due[name] = now + 1.0
                continue
            self._last[name] = mark
            self._due[name] = now + max(self.interval, n / self.bytes_per_s) - 0.01
            self.published[name] = self.published.get(name, 0) + 1
            count += 1
        return count

    def last_read(self) -> float:
        """When the web app last read this job's live view (the start before any read)."""
        try:
            return max(self._started, (self.folder / READ_MARK).stat().st_mtime)
        except OSError:
            return self._started

    def _check_idle(self) -> None:
        if self.idle_s is None or self._idle_called or self.on_idle is None:
            return
        if time.time() - self.last_read() > self.idle_s:
            self._idle_called = True
            self.on_idle()


# -- reading (the web app) ---------------------------------------------------------------------


def mark_read(folder: Path) -> None:
    """Tell the publisher someone looked (a preview nobody reads stops itself). Only an
    existing folder is marked: a job that ended must not get its folder back."""
    if folder.is_dir():
        with contextlib.suppress(OSError):
            (folder / READ_MARK).touch()


def stream_names(folder: Path) -> list[str]:
    """Streams with a published message (temporary files and the read mark start with '.')."""
    try:
        names = [p.name for p in folder.iterdir() if not p.name.startswith(".")]
    except OSError:
        return []
    return sorted(n for n in names if _checked(n))


def _checked(name: str) -> bool:
    try:
        layout.check_name("stream", name)
    except RecorderError:
        return False
    return True


def _header(obj: Any, path: Path) -> LiveMessage:
    if not isinstance(obj, dict) or obj.get("v") != VERSION:
        raise Conflict(f"live file {path.name} is not a version {VERSION} live message")
    return LiveMessage(
        stream=str(obj["stream"]),
        protocol=obj.get("protocol"),
        recv_ns=int(obj["recv_ns"]),
        published_ns=int(obj["published_ns"]),
        sizes=[int(n) for n in obj["sizes"]],
        kept=[int(n) for n in obj["kept"]],
        extra=dict(obj.get("extra") or {}),
        channels=obj.get("channels"),
    )


class NoLiveMessage(Conflict):
    """A stream with nothing to show: it has published nothing yet, or its job ended (the
    files go with it). Not a failure of the request: the web app answers it with the job's
    state, so a page polling the live view learns that the recording ended."""


def _open(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise NoLiveMessage(f"stream {path.name} has no message yet") from None


def read_message(path: Path, *, frames: bool = True) -> LiveMessage:
    """A published message (only its header with `frames=False`); NoLiveMessage when the
    stream has published nothing (yet, or any more: the file goes with its job), Conflict
    when the file is not a live message."""
    with _open(path) as f:
        unpacker = msgpack.Unpacker(
            f, raw=False, read_size=_HEADER_READ, max_buffer_size=MAX_BYTES + (1 << 20)
        )
        try:
            head = next(unpacker)
            msg = _header(head, path)
            if frames:
                msg.frames = [bytes(b) for b in next(unpacker)]
                if head.get("blocks"):
                    msg.blocks = [(int(ns), [bytes(b) for b in fs]) for ns, fs in next(unpacker)]
        except (StopIteration, ValueError, KeyError, TypeError, msgpack.UnpackException) as exc:
            raise Conflict(f"live file {path.name} is unreadable: {exc}") from None
    return msg


def holds_trains(msg: LiveMessage) -> bool:
    """Whether the message is a train (sources holding keys), as its protocol's descriptor
    says."""
    from recorder.protocols import lookup

    return lookup(msg.protocol or "").trains


def decoded_blocks(msg: LiveMessage) -> list:
    """The message's channel blocks, each decoded by its protocol's codec (`Decoded`); a
    block the codec refuses is left out."""
    from recorder.protocols import codec_for

    if not msg.blocks or not msg.protocol:
        return []
    codec = codec_for(msg.protocol)
    out = []
    for _, frames in msg.blocks:
        try:
            out.append(codec.decode(frames))
        except MalformedMessage:
            continue
    return out


def decode(msg: LiveMessage):
    """The message as its protocol's codec understands it: `(Decoded | None, reason | None)`.
    A frame cut at `MAX_BYTES` or an undecided protocol leaves it undecoded (None, reason)."""
    from recorder.protocols import codec_for

    if msg.truncated:
        return None, f"frames larger than {MAX_BYTES} bytes are published cut"
    if not msg.protocol:
        return None, "the protocol is not decided yet"
    try:
        return codec_for(msg.protocol).decode(msg.frames), None
    except MalformedMessage as exc:
        return None, exc.reason
    except RecorderError as exc:  # an unknown protocol name
        return None, str(exc)
