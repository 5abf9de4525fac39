"""The shapes of data that cross rooms: named here once, so writer, reader, recover, previews,
catalog, worker and API models agree on them and mypy checks that they do.

At the bottom of the house: imports nothing from the package but `protocols.base` (the decoded
message, `Decoded`/`BulkFrame`/`FrameBytes`, lives there beside the codecs that make it).

The hot path (socket -> queue -> writer) passes plain tuples: a NamedTuple's constructor costs
about twice a tuple literal per message, so received messages and writer items are tuple
aliases whose field order is documented here instead. Everything stored in zarr attributes or
handed to the catalog and the API is a TypedDict: still the plain dict JSON needs.

No `from __future__ import annotations` here: TypedDict reads NotRequired from evaluated
annotations only (Python 3.11), and tests compare `__required_keys__` with what is stored.
"""

from collections.abc import Sequence
from typing import Any, NotRequired, TypedDict

from recorder.protocols.base import Decoded, FrameBytes

# -- the hot path ------------------------------------------------------------------------------

#: A scalar column value of one message (ndattr values, train ids, request latency ...).
ColumnValue = int | float | str | bool

#: One received message: (recv_ns, frames, extra columns or None). The frames are what
#: `recv_multipart` gave: bytes, or zmq.Frame objects when received without copying.
Received = tuple[int, Sequence[Any], dict[str, ColumnValue] | None]

#: What a receive loop hands the writer thread at once.
Batch = list[Received]

#: One message for `StreamWriter.append_batch`: (recv_ns, frames, decoded or None, reject
#: reason or None). A message with a reason is stored verbatim and flagged rejected.
WriteItem = tuple[int, Sequence[FrameBytes], Decoded | None, str | None]


# -- zarr attributes of a run ------------------------------------------------------------------


class Marker(TypedDict):
    """A user's timestamped event during a recording, on the receive clock (run attrs)."""

    recv_ns: int
    text: str
    author: NotRequired[str]  # the token or browser session name, or "cli"


class Pause(TypedDict):
    """A deliberate pause of a recording: messages received in [start_ns, end_ns) not stored."""

    start_ns: int
    end_ns: int | None  # None while paused (or the recording ended paused)
    messages: int  # how many were received and not stored


class RunAttrs(TypedDict):
    """The run group's attributes (docs/format.md)."""

    format: str
    format_version: int
    run_id: str
    name: str
    status: str
    started_ns: int
    ended_ns: int | None
    error: str | None
    host: str
    pid: int
    recorder_version: str
    meta: dict[str, Any]
    format_doc: NotRequired[str]  # format 2: where the format is documented
    markers: NotRequired[list[Marker]]  # 0.3: user events during the recording
    pauses: NotRequired[list[Pause]]  # 0.3: deliberate pauses
    trigger: NotRequired[dict[str, Any]]  # 0.3: the trigger that made this run, if any


class Note(TypedDict):
    created_ns: int
    text: str
    id: NotRequired[str]  # every note read has one (store/annotate.py note_items)
    author: NotRequired[str]  # the token or browser session's name that added it
    updated_ns: NotRequired[int]  # last edited
    edited_by: NotRequired[str]


class SessionAttrs(TypedDict):
    """An experimental session (docs/sessions.md): `<data>/sessions/<id>.json`, and a copy in
    the annotations of each of its runs, so `reindex` rebuilds sessions from the stores alone."""

    id: str  # ses-20261202-031500-3fa2c1
    name: str
    description: str
    experimenters: list[str]
    subject: dict[str, str]  # free key/values: subject_id, species, age, sex, ...
    template: str | None  # the lab template whose required fields were checked, if any
    started_ns: int
    ended_ns: int | None  # set when the session is closed
    tags: list[str]
    notes: list[Note]
    meta: dict[str, Any]  # any other key/values
    updated_ns: int  # the newest copy wins when sessions are rebuilt from runs


class Annotations(TypedDict):
    """The `annotations` group's attributes: what users add after recording."""

    tags: list[str]
    notes: list[Note]
    name: NotRequired[str]  # a rename
    session: NotRequired[SessionAttrs | None]  # the session the run belongs to (a copy)


class SegmentInfo(TypedDict):
    """One typed segment in a stream's `segments` list, in creation order."""

    path: str  # the array, e.g. ``arrays/3``
    name: str  # array family (BulkFrame.name)
    dtype: str  # wire dtype, e.g. ``<u2``
    shape: list[int]  # one row's shape; (channels,) for placed segments
    index: NotRequired[str]  # whole-row segments: the message index of each row
    derived: NotRequired[bool]  # copies of arrays that live inside a verbatim frame
    placed: NotRequired[bool]  # (samples, channels) cells, see store/placed.py
    ragged: NotRequired[bool]  # format 2: a frame is rows along the first axis (pulses)
    first_sample: NotRequired[int]  # placed: absolute sample number of row 0


class Committed(TypedDict):
    """What the last flush wrote: a reader reads this much, recover cuts back to it."""

    messages: int
    frames: int
    heap_bytes: int
    segment_rows: list[int]
    rejects: int
    committed_ns: int


class StreamStats(TypedDict):
    """A stream writer's counters (StreamWriter.stats(), stored as the `stats` attribute)."""

    messages: int
    frames: int
    bytes: int
    gaps: int
    seq_resets: int
    drops: int
    rejects: int
    first_recv_ns: int | None
    last_recv_ns: int | None
    columns_dropped: NotRequired[int]  # values past the column cap (absent in older runs)
    segments_capped: NotRequired[int]  # arrays past the segment cap (absent in older runs)
    slowest_flush_ns: NotRequired[int]  # what the SIGKILL loss bound adds to the interval


class StreamConfig(TypedDict):
    """How a stream was recorded: the attributes a stream group starts with."""

    protocol: str
    endpoint: str
    socket_type: str
    role: str  # bind or connect
    options: dict[str, Any]
    protocol_detected: NotRequired[bool]  # `--protocol auto` picked it
    compression: NotRequired[str]  # layout.COMPRESSIONS (format 2; absent: none)


class StreamAttrs(StreamConfig):
    """A stream group's attributes, as every flush rewrites them."""

    meaning: NotRequired[dict[str, Any]]  # format 2: the protocol's StreamMeaning
    segments: list[SegmentInfo]
    columns: dict[str, str]  # column name -> array under `columns/`
    stats: StreamStats
    committed: Committed


# -- summaries (RunReader.summary: `recorder info`, the catalog, the API) ------------------------


class StreamSummary(TypedDict):
    name: str
    protocol: str
    endpoint: str
    socket_type: str
    role: str
    messages: int
    frames: int
    bytes: int
    gaps: int
    drops: int
    rejects: int
    columns_dropped: int
    segments_capped: int
    arrays: list[str]
    first_recv_ns: int | None
    last_recv_ns: int | None


class RunSummary(TypedDict):
    run_id: str
    name: str
    status: str | None
    error: str | None
    format_version: int | None
    started_ns: int
    ended_ns: int | None
    duration_s: float
    host: str | None
    pid: int | None
    meta: dict[str, Any]
    tags: list[str]
    notes: list[Note]
    messages: int
    bytes: int
    gaps: int
    drops: int
    rejects: int
    streams: list[StreamSummary]
    path: str
    session: NotRequired[SessionAttrs | None]


# -- live counters (workers write them to the job row, the API shows them) -----------------------


class RecordingStats(TypedDict):
    """Recording.stats(): totals over the recording's streams so far."""

    messages: int
    bytes: int
    drops: int
    gaps: int
    queue_bytes: int
    elapsed_s: float
    state: str  # armed, recording or paused
    runs: int  # runs made so far
    triggers: int  # triggers seen (manual and rules), extensions included
    armed_bytes: int  # held in the pre-trigger buffers now
    armed_dropped: int  # messages the buffers' byte limit pushed out
    paused_messages: int  # received while paused, not stored


class RecordStreamStats(TypedDict):
    stream: str
    messages: int
    bytes: int
    drops: int
    gaps: int
    queue_bytes: int
    endpoint: str


class RecordJobStats(TypedDict):
    """A recording worker's `stats` in its job row."""

    messages: int
    bytes: int
    rate_messages_s: float
    rate_bytes_s: float
    gaps: int
    drops: int
    queue_bytes: int
    elapsed_s: float
    last_error: str | None
    warnings: list[str]
    """Things the user should look at, such as a source that has sent nothing yet."""
    streams: list[RecordStreamStats]
    updated_ns: int
    state: str  # armed, recording, paused (the API's `recording_state`)
    runs: list[str]  # the run ids made so far, oldest first
    triggers: int
    armed_bytes: int


class ReplayStatus(TypedDict):
    """Replayer.status()."""

    state: str  # playing, paused, stopped, finished
    position_s: float
    duration_s: float
    messages: int
    bytes: int
    elapsed_s: float
    loop: int
    clients: int
    speed: float | None
    error: str | None
    pauses: int  # recorded pauses of the replayed runs
    skip_pauses: bool  # they are cut out of the replay clock


class ReplayJobStats(ReplayStatus):
    """A replay worker's `stats` in its job row."""

    streams: dict[str, Any]  # stream -> where it is served
    warnings: list[str]
    last_error: str | None
    updated_ns: int


class JobRow(TypedDict):
    """One row of the `jobs` table (db/tables.py) as db/jobs.py hands it out."""

    id: str
    kind: str  # record or replay
    host: str | None
    params: dict[str, Any]
    desired: str
    state: str
    run_id: str | None
    manager: str | None
    pid: int | None
    error: str | None
    exit_code: int | None
    stats: dict[str, Any] | None  # RecordJobStats or ReplayJobStats, as JSON came back
    proc: dict[str, Any] | None
    created_ns: int
    started_ns: int | None
    ended_ns: int | None
    updated_ns: int
    stop_requested_ns: int | None
    lost_ns: int | None  # its host stopped beating; NULL once that host repaired its runs
