"""Which run each received message belongs to: runs as intervals of receive time.

A recording that only starts and stops has one run covering all time, and its streams write
straight into it (`Timeline.plain`: one attribute check per batch). Anything more (a split, an
armed pre-trigger buffer, a pause) turns every run into a `Slot`, an interval [start, end) of
receive time, and each stream's writer thread routes each decoded message by its receive time:
into the slot that holds it, into the stream's pre-trigger buffer (armed, between triggered
runs), or nowhere (paused). Because the decision is made by receive time, not by when a
thread gets to it, every message lands in exactly one run however far apart the streams'
writer threads are.

A slot's end can still move (a trigger during a triggered run extends it; a size split sets
it) until it is *sealed*: every stream's watermark (the receive time it has routed up to, or the
clock less a guard when its queue is empty) has passed the end. Nothing can land in a sealed slot
any more, because a later trigger is at least the watermark of the thread that fires it, so each
stream finishes its part of the run, and once all have, the run is closed (on the keeper thread,
with the `on_run_closed` callback after it).

One lock guards the timeline, the watermarks, the pauses and the pre-trigger buffers; streams
take it once per batch. Runs are created outside it (a zarr group per run and stream takes tens
of milliseconds), by whichever thread first needs the slot's run.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from recorder.contracts import Marker, Pause, Received, WriteItem
from recorder.errors import Conflict, UsageError
from recorder.protocols.base import Codec, decode_batch, decode_or_reject
from recorder.recording.plans import SplitPlan, TriggerPlan

if TYPE_CHECKING:
    from recorder.store.run_writer import RunWriter
    from recorder.store.stream_writer import StreamWriter

NEVER = 1 << 62
"""An end not (yet) known, or a stream that has finished: later than every receive time."""
BEFORE = -NEVER
IDLE_GUARD_NS = 100_000_000
"""A stream with an empty queue whose receive loop does not say how far it got (REQ, the proxy)
has routed everything received before now less this: a message stamped just before the queue was
looked at may still be on its way from the receive thread."""
ARMED_SLACK_NS = 500_000_000
"""The pre-trigger buffer keeps this much more than `pre_s`: a rule fires on one stream's writer
thread while another stream's thread may already be a little further."""
_MARKERS_KEPT = 1000  # armed: markers waiting for a trigger, at most


def _nbytes(item: WriteItem) -> int:
    return sum(map(len, item[1]))


class Slot:
    """One run's share of receive time: [start, end). `run` is made on first need."""

    def __init__(self, index: int, start: int, end: int, trigger: dict[str, Any] | None = None):
        self.index, self.start, self.end = index, start, end
        self.trigger = trigger  # the run's `trigger` attribute, for triggered runs
        self.run: RunWriter | None = None
        self.bytes = 0  # stored, all streams: for a size split
        self.done: set[str] = set()  # streams that have finished their part
        self.closed = False
        self.made = threading.Lock()

    def covers(self, t: int) -> bool:
        return self.start <= t < self.end


class Timeline:
    """The runs of one recording as slots of receive time, shared by its streams' threads."""

    def __init__(
        self,
        streams: list[str],
        *,
        trigger: TriggerPlan | None,
        split: SplitPlan | None,
        make_run: Callable[[Slot], RunWriter],
        close_run: Callable[[Slot], None],
    ):
        if trigger is not None and split is not None:
            raise UsageError("a recording is either armed (a trigger) or split, not both")
        self.lock = threading.Lock()
        self.names = list(streams)
        self.trigger_plan, self.split_plan = trigger, split
        self.armed = trigger is not None
        self.max_bytes = trigger.max_bytes if trigger is not None else 0
        self.plain = trigger is None and split is None
        """No split, no trigger, never paused: streams write straight into the one run."""
        self._make_run, self._close_run = make_run, close_run
        self.watermark = dict.fromkeys(self.names, BEFORE)
        #: The newest receive time each stream has routed into a run. Unlike its watermark it
        #: stays when the stream finishes (its watermark is NEVER then).
        self.routed = dict.fromkeys(self.names, BEFORE)
        self.slots: list[Slot] = []  # not yet closed, in time order, never overlapping
        self.made = 0  # slots ever made
        self.last_end = BEFORE  # armed: a new triggered run starts at or after this
        self.version = 0  # bumped when a slot appears or moves its end
        self.pauses: list[Pause] = []
        self.paused_messages = 0
        self.triggers = 0
        self.armed_bytes = 0
        self.armed_dropped = 0
        self.pending_markers: list[Marker] = []  # no run holds their time (yet)
        self.lanes: list[Lane] = []
        self.protocols: dict[str, str] = {}  # `auto` streams, once decided
        self.grid0 = 0  # time split: boundaries are grid0 + k * seconds
        if not self.armed:
            self.slots.append(self._new_slot(BEFORE, NEVER))

    # -- slots (the lock held) -----------------------------------------------------------------

    def _new_slot(self, start: int, end: int, trigger: dict[str, Any] | None = None) -> Slot:
        slot = Slot(self.made, start, end, trigger)
        self.made += 1
        self.version += 1
        self.last_end = max(self.last_end, end) if self.armed else end  # non-armed: in order
        return slot

    def begin(self, now_ns: int) -> None:
        """The recording starts: the time split's clock starts with the first run; an armed
        buffer keeps what arrived since the sockets opened."""
        with self.lock:
            self.last_end = max(self.last_end, now_ns) if self.armed else self.last_end
            if self.split_plan is not None and self.split_plan.seconds is not None:
                self.grid0 = now_ns
                self.slots[0].end = self.last_end = self._boundary_after(now_ns)
                self.version += 1

    def _boundary_after(self, t: int) -> int:
        assert self.split_plan is not None and self.split_plan.seconds is not None
        step = max(1, int(self.split_plan.seconds * 1e9))
        return self.grid0 + ((t - self.grid0) // step + 1) * step

    def _next_slot(self, t: int) -> Slot:
        """Not armed: the slot after the last one, holding `t` (slots stay contiguous)."""
        start = self.slots[-1].end if self.slots else self.last_end  # contiguous with the last
        timed = self.split_plan is not None and self.split_plan.seconds is not None
        slot = self._new_slot(start, self._boundary_after(t) if timed else NEVER)
        self.slots.append(slot)
        return slot

    def _min_watermark(self) -> int:
        return min(self.watermark.values())

    def _sealed(self, slot: Slot) -> bool:
        return slot.end <= self._min_watermark()

    def _end_now(self, slot: Slot, now: int) -> None:
        """End an open slot at `now` or just after everything routed so far, so no stream has
        put a later message into it already."""
        others = max(
            max(self.routed.values(), default=BEFORE),
            max((w for w in self.watermark.values() if w < NEVER), default=BEFORE),
        )
        slot.end = max(now, others + 1, slot.start + 1)
        self.last_end = slot.end
        self.version += 1

    def covering(self, t: int) -> Slot | None:
        for slot in self.slots:
            if slot.covers(t) and not slot.closed:
                return slot
        return None

    # -- runs ----------------------------------------------------------------------------------

    def run_of(self, slot: Slot) -> RunWriter:
        """The slot's run, made by the first thread that needs it (outside the timeline lock)."""
        run = slot.run
        if run is not None:
            return run
        with slot.made:
            if slot.run is None:
                slot.run = self._make_run(slot)
            return slot.run

    def markers_for(self, slot: Slot, since: int = BEFORE) -> list[Marker]:
        """Take the waiting markers that fall in the slot (from `since`): the lock held."""
        mine = [
            m for m in self.pending_markers if slot.covers(m["recv_ns"]) and m["recv_ns"] >= since
        ]
        if mine:
            self.pending_markers = [m for m in self.pending_markers if m not in mine]
        return mine

    def pauses_of(self, slot: Slot) -> list[Pause]:
        return [
            p
            for p in self.pauses
            if p["start_ns"] < slot.end and (p["end_ns"] is None or p["end_ns"] > slot.start)
        ]

    def stream_done(self, slot: Slot, name: str) -> None:
        with self.lock:
            slot.done.add(name)
            if len(slot.done) < len(self.names) or slot.closed:
                return
            slot.closed = True
            self.slots.remove(slot)
        self._close_run(slot)

    # -- control (any thread) ------------------------------------------------------------------

    def trigger(self, at_ns: int, reason: str) -> Slot | None:
        """A trigger at `at_ns`: a new run [at - pre, at + post), or the open one extended.
        Returns the slot, or None when the window lies inside a run that has ended already."""
        plan = self.trigger_plan
        if plan is None:
            raise Conflict("this recording is not armed: start it with a pre-trigger buffer")
        post = NEVER if plan.post_s is None else int(plan.post_s * 1e9)
        entry = {"at_ns": int(at_ns), "rule": reason}
        extended = None
        with self.lock:
            self.triggers += 1
            last = self.slots[-1] if self.slots else None
            end = NEVER if post == NEVER else at_ns + post
            if last is not None and at_ns < last.end and not self._sealed(last):
                old = last.end
                last.end = max(last.end, end)
                self.last_end = max(self.last_end, last.end)
                self.version += 1
                assert last.trigger is not None
                last.trigger["triggers"].append(entry)
                slot, extended = last, self.markers_for(last, old)
            else:
                start = max(at_ns - int(plan.pre_s * 1e9), self.last_end)
                if end <= start:
                    return None
                attrs = {
                    **entry,
                    "pre_s": plan.pre_s,
                    "post_s": plan.post_s,
                    "triggers": [entry],
                }
                slot = self._new_slot(start, end, attrs)
                self.slots.append(slot)
        run = self.run_of(slot)
        if extended is not None:
            with self.lock:
                trigger = {
                    **(slot.trigger or {}),
                    "triggers": list((slot.trigger or {})["triggers"]),
                }
            run.set_attr("trigger", trigger)
            for m in extended:
                run.add_marker(m["text"], m["recv_ns"], m.get("author", ""))
        return slot

    def split_now(self) -> None:
        """End the current run now and start the next (not while armed: triggers make runs)."""
        if self.armed:
            raise Conflict("an armed recording makes a run per trigger: it cannot be split")
        now = time.time_ns()
        with self.lock:
            self.plain = False
            now = time.time_ns()  # after the switch: a plain write in flight is older
            last = self.slots[-1]
            self._end_now(last, now)
            slot = self._new_slot(last.end, NEVER)
            self.slots.append(slot)
            if self.split_plan is not None and self.split_plan.seconds is not None:
                self.grid0 = last.end
                slot.end = self.last_end = self._boundary_after(last.end)
        self.run_of(slot)  # the next run exists at once, as the caller expects

    def pause(self) -> list[tuple[RunWriter, list[Pause]]]:
        with self.lock:
            if self.pauses and self.pauses[-1]["end_ns"] is None:
                return []
            self.plain = False
            self.pauses.append({"start_ns": time.time_ns(), "end_ns": None, "messages": 0})
            return self._pause_updates()

    def resume(self) -> list[tuple[RunWriter, list[Pause]]]:
        with self.lock:
            if not self.pauses or self.pauses[-1]["end_ns"] is not None:
                return []
            self.pauses[-1]["end_ns"] = time.time_ns()
            return self._pause_updates()

    def _pause_updates(self) -> list[tuple[RunWriter, list[Pause]]]:
        last = self.pauses[-1]
        return [
            (s.run, [dict(p) for p in self.pauses_of(s)])  # type: ignore[misc]
            for s in self.slots
            if s.run is not None and not s.closed and last in self.pauses_of(s)
        ]

    @property
    def paused(self) -> bool:
        return bool(self.pauses) and self.pauses[-1]["end_ns"] is None

    def mark(self, text: str, author: str = "") -> Marker:
        now = time.time_ns()
        marker: Marker = {"recv_ns": now, "text": text}
        if author:
            marker["author"] = author
        with self.lock:
            slot = self.covering(now)
            if slot is None:
                self.pending_markers.append(marker)
                if self.armed:
                    keep = now - self._keep_ns()
                    self.pending_markers = [
                        m for m in self.pending_markers if m["recv_ns"] >= keep
                    ][-_MARKERS_KEPT:]
                return marker
        self.run_of(slot).add_marker(text, now, author)
        return marker

    def _keep_ns(self) -> int:
        assert self.trigger_plan is not None
        return int(self.trigger_plan.pre_s * 1e9) + ARMED_SLACK_NS

    def state(self) -> str:
        if self.paused:
            return "paused"
        if not self.armed:
            return "recording"
        with self.lock:
            return "recording" if self.covering(time.time_ns()) is not None else "armed"

    def evict_oldest(self) -> None:
        """The pre-trigger buffers together are over the byte limit: drop the oldest message of
        any stream (the lock held)."""
        oldest = None
        for lane in self.lanes:
            if lane.buffer and (oldest is None or lane.buffer[0][0] < oldest.buffer[0][0]):
                oldest = lane
        assert oldest is not None
        _, _, nbytes = oldest.buffer.popleft()
        self.armed_bytes -= nbytes
        self.armed_dropped += 1


class Lane:
    """One stream's way through the timeline; used only on that stream's writer thread."""

    def __init__(self, timeline: Timeline, name: str):
        self.tl, self.name = timeline, name
        self.writers: dict[Slot, StreamWriter] = {}  # slots written to and not yet finished
        self.plain_writer: StreamWriter | None = None
        self.buffer: deque[tuple[int, WriteItem, int]] = deque()  # armed: (recv_ns, item, bytes)
        self.floor = BEFORE  # the end of the last slot finished: later messages go after it
        self.late = 0  # messages that came after their run's part was finished (should not)
        self.seen_version = -1
        self.gaps_closed = 0  # missing messages counted in runs already finished
        self.forget_gaps = False  # messages were left out by a pause: no gap to count
        self.check: Callable[[WriteItem], str | None] | None = None
        """Trigger rules: the rule text that fires on a message, or None."""
        timeline.lanes.append(self)

    def start(self) -> None:
        """Writing begins: a plain recording's one run exists by now."""
        tl = self.tl
        if not tl.armed:
            first = tl.slots[0]
            self.plain_writer = self._writer(first)

    def _writer(self, slot: Slot) -> StreamWriter:
        w = self.writers.get(slot)
        if w is None:
            w = self.writers[slot] = self.tl.run_of(slot).streams[self.name]
        return w

    @property
    def gaps(self) -> int:
        return self.gaps_closed + sum(w.gaps.missing for w in list(self.writers.values()))

    # -- the hot path --------------------------------------------------------------------------

    def feed_received(self, codec: Codec, received: list[Received]) -> None:
        """Decode a received batch and feed it. One run (plain): runs of one layout decoded
        and stored together (protocols.base.decode_batch); armed, split or paused, every
        message on its own, for the rules and the routing."""
        if not self.tl.plain:
            self.feed([decode_or_reject(codec, r, f, x) for r, f, x in received])
            return
        writer = self.plain_writer
        assert writer is not None
        for part in decode_batch(codec, received):
            writer.append_part(part)

    def feed(self, items: list[WriteItem]) -> None:
        if self.tl.plain:
            assert self.plain_writer is not None
            self.plain_writer.append_batch(items)
            return
        check = self.check
        if check is not None:
            for item in items:
                rule = check(item)
                if rule is not None:
                    self.tl.trigger(item[0], rule)
        self._advance(items, None)

    def idle(self, clock: int) -> None:
        """The queue was empty, and every message received before `clock` had been in it: time
        passes for this stream too (an idle stream must not keep a run open, and an armed
        buffer forgets what is older than the pre-trigger time)."""
        if self.tl.plain:
            return
        self._advance([], clock)

    def finish(self) -> None:
        """No more messages: finish every run this stream still writes to."""
        self._advance([], NEVER)

    def flush(self) -> None:
        for w in list(self.writers.values()):
            w.flush()

    def add_drops(self, n: int) -> None:
        """Messages the receive queue refused: told to the run being written, if any."""
        writers = list(self.writers.values())
        if writers:
            writers[-1].add_drops(n)

    def _advance(self, items: list[WriteItem], clock: int | None) -> None:
        tl = self.tl
        ops: list[tuple[Slot, bool, list[WriteItem]]] = []
        with tl.lock:
            if tl.version != self.seen_version:
                self.seen_version = tl.version
                if self.buffer:
                    self._unbuffer(ops)
            if items:
                self._route(items, ops)
                newest = items[-1][0]
                if newest > tl.routed[self.name]:
                    tl.routed[self.name] = newest
            else:
                newest = clock if clock is not None else BEFORE
            if newest > tl.watermark[self.name]:
                tl.watermark[self.name] = newest
            if self.buffer:
                self._expire(newest)
            low = tl._min_watermark()
            sealed = [s for s in tl.slots if s.end <= low and self.name not in s.done]
        for slot, forget, batch in ops:
            w = self._writer(slot)
            if forget:
                w.gaps.forget()
            w.append_batch(batch)
        self._finish_slots(sealed)

    def _finish_slots(self, slots: list[Slot], flush: bool = True) -> None:
        for slot in slots:
            w = self.writers.pop(slot, None)
            if w is not None:
                if flush:
                    w.flush()
                self.gaps_closed += w.gaps.missing
            self.floor = max(self.floor, slot.end)
            self.tl.stream_done(slot, self.name)

    def settle(self) -> None:
        """The stream's writer thread has ended (or never started): its part of every run still
        open is over; closing the run flushes what it wrote."""
        with self.tl.lock:
            left = [s for s in self.tl.slots if self.name not in s.done]
        self._finish_slots(left, flush=False)

    def set_protocol(self, protocol: str) -> None:
        """`--protocol auto` decided: every run made so far, and every later one, says so."""
        with self.tl.lock:
            self.tl.protocols[self.name] = protocol
            runs = [s.run for s in self.tl.slots if s.run is not None]
        for run in runs:
            attrs = run.streams[self.name].attrs
            attrs["protocol"] = protocol
            attrs["protocol_detected"] = True

    def _route(self, items: list[WriteItem], ops: list) -> None:
        tl = self.tl
        slots = tl.slots
        pauses = tl.pauses
        armed = tl.armed
        size_limit = tl.split_plan.bytes if tl.split_plan is not None else None
        floor = self.floor
        i = 0
        current: list[WriteItem] | None = None
        current_slot: Slot | None = None
        for item in items:
            t = item[0]
            if t < floor:  # stamped before this stream's part of a run ended: the next one
                t = floor
                self.late += 1
            if pauses:
                pause = _pause_at(pauses, t)
                if pause is not None:
                    pause["messages"] += 1
                    tl.paused_messages += 1
                    self.forget_gaps = True
                    continue
            while i < len(slots) and slots[i].end <= t:
                i += 1
            if i < len(slots) and slots[i].start <= t:
                slot = slots[i]
            elif armed:
                nbytes = _nbytes(item)
                limit = tl.max_bytes
                if nbytes > limit:
                    tl.armed_dropped += 1
                    continue
                while tl.armed_bytes + nbytes > limit:
                    tl.evict_oldest()  # first: the figure never passes the limit
                self.buffer.append((item[0], item, nbytes))
                tl.armed_bytes += nbytes
                continue
            else:
                slot = tl._next_slot(t)
                slots = tl.slots
                i = len(slots) - 1
            if size_limit is not None:
                slot.bytes += _nbytes(item)
                if slot.bytes >= size_limit and slot.end == NEVER:
                    tl._end_now(slot, item[0] + 1)
                    slots.append(tl._new_slot(slot.end, NEVER))
            if slot is not current_slot or self.forget_gaps:
                current = []
                ops.append((slot, self.forget_gaps, current))
                current_slot, self.forget_gaps = slot, False
            assert current is not None
            current.append(item)

    def _unbuffer(self, ops: list) -> None:
        """Buffered messages a new (or longer) triggered run now holds go to it, oldest first."""
        keep: deque[tuple[int, WriteItem, int]] = deque()
        current_slot: Slot | None = None
        current: list[WriteItem] = []
        for entry in self.buffer:
            t, item, nbytes = entry
            slot = self.tl.covering(t)
            if slot is None:
                keep.append(entry)
                continue
            self.tl.armed_bytes -= nbytes
            if slot is not current_slot:
                current = []
                ops.append((slot, False, current))
                current_slot = slot
            current.append(item)
        self.buffer = keep

    def _expire(self, newest: int) -> None:
        tl = self.tl
        oldest = newest - tl._keep_ns()
        buf = self.buffer
        while buf and buf[0][0] < oldest:
            tl.armed_bytes -= buf.popleft()[2]


def _pause_at(pauses: list[Pause], t: int) -> Pause | None:
    for p in reversed(pauses):  # in time order: the newest decide most messages
        end = p["end_ns"]
        if p["start_ns"] <= t and (end is None or t < end):
            return p
        if end is not None and end <= t:
            return None  # earlier pauses ended earlier still
    return None


class Keeper:
    """Runs the slow, ordered chores of a recording off the streams' threads: closing finished
    runs and the caller's `on_run` / `on_run_closed` callbacks."""

    def __init__(self, on_error: Callable[[BaseException], None]):
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._on_error = on_error
        self._thread = threading.Thread(target=self._loop, name="run-keeper", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except BaseException as exc:  # a callback's failure is the caller's to see
                self._on_error(exc)

    def stop(self, timeout: float | None = None) -> None:
        """Do what is queued, then end."""
        self._jobs.put(None)
        self._thread.join(timeout)
