"""The messages a replay serves: one run or several on one clock, finished or still recording.

Several runs (a camera run and an ephys run recorded side by side by two recorders) are served
as one replay: each run's receive times go onto the combined clock as recorded (recorders stamp
with the wall clock, so runs recorded on one host, or on hosts with synchronised clocks, line
up), shifted by the run's offset when one is given. The combined clock starts at the earliest
(shifted) run start, so `--start`, `--end`, seeks and the position count from there.

A stream keeps its name unless another chosen run has a stream of the same name: then both are
called RUN/NAME, so names never clash (the RUN/NAME form is accepted for every stream).

A session's runs (`chain`) are often one recording cut in pieces (`--split-every`, triggers):
the same stream in consecutive runs, one after the other in time, is then one stream served on
one socket, its runs played back to back (a chain, named by the stream, or by its first run as
RUN/NAME when another chain of that name exists). Streams recorded at the same time by two
recorders overlap in time and stay apart. `skip_gaps` cuts the idle time between runs (no run
holding messages) to at most GAP_KEPT_S, so an afternoon of short trials plays without the
waits between them.

With `skip_pauses` the recorded pauses (a recording paused on purpose: RunReader.pauses()) are
cut out of the combined clock: the first message after a pause comes as long after the last one
before it as the gaps around the pause say, not after the pause's length. A pause in which any
replayed run still has messages (another run recorded on meanwhile) is kept. Positions, seeks,
`--start`/`--end` and the duration are all on that shorter clock.

Following a run that is still being recorded re-reads the committed counts after each flush and
reads on from where the last round stopped; it ends once the run's status is no longer
`recording` and everything committed before that was read.
"""

from __future__ import annotations

import bisect
import contextlib
import heapq
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from recorder import limits, protocols
from recorder.errors import StoreError, StreamNotFound, UsageError
from recorder.protocols.descriptor import Responder
from recorder.store import layout
from recorder.store.run_meta import open_run

if TYPE_CHECKING:
    from recorder.store.reader import Message, RunReader, StreamReader

log = logging.getLogger(__name__)

SEP = "/"  # RUN/NAME: stream names and run ids never hold it
FOLLOW_POLL_S = 0.05  # how often a followed run's committed counts are looked at
_CLOSING = (StoreError, ValueError, OSError, KeyError)  # reads that meet a stream being closed
_DELAYS_KEPT = 32  # the lag follows the commit delays of this many recent flushes
GAP_KEPT_S = 1.0  # skip_gaps: idle time between runs is cut to this


@dataclass(frozen=True, slots=True)
class Member:
    """One replayed stream: its key in the replay, its run, and the run's shift on the clock."""

    key: str
    run: RunReader
    stream: StreamReader
    shift_ns: int
    more: tuple[Member, ...] = ()  # a chain: the same stream in later runs, played after this

    @property
    def parts(self) -> tuple[Member, ...]:
        return (self, *self.more)


class Timeline:
    def __init__(
        self,
        paths: Sequence[Path],
        offsets: Mapping[str, float] | None = None,
        *,
        chain: bool = False,
        skip_gaps: bool = False,
        skip_pauses: bool = False,
    ):
        if not paths:
            raise UsageError("no run to replay")
        # metadata only until messages are read: a replayer binds before zarr is imported
        self.runs = [open_run(p) for p in paths]
        ids = [r.run_id for r in self.runs]
        for rid, n in Counter(ids).items():
            if n > 1:
                raise UsageError(f"run {rid} is given twice")
        shifts: dict[str, int] = {}
        for rid, seconds in (offsets or {}).items():
            if rid not in ids:
                raise UsageError(f"--offset names run {rid!r}, which is not replayed")
            if not abs(seconds) <= limits.TIME_MAX_S:
                raise UsageError(f"--offset {rid}: at most {limits.TIME_MAX_S:g} s either way")
            shifts[rid] = round(seconds * 1e9)
        if skip_gaps:
            for rid, cut in _gap_cuts(self.runs, shifts).items():
                shifts[rid] = shifts.get(rid, 0) + cut
        self.members: dict[str, Member] = {}
        groups = _chains(self.runs, shifts) if chain else _apart(self.runs, shifts)
        names = Counter(name for name, _ in groups)
        for name, parts in groups:
            first = parts[0]
            key = name if names[name] == 1 else f"{first.run.run_id}{SEP}{name}"
            more = tuple(Member(key, p.run, p.stream, p.shift_ns) for p in parts[1:])
            self.members[key] = Member(key, first.run, first.stream, first.shift_ns, more)
        self.started_ns = min(r.started_ns + shifts.get(r.run_id, 0) for r in self.runs)
        spans = [
            (p["start_ns"] + shifts.get(r.run_id, 0), end + shifts.get(r.run_id, 0))
            for r in self.runs
            for p in r.pauses()
            if (end := p.get("end_ns")) is not None and end > p["start_ns"]
        ]
        self.pauses = sum(len(r.pauses()) for r in self.runs)
        """Recorded pauses of the replayed runs (skipped or not)."""
        self.skip_pauses = skip_pauses
        self._cut_ends: list[int] = []  # skipped spans on the recorded clock: their ends,
        self._cut_starts: list[int] = []  # their starts on the shortened clock,
        self._cut: list[int] = [0]  # and the time cut before span k (then after the last)
        if skip_pauses:
            self._cut_out(spans)
        self.live = False  # following: the backlog was read, messages now come as committed
        self._watched: list[Member] = []  # following: these streams
        self._seen: list[int] = []  # their committed counts at the last look
        self._watched_at = 0.0
        self._recording = False
        self._delays: deque[int] = deque(maxlen=_DELAYS_KEPT)

    def _cut_out(self, spans: list[tuple[int, int]]) -> None:
        """Merge the pauses and keep those no stored message falls in."""
        merged: list[list[int]] = []
        for start, end in sorted(spans):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        for start, end in merged:
            if any(
                p.stream.index_at(start - p.shift_ns) < p.stream.index_at(end - p.shift_ns)
                for m in self.members.values()
                for p in m.parts
            ):
                continue  # something was recorded meanwhile: not a pause of the whole replay
            self._cut_starts.append(start - self._cut[-1])
            self._cut_ends.append(end)
            self._cut.append(self._cut[-1] + end - start)

    def to_clock(self, recorded_ns: int) -> int:
        """A recorded (shifted) receive time on the replay clock: less the skipped pauses
        before it."""
        if not self._cut_ends:
            return recorded_ns
        return recorded_ns - self._cut[bisect.bisect_right(self._cut_ends, recorded_ns)]

    def to_recorded(self, clock_ns: int) -> int:
        """A time on the replay clock as a recorded (shifted) receive time: a time at a
        skipped pause is its end, where the next message is."""
        if not self._cut_starts:
            return clock_ns
        return clock_ns + self._cut[bisect.bisect_right(self._cut_starts, clock_ns)]

    @property
    def run_id(self) -> str:
        """The first run's id (the one a job row is filed under)."""
        return self.runs[0].run_id

    @property
    def streams(self) -> list[str]:
        return list(self.members)

    def find(self, name: str) -> str | None:
        """The key of stream `name` (a key, or RUN/NAME for any stream), None if there is none;
        UsageError for a name that several runs have."""
        if name in self.members:
            return name
        run, sep, stream = name.partition(SEP)
        if sep:
            for m in self.members.values():
                if any(p.run.run_id == run and p.stream.name == stream for p in m.parts):
                    return m.key
            return None
        owners = [m.run.run_id for m in self.members.values() if m.stream.name == name]
        if owners:
            raise UsageError(
                f"stream {name!r} is in runs {', '.join(owners)}: say which, "
                f"e.g. {owners[0]}{SEP}{name}"
            )
        return None

    def key(self, name: str) -> str:
        found = self.find(name)
        if found is None:
            if len(self.runs) == 1:
                self.runs[0].stream(name)  # StreamNotFound, as a one-run replay always said
            raise StreamNotFound(f"no stream {name!r} (streams: {', '.join(self.members)})")
        return found

    def member(self, name: str) -> Member:
        return self.members[self.key(name)]

    def stream(self, name: str) -> StreamReader:
        return self.member(name).stream

    def duration_s(self, keys: Iterable[str]) -> float:
        """From the clock's start to the last committed message of these streams."""
        last = None
        for k in keys:
            for m in self.member(k).parts:
                if m.stream.n_messages:
                    end = self.to_clock(_last_ns(m.stream) + m.shift_ns)
                    last = end if last is None else max(last, end)
        return 0.0 if last is None else (last - self.started_ns) / 1e9

    def _index(self, m: Member, seconds: float | None, default: int) -> int:
        if seconds is None:
            return default
        clock_ns = self.started_ns + int(seconds * 1e9)
        return m.stream.index_at(self.to_recorded(clock_ns) - m.shift_ns)

    def messages(
        self, keys: Iterable[str], start: float | None = None, stop: float | None = None
    ) -> Iterator[Message]:
        """Every committed message of these streams in combined receive-time order, named by
        key and timed on the combined clock; `start`/`stop` are seconds on that clock."""
        members = [self.member(k) for k in keys]
        clock = self.to_clock if self._cut_ends else None
        if any(m.more for m in members):
            return _merged_chains(members, start, stop, self._index, clock)
        bounds = [
            (self._index(m, start, 0), self._index(m, stop, m.stream.n_messages)) for m in members
        ]
        return _merged(members, bounds, clock)

    def follow(
        self,
        keys: Iterable[str],
        start: float | None,
        stop: float | None,
        wait: Callable[[float], bool],
    ) -> Iterator[Message | None]:
        """Like `messages`, then on as flushes commit more, until the runs stop recording.

        While nothing new is committed `wait(seconds)` is called (False: stop following) and
        None is yielded, so the caller can look at its commands meanwhile."""
        members = [self.member(k) for k in keys]
        self._watched = members
        pos = [self._index(m, start, 0) for m in members]
        if self.skip_pauses:
            raise UsageError("skipping pauses replays finished runs, not a followed one")
        stop_ns = None if stop is None else self.started_ns + int(stop * 1e9)
        self.live, self._delays = False, deque(maxlen=_DELAYS_KEPT)
        self._seen = []  # the first look: what is committed now is the backlog
        while True:
            recording = self.watch(force=True)
            ends = [m.stream.n_messages for m in members]
            if stop_ns is not None:
                ends = [min(e, self._index(m, stop, e)) for m, e in zip(members, ends, strict=True)]
            order = {m.key: i for i, m in enumerate(members)}
            try:
                for msg in _merged(members, list(zip(pos, ends, strict=True))):
                    pos[order[msg.stream]] = msg.index + 1
                    yield msg
            except _CLOSING as exc:
                if not recording:
                    raise
                # the recorder is closing the stream: compaction swaps its arrays (compact.py)
                # under the reader; read on from the same place once they are back
                log.debug("following: %s; reading again", exc)
                if not wait(FOLLOW_POLL_S):
                    return
                yield None
                continue
            past_stop = stop_ns is not None and all(
                e < m.stream.n_messages for m, e in zip(members, ends, strict=True)
            )
            if not recording or past_stop:
                return
            self.live = True
            if ends == pos:  # nothing new: wait for the next flush
                if not wait(FOLLOW_POLL_S):
                    return
                yield None
            pos = ends

    def watch(self, force: bool = False) -> bool:
        """Look at the followed runs (at most every FOLLOW_POLL_S unless forced): their status,
        then their committed counts, noting how late newly committed messages became visible.
        True while any is still recording. The replayer calls this while it waits, so delays
        are measured as flushes land, not when the replay gets round to reading them."""
        now = time.monotonic()
        if not force and now - self._watched_at < FOLLOW_POLL_S:
            return self._recording
        self._watched_at = now
        recording = False
        for run in {id(m.run): m.run for m in self._watched}.values():
            run.refresh()  # status before counts: a run that ended has its last counts
            recording = recording or run.status == layout.STATUS_RECORDING
        seen_ns = time.time_ns()
        counts = [m.stream.n_messages for m in self._watched]
        if self._seen:
            for m, old, new in zip(self._watched, self._seen, counts, strict=True):
                if new > old:  # the oldest newly visible message waited longest
                    with contextlib.suppress(*_CLOSING):
                        oldest = int(m.stream.column("recv_ns", old, old + 1)[0]) + m.shift_ns
                        self._delays.append(seen_ns - oldest)
        self._seen, self._recording = counts, recording
        return recording

    @property
    def lag_ns(self) -> int:
        """How far behind its recording a followed run can be served without waiting for a
        flush: the longest a message took to become visible, over the last few flushes."""
        return max(self._delays, default=0)

    def close(self) -> None:
        for r in self.runs:
            r.close()


def _first_ns(s: StreamReader) -> int:
    return int(s.column("recv_ns", 0, 1)[0])


def _last_ns(s: StreamReader) -> int:
    return int(s.column("recv_ns", s.n_messages - 1)[0])


def _span(run: RunReader) -> tuple[int, int] | None:
    """First and last receive time over the run's streams (None: no message at all)."""
    held = [s for s in run.streams.values() if s.n_messages]
    if not held:
        return None
    return min(_first_ns(s) for s in held), max(_last_ns(s) for s in held)


def _gap_cuts(runs: Sequence[RunReader], shifts: Mapping[str, int]) -> dict[str, int]:
    """skip_gaps: how far (ns, negative) each run moves so that no idle time between runs is
    longer than GAP_KEPT_S; runs that overlap in time keep their relative places."""
    spans = []
    for r in runs:
        span = _span(r)
        if span is not None:
            shift = shifts.get(r.run_id, 0)
            spans.append((span[0] + shift, span[1] + shift, r.run_id))
    cuts: dict[str, int] = {}
    cut, end = 0, None
    kept = int(GAP_KEPT_S * 1e9)
    for first, last, rid in sorted(spans):
        if end is not None and first - end > kept:
            cut += first - end - kept
        cuts[rid] = -cut
        end = last if end is None else max(end, last)
    return cuts


def _apart(runs: Sequence[RunReader], shifts: Mapping[str, int]) -> list[tuple[str, list[Member]]]:
    """Every stream of every run on its own."""
    return [
        (name, [Member(name, r, s, shifts.get(r.run_id, 0))])
        for r in runs
        for name, s in r.streams.items()
    ]


def _chains(runs: Sequence[RunReader], shifts: Mapping[str, int]) -> list[tuple[str, list[Member]]]:
    """Streams of one name in several runs joined into chains: a stream goes on the chain of
    its name whose last part ended (last message) before its first message and that was
    recorded alike (protocol, socket, endpoint); otherwise it starts a chain of its own.
    Streams answered by matching recorded request/reply pairs are never chained (a chain is
    served as a sequence of messages)."""
    parts = []
    for r in runs:
        shift = shifts.get(r.run_id, 0)
        for name, s in r.streams.items():
            begin = _first_ns(s) + shift if s.n_messages else r.started_ns + shift
            parts.append((begin, r.run_id, name, Member(name, r, s, shift)))
    chains: list[tuple[str, list[Member]]] = []
    ends: list[int | None] = []
    for begin, _, name, m in sorted(parts, key=lambda p: p[:3]):
        for i, (cname, members) in enumerate(chains):
            end = ends[i]
            if cname == name and (end is None or end <= begin) and _alike(members[0], m):
                members.append(m)
                break
        else:
            chains.append((name, [m]))
            ends.append(None)
            i = len(chains) - 1
        if m.stream.n_messages:
            ends[i] = _last_ns(m.stream) + m.shift_ns
    return chains


def _alike(a: Member, b: Member) -> bool:
    sa, sb = a.stream, b.stream
    if sa.protocol != sb.protocol or protocols.lookup(sa.protocol).responder is Responder.PAIRS:
        return False
    return (sa.socket_type, sa.role, sa.endpoint) == (sb.socket_type, sb.role, sb.endpoint)


def _merged_chains(
    members: list[Member],
    start: float | None,
    stop: float | None,
    index: Callable[[Member, float | None, int], int],
    clock: Callable[[int], int] | None = None,
) -> Iterator[Message]:
    """As `_merged`, a chain's runs one after the other (they do not overlap in time), so a
    chain of hundreds of split runs holds one read window at a time, not one per run."""

    def chained(order: int, m: Member) -> Iterator[tuple[int, int, int, Message]]:
        for p in m.parts:
            lo, hi = index(p, start, 0), index(p, stop, p.stream.n_messages)
            yield from _shifted(p, order, lo, hi, clock)

    iters = [chained(order, m) for order, m in enumerate(members)]
    for *_, msg in heapq.merge(*iters, key=lambda t: t[:3]):
        yield msg


def _merged(
    members: list[Member],
    bounds: list[tuple[int, int]],
    clock: Callable[[int], int] | None = None,
) -> Iterator[Message]:
    iters = [
        _shifted(m, order, lo, hi, clock)
        for order, (m, (lo, hi)) in enumerate(zip(members, bounds, strict=True))
    ]
    for *_, msg in heapq.merge(*iters, key=lambda t: t[:3]):
        yield msg


def _shifted(
    m: Member, order: int, lo: int, hi: int, clock: Callable[[int], int] | None
) -> Iterator[tuple[int, int, int, Message]]:
    for msg in m.stream.messages(lo, hi):
        msg.stream = m.key
        msg.recv_ns += m.shift_ns
        if clock is not None:
            msg.recv_ns = clock(msg.recv_ns)
        yield msg.recv_ns, order, msg.index, msg
