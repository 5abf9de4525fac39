"""Worker processes: one recording or one replay each, driven through the catalog.

    python -m recorder.manager.worker record|replay|export --job ID --data DIR [--catalog URL]
    python -m recorder.manager.worker spare --data DIR  # then `MODE ID` on stdin

The manager starts these (recorder/manager). A worker reads its job's parameters from the
catalog, polls the job's desired state (stop, pause) and commands (seek, speed, step) ten times a
second, and writes its counters back every half second, so the web app only ever talks to the
database. The catalog is an index and a mailbox, not the data: if it is busy or gone for a
while, a recording keeps recording (and says so in its log) rather than losing data.

A worker records its own final state (finished, stopped or failed with the reason) before it
exits; the manager only fills in a reason when a worker dies without saying anything.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from recorder import config
from recorder.contracts import JobRow, RecordJobStats, RecordStreamStats, ReplayJobStats
from recorder.db.control import Control
from recorder.db.jobs import (
    DESIRED_PAUSED,
    DESIRED_STOPPED,
    FAILED,
    FINISHED,
    PAUSED,
    RUNNING,
    STOPPED,
)
from recorder.endpoint_policy import EndpointPolicy, EndpointRefused
from recorder.endpoints import parse_tcp, port_plus_one
from recorder.errors import RecorderError, UsageError
from recorder.store import layout
from recorder.store.find import resolve_run

if TYPE_CHECKING:  # these load zmq, numpy, zarr: imported where a worker needs them
    from recorder.db.catalog import Catalog
    from recorder.recording.recording import Recording
    from recorder.recording.source_spec import SourceSpec
    from recorder.replay import Replayer
    from recorder.store.run_writer import RunWriter

POLL_S = 0.1  # desired state and commands
STATS_S = 0.5  # counters to the catalog (the API promises at least every second)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Softly:
    """Catalog writes that must not stop the data path: failures are logged, once a minute."""

    def __init__(self):
        self._last = 0.0

    def __call__(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RecorderError as exc:
            if time.monotonic() - self._last > 60:
                self._last = time.monotonic()
                _say(f"warning: catalog: {exc}")
            return None


#: How long the final catalog writes of a job (its run's index, its end) wait for a database
#: that is away (a server restarting, the network down); the run is safe on disk meanwhile.
CATALOG_WAIT_S = 3600.0


def patiently(fn, *args, **kwargs):
    """A catalog write that must happen: tried again every second while the database is
    unreachable (for up to CATALOG_WAIT_S), so the catalog catches up when it returns."""
    from recorder.db.engine import is_transient

    deadline, said = time.monotonic() + CATALOG_WAIT_S, 0.0
    while True:
        try:
            return fn(*args, **kwargs)
        except RecorderError as exc:
            if not is_transient(exc) or time.monotonic() > deadline:
                raise
            if time.monotonic() - said > 60:
                said = time.monotonic()
                _say(f"warning: catalog: {exc}; trying again until it answers")
            time.sleep(1.0)


class Rates:
    """Rates over the last publishing interval, from cumulative counters."""

    def __init__(self):
        self._prev: tuple[float, int, int] | None = None

    def __call__(self, messages: int, nbytes: int) -> tuple[float, float]:
        now = time.monotonic()
        prev, self._prev = self._prev, (now, messages, nbytes)
        if prev is None or now <= prev[0]:
            return 0.0, 0.0
        dt = now - prev[0]
        return (messages - prev[1]) / dt, (nbytes - prev[2]) / dt


def _stop_on_signals(event: threading.Event) -> None:
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: event.set())


def _begin(control: Control, job_id: str) -> tuple[threading.Event, str | None]:
    """The event SIGTERM/SIGINT set, and the job's desired state as its worker begins; None
    when it was stopped before that (it is then finished as stopped, nothing opened: a
    recording's planned run id is cleared, Jobs.finish_unbegun)."""
    stop = threading.Event()
    _stop_on_signals(stop)
    desired = control.desired_of(job_id)
    if desired == DESIRED_STOPPED:
        control.finish_unbegun(job_id)
        return stop, None
    return stop, desired


# -- endpoint policy ---------------------------------------------------------------------------
#
# A job created over HTTP was checked against the web app's policy when it was planned. The
# worker checks it again against its own (config.endpoint_policy(): this process's RECORDER_IPC_DIR,
# RECORDER_ALLOW_BIND, RECORDER_ALLOW_CONNECT) before it opens any socket: with several hosts,
# another host's manager may run the job, and a host name checked in the web process may resolve
# elsewhere by the time the worker connects (DNS rebinding). So host names to connect to are
# resolved here once, every address is checked, and the socket connects to the checked address.
# Jobs without the mark (planned without a policy, or before the mark existed) run as before;
# CLI recordings and replays are not jobs at all.


def _policy(job: JobRow, runs_dir: Path) -> EndpointPolicy | None:
    if not job["params"].get("policy"):
        return None
    return config.endpoint_policy(runs_dir.parent)


@contextlib.contextmanager
def _refused_here():
    """A refusal says it came from the worker's policy (the web app's accepted the job), and
    which rule: the settings on this host differ from the web app's."""
    try:
        yield
    except EndpointRefused as exc:
        raise EndpointRefused(
            f"refused by the endpoint policy where the job runs (rule {exc.rule}): {exc}",
            endpoint=exc.endpoint, rule=exc.rule,
        ) from None  # fmt: skip


def policy_sources(specs: list[SourceSpec], policy: EndpointPolicy) -> None:
    """Every endpoint the sources will bind or connect, checked, connects made numeric (in
    place); EndpointRefused names the rule."""
    from recorder.manager.planning import check_source_endpoints

    for spec in specs:
        what = f"source {spec.stream!r}"
        if not spec.bind:
            spec.endpoint = policy.pinned(spec.endpoint, what=f"{what}:")
        if spec.upstream:
            spec.upstream = policy.pinned(spec.upstream, what=f"{what} upstream:")
        check_source_endpoints(spec, policy)
        kinds = spec.descriptor.companions if spec.descriptor is not None else ("auto",)
        if spec.heartbeat and not spec.bind and kinds and parse_tcp(spec.endpoint) is not None:
            companion = port_plus_one(spec.endpoint)  # kept alive next to the data socket
            policy.check(companion, bind=False, what=f"{what} control plane:")


def policy_replay(p: dict, runs_dir: Path, policy: EndpointPolicy) -> dict[str, str]:
    """The replay's endpoints with every served endpoint and control plane checked, and
    connects made numeric; EndpointRefused names the rule."""
    from recorder.manager.planning import _check_replay_endpoints, replay_timeline
    from recorder.replay.plan import plan_stream

    endpoints = dict(p.get("endpoints") or {})
    sockets = p.get("sockets") or {}
    chained = {"chain": bool(p.get("chain")), "skip_gaps": bool(p.get("skip_gaps"))}
    with replay_timeline(runs_dir, _run_ids(p), p.get("offsets"), **chained) as reader:
        for n in p.get("streams") or list(reader.streams):
            plan = plan_stream(
                reader.stream(n), endpoint=endpoints.get(n), socket_type=sockets.get(n)
            )
            if not plan.bind:
                what = f"replay of stream {n!r}:"
                endpoints[n] = policy.pinned(plan.endpoint, what=what)
                plan = plan_stream(
                    reader.stream(n), endpoint=endpoints[n], socket_type=sockets.get(n)
                )
            _check_replay_endpoints(plan, policy)
    return endpoints


# -- recording ---------------------------------------------------------------------------------


def _recording(runs_dir: Path, specs, run_id: str | None, **options):
    """A Recording whose (first) run gets the id the API already handed out."""
    from recorder.recording.recording import Recording

    return Recording(runs_dir, specs, run_id=run_id, **options)


def record_stats(rec: Recording, rates: Rates, notes: list[str] | None = None) -> RecordJobStats:
    from recorder.recording.recording import describe_error

    totals = rec.stats()
    per_stream: list[RecordStreamStats] = []
    for s in rec.streams:
        c = s.counters
        per_stream.append(
            {
                "stream": s.spec.stream,
                "messages": c.received,
                "bytes": c.received_bytes,
                "drops": c.dropped,
                "gaps": s.gaps,
                "queue_bytes": s.queue.depth_bytes,
                "endpoint": s.bound_endpoint or s.spec.endpoint,
            }
        )
    msg_rate, byte_rate = rates(totals["messages"], totals["bytes"])
    return {
        "messages": totals["messages"],
        "bytes": totals["bytes"],
        "rate_messages_s": msg_rate,
        "rate_bytes_s": byte_rate,
        "gaps": totals["gaps"],
        "drops": totals["drops"],
        "queue_bytes": totals["queue_bytes"],
        "elapsed_s": totals["elapsed_s"],
        "last_error": None if rec.error is None else describe_error(rec.error),
        "warnings": [*rec.warnings, *(notes or [])],
        "streams": per_stream,
        "updated_ns": time.time_ns(),
        "state": totals["state"],
        "runs": [r.run_id for r in rec.runs],
        "triggers": totals["triggers"],
        "armed_bytes": totals["armed_bytes"],
    }


class RunFollower:
    """The recording's runs in the catalog as they come and go: each run is indexed when it
    begins (so the API and the UI find it at once) and again when it is closed, and the job's
    `run_id` moves to the run being written, which is the one the manager repairs if this worker
    dies. Called on the recording's own thread, never a stream's."""

    def __init__(self, control: Control, catalog: Catalog, job_id: str, softly: Softly):
        self.control, self.catalog, self.job_id, self.softly = control, catalog, job_id, softly

    def opened(self, run: RunWriter) -> None:
        self.softly(self.catalog.index_path, run.path)
        self.softly(self.control.update_job, self.job_id, run_id=run.run_id)

    def closed(self, run: RunWriter) -> None:
        self.softly(self.catalog.index_path, run.path)


def _run_counts(run: RunWriter) -> dict[str, int]:
    """What the run holds so far (a split recording's runs each hold part of the totals)."""
    streams = list(run.streams.values())
    return {"messages": sum(s.n_messages for s in streams), "bytes": sum(s.bytes for s in streams)}


def follow_command(rec: Recording, op: str, text: str | None) -> None:
    """One of the job's commands (db/jobs.py RECORD_COMMANDS) applied to the recording; a
    command that does not apply now (a trigger while not armed, a split while armed) raises
    the recording's Conflict."""
    if op == "trigger":
        rec.trigger(reason="manual")
    elif op == "pause":
        rec.pause()
    elif op == "resume":
        rec.resume()
    elif op == "split":
        rec.split_now()
    elif op == "marker":
        marker = json.loads(text or "{}")
        rec.mark(str(marker.get("text") or ""), author=str(marker.get("author") or ""))
    else:
        raise UsageError(f"a recording takes no {op!r} command")


def _record_options(p: dict, runs_dir: Path) -> dict[str, Any]:
    """The job's trigger, split and session as the Recording takes them (the session is read
    now: edits made before the recording started are in its runs' copy)."""
    from recorder.recording.plans import SplitPlan, TriggerPlan
    from recorder.store.sessions import SessionFiles

    return {
        "trigger": TriggerPlan.from_json(p["trigger"]) if p.get("trigger") else None,
        "split": SplitPlan.from_json(p["split"]) if p.get("split") else None,
        "session": SessionFiles(runs_dir.parent).get(p["session"]) if p.get("session") else None,
    }


def live_view(data: Path, job: JobRow, rec: Recording, control: Control, softly: Softly):
    """Every stream's latest message for the web app (recording/live.py), at most 4 a second;
    a preview nobody reads asks for its own stop."""
    from recorder.recording.live import LivePublisher

    p = job["params"]
    idle = p.get("preview_idle_s") if p.get("preview") else None
    try:
        return LivePublisher.for_job(
            data, job["id"], lambda: rec.streams, idle_s=idle,
            on_idle=lambda: softly(control.set_desired, job["id"], DESIRED_STOPPED),
        ).start()  # fmt: skip
    except (RecorderError, OSError, RuntimeError) as exc:  # the recording goes on without it
        _say(f"warning: no live view: {exc}")
        return SimpleNamespace(close=lambda: None)


def run_record(job: JobRow, control: Control, catalog: Catalog, runs_dir: Path) -> int:
    from recorder.manager.planning import source_spec
    from recorder.recording.recording import describe_error

    job_id, p = job["id"], job["params"]
    softly = Softly()
    stop, desired = _begin(control, job_id)
    if desired is None:
        return 0
    specs = [source_spec(c) for c in p["sources"]]
    policy = _policy(job, runs_dir)
    if policy is not None:
        with _refused_here():
            policy_sources(specs, policy)  # refused: main() fails the job, nothing was opened
    follower = RunFollower(control, catalog, job_id, softly)
    rec = _recording(
        runs_dir,
        specs,
        job["run_id"],
        name=p.get("name") or "",
        tags=p.get("tags") or [],
        count=p.get("count"),
        duration=p.get("duration_s"),
        flush_interval=p.get("flush_interval_s") or 1.0,
        on_run=follower.opened,
        on_run_closed=follower.closed,
        **_record_options(p, runs_dir),
    )
    if not p.get("trigger"):  # armed: no run until a trigger
        softly(catalog.index_path, rec.run.path)  # the first run, before the sockets open
    try:
        rec.start()
    except BaseException as exc:  # Recording.start closed the run as failed already
        for run in rec.runs:
            softly(patiently, catalog.index_path, run.path)
        patiently(control.finish_job, job_id, FAILED, error=describe_error(exc))
        return 1
    rates = Rates()
    notes: list[str] = []  # commands that could not apply, for the user
    softly(
        control.update_job, job_id, state=RUNNING, pid=os.getpid(), started_ns=time.time_ns(),
        stats=record_stats(rec, rates),
    )  # fmt: skip
    requested = False
    next_stats = time.monotonic() + STATS_S
    next_catalog = time.monotonic() + 1.0
    live = live_view(runs_dir.parent, job, rec, control, softly)
    try:
        while not rec.done:
            time.sleep(POLL_S)
            if not requested and (
                stop.is_set() or softly(control.desired_of, job_id) == DESIRED_STOPPED
            ):
                requested = True
                rec.stop()
            for op, _arg, text in softly(control.take_commands, job_id) or []:
                try:
                    follow_command(rec, op, text)
                except (RecorderError, ValueError) as exc:
                    notes[:] = [*notes[-9:], f"{op}: {exc}"]
            now = time.monotonic()
            if now >= next_stats:
                next_stats = now + STATS_S
                stats = record_stats(rec, rates, notes)
                softly(control.update_job, job_id, state=RUNNING, stats=stats)
            if now >= next_catalog and rec.current_run is not None:
                next_catalog = now + 1.0
                run = rec.current_run
                softly(catalog.update_run, run.run_id, **_run_counts(run))
    finally:
        live.close()
        status = rec.finish()
        for run in rec.runs:
            softly(patiently, catalog.index_path, run.path)
    stats = record_stats(rec, rates, notes)
    if status != layout.STATUS_COMPLETE:
        patiently(control.finish_job, job_id, FAILED, error=describe_error(rec.error), stats=stats)
        return 1
    patiently(control.finish_job, job_id, STOPPED if requested else FINISHED, stats=stats)
    return 0


# -- replay ------------------------------------------------------------------------------------


def replay_stats(
    rp: Replayer, served: dict[str, Any], warnings: list[str], last_error: str | None
) -> ReplayJobStats:
    st = rp.status()
    return {
        **st,
        "streams": served,
        "warnings": warnings,
        "last_error": st.get("error") or last_error,
        "updated_ns": time.time_ns(),
    }


def _run_ids(p: dict) -> list[str]:
    """The runs a replay job serves: several on one clock, or (older jobs) one."""
    return [p["run_id"], *(p.get("with_runs") or [])]


def _apply(rp, op: str, arg: float) -> None:
    if op == "seek":
        rp.seek(arg)
    elif op == "speed":
        rp.set_speed(arg)
    elif op == "step":
        rp.step(int(arg))


def run_replay(job: JobRow, control: Control, catalog: Catalog, runs_dir: Path) -> int:
    from recorder.recording.recording import describe_error
    from recorder.replay import Replayer

    job_id, p = job["id"], job["params"]
    softly = Softly()
    stop, desired = _begin(control, job_id)
    if desired is None:
        return 0
    paths = [resolve_run(runs_dir, r, prefix=False) for r in _run_ids(p)]
    policy = _policy(job, runs_dir)
    endpoints = p.get("endpoints") or {}
    if policy is not None:
        with _refused_here():
            endpoints = policy_replay(p, runs_dir, policy)  # refused: main() fails the job
    rp = Replayer(
        paths,
        offsets=p.get("offsets"),
        follow=bool(p.get("follow")),
        chain=bool(p.get("chain")),
        skip_gaps=bool(p.get("skip_gaps")),
        skip_pauses=bool(p.get("skip_pauses")),
        streams=p.get("streams") or None,
        endpoints=endpoints,
        sockets=p.get("sockets") or {},
        speed=p.get("speed"),
        max_speed=bool(p.get("max_speed")),
        rate=p.get("rate"),
        loop=int(p.get("loop", 1)),
        start=p.get("start_s"),
        end=p.get("end_s"),
        paused=desired == DESIRED_PAUSED,
        match=p.get("match") or "bytes",
        reply_timing=p.get("reply_timing") or "recorded",
        unanswered=p.get("unanswered") or "silent",
        cycle=bool(p.get("cycle")),
        runs_dir=runs_dir,
    )
    try:
        rp.start()
    except BaseException as exc:
        rp.close()
        patiently(control.finish_job, job_id, FAILED, error=describe_error(exc))
        return 1
    served = {
        n: {
            "socket_type": plan.socket_type,
            "endpoint": plan.endpoint,
            "bind": plan.bind,
            "controls": dict(plan.controls),
        }
        for n, plan in rp.plans.items()
    }
    last_error: str | None = None

    def state() -> str:
        return PAUSED if rp.pacer.paused else RUNNING

    softly(
        control.update_job, job_id, state=state(), pid=os.getpid(), started_ns=time.time_ns(),
        stats=replay_stats(rp, served, rp.warnings, None),
    )  # fmt: skip
    requested = False
    applied = desired
    next_stats = time.monotonic() + STATS_S / 2
    try:
        while not rp.wait(POLL_S):
            desired = softly(control.desired_of, job_id) or applied
            if not requested and (stop.is_set() or desired == DESIRED_STOPPED):
                requested = True
                rp.stop()
            elif desired != applied:  # act on changes only: ADZMQ control may pause too
                rp.pause() if desired == DESIRED_PAUSED else rp.resume()
                applied = desired
            for op, arg, _text in softly(control.take_commands, job_id) or []:
                try:
                    _apply(rp, op, arg)
                except (UsageError, ValueError) as exc:
                    last_error = f"{op} {arg:g}: {exc}"
            now = time.monotonic()
            if now >= next_stats:
                next_stats = now + STATS_S / 2
                softly(
                    control.update_job,
                    job_id,
                    state=state(),
                    stats=replay_stats(rp, served, rp.warnings, last_error),
                )
    finally:
        final = replay_stats(rp, served, rp.warnings, last_error)
        rp.close()
        for back in rp.back_channel_runs():
            softly(patiently, catalog.index_path, back.path)
    if rp.error is not None:
        patiently(control.finish_job, job_id, FAILED, error=describe_error(rp.error), stats=final)
        return 1
    patiently(control.finish_job, job_id, STOPPED if requested else FINISHED, stats=final)
    return 0


# -- export ------------------------------------------------------------------------------------


class ExportStopped(Exception):
    """Raised from the progress callback when the job is asked to stop: the export's core
    removes the partial file on the way out."""


def run_export(job: JobRow, control: Control, catalog: Catalog, runs_dir: Path) -> int:
    """Write one export into `<data>/exports/<job id>/`, publishing `stats.progress` (0..1);
    at the end the stats hold the export's result. A stop request ends it, file removed."""
    import shutil

    from recorder.export.base import ExportRequest, export_run
    from recorder.manager.planning import export_dir

    job_id, p = job["id"], job["params"]
    softly = Softly()
    stop, desired = _begin(control, job_id)
    if desired is None:
        return 0
    folder = export_dir(runs_dir.parent, job_id)
    folder.mkdir(parents=True, exist_ok=True)
    request = ExportRequest(
        run_path=resolve_run(runs_dir, p["run_id"], prefix=False),
        target=p["target"],
        out=folder / p["file"],
        streams=tuple(p.get("streams") or ()),
        start=p.get("start_s"),
        end=p.get("end_s"),
    )
    softly(
        control.update_job, job_id, state=RUNNING, pid=os.getpid(), started_ns=time.time_ns(),
        stats={"progress": 0.0, "updated_ns": time.time_ns()},
    )  # fmt: skip
    next_report = [0.0]

    def progress(done: float) -> None:
        now = time.monotonic()
        if now < next_report[0] and done < 1.0:
            return
        next_report[0] = now + STATS_S
        if stop.is_set() or softly(control.desired_of, job_id) == DESIRED_STOPPED:
            raise ExportStopped
        stats = {"progress": round(min(1.0, max(0.0, done)), 4), "updated_ns": time.time_ns()}
        softly(control.update_job, job_id, stats=stats)

    try:
        if p.get("session"):
            result = _export_session(p, runs_dir, folder, progress)
        else:
            result = export_run(request, progress)
    except ExportStopped:
        shutil.rmtree(folder, ignore_errors=True)
        patiently(control.finish_job, job_id, STOPPED)
        return 0
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # main() records why it failed
        raise
    if stop.is_set() or softly(control.desired_of, job_id) == DESIRED_STOPPED:
        shutil.rmtree(folder, ignore_errors=True)  # asked to stop as it finished
        patiently(control.finish_job, job_id, STOPPED)
        return 0
    stats = {**result.as_dict(), "file": p["file"], "progress": 1.0, "updated_ns": time.time_ns()}
    patiently(control.finish_job, job_id, FINISHED, stats=stats)
    return 0


def _export_session(p: dict, runs_dir: Path, folder: Path, progress):
    """A whole session's export (`params.session`): its runs as planned, one file each."""
    from recorder.export.session import export_session
    from recorder.store.sessions import SessionFiles

    session = SessionFiles(runs_dir.parent).get(p["session"])
    paths = [resolve_run(runs_dir, r, prefix=False) for r in p["runs"]]
    return export_session(session, paths, p["target"], folder / p["file"], progress)


# -- entry point -------------------------------------------------------------------------------

RUNNERS = {"record": run_record, "replay": run_replay, "export": run_export}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m recorder.manager.worker", description=__doc__)
    ap.add_argument("mode", choices=[*RUNNERS, "spare"])
    ap.add_argument("--job")
    ap.add_argument("--data", required=True)
    ap.add_argument("--catalog", help=f"default: ${config.CATALOG_ENV}, else in the data folder")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    mode, job_id = args.mode, args.job
    folder = config.data_dir(args.data)
    catalog = None
    if mode == "spare":
        import recorder.recording.recording
        import recorder.replay
        import recorder.store.run_writer  # noqa: F401  (the point of a spare: imports done)
        from recorder.db.catalog import Catalog

        catalog = Catalog(config.catalog_url(args.catalog, folder))  # opened ahead too
        line = sys.stdin.readline().split()
        if len(line) != 2 or line[0] not in RUNNERS:
            catalog.close()
            return 0  # closed without a job: the manager is shutting down
        mode, job_id = line
    if not job_id:
        _say("error: --job is required")
        return 2
    if catalog is None:
        from recorder.db.catalog import Catalog

        catalog = Catalog(config.catalog_url(args.catalog, folder))
    control = Control(catalog.engine)
    try:
        job = control.get_job(job_id)
        if job["kind"] != mode:
            raise UsageError(f"job {job_id} is a {job['kind']} job, not {mode}")
        return RUNNERS[mode](job, control, catalog, config.runs_dir(folder))
    except BaseException as exc:
        from recorder.recording.recording import describe_error

        reason = describe_error(exc)
        _say(f"error: {reason}")
        with contextlib.suppress(RecorderError):
            patiently(control.finish_job, job_id, FAILED, error=reason)
        if not isinstance(exc, (RecorderError, OSError, KeyboardInterrupt)):
            raise
        return 1
    finally:
        catalog.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
