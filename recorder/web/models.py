"""The API's request and response shapes: pydantic models that validate requests and from which
the OpenAPI document is generated, so the document cannot drift from what the code accepts.

Request models forbid unknown fields (a typo is an error, not silently ignored). Response models
allow extra fields: the contract is that responses may gain fields, never lose them.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from recorder import limits
from recorder.db.managers import HOST_PATTERN
from recorder.export.targets import TARGET_NAMES
from recorder.recording.plans import ARMED_BYTES_DEFAULT, POST_TRIGGER_MAX_S, PRE_TRIGGER_MAX_S
from recorder.recording.source_spec import SOCKET_TYPES, known_protocols
from recorder.store import layout

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=64, examples=["main"])]
Tag = Annotated[str, Field(pattern=NAME_PATTERN, max_length=64, examples=["calibration"])]
Host = Annotated[str, Field(pattern=HOST_PATTERN, max_length=255, examples=["rig-2"])]
Text = Annotated[str, Field(max_length=10_000)]
Endpoint = Annotated[str, Field(min_length=1, max_length=1000, examples=["tcp://127.0.0.1:5556"])]
if TYPE_CHECKING:
    Protocol = str  # the registry's names: known at run time only
else:
    Protocol = Literal[tuple(known_protocols())]
Status = Literal[layout.STATUSES]  # type: ignore[valid-type]
Compression = Literal[layout.COMPRESSIONS]  # type: ignore[valid-type]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Query(BaseModel):
    """Query strings: unknown parameters (cache busters) are ignored, not refused."""

    model_config = ConfigDict(extra="ignore")


class Response(BaseModel):
    model_config = ConfigDict(extra="allow")


# -- errors ------------------------------------------------------------------------------------


class ErrorBody(Response):
    code: str = Field(examples=["not_found"])
    message: str
    details: Any = None


class ErrorEnvelope(Response):
    error: ErrorBody


# -- sources -----------------------------------------------------------------------------------


class SourceConfig(Request):
    """A stream to record: where it is, the socket to open, and the wire protocol."""

    protocol: Protocol = "raw"
    endpoint: Endpoint
    socket_type: Literal[SOCKET_TYPES] | None = Field(  # type: ignore[valid-type]
        None, description="Socket the recorder opens (default: what the protocol's clients use)."
    )
    bind: bool = False
    subscribe: list[Annotated[str, Field(max_length=1000)]] = Field(
        default_factory=list,
        max_length=64,
        description="SUB prefixes, latin-1 text (one character per byte).",
    )
    request: Annotated[str, Field(max_length=10_000)] = Field(
        "next", description="REQ: what is sent for every reply (latin-1)."
    )
    upstream: Endpoint | None = Field(None, description="reqrep: the real service.")
    stream: Name | None = Field(None, description="Stream name in the run (default: source name).")
    heartbeat: bool = True
    compression: Compression | None = Field(
        None,
        description="Compress the stream's arrays on disk (saves disk, costs CPU); "
        "null: the recording's choice, else none.",
    )
    description: Annotated[str, Field(max_length=2000)] = ""
    host: Host | None = Field(
        None, description="The host whose manager records it; null: any host that can reach it."
    )


class SourceCreate(SourceConfig):
    name: Name


class SourceOut(Response):
    name: str
    protocol: str
    endpoint: str
    socket_type: str | None = None
    bind: bool = False
    subscribe: list[str] = []
    request: str = "next"
    upstream: str | None = None
    stream: str | None = None
    heartbeat: bool = True
    compression: str | None = None
    description: str = ""
    host: str | None = None
    created_ns: int
    updated_ns: int


class SourceList(Response):
    sources: list[SourceOut]


# -- tokens ------------------------------------------------------------------------------------


class TokenCreate(Request):
    name: Annotated[str, Field(max_length=128)] = Field("", description="What it is for.")
    expires_s: float | None = Field(
        None,
        gt=0,
        le=limits.LIFETIME_MAX_S,
        description="Valid this many seconds; null: until revoked.",
    )


class TokenOut(Response):
    id: str
    name: str
    created_ns: int
    last_used_ns: int | None = None
    expires_ns: int | None = Field(None, description="null: never expires.")
    current: bool = Field(False, description="The token this request was made with.")


class TokenCreated(TokenOut):
    token: str = Field(description="The token itself: shown only now, never stored.")


class TokenList(Response):
    tokens: list[TokenOut]


# -- recordings and replays --------------------------------------------------------------------


class TriggerIn(Request):
    """Arm the recording: keep the last `pre_s` seconds of every stream in memory, and on each
    trigger (a rule, or POST .../trigger) write them and go on for `post_s` seconds."""

    pre_s: float = Field(0.0, ge=0, le=PRE_TRIGGER_MAX_S, description="Pre-trigger seconds.")
    post_s: float | None = Field(
        None, gt=0, le=POST_TRIGGER_MAX_S, description="Post-trigger seconds; null: until stopped."
    )
    max_bytes: int | Annotated[str, Field(max_length=32)] | None = Field(
        None,
        description="Memory for the pre-trigger buffer, all streams together: bytes or a size "
        f'such as "2GiB" (default {ARMED_BYTES_DEFAULT}); the oldest are dropped and counted.',
    )
    rules: list[Annotated[str, Field(max_length=2000)] | dict[str, Any]] = Field(
        default_factory=list,
        max_length=64,
        description="Trigger rules, as text or JSON (docs/triggers.md).",
    )


class SplitIn(Request):
    """End a run and start the next every `seconds` or every `bytes`."""

    seconds: float | None = Field(None, gt=0, examples=[600])
    bytes: int | None = Field(None, gt=0)


SplitText = Annotated[str, Field(max_length=32, examples=["10m", "500MB"])]


class RecordingCreate(Request):
    sources: list[Name | SourceConfig] = Field(
        min_length=1,
        max_length=64,
        description="Saved source names, or inline source configurations.",
    )
    name: Annotated[str, Field(max_length=256)] = ""
    tags: list[Tag] = Field(default_factory=list, max_length=64)
    duration_s: float | None = Field(None, gt=0, le=limits.DURATION_MAX_S)
    count: int | None = Field(None, gt=0, le=limits.COUNT_MAX)
    flush_interval_s: float = Field(
        limits.FLUSH_INTERVAL_DEFAULT_S, gt=0, le=limits.FLUSH_INTERVAL_MAX_S
    )
    compression: Compression | None = Field(
        None, description="For every source whose configuration does not choose one."
    )
    trigger: TriggerIn | None = Field(None, description="Armed: runs begin with triggers.")
    split: SplitIn | SplitText | None = Field(None, description="A new run every duration or size.")
    session: Annotated[str, Field(max_length=64)] | None = Field(
        None, description="An open session's id: the recording's runs belong to it."
    )
    host: Host | None = Field(
        None,
        description="The host whose manager runs it (GET /hosts); null: its sources' host, "
        "else any host.",
    )


class MarkerIn(Request):
    text: Annotated[str, Field(min_length=1, max_length=10_000)]


class JobOut(Response):
    id: str
    kind: Literal["record", "replay"]
    state: str = Field(description="pending, starting, running, paused, finished, stopped, failed")
    desired: str
    run_id: str | None = Field(
        None,
        description="The run it records or serves; null for a recording stopped before it "
        "began (it made no run) and for an armed one before its first trigger.",
    )
    error: str | None = None
    pid: int | None = None
    exit_code: int | None = None
    created_ns: int
    started_ns: int | None = None
    ended_ns: int | None = None
    updated_ns: int
    params: dict[str, Any]
    stats: dict[str, Any] | None = None
    proc: dict[str, Any] | None = None
    host: str | None = Field(
        None, description="The host that runs it (asked for, or whose manager took it); "
        "null: pending for any host.",
    )  # fmt: skip
    lost_ns: int | None = Field(
        None, description="Failed because its host stopped beating; null again once that "
        "host came back and repaired its runs.",
    )  # fmt: skip


class RecordingOut(JobOut):
    messages: int = 0
    bytes: int = 0
    rate_bytes_s: float = 0.0
    rate_messages_s: float = 0.0
    gaps: int = 0
    drops: int = 0
    queue_bytes: int = 0
    last_error: str | None = None
    recording_state: Literal["armed", "recording", "paused"] | None = Field(
        None, description="Armed (waiting for a trigger), recording or paused; null before the "
        "worker reports.",
    )  # fmt: skip
    runs: list[str] = Field([], description="The runs made so far, oldest first.")
    triggers: int = 0
    armed_bytes: int = Field(0, description="Bytes held in the pre-trigger buffer.")


class RecordingCreated(Response):
    id: str
    run_id: str | None = Field(description="null for an armed recording: runs begin with triggers.")
    state: str


class RecordingList(Response):
    recordings: list[RecordingOut]


_STREAM_KEY = r"^([A-Za-z0-9][A-Za-z0-9_.\-]{0,63}/)?[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
StreamKey = Annotated[
    str,
    Field(
        pattern=_STREAM_KEY,
        max_length=129,
        examples=["main"],
        description="A stream's name; RUN/NAME in a replay of several runs that share it.",
    ),
]


SessionKey = Annotated[
    str, Field(pattern=r"^ses-\d{8}-\d{6}-[0-9a-f]{6}$", examples=["ses-20261202-031500-3fa2c1"])
]
Offset = Annotated[float, Field(ge=-limits.TIME_MAX_S, le=limits.TIME_MAX_S)]


class ReplayCreate(Request):
    run_id: Name | None = Field(None, description="The run to serve (or give a session).")
    session: SessionKey | None = Field(
        None,
        description="Serve every run of this session on one clock (instead of run_id); a "
        "stream split over consecutive runs is one stream (docs/api.md).",
    )
    skip_gaps: bool = Field(
        False, description="Several runs: cut the idle time between runs to 1 s."
    )
    with_runs: list[Name] | None = Field(
        None,
        min_length=1,
        max_length=15,
        description="More runs served with run_id on one clock, aligned by receive times.",
    )
    offsets: dict[Name, Offset] | None = Field(
        None, max_length=16, description="Run id -> seconds to shift that run on the clock."
    )
    follow: bool = Field(
        False, description="Serve a run still being recorded, about one flush behind."
    )
    skip_pauses: bool = Field(
        False, description="Cut the recording's deliberate pauses out of the replay clock."
    )
    streams: list[StreamKey] | None = Field(None, min_length=1, max_length=64)
    speed: float | None = Field(None, gt=0, le=limits.SPEED_MAX)
    max_speed: bool = False
    rate: float | None = Field(
        None, gt=0, le=limits.RATE_MAX_HZ, description="A fixed message rate (Hz)."
    )
    loop: int = Field(1, ge=0, le=limits.LOOP_MAX, description="Times to play; 0: forever.")
    start_s: float | None = Field(None, ge=0, le=limits.TIME_MAX_S)
    end_s: float | None = Field(None, gt=0, le=limits.TIME_MAX_S)
    endpoints: dict[StreamKey, Endpoint] | None = Field(
        None, max_length=64, description="Per stream: where to serve it; 'auto' for a free port."
    )
    endpoint: Literal["recorded", "auto"] = Field(
        "recorded",
        description="Streams not in endpoints: served where the original server was, or on "
        "free 127.0.0.1 ports (the answer's endpoints say which).",
    )
    sockets: dict[StreamKey, Literal["PUB", "PUSH", "REP"]] | None = Field(None, max_length=64)
    paused: bool = Field(False, description="Open the sockets but wait for resume.")
    match: Literal[limits.MATCH_MODES] = "bytes"  # type: ignore[valid-type]
    reply_timing: Literal["recorded", "immediate"] = Field(
        "recorded", description="reqrep: reply after the recorded latency, or at once."
    )
    unanswered: Literal["silent", "unknown-reply"] = Field(
        "silent", description="reqrep: no answer where none was recorded, or the unknown reply."
    )
    cycle: bool = Field(False, description="reqrep: reuse recorded replies in turn.")

    @model_validator(mode="after")
    def _runs_or_session(self) -> ReplayCreate:
        if (self.run_id is None) == (self.session is None):
            raise ValueError("give run_id or session (one of the two)")
        return self


class ReplayOut(JobOut):
    position_s: float = 0.0
    duration_s: float = 0.0
    messages: int = 0
    bytes: int = 0
    clients: int = 0
    speed: float | None = None
    loop: int = 0
    pauses: int = Field(0, description="Deliberate pauses the replayed runs have.")
    skip_pauses: bool = Field(False, description="They are cut out of the replay clock.")
    endpoints: dict[str, str] = {}
    last_error: str | None = None


class ReplayCreated(Response):
    id: str
    run_id: str
    state: str
    bound: bool = Field(False, description="The sockets were bound when this was answered.")
    endpoints: dict[str, str] = Field({}, description="Stream -> endpoint served (once bound).")
    note: str | None = Field(None, description="Why the endpoints are not known yet.")


class ReplayList(Response):
    replays: list[ReplayOut]


class Seek(Request):
    t_s: float = Field(ge=0, le=limits.TIME_MAX_S, description="Seconds from the start of the run.")


class Speed(Request):
    speed: float = Field(gt=0, le=limits.SPEED_MAX)


class Step(Request):
    n: int = Field(1, ge=1, le=limits.STEP_MAX)


# -- runs --------------------------------------------------------------------------------------


RunSort = Literal[
    "-started",
    "started",
    "name",
    "-name",
    "duration",
    "-duration",
    "bytes",
    "-bytes",
    "messages",
    "-messages",
]


class RunsQuery(Query):
    q: Annotated[str, Field(max_length=200)] | None = Field(
        None, description="Text in the run id, name, tags or notes."
    )
    tag: Tag | None = None
    protocol: Annotated[str, Field(max_length=32)] | None = None
    status: Status | None = None
    since: datetime | None = Field(None, description="Started at or after (ISO 8601; UTC).")
    until: datetime | None = Field(None, description="Started before (ISO 8601; UTC).")
    sort: RunSort = Field("-started", description="Order; a leading '-' means descending.")
    limit: int = Field(50, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=2**31)


class RunItem(Response):
    run_id: str
    name: str
    status: str
    error: str | None = None
    started_ns: int
    ended_ns: int | None = None
    duration_s: float
    messages: int
    bytes: int
    disk_bytes: int | None = Field(
        None, description="Bytes its folder takes on disk (du); null if the folder is not here."
    )
    gaps: int
    drops: int
    rejects: int
    protocols: list[str]
    tags: list[str]
    session: str | None = Field(None, description="Id of the session the run is in.")


class RunList(Response):
    runs: list[RunItem]
    total: int
    limit: int
    offset: int


class Note(Response):
    id: str = Field("", description="Edit or delete the note by it (PATCH/DELETE .../notes/{id}).")
    created_ns: int
    text: str
    author: str | None = Field(None, description="Name of the token or session that added it.")
    updated_ns: int | None = Field(None, description="Last edited (null: never).")
    edited_by: str | None = None


class StreamOut(Response):
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
    columns_dropped: int = Field(0, description="Values past the stream's column cap.")
    segments_capped: int = Field(0, description="Arrays past the stream's segment cap.")
    arrays: list[str]
    first_recv_ns: int | None = None
    last_recv_ns: int | None = None


class MarkerOut(Response):
    recv_ns: int = Field(description="When, on the receive clock.")
    text: str
    author: str = ""


class PauseOut(Response):
    start_ns: int
    end_ns: int | None = Field(None, description="null: paused until the recording ended.")
    messages: int = Field(0, description="Received and not stored.")


class RunOut(Response):
    run_id: str
    name: str
    status: str | None = None
    error: str | None = None
    format_version: int | None = None
    started_ns: int
    ended_ns: int | None = None
    duration_s: float
    messages: int
    bytes: int
    gaps: int
    drops: int
    rejects: int
    tags: list[str]
    notes: list[Note]
    streams: list[StreamOut]
    jobs: list[str] = Field(description="Active recordings and replays of this run.")
    session: str | None = Field(None, description="Id of the session the run is in.")
    session_name: str | None = None
    markers: list[MarkerOut] = Field([], description="Users' events, oldest first.")
    pauses: list[PauseOut] = Field([], description="Deliberate pauses of the recording.")
    trigger: dict[str, Any] | None = Field(None, description="What made a triggered run.")


class NoteIn(Request):
    text: Text
    created_ns: int | None = Field(None, ge=0, le=2**63 - 1)


class RunPatch(Request):
    name: Annotated[str, Field(max_length=256)] | None = None
    note: Text | None = Field(None, description="Append one note.")
    notes: list[NoteIn] | None = Field(
        None,
        max_length=1000,
        description="Replace all notes (deprecated: it drops notes added elsewhere since they "
        "were read; use POST/PATCH/DELETE /runs/{run_id}/notes).",
    )


class TagIn(Request):
    """One tag (`tag`) or several (`tags`) per request."""

    tag: Tag | None = None
    tags: list[Tag] | None = Field(None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _one_way(self) -> TagIn:
        if (self.tag is None) == (self.tags is None):
            raise ValueError("give either `tag` or `tags`")
        return self

    def all(self) -> list[str]:
        return [self.tag] if self.tag is not None else list(self.tags or [])


class Tags(Response):
    run_id: str
    tags: list[str]


class DeleteQuery(Query):
    confirm: Annotated[str, Field(max_length=64)] | None = Field(
        None, description="The run id again: deleting is explicit."
    )


class FrameQuery(Query):
    array: Annotated[str, Field(max_length=256)] | None = Field(
        None, description="Which typed array of the message (default: the first image)."
    )
    size: int = Field(512, ge=16, le=4096, description="Largest side in pixels.")


class SeriesQuery(Query):
    start: float | None = Field(None, ge=0, le=1e9, description="Seconds from the run start.")
    end: float | None = Field(None, ge=0, le=1e9)
    points: int = Field(1000, ge=2, le=10_000, description="Buckets of min/max.")
    array: Annotated[str, Field(max_length=256)] | None = None
    column: Annotated[str, Field(max_length=256)] | None = None


class Series(Response):
    stream: str
    array: str | None = None
    column: str | None = None
    start_s: float
    end_s: float
    channels: list[str]
    t_s: list[float]
    min: list[list[float | None]]
    max: list[list[float | None]]
    samples: int


class MessagesQuery(Query):
    start: int = Field(0, ge=0, le=2**62)
    limit: int = Field(50, ge=1, le=500)


class FrameInfo(Response):
    index: int
    size: int
    kind: str = Field(description="array, json, msgpack, text, pickle or bytes")


class MessageOut(Response):
    index: int
    recv_ns: int
    t_s: float
    seq: int
    source_ns: int
    rejected: bool
    frames: list[FrameInfo]


class MessagesPage(Response):
    stream: str
    start: int
    total: int
    messages: list[MessageOut]


# -- status ------------------------------------------------------------------------------------


class ManagerInfo(Response):
    alive: bool
    id: str | None = None
    host: str | None = None
    pid: int | None = None
    heartbeat_age_s: float | None = None


class WorkerInfo(Response):
    id: str
    kind: str
    state: str
    run_id: str | None = None
    pid: int | None = None


class DiskInfo(Response):
    total_bytes: int
    free_bytes: int
    write_rate_bytes_s: float
    time_left_s: float | None = None


class StatusOut(Response):
    version: str
    manager: ManagerInfo
    managers: list[ManagerInfo]
    workers: list[WorkerInfo]
    data: str
    disk: DiskInfo


# -- exports -----------------------------------------------------------------------------------

ExportTarget = Literal[TARGET_NAMES]  # type: ignore[valid-type]


class ExportCreate(Request):
    target: ExportTarget = Field(description="nwb, exdf, hdf5 or mcap (docs/export.md).")
    streams: list[Name] | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Streams to export (default: every stream the target can hold).",
    )
    start: float | None = Field(None, ge=0, le=limits.TIME_MAX_S, description="Seconds in.")
    end: float | None = Field(None, ge=0, le=limits.TIME_MAX_S, description="Seconds in.")


class SessionExportCreate(Request):
    target: ExportTarget = Field(description="nwb, exdf, hdf5 or mcap (docs/export.md).")


class ExportOut(Response):
    id: str
    kind: Literal["export"] = "export"
    state: str = Field(description="pending, starting, running, finished, stopped, failed")
    desired: str
    run_id: str
    target: str
    session: str | None = Field(None, description="A whole-session export: the session's id.")
    error: str | None = None
    progress: float = Field(0.0, description="Fraction done, 0..1.")
    file: str = Field(description="Name of the file (or zipped folder) to download.")
    streams: list[str] = Field(description="Streams exported (planned until it finishes).")
    skipped: dict[str, str] = Field(default_factory=dict, description="Stream: why left out.")
    messages: int | None = None
    bytes: int | None = None
    partial: bool | None = Field(None, description="The run was still recording.")
    download: str | None = Field(None, description="URL of the file once finished.")
    created_ns: int
    started_ns: int | None = None
    ended_ns: int | None = None
    updated_ns: int
    params: dict[str, Any]


class ExportCreated(Response):
    id: str
    run_id: str
    state: str


class ExportList(Response):
    exports: list[ExportOut]


# -- sessions (web/sessions.py, docs/sessions.md) ------------------------------------------------

SessionText = Annotated[str, Field(max_length=64 << 10)]
SessionName = Annotated[str, Field(min_length=1, max_length=256)]


class SessionNoteIn(Request):
    text: SessionText
    created_ns: int | None = Field(None, ge=0, le=2**63 - 1)


class SessionFields(Request):
    """What a user sets on a session; a PATCH changes only the fields it sends."""

    description: SessionText | None = None
    experimenters: list[SessionName] | None = Field(None, max_length=256)
    subject: dict[str, SessionText] | None = Field(
        None, description="Free key/values: subject_id, species, sex, age, ..."
    )
    template: SessionName | None = Field(
        None, description="A lab template whose required subject fields are checked."
    )
    tags: list[Tag] | None = Field(None, max_length=256)
    notes: list[SessionNoteIn] | None = Field(None, max_length=256)
    meta: dict[str, Any] | None = Field(None, description="Any other key/values.")


class SessionCreate(SessionFields):
    name: SessionName


class SessionPatch(SessionFields):
    name: SessionName | None = None


class SessionMove(Request):
    session: str | None = Field(description="The session's id, or null: in no session.")


class SessionsQuery(Query):
    q: Annotated[str, Field(max_length=200)] | None = Field(
        None, description="Text in the name, description, experimenters, subject or tags."
    )
    open: bool = Field(False, description="Only sessions not closed yet.")
    limit: int = Field(50, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=2**31)


class SessionOut(Response):
    id: str = Field(examples=["ses-20261202-031500-3fa2c1"])
    name: str
    description: str
    experimenters: list[str]
    subject: dict[str, str]
    template: str | None = None
    started_ns: int
    ended_ns: int | None = Field(None, description="Set when the session is closed.")
    tags: list[str]
    notes: list[Note]
    meta: dict[str, Any]
    updated_ns: int


class SessionItem(SessionOut):
    runs: int = Field(description="How many runs are in the session.")
    bytes: int


class SessionList(Response):
    sessions: list[SessionItem]
    total: int
    limit: int
    offset: int


class SessionRun(Response):
    run_id: str
    name: str
    status: str | None = None
    started_ns: int
    ended_ns: int | None = None
    duration_s: float
    bytes: int
    messages: int
    gaps: int
    drops: int


class SessionTotals(Response):
    runs: int
    duration_s: float = Field(description="The runs' durations added up.")
    span_s: float = Field(description="From the first run's start to the last run's end.")
    bytes: int
    messages: int
    gaps: int
    drops: int


class SessionDetail(SessionOut):
    runs: list[SessionRun] = Field(description="The session's runs, oldest first.")
    totals: SessionTotals


class RunSession(Response):
    run_id: str
    session: str | None


# -- run views: image viewer, message inspector, scalar columns --------------------------------

Contrast = Literal["auto", "minmax", "percentile", "manual"]
ColourMap = Literal["gray", "viridis", "magma", "inferno", "plasma", "cividis", "turbo"]


class FrameImageQuery(FrameQuery):
    full: bool = Field(
        False, description="Full resolution (up to 8192 pixels a side) instead of `size`."
    )
    contrast: Contrast = Field(
        "auto",
        description="auto (0.5-99.5 percentiles, uint8 as it is), minmax, percentile (plo..phi) "
        "or manual (lo..hi in pixel values).",
    )
    lo: float | None = Field(None, ge=-1e300, le=1e300, description="contrast=manual: black.")
    hi: float | None = Field(None, ge=-1e300, le=1e300, description="contrast=manual: white.")
    plo: float = Field(0.5, ge=0, le=100, description="contrast=percentile: black percentile.")
    phi: float = Field(99.5, ge=0, le=100, description="contrast=percentile: white percentile.")
    cmap: ColourMap = Field("gray", description="Colour map of a one-channel image.")

    @model_validator(mode="after")
    def _limits_in_order(self):
        if self.contrast == "manual" and (self.lo is None or self.hi is None):
            raise ValueError("contrast=manual needs lo and hi")
        if self.lo is not None and self.hi is not None and not self.lo < self.hi:
            raise ValueError("lo must be below hi")
        if not self.plo < self.phi:
            raise ValueError("plo must be below phi")
        return self


class FrameDetailsQuery(Query):
    array: Annotated[str, Field(max_length=256)] | None = Field(
        None, description="Which image of the message the statistics are of (default: the first)."
    )


class FrameImage(Response):
    array: str
    dtype: str
    shape: list[int]


class FrameStats(Response):
    min: float | None
    max: float | None
    mean: float | None
    p0_5: float | None
    p99_5: float | None


class FrameDetails(Response):
    stream: str
    index: int
    total: int
    recv_ns: int
    t_s: float
    unique_id: Any = Field(description="uniqueId, unique_id or train id (else seq).")
    attributes: dict[str, Any] = Field(description="Every per-message column of the frame.")
    images: list[FrameImage]
    array: str | None
    stats: FrameStats | None


class InspectQuery(MessagesQuery):
    hex_bytes: int = Field(
        64, ge=0, le=4096, description="Bytes shown as hex of each frame that does not decode."
    )
    t_s: float | None = Field(
        None, ge=0, le=1e9, description="Start at the first message received at or after this."
    )
    train_id: int | None = Field(None, ge=0, le=2**64 - 1, description="Start at this train.")
    source: Annotated[str, Field(max_length=512)] | None = Field(
        None, description="Karabo: only the frames of this source."
    )
    key: Annotated[str, Field(max_length=512)] | None = Field(
        None, description="Karabo, with source: only this key of the source."
    )

    @model_validator(mode="after")
    def _bounded_page(self):
        if self.limit * self.hex_bytes > 1 << 18:
            raise ValueError("limit x hex_bytes must stay within 262144")
        if self.key is not None and self.source is None:
            raise ValueError("key needs source")
        return self


class InspectPage(MessagesPage):
    sources: list[str] = Field(description="Karabo sources seen on this page, in order.")
    keys: dict[str, list[str]] = Field(description="Keys (and array paths) of each source.")


class ColumnInfo(Response):
    name: str
    dtype: str
    numeric: bool


class ColumnList(Response):
    stream: str
    messages: int
    columns: list[ColumnInfo]
