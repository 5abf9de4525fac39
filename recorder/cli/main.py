"""The `recorder` command. Errors become one line and exit code 2 here, and only here.

Only what builds the command tree is imported here: zarr, SQLAlchemy and the rest load inside
the commands that use them, so `--help` is quick and a recorder or replayer opens its sockets
before anything it does not need yet (tests/cli/test_startup.py, benchmarks/startup.py).
"""

from __future__ import annotations

import codecs
import functools
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import click

from recorder import __version__, config, protocols
from recorder.cli.export import COMMANDS as EXPORT_COMMANDS
from recorder.cli.migrate import migrate
from recorder.cli.options import data_options, open_catalog, open_data, read_data
from recorder.cli.serve import COMMANDS as SERVE_COMMANDS
from recorder.cli.session import session
from recorder.cli.text import human_bytes, human_duration, human_time, table
from recorder.errors import RecorderError
from recorder.recording.source_spec import (
    RECEIVERS,
    SILENT_WARNING_S,
    SOCKET_TYPES,
    SourceSpec,
    known_protocols,
    proxy_protocols,
)
from recorder.store import layout

EXIT_USAGE = 2
EXIT_FAILED = 1


class RecorderGroup(click.Group):
    """Turns every expected error into `error: ...` on one line, never a traceback."""

    def main(self, args=None, prog_name=None, **extra):
        try:
            rv = super().main(args=args, prog_name=prog_name, standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            where = f"{ctx.command_path}: " if ctx is not None else ""
            click.echo(f"error: {where}{exc.format_message()}", err=True)
            sys.exit(EXIT_USAGE)
        except click.exceptions.Abort:
            click.echo("aborted", err=True)
            sys.exit(130)
        except RecorderError as exc:
            click.echo(f"error: {one_line(str(exc))}", err=True)
            sys.exit(EXIT_USAGE)
        sys.exit(rv if isinstance(rv, int) else 0)


def one_line(text: str) -> str:
    """An error is one line, whatever a driver or library put in its message."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def unescape(text: str) -> bytes:
    """Prefixes and requests may need bytes a shell cannot type: allow \\x00-style escapes."""
    try:
        return codecs.escape_decode(text.encode("utf-8"))[0]
    except ValueError as exc:
        raise click.BadParameter(f"bad escape in {text!r}: {exc}") from None


@click.group(cls=RecorderGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="recorder")
def main():
    """Record ZeroMQ instrument streams into zarr runs and replay them byte for byte."""


# -- record ----------------------------------------------------------------------------------


@main.command()
@click.argument("endpoint", required=False)
@click.option(
    "--protocol",
    type=click.Choice(known_protocols()),
    default=protocols.RAW,
    show_default=True,
    help="Wire protocol; `auto` identifies it from the first messages.",
)
@click.option(
    "--socket",
    "socket_type",
    type=click.Choice(SOCKET_TYPES, case_sensitive=False),
    help="Socket the recorder opens (default: what the protocol's own clients use).",
)
@click.option("--bind", is_flag=True, help="Bind instead of connect (SUB or PULL).")
@click.option("--subscribe", multiple=True, metavar="PREFIX", help="SUB prefix (repeatable).")
@click.option("--request", default="next", show_default=True, help="REQ: bytes sent per reply.")
@click.option("--listen", metavar="ENDPOINT", help="reqrep: where clients connect (bound).")
@click.option("--upstream", metavar="ENDPOINT", help="reqrep: the real service (connected).")
@click.option("--stream", "stream_name", default="main", show_default=True, help="Stream name.")
@click.option("--name", default="", help="Human name of the run.")
@click.option("--tag", "tags", multiple=True, help="Tag the run (repeatable).")
@click.option("--duration", type=float, metavar="SECONDS", help="Stop after this long.")
@click.option("--count", type=int, metavar="N", help="Stop after N messages.")
@click.option(
    "--flush-interval", type=float, default=1.0, show_default=True, metavar="SECONDS",
    help="Longest time between durable flushes (at most this much is lost if killed).",
)  # fmt: skip
@click.option(
    "--queue-mb", type=int, default=1024, show_default=True,
    help="Receive queue bound; beyond it messages are dropped and counted.",
)  # fmt: skip
@click.option(
    "--warn-after", type=float, default=SILENT_WARNING_S, show_default=True, metavar="SECONDS",
    help="Warn when a source has sent nothing this long after the start.",
)  # fmt: skip
@click.option(
    "--compression", type=click.Choice(layout.COMPRESSIONS), default="none", show_default=True,
    help="Compress the stream's arrays on disk: saves disk, costs CPU (benchmarks/compression.py).",
)  # fmt: skip
@click.option(
    "--receiver", type=click.Choice(RECEIVERS), default="auto", show_default=True,
    help="Receive in a thread or in a process of its own (auto: a process for protocols of "
    "many small messages, Open Ephys; docs/recording.md).",
)  # fmt: skip
@click.option(
    "--pre-trigger", type=float, metavar="SECONDS",
    help="Armed: keep this much of the stream in memory, write nothing until a trigger "
    "(stdin line `t`, SIGUSR1 or --trigger), then a run from this long before it.",
)  # fmt: skip
@click.option(
    "--post-trigger", type=float, metavar="SECONDS",
    help="Armed: record this long after the (last) trigger, then re-arm (default: until stopped).",
)  # fmt: skip
@click.option(
    "--trigger", "trigger_rules", multiple=True, metavar="RULE",
    help="Armed: a rule on the decoded stream that triggers (repeatable; docs/triggers.md).",
)  # fmt: skip
@click.option(
    "--max-buffer", metavar="SIZE",
    help="Armed: memory for the pre-trigger buffer, all streams (e.g. 2GiB; default 1GiB).",
)  # fmt: skip
@click.option(
    "--split-every", metavar="SECONDS|SIZE",
    help="Start a new run every SECONDS of receive time (60, 10m, 1h) or SIZE stored (500MB).",
)  # fmt: skip
@click.option(
    "--session", "session_id", metavar="ID",
    help="Record into this session (split and triggered runs get a new one without it).",
)  # fmt: skip
@click.option("--quiet", "-q", is_flag=True, help="No progress line.")
@data_options
def record(
    endpoint, protocol, socket_type, bind, subscribe, request, listen, upstream, stream_name,
    name, tags, duration, count, flush_interval, queue_mb, warn_after, compression, receiver,
    pre_trigger, post_trigger, trigger_rules, max_buffer, split_every, session_id, quiet, data,
    catalog,
):  # fmt: skip
    """Record the stream at ENDPOINT into a new run until --duration, --count or Ctrl-C.

    For --protocol reqrep the recorder is a transparent proxy: clients connect to --listen
    (or ENDPOINT) and every request goes on to --upstream, the real service.

    While it runs, lines on stdin control it: `t` trigger, `p` pause, `r` resume, `m TEXT` a
    marker, `s` split now; SIGUSR1 triggers too (docs/recording.md).
    """
    from recorder.recording.plans import parse_split
    from recorder.recording.recording import Recording, describe_error
    from recorder.recording.status_file import StatusFile

    proxy = protocol in proxy_protocols()
    if listen and not proxy:
        raise click.UsageError(f"--listen is only for --protocol {' or '.join(proxy_protocols())}")
    if listen and endpoint:
        raise click.UsageError("give the listening endpoint once: ENDPOINT or --listen")
    endpoint = endpoint or listen
    if not endpoint:
        raise click.UsageError("missing ENDPOINT" + (" (or --listen)" if proxy else ""))
    if queue_mb <= 0:
        raise click.BadParameter("must be positive", param_hint="--queue-mb")
    if warn_after <= 0:
        raise click.BadParameter("must be positive", param_hint="--warn-after")
    trigger = _trigger_plan(pre_trigger, post_trigger, trigger_rules, max_buffer)
    split = parse_split(split_every) if split_every is not None else None
    folder = config.data_dir(data)
    session = None
    if session_id:
        from recorder.store.sessions import SessionFiles, check_id

        session = SessionFiles(folder).get(check_id(session_id))
    spec = SourceSpec(
        endpoint=endpoint,
        socket_type=socket_type,
        bind=bind,
        subscribe=[unescape(p) for p in subscribe],
        request=unescape(request),
        protocol=protocol,
        stream=stream_name,
        upstream=upstream,
        compression=compression,
        receiver=receiver,
    )
    rec = Recording(
        config.runs_dir(folder),
        [spec],
        name=name,
        tags=list(tags),
        count=count,
        duration=duration,
        flush_interval=flush_interval,
        queue_bytes=queue_mb << 20,
        silent_warning_s=warn_after,
        session=session,
        trigger=trigger,
        split=split,
        on_run=lambda run: made.append(run),
        on_run_closed=lambda run: closed.append(run),
    )
    made: list = []  # runs made and closed, told by the recording's own thread
    closed: list = []
    runs = RunsShown(made, closed)
    stopping = []
    signalled: list[int] = []  # SIGUSR1: a trigger, at the time of the signal

    def on_signal(signum, _frame):
        stopping.append(signum)
        rec.stop()

    def on_usr1(_signum, _frame):
        signalled.append(time.time_ns())  # the recording's locks are not for a signal handler

    handlers = {signal.SIGINT: on_signal, signal.SIGTERM: on_signal, signal.SIGUSR1: on_usr1}
    old = {s: signal.signal(s, h) for s, h in handlers.items()}
    progress = Progress(enabled=not quiet)
    last_catalog = [time.monotonic()]
    commands = StdinCommands(rec, progress)

    warned = [0]
    # the dashboard and GET /api/v1/recordings show it with its live figures (no job row here)
    status_file = StatusFile(
        folder, name=name, tags=list(tags),
        sources=[{"stream": spec.stream, "protocol": spec.protocol, "endpoint": spec.endpoint}],
    )  # fmt: skip
    rates: list = []  # the worker's rate meter, made at the first tick (after the sockets are up)

    def tick(r: Recording):
        while signalled:
            commands.run(functools.partial(r.trigger, signalled.pop(0)))  # at the signal's time
        runs.show(cat)
        for text in r.warnings[warned[0] :]:
            progress.note(f"warning: {text}")
        warned[0] = len(r.warnings)
        stats = r.stats()
        progress.show(stats)
        if status_file.due():
            from recorder.manager.worker import Rates, record_stats

            rates[:] = rates or [Rates()]
            status_file.publish(dict(record_stats(r, rates[0])))
        current = r.current_run
        if current is not None and time.monotonic() - last_catalog[0] >= 2:
            last_catalog[0] = time.monotonic()
            _catalog_softly(
                cat.update_run, current.run_id, messages=stats["messages"], bytes=stats["bytes"]
            )

    cat = None
    try:
        rec.start()
        # the catalog (SQLAlchemy, a schema check) only once the sockets are up: a source that
        # sends as soon as we subscribe is not kept waiting; what it sends meanwhile is queued.
        # Each run id is printed once the run is in the catalog, as `ls` would show it.
        cat = open_catalog(catalog, folder)
        runs.show(cat)
        commands.start()
        rec.wait(on_tick=tick)
    finally:
        status_file.remove()
        status = rec.finish()
        for s, handler in old.items():
            signal.signal(s, handler)
        runs.show(cat)  # a run that failed to start has its id printed too
        progress.show(rec.stats(), final=True)
    if status != layout.STATUS_COMPLETE:
        failed = [r.run_id for r in rec.runs if r.status != layout.STATUS_COMPLETE]
        what = f"run {failed[-1]} {status}" if failed else "recording failed"
        click.echo(f"error: {what}: {describe_error(rec.error)}", err=True)
        return EXIT_FAILED
    if trigger is not None and not rec.runs:
        click.echo("note: nothing triggered: no run made", err=True)
    elif not rec.stats()["messages"]:
        click.echo(f"warning: run {rec.run_id} is empty: no message arrived", err=True)
    return 0


def _trigger_plan(pre, post, rules, max_buffer):
    """--pre-trigger arms the recording; the other trigger options need it."""
    from recorder.recording.plans import ARMED_BYTES_DEFAULT, TriggerPlan, parse_size

    if pre is None:
        given = [n for n, v in (("--post-trigger", post), ("--trigger", rules),
                                ("--max-buffer", max_buffer)) if v]  # fmt: skip
        if given:
            raise click.UsageError(f"{given[0]} needs --pre-trigger SECONDS")
        return None
    texts: tuple[str, ...] = ()
    if rules:
        from recorder.recording.trigger_rules import parse_rule

        texts = tuple(parse_rule(r).text for r in rules)
    size = ARMED_BYTES_DEFAULT if max_buffer is None else parse_size(max_buffer)
    return TriggerPlan(pre_s=pre, post_s=post, max_bytes=size, rules=texts).check()


class RunsShown:
    """Every run a recording makes: its id on stdout once it is in the catalog, indexed again
    when it closes. Fed from the recording's own thread, shown from the main one."""

    def __init__(self, made: list, closed: list):
        self.made, self.closed = made, closed
        self.ids: list[str] = []

    def show(self, cat) -> None:
        while self.made:
            run = self.made.pop(0)
            if cat is not None:
                _catalog_softly(cat.index_path, run.path)
            click.echo(run.run_id)
            sys.stdout.flush()
            self.ids.append(run.run_id)
        while self.closed and cat is not None:
            _catalog_softly(cat.index_path, self.closed.pop(0).path)


class StdinCommands:
    """Lines on stdin while recording: `t` trigger, `p` pause, `r` resume, `m TEXT` a marker,
    `s` split now. Stdin at its end (or not readable: a script's /dev/null) is left alone."""

    def __init__(self, rec, progress: Progress):
        self.rec, self.progress = rec, progress

    def start(self) -> None:
        if sys.stdin is None or sys.stdin.closed:
            return
        threading.Thread(target=self._read, name="stdin-commands", daemon=True).start()

    def _read(self) -> None:
        try:
            for line in sys.stdin:
                self.handle(line.strip())
        except (OSError, ValueError):  # not readable: nothing to control it with
            return

    def handle(self, line: str) -> None:
        rec = self.rec
        word, _, rest = line.partition(" ")
        if not word:
            return
        actions = {"t": rec.trigger, "p": rec.pause, "r": rec.resume, "s": rec.split_now}
        if word == "m":
            if not rest.strip():
                self.progress.note("marker: give its text, e.g. `m stimulus on`")
                return
            self.run(lambda: rec.mark(rest.strip(), author="cli"))
            self.progress.note(f"marker: {rest.strip()}")
        elif word in actions:
            self.run(actions[word])
        else:
            self.progress.note(f"unknown command {word!r}: t, p, r, m TEXT or s")

    def run(self, action) -> None:
        try:
            action()
        except RecorderError as exc:
            self.progress.note(f"note: {one_line(str(exc))}")


def _catalog_softly(fn, *args, **kwargs):
    """While recording, the catalog is only an index: its failures must not stop the run.

    `recorder reindex` brings it back in line with the stores afterwards.
    """
    try:
        fn(*args, **kwargs)
    except RecorderError as exc:
        click.echo(f"warning: {exc} (run `recorder reindex` later)", err=True)


class Progress:
    """One live line on a terminal; a line every few seconds when stderr is a file or pipe."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.last = 0.0
        self.prev = (0.0, 0)

    def show(self, stats: dict, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        every = 0.5 if self.tty else 5.0
        if not final and now - self.last < every:
            return
        t0, b0 = self.prev
        rate = (stats["bytes"] - b0) / (now - t0) if t0 and now > t0 else 0.0
        if final:
            rate = stats["bytes"] / stats["elapsed_s"] if stats["elapsed_s"] > 0 else 0.0
        self.last, self.prev = now, (now, stats["bytes"])
        runs = stats.get("runs", 0)
        line = (
            f"{stats.get('state', 'recording')}  {runs} run{'' if runs == 1 else 's'}  "
            f"{human_duration(stats['elapsed_s'])}  {stats['messages']} msgs  "
            f"{stats['bytes'] / 1e6:.1f} MB  {rate / 1e6:.1f} MB/s  "
            f"gaps {stats['gaps']}  drops {stats['drops']}"
        )
        if self.tty:
            click.echo(f"\r{line}\x1b[K" + ("\n" if final else ""), nl=False, err=True)
        else:
            click.echo(line, err=True)

    def note(self, text: str) -> None:
        """A line of its own, even with --quiet; on a terminal it replaces the live line."""
        click.echo(("\r\x1b[K" if self.tty and self.enabled else "") + text, err=True)


@main.command()
@click.option("--seconds", type=float, default=3.0, show_default=True)
@data_options
@click.pass_context
def demo(ctx, seconds, data, catalog):
    """Record a built-in demo stream for a few seconds and show the run."""
    from recorder.simulators.raw import RawSimulator

    if seconds <= 0:
        raise click.BadParameter("must be positive", param_hint="--seconds")
    publisher = RawSimulator()
    endpoint = publisher.start()
    try:
        click.echo(f"recording the demo stream at {endpoint} for {seconds:g} s", err=True)
        rc = ctx.invoke(
            record, endpoint=endpoint, duration=seconds, name="demo", tags=("demo",),
            data=data, catalog=catalog,
        )  # fmt: skip
    finally:
        publisher.stop(2)
    if rc:
        return rc
    run_id = _catalog_latest(data, catalog)
    return ctx.invoke(info, run=run_id, data=data, catalog=catalog)


def _catalog_latest(data, catalog) -> str:
    _, cat = open_data(data, catalog)
    return cat.list_runs(tag="demo", limit=1)[0]["run_id"]


@main.command()
@click.argument(
    "protocol",  # as recorder.simulators.simulator_names(), without importing every simulator
    type=click.Choice(sorted(d.name for d in protocols.descriptors() if d.simulator)),
)
@click.option("--bind", "endpoint", metavar="ENDPOINT", help="Where to serve (default: the "
              "system's usual port on 127.0.0.1; ADZMQ takes 'tcp://h:p PUSH' too).")  # fmt: skip
@click.option("--rate", type=float, help="Messages (trains, frames, blocks) per second.")
@click.option("--count", type=int, help="Stop after N messages.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--skip", type=int, multiple=True, help="Leave out this sequence number.")
@click.option(
    "--set", "settings", multiple=True, metavar="KEY=VALUE",
    help="Protocol options: height, width, dtype, n_channels, n_samples, socket (karabo: "
    "REP|PUB|PUSH), protocol (karabo: 2.2|1.0), variant (adzmq: psi|pre14|chunk), plugin "
    "(openephys: zmq-interface|event-broadcaster), format (openephys: current|older; "
    "event-broadcaster: json|binary) ...",
)  # fmt: skip
def simulate(protocol, endpoint, rate, count, seed, skip, settings):
    """Serve a faithful simulated PROTOCOL stream until --count or Ctrl-C."""
    options = dict(_setting(s) for s in settings)
    if rate is not None:
        options["rate"] = rate
    if count is not None:
        if count <= 0:
            raise click.BadParameter("must be positive", param_hint="--count")
        options["count"] = count
        # N messages sent before anyone listens would be N messages lost
        options.setdefault("wait_for_subscriber", True)
    from recorder.simulators import make_simulator

    sim = make_simulator(protocol, endpoint, seed=seed, skip=frozenset(skip), **options)
    bound = sim.bind()
    click.echo(f"simulating {protocol} on {bound}", err=True)
    stop = threading.Event()
    old = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        sent = sim.run(stop)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        sim.close()
    click.echo(f"sent {sent} messages", err=True)
    return 0


def _setting(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{text!r} is not KEY=VALUE", param_hint="--set")
    for parse in (int, float):
        try:
            return key, parse(value)
        except ValueError:
            pass
    if value.lower() in ("true", "false"):
        return key, value.lower() == "true"
    return key, value


def _pairs(values, what: str) -> dict[str, str]:
    """`STREAM=VALUE` (or a bare VALUE, meaning the only stream) -> {stream: value}."""
    out: dict[str, str] = {}
    for v in values:
        stream, sep, value = v.partition("=")
        if not sep or "://" in stream:
            stream, value = "", v
        if stream in out:
            raise click.BadParameter(f"{stream or 'the stream'} given twice", param_hint=what)
        out[stream] = value
    return out


@main.command()
@click.argument("runs", metavar="RUN...", nargs=-1)
@click.option(
    "--session", metavar="ID",
    help="Replay every run of this session (instead of RUN...) on one clock; a stream split "
    "over consecutive runs is one stream.",
)  # fmt: skip
@click.option(
    "--skip-gaps", is_flag=True,
    help="Several runs: cut the idle time between runs to 1 s (default: as recorded).",
)  # fmt: skip
@click.option("--stream", "streams", multiple=True, help="Replay only this stream (repeatable).")
@click.option(
    "--endpoint", "endpoints", multiple=True, metavar="[STREAM=]ENDPOINT",
    help="Serve a stream elsewhere (default: where the original server was); 'auto': a free "
    "port on 127.0.0.1, printed on stdout as 'serving STREAM on ENDPOINT'.",
)  # fmt: skip
@click.option(
    "--socket", "sockets", multiple=True, metavar="[STREAM=]PUB|PUSH|REP",
    help="Serve with another socket type (e.g. a Karabo REQ recording as PUB).",
)  # fmt: skip
@click.option("--speed", type=float, help="Timing factor (default 1: as recorded).")
@click.option("--max-speed", is_flag=True, help="As fast as the clients take it.")
@click.option("--rate", type=float, metavar="HZ", help="A fixed message rate.")
@click.option(
    "--loop", type=int, is_flag=False, flag_value=0, default=1, metavar="[N]",
    help="Play N times (--loop alone: forever).",
)  # fmt: skip
@click.option("--start", type=float, metavar="SECONDS", help="Start this far into the run.")
@click.option("--end", type=float, metavar="SECONDS", help="Stop this far into the run.")
@click.option("--paused", is_flag=True, help="Open the sockets, wait for 'r' on stdin.")
@click.option("--controlled", is_flag=True, help="ADZMQ: start/stop when the driver says.")
@click.option(
    "--match", type=click.Choice(["bytes", "order"]), default="bytes", show_default=True,
    help="reqrep: find replies by request bytes, or serve them in recorded order.",
)  # fmt: skip
@click.option(
    "--unknown-reply", metavar="TEXT",
    help="reqrep: answer requests never recorded with TEXT (default: no answer).",
)  # fmt: skip
@click.option(
    "--unanswered", type=click.Choice(["silent", "unknown-reply"]), default="silent",
    show_default=True,
    help="reqrep: requests recorded without a reply (or with none left) get no answer, as "
    "live, or the unknown-reply text.",
)  # fmt: skip
@click.option(
    "--reply-timing", type=click.Choice(["recorded", "immediate"]), default="recorded",
    show_default=True,
    help="reqrep: answer after the recorded latency (scaled by --speed), or at once.",
)  # fmt: skip
@click.option("--cycle", is_flag=True, help="reqrep: reuse recorded replies in turn.")
@click.option(
    "--offset", "offsets", multiple=True, metavar="RUN=SECONDS",
    help="Several runs: shift RUN this far on the common clock (repeatable).",
)  # fmt: skip
@click.option(
    "--follow", is_flag=True,
    help="Serve a run still being recorded, one flush behind; end when the recording ends.",
)  # fmt: skip
@click.option(
    "--skip-pauses", is_flag=True,
    help="Cut the recording's deliberate pauses out of the replay clock.",
)  # fmt: skip
@click.option("--quiet", "-q", is_flag=True, help="No progress line.")
@data_options
def replay(
    runs, session, skip_gaps, streams, endpoints, sockets, speed, max_speed, rate, loop, start,
    end, paused, controlled, match, unknown_reply, unanswered, reply_timing, cycle, offsets,
    follow, skip_pauses, quiet, data, catalog,
):  # fmt: skip
    """Serve RUN over ZMQ as the original servers did, byte for byte and in time.

    Several runs are served together on one clock, aligned by their receive times (--offset
    shifts one); a stream name two runs share is RUN/NAME. While it plays, stdin takes
    commands: p (pause), r (resume), s [N] (step), seek SECONDS, speed X, q (stop).
    """
    from recorder.replay import Replayer
    from recorder.store.find import resolve_run

    folder = config.data_dir(data)
    if session is not None:
        runs = _session_runs(session, runs, catalog, folder)
    elif not runs:
        raise click.UsageError("give RUN... or --session ID")
    paths = [resolve_run(config.runs_dir(folder), run) for run in runs]
    rp = Replayer(
        paths,
        chain=session is not None,
        skip_gaps=skip_gaps,
        offsets=_run_offsets(offsets, config.runs_dir(folder)),
        follow=follow,
        streams=list(streams) or None,
        endpoints=_pairs(endpoints, "--endpoint"),
        sockets=_pairs(sockets, "--socket"),
        speed=speed,
        max_speed=max_speed,
        rate=rate,
        loop=loop,
        start=start,
        end=end,
        paused=paused,
        controlled=controlled,
        match=match,
        unknown_reply=unescape(unknown_reply) if unknown_reply else None,
        unanswered=unanswered,
        reply_timing=reply_timing,
        cycle=cycle,
        runs_dir=config.runs_dir(folder),
        skip_pauses=skip_pauses,
    )
    for w in rp.warnings:
        click.echo(f"warning: {w}", err=True)
    if rp.timeline.pauses:
        how = "skipped" if skip_pauses else "kept as recorded (--skip-pauses cuts them)"
        click.echo(f"{rp.timeline.pauses} recorded pause(s): {how}", err=True)
    rp.start()
    for plan in rp.plans.values():
        extra = "".join(f", {k} {e}" for k, e in plan.controls.items())
        verb = "on" if plan.bind else "to"
        click.echo(f"{plan.stream}: {plan.socket_type} {verb} {plan.endpoint}{extra}", err=True)
    _report_served(rp)
    old = {s: signal.signal(s, lambda *_: rp.stop()) for s in (signal.SIGINT, signal.SIGTERM)}
    threading.Thread(target=_stdin_commands, args=(rp,), daemon=True).start()
    progress = ReplayProgress(enabled=not quiet)
    try:
        while not rp.wait(0.2):
            progress.show(rp.status())
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        status = rp.status()
        rp.close()
        progress.show(status, final=True)
    backs = rp.back_channel_runs()
    # the catalog only now: opening it while the replay starts would delay the start
    cat = _catalog_or_warning(catalog, folder) if backs else None
    for back in backs if cat is not None else ():
        _catalog_softly(cat.index_path, back.path)
        click.echo(f"back-channel messages recorded in run {back.run_id}", err=True)
    if rp.error is not None:
        from recorder.recording.recording import describe_error

        click.echo(f"error: replay failed: {describe_error(rp.error)}", err=True)
        return EXIT_FAILED
    return 0


def _session_runs(session: str, runs, catalog, folder) -> list[str]:
    """The runs of a session, oldest first, from the catalog (`recorder reindex` brings it up
    to date with the run stores)."""
    from recorder.manager.planning import session_run_ids

    if runs:
        raise click.UsageError("give RUN... or --session ID, not both")
    cat = open_catalog(catalog, folder)
    try:
        return session_run_ids(cat, session)
    finally:
        cat.close()


def _report_served(rp) -> None:
    """One stdout line per stream with the endpoint actually bound (or connected to): what a
    script reads to find an `--endpoint auto` replay."""
    for plan in rp.plans.values():
        click.echo(f"serving {plan.stream} on {plan.endpoint}")
    sys.stdout.flush()


def _run_offsets(values, runs_dir) -> dict[str, float]:
    """`RUN=SECONDS` (RUN as on the command line: an id or its unique start) -> {run id: s}."""
    from recorder.store.find import resolve_run

    out: dict[str, float] = {}
    for v in values:
        run, sep, seconds = v.partition("=")
        try:
            shift = float(seconds)
        except ValueError:
            shift = None
        if not sep or shift is None:
            raise click.BadParameter(f"{v!r} is not RUN=SECONDS", param_hint="--offset")
        try:
            run_id = resolve_run(runs_dir, run).name
        except RecorderError:
            run_id = run  # the replayer says it is not one of the replayed runs
        out[run_id] = shift
    return out


def _catalog_or_warning(catalog, folder):
    """The catalog to index a run in, or None after a warning: like `_catalog_softly`."""
    try:
        return open_catalog(catalog, folder)
    except RecorderError as exc:
        click.echo(f"warning: {exc} (run `recorder reindex` later)", err=True)
        return None


def _stdin_commands(rp) -> None:
    """Runtime control for a person at the terminal (the manager uses the same methods)."""
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        try:
            if cmd == "p":
                rp.pause()
            elif cmd == "r":
                rp.resume()
            elif cmd == "s":
                rp.step(int(arg or 1))
            elif cmd == "seek":
                rp.seek(float(arg))
            elif cmd == "speed":
                rp.set_speed(float(arg))
            elif cmd == "q":
                rp.stop()
                return
            elif cmd:
                click.echo(f"unknown command {cmd!r} (p, r, s N, seek T, speed X, q)", err=True)
        except (ValueError, RecorderError) as exc:
            click.echo(f"error: {exc}", err=True)


class ReplayProgress(Progress):
    def show(self, st: dict, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not final and now - self.last < (0.5 if self.tty else 5.0):
            return
        self.last = now
        rate = st["bytes"] / st["elapsed_s"] / 1e6 if st["elapsed_s"] > 0 else 0.0
        line = (
            f"{st['state']}  {human_duration(st['position_s'])}/{human_duration(st['duration_s'])}"
            f"  {st['messages']} msgs  {rate:.1f} MB/s  clients {st['clients']}"
            + (f"  loop {st['loop'] + 1}" if st["loop"] else "")
        )
        if self.tty:
            click.echo(f"\r{line}\x1b[K" + ("\n" if final else ""), nl=False, err=True)
        else:
            click.echo(line, err=True)


# -- browse -----------------------------------------------------------------------------------


@main.command("ls")
@click.option("--tag", help="Only runs with this tag.")
@click.option("--status", type=click.Choice(layout.STATUSES), help="Only runs in this state.")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of runs (docs/cli.md).")
@data_options
def ls(tag, status, as_json, data, catalog):
    """List runs, newest first."""
    folder, cat, why = read_data(data, catalog)
    rows = None
    if cat is not None:
        try:
            rows = cat.list_runs(tag=tag, status=status)
        except RecorderError as exc:
            why = str(exc)
        finally:
            cat.close()
    if rows is None:
        if why:
            click.echo(f"warning: {one_line(why)}; listing the run stores instead", err=True)
        rows = _runs_from_stores(folder, tag=tag, status=status)
    if as_json:
        click.echo(json.dumps([_run_json(r) for r in rows], indent=2))
        return 0
    if not rows:
        click.echo("no runs", err=True)
        return 0
    click.echo(
        table(
            ["RUN", "NAME", "STATUS", "STARTED", "DURATION", "MESSAGES", "SIZE", "TAGS"],
            [
                [
                    r["run_id"],
                    r["name"] or "-",
                    r["status"] + (" (empty)" if _empty(r) else ""),
                    human_time(r["started_ns"]),
                    human_duration(((r["ended_ns"] or r["started_ns"]) - r["started_ns"]) / 1e9),
                    str(r["messages"]),
                    human_bytes(r["bytes"]),
                    ",".join(r["tags"]) or "-",
                ]
                for r in rows
            ],
        )
    )
    return 0


def _empty(r: dict) -> bool:
    """A run that ended well with nothing in it: a silent source or two peers that both
    connect. Derived from the counts, so runs of every format version show it."""
    return r["status"] == layout.STATUS_COMPLETE and not r["messages"]


def _runs_from_stores(folder, *, tag: str | None, status: str | None) -> list[dict]:
    """What the catalog would list, read from the run stores themselves (slower, but needs
    nothing written: a read-only folder, a full disk, a damaged catalog)."""
    from recorder.db.catalog import run_row
    from recorder.store.reader import RunReader
    from recorder.store.recover import run_dirs

    rows = []
    for p in run_dirs(config.runs_dir(folder)):
        try:
            with RunReader(p) as reader:
                s = reader.summary()
        except RecorderError as exc:
            click.echo(f"skipped {p.name}: {one_line(str(exc))}", err=True)
            continue
        row = run_row(s) | {"tags": sorted(set(s.get("tags") or []))}
        if (tag is None or tag in row["tags"]) and (status is None or row["status"] == status):
            rows.append(row)
    return sorted(rows, key=lambda r: (r["started_ns"], r["run_id"]), reverse=True)


def _run_json(r: dict) -> dict:
    return {
        "run_id": r["run_id"],
        "name": r["name"],
        "status": r["status"],
        "empty": _empty(r),
        "error": r["error"],
        "started_ns": r["started_ns"],
        "ended_ns": r["ended_ns"],
        "messages": r["messages"],
        "bytes": r["bytes"],
        "gaps": r["gaps"],
        "drops": r["drops"],
        "rejects": r["rejects"],
        "protocols": [p for p in (r["protocols"] or "").split(",") if p],
        "tags": r["tags"],
        "path": r["path"],
    }


@main.command()
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="The run as JSON (docs/cli.md).")
@data_options
def info(run, as_json, data, catalog):
    """Show a run: streams, protocol, endpoint, counts, bytes, duration, gaps, status."""
    from recorder.store.find import resolve_run
    from recorder.store.reader import RunReader

    folder = config.data_dir(data, create=False)
    with RunReader(resolve_run(config.runs_dir(folder), run)) as reader:
        s = reader.summary()
    if as_json:
        click.echo(json.dumps(s, indent=2))
        return 0
    lines = [
        f"run       {s['run_id']}" + (f"  ({s['name']})" if s["name"] else ""),
        f"status    {s['status']}"
        + (f": {s['error']}" if s["error"] else "")
        + ("  (empty: no message arrived)" if _empty(s) else ""),
        f"started   {human_time(s['started_ns'])}",
        f"duration  {human_duration(s['duration_s'])}",
        f"messages  {s['messages']}   {human_bytes(s['bytes'])}   gaps {s['gaps']}   "
        f"drops {s['drops']}   rejects {s['rejects']}",
        f"tags      {', '.join(s['tags']) or '-'}",
        f"format    v{s['format_version']}",
        "",
    ]
    click.echo("\n".join(lines))
    click.echo(
        table(
            [
                "STREAM",
                "PROTOCOL",
                "SOCKET",
                "ENDPOINT",
                "MESSAGES",
                "SIZE",
                "GAPS",
                "DROPS",
                "ARRAYS",
            ],
            [
                [
                    st["name"],
                    st["protocol"],
                    f"{st['socket_type']}/{st['role']}",
                    st["endpoint"],
                    str(st["messages"]),
                    human_bytes(st["bytes"]),
                    str(st["gaps"]),
                    str(st["drops"]),
                    ",".join(st["arrays"]) or "-",
                ]
                for st in s["streams"]
            ],
        )
    )
    for st in s["streams"]:  # a stream that hit a cap: those values are only in the bytes
        if st.get("columns_dropped") or st.get("segments_capped"):
            click.echo(
                f"stream {st['name']}: {st.get('columns_dropped', 0)} values past the column cap, "
                f"{st.get('segments_capped', 0)} arrays past the segment cap "
                "(kept verbatim in the messages only)"
            )
    for note in s["notes"]:
        click.echo(f"note {human_time(note['created_ns'])}: {note['text']}")
    return 0


@main.command()
@click.argument("run")
@click.argument("tags", nargs=-1, required=True)
@click.option("--remove", is_flag=True, help="Remove these tags instead of adding them.")
@data_options
def tag(run, tags, remove, data, catalog):
    """Add (or --remove) tags on RUN."""
    from recorder.store.find import resolve_run

    folder, cat = open_data(data, catalog)
    path = resolve_run(config.runs_dir(folder), run)
    new = cat.change_tags(path, remove=tags) if remove else cat.change_tags(path, add=tags)
    click.echo(f"{path.name}: {', '.join(new) or '(no tags)'}")
    return 0


@main.command()
@click.argument("run", required=False)
@data_options
def recover(run, data, catalog):
    """Repair runs a killed recorder left behind and mark them interrupted."""
    from recorder.store.find import resolve_run
    from recorder.store.reader import RunReader
    from recorder.store.recover import is_abandoned, repair_run, run_dirs, upload_pending

    folder, cat = open_data(data, catalog)
    runs_dir = config.runs_dir(folder)
    if run:
        paths = [resolve_run(runs_dir, run)]
    else:
        paths = []
        for p in run_dirs(runs_dir):
            try:
                with RunReader(p) as reader:
                    if is_abandoned(reader.attrs):
                        paths.append(p)
            except RecorderError as exc:
                click.echo(f"skipped {p.name}: {exc}", err=True)
    for p in upload_pending(runs_dir, paths[0] if run else None):  # an object store's
        cat.index_path(p)
        click.echo(f"{p.name}: uploaded")
        paths = [q for q in paths if q.name != p.name]
    if not paths:
        click.echo("nothing to recover", err=True)
        return 0
    for p in paths:
        repair_run(p)
        s = cat.index_path(p)
        click.echo(f"{p.name}: interrupted, {s['messages']} messages kept")
    return 0


@main.command()
@data_options
def reindex(data, catalog):
    """Rebuild the catalog from the run stores in the data folder (a damaged catalog file is
    moved aside first, and sources, tokens and jobs come back from its copy)."""
    from recorder.db import backup
    from recorder.db.catalog import damage, set_aside
    from recorder.db.engine import sqlite_file
    from recorder.db.session_service import reindex_session_files, restore_sessions
    from recorder.store.recover import run_dirs
    from recorder.store.sessions import SessionFiles

    folder = config.data_dir(data)
    url = config.catalog_url(catalog, folder)
    problem = damage(url)
    if problem is not None:
        _no_manager(folder, f"the catalog is damaged ({problem})")
        aside = set_aside(url)
        click.echo(f"the catalog was damaged ({problem}): moved to {aside}", err=True)
    folder, cat = open_data(data, catalog)
    db = sqlite_file(url)
    if db is not None:
        from recorder.db.schema import restored as restored_when_opened

        restored = restored_when_opened.get(cat.engine) or backup.restore(
            cat.engine, backup.copy_path(db)
        )
        if restored is not None:
            what = ", ".join(f"{n} {t}" for t, n in restored.items())
            click.echo(f"restored {what} from {backup.copy_path(db).name}", err=True)
    # sessions: their files first (the truth), then the copies the runs keep (a session whose
    # file is gone comes back from its newest copy, and its file is written again)
    files = SessionFiles(folder)
    from_files = reindex_session_files(cat, files)
    for problem in files.problems:
        click.echo(f"skipped session: {problem}", err=True)
    found = set()
    from_runs = set()
    failed = 0
    for p in run_dirs(config.runs_dir(folder)):
        try:
            summary = cat.index_path(p)
            found.add(p.name)
            if summary.get("session"):
                from_runs.add(summary["session"]["id"])
        except RecorderError as exc:
            failed += 1
            click.echo(f"skipped {p.name}: {exc}", err=True)
    gone = [r for r, p in cat.run_paths().items() if r not in found and (db or _in(p, folder))]
    for r in gone:
        cat.remove_run(r)
    restored, stale = restore_sessions(cat, files, from_files, from_runs)
    click.echo(f"indexed {len(found)} runs, removed {len(gone)} missing, skipped {failed}")
    click.echo(
        f"indexed {len(from_files) + restored} sessions, {restored} restored from their runs, "
        f"removed {stale} missing"
    )
    return 0


def _in(path: str, folder: Path) -> bool:
    """Whether an indexed run lies in this data folder: a server catalog (PostgreSQL) indexes
    the runs of other hosts and folders too, which reindex here must not remove."""
    return Path(path).resolve().parent == config.runs_dir(folder).resolve()


def _no_manager(folder, why: str) -> None:
    """Refuse to replace the catalog under a running manager (it would go on writing to the
    old file): `serve` or `manager` holds the data folder's lock while it runs."""
    import fcntl

    from recorder.manager.manager import LOCK_FILE

    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = os.read(fd, 64).decode(errors="replace").strip() or "?"
        raise RecorderError(f"{why}; stop the manager (pid {pid}) and run reindex again") from None
    finally:
        os.close(fd)


for _command in SERVE_COMMANDS:  # serve, manager, token: the long-running side
    main.add_command(_command)
main.add_command(migrate)
main.add_command(session)  # session new/ls/show/edit/close/add-run/remove-run
for _command in EXPORT_COMMANDS:  # export, import: runs to other ecosystems' files and back
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main()
