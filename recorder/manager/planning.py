"""Turning a request ("record these sources", "replay that run") into a checked job.

Everything that can be known wrong before a worker starts is refused here, with the package's
own errors, so an API caller gets a 4xx at once instead of a job that fails a second later. The
same checks serve the web app and any other front end; nothing here opens a socket.

A request that comes over HTTP is planned with the operator's `EndpointPolicy`: every endpoint
the job will bind or connect (sources, the reqrep proxy's listen and upstream endpoints, a
replay's endpoints and control planes, defaults included) is checked before the job exists.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recorder import limits
from recorder.contracts import JobRow
from recorder.db.control import Control
from recorder.db.jobs import DESIRED_PAUSED, DESIRED_RUNNING, KIND_RECORD, KIND_REPLAY
from recorder.db.managers import check_host
from recorder.db.sessions import SessionIndex
from recorder.endpoint_policy import EndpointPolicy, EndpointRefused
from recorder.endpoints import parse_tcp
from recorder.errors import Conflict, NotFound, UsageError
from recorder.recording.plans import (
    ARMED_BYTES_DEFAULT,
    SplitPlan,
    TriggerPlan,
    parse_size,
    parse_split,
)
from recorder.recording.source_spec import SourceSpec
from recorder.store import layout

if TYPE_CHECKING:
    from recorder.replay.plan import StreamPlan

#: Fields of a saved source configuration (JSON), with their defaults.
SOURCE_FIELDS: dict[str, Any] = {
    "protocol": "raw",
    "endpoint": None,
    "socket_type": None,
    "bind": False,
    "subscribe": [],
    "request": "next",
    "upstream": None,
    "stream": None,
    "heartbeat": True,
    "compression": None,  # None: the recording's choice, else none (layout.COMPRESSIONS)
    "description": "",
    "host": None,  # the host whose manager records it; None: any host that can reach it
}


def _latin1(text: str, what: str) -> bytes:
    """Prefixes and requests are bytes; JSON carries them as latin-1 strings ("\\u0000" = 0)."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        raise UsageError(f"{what} must be latin-1 text (one character per byte)") from None


def source_spec(config: dict, *, default_stream: str = "main") -> SourceSpec:
    """A source configuration (saved or inline) as the recorder's checked SourceSpec."""
    if not config.get("endpoint"):
        raise UsageError("a source needs an endpoint")
    spec = SourceSpec(
        endpoint=config["endpoint"],
        socket_type=config.get("socket_type"),
        bind=bool(config.get("bind", False)),
        subscribe=[_latin1(p, "subscribe prefixes") for p in config.get("subscribe") or []],
        request=_latin1(config.get("request") or "next", "request"),
        protocol=config.get("protocol") or "raw",
        stream=config.get("stream") or default_stream,
        upstream=config.get("upstream"),
        heartbeat=bool(config.get("heartbeat", True)),
        compression=config.get("compression"),
    )
    return spec.check()


def check_source_endpoints(spec: SourceSpec, policy: EndpointPolicy | None) -> None:
    """The policy's word on a source: its endpoint as the bind or connect it is (a reqrep
    proxy's listen endpoint is a bind, its upstream a connect: never an open relay). The
    control planes a connecting client keeps alive are on the same host, port + 1."""
    if policy is None:
        return
    policy.check(spec.endpoint, bind=spec.bind, what=f"source {spec.stream!r}:")
    if spec.upstream:
        policy.check(spec.upstream, bind=False, what=f"source {spec.stream!r} upstream:")


def normalize_source(config: dict, policy: EndpointPolicy | None = None) -> dict:
    """Validate a configuration to save; returns it with every field present."""
    out = {k: config.get(k, v) for k, v in SOURCE_FIELDS.items()}
    if out["stream"] is not None:
        layout.check_name("stream name", out["stream"])
    if out["host"] is not None:
        check_host(out["host"])
    check_source_endpoints(source_spec(out), policy)
    return out


def plan_recording(
    control: Control,
    *,
    sources: list,
    name: str = "",
    tags: list[str] | None = None,
    duration_s: float | None = None,
    count: int | None = None,
    flush_interval_s: float = limits.FLUSH_INTERVAL_DEFAULT_S,
    compression: str | None = None,
    trigger: dict | None = None,
    split: dict | str | None = None,
    session: str | None = None,
    preview: bool = False,
    data: Path | None = None,
    policy: EndpointPolicy | None = None,
    host: str | None = None,
) -> dict:
    """Job parameters of a recording: each source resolved (saved name or inline config) to a
    complete configuration, so later edits to a saved source do not change a running job.
    `compression` applies to the sources whose configuration does not choose one.

    `trigger` arms it (plan_trigger), `split` cuts it into runs (plan_split), `session` (an open
    session's id, checked in the data folder `data`) is where its runs go. A `preview` is armed
    with nothing buffered and no rules, so it never makes a run (the live view watches it).
    `host` (or the sources' own) names the host whose manager runs it (`params["host"]`)."""
    if not sources:
        raise UsageError("nothing to record: give at least one source")
    layout.check_compression(compression)
    resolved = []
    for i, src in enumerate(sources):
        if isinstance(src, str):
            try:
                config = dict(control.get_source(src)["config"])
            except NotFound:
                raise UsageError(f"no saved source {src!r}") from None
            default = src
        else:
            config = {k: src.get(k, v) for k, v in SOURCE_FIELDS.items()}
            default = "main" if len(sources) == 1 else f"s{i}"
        config["stream"] = config.get("stream") or default
        config["compression"] = config.get("compression") or compression
        spec = source_spec(config)
        check_source_endpoints(spec, policy)
        resolved.append({
            **config, "stream": spec.stream, "compression": spec.compression,
            "source": src if isinstance(src, str) else None,
        })  # fmt: skip
    extra: dict[str, Any] = {}
    hosts = sorted(
        {c["host"] for c in resolved if c.get("host")} | {check_host(h) for h in [host] if h}
    )
    if len(hosts) > 1:
        raise UsageError(f"the recording and its sources name different hosts: {hosts}")
    if hosts:
        extra["host"] = hosts[0]
    streams = [c["stream"] for c in resolved]
    if len(set(streams)) != len(streams):
        raise UsageError(f"two sources record into the same stream name: {streams}")
    for t in tags or []:
        layout.check_name("tag", t)
    limits.check_recording(
        count=count, duration=duration_s, flush_interval=flush_interval_s, names=limits.RECORD_API
    )
    if preview:
        if trigger or split:
            raise UsageError("a preview records nothing: it takes no trigger or split")
        extra["preview"] = True
        trigger = {"pre_s": 0.0}
    if trigger is not None:
        protocols = {c["stream"]: c.get("protocol") for c in resolved}
        extra["trigger"] = plan_trigger(trigger, protocols).to_json()
    if split is not None:
        extra["split"] = plan_split(split).to_json()
    if session is not None:
        extra["session"] = check_session(data, session)
    return {
        "sources": resolved,
        "name": name,
        "tags": sorted(set(tags or [])),
        "duration_s": duration_s,
        "count": count,
        "flush_interval_s": flush_interval_s,
        **extra,
        **_policy_mark(policy),
    }


def plan_trigger(trigger: dict, protocols: dict[str, str | None]) -> TriggerPlan:
    """The API's trigger section as a checked plan: `max_bytes` a number or a size ("2GiB"),
    each rule text or JSON (trigger_rules), made canonical and checked against the recording's
    streams (`protocols`: stream name -> protocol; `auto` is not decided yet)."""
    unknown = set(trigger) - {"pre_s", "post_s", "max_bytes", "rules"}
    if unknown:
        raise UsageError(f"trigger: unknown field(s) {', '.join(sorted(unknown))}")
    max_bytes = trigger.get("max_bytes")
    if isinstance(max_bytes, str):
        max_bytes = parse_size(max_bytes)
    rules = _trigger_rules(trigger.get("rules") or [], protocols)
    post_s = trigger.get("post_s")
    plan = TriggerPlan(
        pre_s=float(trigger.get("pre_s") or 0.0),
        post_s=None if post_s is None else float(post_s),
        max_bytes=ARMED_BYTES_DEFAULT if max_bytes is None else int(max_bytes),
        rules=rules,
    )
    return plan.check({"pre_s": "trigger.pre_s", "post_s": "trigger.post_s",
                       "max_bytes": "trigger.max_bytes"})  # fmt: skip


def _trigger_rules(given: list, protocols: dict[str, str | None]) -> tuple[str, ...]:
    """Each rule (text or JSON) parsed, checked against the streams, as its canonical text."""
    if not given:
        return ()
    from recorder.recording.trigger_rules import RuleSet, rule_from_json

    rules = [rule_from_json(r) for r in given]
    RuleSet(rules, {n: None if p == "auto" else p for n, p in protocols.items()})
    return tuple(r.text for r in rules)


def plan_split(split: dict | str) -> SplitPlan:
    """The API's split: {"seconds": 600}, {"bytes": 500000000}, or text ("10m", "500MB")."""
    if isinstance(split, str):
        try:
            return parse_split(split)
        except UsageError as exc:
            raise UsageError(str(exc).replace("--split-every", "split", 1)) from None
    return SplitPlan.from_json(split, "split")


def check_session(data: Path | None, session_id: str) -> str:
    """The id of an open session in the data folder: SessionNotFound (404) if there is none,
    Conflict if it was closed (a closed session takes no new runs)."""
    from recorder.store.sessions import SessionFiles

    if data is None:
        raise UsageError("sessions need the data folder")
    found = SessionFiles(data).get(session_id)
    if found.get("ended_ns"):
        raise Conflict(f"session {session_id} is closed: it takes no new recordings")
    return found["id"]


def start_recording(control: Control, **request) -> JobRow:
    """Create the recording job (state `pending`); the manager starts it. The run id is chosen
    now so the caller can follow the run before the worker has created it (an armed recording
    has none: its runs begin with triggers, and the job's run id follows them)."""
    from recorder.store.run_writer import new_run_id

    params = plan_recording(control, **request)
    # An armed recording has no run until a trigger: the job's run id follows its runs.
    run_id = None if "trigger" in params else new_run_id()
    return control.create_job(KIND_RECORD, params, run_id=run_id, host=params.get("host"))


def plan_replay(
    runs_dir: Path,
    *,
    run_id: str,
    with_runs: list[str] | None = None,
    offsets: dict[str, float] | None = None,
    follow: bool = False,
    chain: bool = False,
    skip_gaps: bool = False,
    session: str | None = None,
    skip_pauses: bool = False,
    streams: list[str] | None = None,
    speed: float | None = None,
    max_speed: bool = False,
    rate: float | None = None,
    loop: int = 1,
    start_s: float | None = None,
    end_s: float | None = None,
    endpoints: dict[str, str] | None = None,
    endpoint: str = "recorded",
    sockets: dict[str, str] | None = None,
    paused: bool = False,
    match: str = "bytes",
    reply_timing: str = "recorded",
    unanswered: str = "silent",
    cycle: bool = False,
    policy: EndpointPolicy | None = None,
) -> dict:
    """Job parameters of a replay, checked against the stored run the way the replayer will
    use it (streams, endpoints, socket types), without opening any socket."""
    from recorder.replay.plan import check_collisions, plan_stream, spread_auto

    ids = [run_id, *(with_runs or [])]
    limits.check_replay(
        speed=speed, max_speed=max_speed, rate=rate, loop=loop, start=start_s, end=end_s,
        match=match, names=limits.REPLAY_API,
    )  # fmt: skip
    if follow and (len(ids) != 1 or loop != 1):
        raise UsageError("follow plays one run, once (loop 1)")
    if follow and skip_pauses:
        raise UsageError("skip_pauses replays finished runs, not with follow")
    with replay_timeline(runs_dir, ids, offsets, chain=chain, skip_gaps=skip_gaps) as reader:
        names = [reader.key(n) for n in streams] if streams else reader.streams
        if not names:
            raise UsageError(f"run {run_id} has no streams to replay")
        endpoints = {reader.find(n) or n: e for n, e in (endpoints or {}).items()}
        sockets = {reader.find(n) or n: t for n, t in (sockets or {}).items()}
        for n in [*endpoints, *sockets]:
            if n not in names:
                raise UsageError(f"endpoints/sockets name stream {n!r}, which is not replayed")
        chosen = spread_auto({"": endpoint, **endpoints}, names)
        chosen.pop("", None)  # "recorded": each stream's default
        plans = []
        for n in names:
            socket_type = (sockets or {}).get(n)
            plan = plan_stream(reader.stream(n), endpoint=chosen.get(n), socket_type=socket_type)
            plan.stream = n
            plans.append(plan)
            if follow and plan.on_request:
                raise UsageError(f"follow serves PUB and PUSH streams; {n} is served as REP")
            if policy is None:
                continue
            try:
                _check_replay_endpoints(plan, policy)
            except EndpointRefused:
                loopback = _on_loopback(plan.endpoint)
                if n in chosen or not plan.bind or loopback is None:
                    raise
                # Nothing asked for: serve the recorded port on loopback, where the policy
                # allows a bind, rather than refuse (the job says which endpoint it took).
                plan = plan_stream(reader.stream(n), endpoint=loopback, socket_type=socket_type)
                _check_replay_endpoints(plan, policy)
                chosen[n] = loopback
                plan.stream, plans[-1] = n, plan
        check_collisions(plans)
    return {
        "run_id": run_id,
        **_several_runs(ids, offsets, follow),
        **{k: v for k, v in (("chain", chain), ("skip_gaps", skip_gaps)) if v},
        **({"session": session} if session else {}),
        **({"skip_pauses": True} if skip_pauses else {}),
        "streams": names,
        "speed": speed,
        "max_speed": bool(max_speed),
        "rate": rate,
        "loop": loop,
        "start_s": start_s,
        "end_s": end_s,
        "endpoints": chosen,
        "sockets": dict(sockets or {}),
        "match": match,
        "reply_timing": reply_timing,
        "unanswered": unanswered,
        "cycle": bool(cycle),
        **_policy_mark(policy),
    }


def replay_timeline(
    runs_dir: Path,
    run_ids: list[str],
    offsets: dict[str, float] | None,
    *,
    chain: bool = False,
    skip_gaps: bool = False,
):
    """The replayed runs as the replayer will see them (stream keys, offsets checked)."""
    from recorder.replay.timeline import Timeline
    from recorder.store.find import resolve_run

    paths = [resolve_run(runs_dir, r, prefix=False) for r in run_ids]
    return contextlib.closing(Timeline(paths, offsets, chain=chain, skip_gaps=skip_gaps))


MAX_SESSION_RUNS = 2000  # a session replayed or exported as one job: at most this many runs


def session_run_ids(index: SessionIndex, session_id: str) -> list[str]:
    """A session's runs, oldest first, as the catalog knows them; SessionNotFound (404) for an
    unknown session, UsageError for one without runs or with too many for one job."""
    from recorder.store.sessions import check_id

    index.get_session(check_id(session_id))
    ids = index.session_run_ids(session_id)
    if not ids:
        raise UsageError(f"session {session_id} has no runs")
    if len(ids) > MAX_SESSION_RUNS:
        raise UsageError(
            f"session {session_id} has {len(ids)} runs; one job takes at most {MAX_SESSION_RUNS}"
        )
    return ids


def session_replay(index: SessionIndex, request: dict) -> dict:
    """A replay request that names a `session` instead of runs: its runs on one clock, a stream
    split over consecutive runs played as one (`chain`)."""
    session = request.pop("session", None)
    if session is None:
        return request
    if request.get("run_id") or request.get("with_runs"):
        raise UsageError("a replay names a session or runs (run_id, with_runs), not both")
    ids = session_run_ids(index, session)
    return {**request, "run_id": ids[0], "with_runs": ids[1:], "chain": True, "session": session}


def _several_runs(ids: list[str], offsets: dict[str, float] | None, follow: bool) -> dict:
    """Job parameters only a replay of several runs, or a follow, has (older jobs lack them)."""
    out: dict[str, Any] = {}
    if len(ids) > 1:
        out["with_runs"] = ids[1:]
    if offsets:
        out["offsets"] = dict(offsets)
    if follow:
        out["follow"] = True
    return out


def _policy_mark(policy: EndpointPolicy | None) -> dict:
    """Jobs planned under a policy say so: the worker checks them again against its own
    (recorder/manager/worker.py), as another host's manager may run them."""
    return {} if policy is None else {"policy": True}


def _on_loopback(endpoint: str) -> str | None:
    """The same tcp port on 127.0.0.1, for an endpoint that binds every interface."""
    tcp = parse_tcp(endpoint)
    if tcp is None or tcp.port is None or tcp.host not in ("*", "0.0.0.0", "[::]"):
        return None
    return str(tcp._replace(host="127.0.0.1"))


def _check_replay_endpoints(plan: StreamPlan, policy: EndpointPolicy) -> None:
    """The served endpoint (given, or derived from the recorded one) and the control planes
    next to it, each as the bind or connect the replayer will make."""
    from recorder import protocols

    what = f"replay of stream {plan.stream!r}:"
    policy.check(plan.endpoint, bind=plan.bind, what=what)
    controlled_by = protocols.lookup(plan.protocol).controlled_by
    for kind, endpoint in plan.controls.items():
        bind = plan.bind and kind != controlled_by
        policy.check(endpoint, bind=bind, what=f"replay of stream {plan.stream!r} ({kind}):")


def start_replay(control: Control, runs_dir: Path, **request) -> JobRow:
    paused = bool(request.get("paused"))
    request = session_replay(SessionIndex(control.engine), dict(request))
    params = plan_replay(runs_dir, **request)
    return control.create_job(
        KIND_REPLAY,
        params,
        run_id=params["run_id"],
        desired=DESIRED_PAUSED if paused else DESIRED_RUNNING,
    )


# -- exports -----------------------------------------------------------------------------------

EXPORTS_DIR = "exports"


def export_dir(data: Path, job_id: str) -> Path:
    """Where an export job writes its file: `<data>/exports/<job id>/`, a name of our own, so
    nothing a request says is ever used as a path."""
    return data / EXPORTS_DIR / layout.check_name("export job", job_id)


def plan_export(
    runs_dir: Path,
    *,
    run_id: str,
    target: str,
    streams: list[str] | None = None,
    start_s: float | None = None,
    end_s: float | None = None,
) -> dict:
    """Job parameters of an export, checked against the stored run the way the export will
    read it (the run, the target, each stream and whether the target holds it, the window),
    so a request that cannot work is refused before any worker starts."""
    from recorder.export.base import ExportRequest, plan
    from recorder.export.targets import export_name, target_named
    from recorder.store.find import resolve_run
    from recorder.store.reader import RunReader

    path = resolve_run(runs_dir, run_id, prefix=False)
    for value, what in ((start_s, "start"), (end_s, "end")):
        if value is not None and not 0 <= value <= limits.TIME_MAX_S:
            raise UsageError(f"{what} must be between 0 and {limits.TIME_MAX_S:g} s")
    chosen = target_named(target)
    request = ExportRequest(
        run_path=path, target=target, out=path, streams=tuple(streams or ()),
        start=start_s, end=end_s,
    )  # fmt: skip
    with RunReader(path) as reader:
        ctx = plan(reader, chosen, request)
        names = [w.name for w in ctx.windows]
    return {
        "run_id": run_id,
        "target": target,
        "streams": list(streams or ()),
        "start_s": start_s,
        "end_s": end_s,
        "file": export_name(run_id, chosen.suffix, start_s, end_s),
        "planned_streams": names,
        "skipped": dict(ctx.skipped),
    }


def start_export(control: Control, runs_dir: Path, **request) -> JobRow:
    """Create the export job (state `pending`); the manager hands it to a worker."""
    from recorder.db.jobs import KIND_EXPORT

    params = plan_export(runs_dir, **request)
    return control.create_job(KIND_EXPORT, params, run_id=params["run_id"])


def plan_session_export(runs_dir: Path, index: SessionIndex, session_id: str, target: str) -> dict:
    """Job parameters of a whole-session export (one file per run in one folder), checked as
    the export will run: the session, its runs, which of them the target can hold."""
    from recorder.export.session import plan_session, session_folder_name
    from recorder.store.find import resolve_run

    ids = session_run_ids(index, session_id)
    paths = [resolve_run(runs_dir, r, prefix=False) for r in ids]
    files, skipped = plan_session(paths, target)
    if not files:
        reasons = "; ".join(f"{r}: {w}" for r, w in skipped.items())
        raise UsageError(f"session {session_id} has no run {target} can hold ({reasons})")
    return {
        "session": session_id,
        "run_id": ids[0],
        "runs": ids,
        "target": target,
        "streams": [],
        "start_s": None,
        "end_s": None,
        "file": session_folder_name(session_id, target),
        "planned_streams": [],
        "planned_files": [name for _, name in files],
        "skipped": skipped,
    }


def start_session_export(control: Control, runs_dir: Path, session_id: str, target: str) -> JobRow:
    """Create the session's export job (state `pending`); the manager hands it to a worker."""
    from recorder.db.jobs import KIND_EXPORT

    params = plan_session_export(runs_dir, SessionIndex(control.engine), session_id, target)
    return control.create_job(KIND_EXPORT, params, run_id=params["run_id"])
