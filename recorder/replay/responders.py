"""What a replayed REP server answers; the protocol's descriptor says which responder.

- sequential: the next recorded message for any request, in recorded order. A protocol may
  refuse some requests as its real server does (the Karabo bridge answers only `next`, and
  anything else gets its error reply without consuming a train).
- pairs (request/reply services): the recorded reply of an exchange whose request had the same
  bytes, each used once as the live server gave it once (`cycle=True`: reused in turn). An
  exchange recorded without a reply gets none, so the client's own timeout fires as it did live;
  so does a request never recorded, unless a configured answer is asked for
  (`unanswered="unknown-reply"`, or `unknown` given for never-recorded requests only). With
  `match="order"` replies come in recorded order whatever is asked. Once every recorded
  exchange is used (without `cycle`) the run is exhausted: `answer` gives `[]`.

`answer` gives (frames, message, latency in ns): frames `None` means "leave unanswered".
"""

from __future__ import annotations

import hashlib
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeAlias

import numpy as np

from recorder.errors import StreamNotFound
from recorder.protocols.reqrep import unpack_pair

if TYPE_CHECKING:  # the reader (zarr) is imported once a run is read, after the binds
    from recorder.store.reader import Message, StreamReader

DEFAULT_UNKNOWN_REPLY = b"zmq-recorder replay: no recorded reply for this request"
UNANSWERED_MODES = ("silent", "unknown-reply")
Answer: TypeAlias = "tuple[list | None, Message | None, int]"


def _digest(frames) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for f in frames:
        h.update(len(f).to_bytes(8, "little"))
        h.update(f)
    return h.digest()


class SequentialResponder:
    """Next recorded message per request, unless `refuse(request)` gives the server's refusal."""

    def __init__(
        self,
        messages: Iterator[Message],
        *,
        refuse: Callable[[list[bytes]], list[bytes] | None] | None = None,
    ):
        self.messages = messages
        self.refuse = refuse

    def answer(self, request: list[bytes]) -> Answer:
        refusal = self.refuse(request) if self.refuse is not None else None
        if refusal is not None:
            return refusal, None, 0
        msg = next(self.messages, None)
        if msg is None:
            return [], None, 0
        return msg.frames, msg, 0


class PairResponder:
    """Replies of a recorded request/reply service, found by request bytes."""

    def __init__(
        self,
        reader: StreamReader,
        *,
        match: str = "bytes",
        unknown: bytes | None = None,
        unanswered: str = "silent",
        cycle: bool = False,
    ):
        self.reader, self.match, self.cycle = reader, match, cycle
        # what a request gets when the recording has no reply for it (None: nothing)
        self.no_reply = (unknown or DEFAULT_UNKNOWN_REPLY) if unanswered != "silent" else None
        self.never_recorded = unknown if self.no_reply is None else self.no_reply
        self.by_request: dict[bytes, deque[int]] = defaultdict(deque)
        self.order: deque[int] = deque()
        for msg in reader.messages():
            if msg.rejected:
                continue
            request, _ = unpack_pair(msg.frames)
            self.by_request[_digest(request)].append(msg.index)
            self.order.append(msg.index)
        self.left = len(self.order)
        try:  # recorded by the proxy: how long the live service took to answer
            latency = reader.column("latency_ns")
        except StreamNotFound:
            latency = np.zeros(reader.n_messages)
        self.latency = np.nan_to_num(latency.astype(np.float64), nan=0.0).clip(min=0)

    def answer(self, request: list[bytes]) -> Answer:
        if self.left <= 0 and not self.cycle:
            return [], None, 0  # every recorded exchange used: exhausted
        if self.match == "order":
            if not self.order:
                return self._no_reply(self.never_recorded)
            index = self.order.popleft()
            if self.cycle:
                self.order.append(index)
        else:
            candidates = self.by_request.get(_digest(request))
            if not candidates:
                return self._no_reply(self.never_recorded if candidates is None else self.no_reply)
            if self.cycle:
                index = candidates[0]
                candidates.rotate(-1)
            else:
                index = candidates.popleft()
        self.left -= 1
        msg = next(self.reader.messages(index, index + 1))
        _, reply = unpack_pair(msg.frames)
        if not reply:  # recorded without a reply
            return self._no_reply(self.no_reply)[0], msg, 0
        return reply, msg, int(self.latency[index]) if index < len(self.latency) else 0

    @staticmethod
    def _no_reply(text: bytes | None) -> Answer:
        return (None if text is None else [text]), None, 0
