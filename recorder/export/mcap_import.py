"""MCAP import: a file becomes a run that replays over ZeroMQ (docs/export/mcap.md).

A file this recorder wrote comes back as the run it was exported from: each raw-frames channel
is a stream with its protocol, endpoint, socket type, role and options, its messages the same
frames at the same receive times (the Foxglove views beside them are left out: they are made
from those frames). A channel of any other file becomes a `raw` stream of one frame per
message, stored as if a SUB socket had recorded a PUB at tcp://127.0.0.1:15600+n (n: the
channel's place in the file), so `recorder replay` serves it from a PUB bound on that port
and the data can feed ZeroMQ analysis clients.

The markers of a file this recorder wrote (its `/markers` channel) become the run's markers
again, as recording them made them (docs/format.md `markers`), and its `zmq_recorder.pauses`
record the run's pauses (so `replay --skip-pauses` and the exports see them); a marker message
or pauses record that is not one refuses the file like any damaged message.

A file that is not MCAP, or is truncated or damaged, raises ExportError and leaves no run
behind: the run being written is removed.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from mcap.reader import McapReader, make_reader
from mcap.records import Channel, Message, Schema
from mcap.summary import Summary

from recorder.contracts import Pause
from recorder.errors import ExportError, RecorderError
from recorder.export import mcap_framing as fr
from recorder.export.importing import ImportedStream, RunImport
from recorder.protocols import RAW
from recorder.protocols.registry import names as protocol_names

FOREIGN_HOST = "127.0.0.1"
FOREIGN_PORT = 15600
"""A foreign file's n-th channel (0-based) is recorded from tcp://127.0.0.1:15600+n."""
_NAME_BAD = re.compile(r"[^A-Za-z0-9_.\-]+")


class _Unreadable(Exception):
    """The mcap library failed on the file (any of its own or struct/zstd errors)."""


def _reading(source: Path, what: str, exc: Exception) -> ExportError:
    return ExportError(
        f"{source} is not a complete, readable MCAP file ({what}: {exc or type(exc).__name__})"
    )


def _open(f: IO[bytes], source: Path) -> tuple[McapReader, Summary | None]:
    """The reader and the summary; a file without its footer (cut short) is refused here,
    before any run exists. A summary may be absent in a whole file (the writer chose so)."""
    try:
        reader = make_reader(f, validate_crcs=True)
    except Exception as exc:  # InvalidMagic, EndOfFile, struct.error ...
        raise _reading(source, "no MCAP magic", exc) from exc
    try:
        summary = reader.get_summary()
    except Exception as exc:
        raise _reading(source, "no footer: truncated?", exc) from exc
    return reader, summary


def _messages(
    reader: McapReader, summary: Summary | None, source: Path
) -> Iterator[tuple[Schema | None, Channel, Message]]:
    """Messages in log-time order where the file is indexed (a queue of chunks, never the
    whole file), else in file order (the library would sort an unindexed file in memory)."""
    ordered = summary is not None and bool(summary.chunk_indexes)
    it = reader.iter_messages(log_time_order=ordered)
    while True:
        try:
            item = next(it)
        except StopIteration:
            return
        except Exception as exc:  # CRC mismatch, cut record, bad compression ...
            raise _reading(source, "damaged record", exc) from exc
        yield item


def _run_metadata(reader: McapReader) -> dict[str, Any]:
    """The export's provenance when we wrote the file, with JSON values decoded."""
    try:
        records = [m for m in reader.iter_metadata() if m.name == fr.RUN_METADATA]
    except Exception:
        return {}
    out: dict[str, Any] = {}
    for key, text in records[0].metadata.items() if records else ():
        try:
            out[key] = json.loads(text)
        except ValueError:
            out[key] = text
    return out


def _pauses(reader: McapReader, source: Path) -> list[Pause]:
    """The run's deliberate pauses when we wrote the file (`zmq_recorder.pauses`: a JSON list
    of {start_ns, end_ns, messages}); a record that is not that refuses the file."""
    try:
        records = [m for m in reader.iter_metadata() if m.name == fr.PAUSES_METADATA]
    except Exception:
        return []  # no metadata index: a file another tool wrote
    if not records:
        return []
    try:
        body = json.loads(records[0].metadata.get("pauses", ""))
    except ValueError as exc:
        raise ExportError(f"{source}: its pauses record is not JSON: {exc}") from exc
    out: list[Pause] = []
    for p in body if isinstance(body, list) else [None]:
        if not isinstance(p, dict) or not (
            _is_int(p.get("start_ns"))
            and (p.get("end_ns") is None or _is_int(p.get("end_ns")))
            and _is_int(p.get("messages"))
        ):
            raise ExportError(
                f"{source}: its pauses record holds {p!r}, not {{start_ns, end_ns, messages}}"
            )
        out.append({"start_ns": p["start_ns"], "end_ns": p["end_ns"], "messages": p["messages"]})
    return out


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _first_log_time(reader: McapReader, summary: Summary | None) -> int | None:
    stats = summary.statistics if summary is not None else None
    if stats is not None and stats.message_count:
        return int(stats.message_start_time)
    try:
        for _schema, _channel, message in reader.iter_messages(log_time_order=False):
            return int(message.log_time)
    except Exception:
        return None
    return None


def _is_ours(channel: Channel) -> bool:
    return channel.metadata.get(fr.FRAMING_KEY) == fr.FRAMING


def _is_view(channel: Channel) -> bool:
    return channel.metadata.get(fr.KIND) in (fr.KIND_IMAGE, fr.KIND_COLUMNS, fr.KIND_MARKERS)


def _is_markers(channel: Channel) -> bool:
    return channel.metadata.get(fr.KIND) == fr.KIND_MARKERS


def _marker(data: bytes, log_time: int) -> tuple[str, int, str]:
    """(text, recv_ns, author) of a `/markers` message (`{"text", "author", "recv_ns"}`; the
    log time is the receive time when recv_ns is missing)."""
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise ExportError(f"a marker is not JSON: {exc}") from exc
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        raise ExportError("a marker is not an object with a text")
    recv_ns, author = body.get("recv_ns", log_time), body.get("author") or ""
    if not _is_int(recv_ns) or not isinstance(author, str):
        raise ExportError("a marker's recv_ns is not an integer or its author not text")
    return body["text"], recv_ns, author


class _Streams:
    """Channel id -> the stream its messages go to, made when a channel is first seen."""

    def __init__(self, imp: RunImport, source: Path):
        self.imp, self.source = imp, source
        self.by_channel: dict[int, tuple[Any, bool] | None] = {}
        self.names: set[str] = set()
        self.foreign = 0
        self.last_ns: dict[int, int] = {}

    def of(self, channel: Channel, schema: Schema | None) -> tuple[Any, bool] | None:
        """(stream handle, framed) for the channel's messages, None for a view channel."""
        if channel.id not in self.by_channel:
            view = _is_view(channel)
            self.by_channel[channel.id] = None if view else self._add(channel, schema)
        return self.by_channel[channel.id]

    def _add(self, channel: Channel, schema: Schema | None) -> tuple[Any, bool]:
        spec = self._ours(channel) if _is_ours(channel) else self._foreign(channel, schema)
        self.names.add(spec.name)
        try:
            return self.imp.stream(spec), _is_ours(channel)
        except RecorderError as exc:  # bad name, role, protocol in the metadata
            raise ExportError(
                f"{self.source}: channel {channel.topic!r} cannot become a stream: {exc}"
            ) from exc

    def _ours(self, channel: Channel) -> ImportedStream:
        meta = channel.metadata
        protocol = meta.get(fr.PROTOCOL, "")
        if protocol not in protocol_names():
            raise ExportError(
                f"{self.source}: channel {channel.topic!r} has protocol {protocol!r}, which this "
                f"recorder does not know (known: {', '.join(protocol_names())})"
            )
        try:
            options = json.loads(meta.get(fr.OPTIONS) or "{}")
        except ValueError as exc:
            raise ExportError(f"{self.source}: channel {channel.topic!r}: bad options") from exc
        name = meta.get(fr.STREAM) or self._name(channel.topic)
        if name in self.names:
            raise ExportError(f"{self.source}: two channels hold stream {name!r}")
        return ImportedStream(
            name=name,
            protocol=protocol,
            endpoint=meta.get(fr.ENDPOINT, ""),
            socket_type=meta.get(fr.SOCKET_TYPE, ""),
            role=meta.get(fr.ROLE, ""),
            options=options if isinstance(options, dict) else {},
        )

    def _foreign(self, channel: Channel, schema: Schema | None) -> ImportedStream:
        port = FOREIGN_PORT + self.foreign
        self.foreign += 1
        where = {
            "topic": channel.topic,
            "message_encoding": channel.message_encoding,
            "schema": schema.name if schema is not None else "",
            "schema_encoding": schema.encoding if schema is not None else "",
        }
        return ImportedStream(
            name=self._name(channel.topic),
            protocol=RAW,
            endpoint=f"tcp://{FOREIGN_HOST}:{port}",
            socket_type="SUB",  # as if a SUB had recorded a PUB there: replay serves a PUB
            role="connect",
            options={"subscribe": [""], "mcap": where},  # what the channel was
        )

    def _name(self, topic: str) -> str:
        """A stream name from a topic (`/camera/image` -> `camera_image`), unique in the run."""
        base = _NAME_BAD.sub("_", topic).strip("_.-")[:56] or "channel"
        if not base[0].isalnum():
            base = "c" + base
        name, n = base, 1
        while name in self.names:
            n += 1
            name = f"{base}-{n}"
        return name

    def recv_ns(self, channel: Channel, log_time: int) -> int:
        """Receive times never go backwards within a stream: an earlier log time than the
        channel's previous one (an unordered foreign file) is taken as that previous one."""
        ns = max(int(log_time), self.last_ns.get(channel.id, 0))
        self.last_ns[channel.id] = ns
        return ns


def import_file(source: Path, runs_dir: Path, *, name: str = "") -> Path:
    """Import an MCAP file as a new run under `runs_dir`; return the run's folder."""
    source = Path(source)
    try:
        f = open(source, "rb")  # noqa: SIM115 (closed below, after the whole import)
    except OSError as exc:
        raise ExportError(f"cannot read {source}: {exc.strerror or exc}") from exc
    with f:
        reader, summary = _open(f, source)
        prov = _run_metadata(reader)
        started = prov.get("run_started_ns")
        if not isinstance(started, int):
            started = _first_log_time(reader, summary)
        meta: dict[str, Any] = {"imported_from": {"format": "mcap", "file": source.name}}
        if prov.get("run_id"):
            meta["imported_from"]["run_id"] = prov["run_id"]
        run_name = name or str(prov.get("run_name") or "") or source.stem
        if started is None:  # a file of no message
            started = time.time_ns()
        imp = RunImport(runs_dir, started_ns=started, name=run_name, meta=meta)
        try:
            with imp:
                pauses = _pauses(reader, source)
                if pauses:
                    imp.run.set_pauses(pauses)
                streams = _Streams(imp, source)
                if summary is not None:  # every stream, even one with no message
                    for channel in sorted(summary.channels.values(), key=lambda c: c.id):
                        streams.of(channel, summary.schemas.get(channel.schema_id))
                for schema, channel, message in _messages(reader, summary, source):
                    target = streams.of(channel, schema)
                    if target is None:
                        if _is_markers(channel):
                            try:
                                text, at, author = _marker(message.data, message.log_time)
                            except ExportError as exc:
                                raise ExportError(
                                    f"{source}: channel {channel.topic!r}, message at log time "
                                    f"{message.log_time}: {exc}"
                                ) from exc
                            imp.run.add_marker(text, recv_ns=at, author=author)
                        continue
                    stream, framed = target
                    try:
                        frames = fr.unpack(message.data) if framed else [message.data]
                    except ExportError as exc:
                        raise ExportError(
                            f"{source}: channel {channel.topic!r}, message at log time "
                            f"{message.log_time}: {exc}"
                        ) from exc
                    stream.append(streams.recv_ns(channel, message.log_time), frames)
        except BaseException:
            shutil.rmtree(imp.path, ignore_errors=True)
            raise
    return imp.path
