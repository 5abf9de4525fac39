"""The messages a replay serves: one run or several on one clock, finished or still recording.

Several runs (a camera run and an ephys run recorded side by side by two recorders) are served
as one replay: each run's receive times go onto the combined clock as recorded (recorders stamp
with the wall clock, so runs recorded on one host, or on hosts with synchronised clocks, line
up), shifted by the run's offset when one is given. The combined clock starts at the earliest
(shifted) run start, so `--start`, `--end`, seeks and the position count from there.

A stream keeps its name unless another chosen run has a stream of the same name: then both are
called RUN/NAME, so names never clash (the RUN/NAME form is accepted for every stream).

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

from recorder import limits
from recorder.errors import StoreError, StreamNotFound, UsageError
from recorder.store import layout
from recorder.store.reader import Message, RunReader, StreamReader

log = logging.getLogger(__name__)

SEP = "/"  # RUN/NAME: stream names and run ids never hold it
FOLLOW_POLL_S = 0.05  # how often a followed run's committed counts are looked at
_CLOSING = (StoreError, ValueError, OSError, KeyError)  # reads that meet a stream being closed
_DELAYS_KEPT = 32  # the lag follows the commit delays of this many recent flushes


@dataclass(frozen=True, slots=True)
class Member:
    """One replayed stream: its key in the replay, its run, and the run's shift on the clock."""

    key: str
    run: RunReader
    stream: StreamReader
    shift_ns: int


class Timeline:
    def __init__(
        self,
        paths: Sequence[Path],
        offsets: Mapping[str, float] | None = None,
        *,
        skip_pauses: bool = False,
    ):
        if not paths:
            raise UsageError("no run to replay")
        self.runs = [RunReader(p) for p in paths]
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
        names = Counter(name for r in self.runs for name in r.streams)
        self.members: dict[str, Member] = {}
        for r in self.runs:
            shift = shifts.get(r.run_id, 0)
            for name, s in r.streams.items():
                key = name if names[name] == 1 else f"{r.run_id}{SEP}{name}"
                self.members[key] = Member(key, r, s, shift)
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
                m.stream.index_at(start - m.shift_ns) < m.stream.index_at(end - m.shift_ns)
                for m in self.members.values()
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
                if m.run.run_id == run and m.stream.name == stream:
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
            m = self.member(k)
            if m.stream.n_messages:
                end = int(m.stream.column("recv_ns", m.stream.n_messages - 1)[0]) + m.shift_ns
                end = self.to_clock(end)
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
        bounds = [
            (self._index(m, start, 0), self._index(m, stop, m.stream.n_messages)) for m in members
        ]
        return _merged(members, bounds, self.to_clock if self._cut_ends else None)

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
