"""What a replayed REP server answers; the protocol's descriptor says which responder.

- sequential: the next recorded message for any request, in recorded order. A protocol may
  refuse some requests as its real server does (the Karabo bridge answers only `next`, and
  anything else gets its error reply without consuming a train).
- pairs (request/reply services): the recorded reply of an exchange whose request had the same
  bytes (cycling through them when asked again); a request never recorded gets a clear,
  configurable answer. With `match="order"` replies come in recorded order whatever is asked.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict, deque
from collections.abc import Callable, Iterator

from recorder.protocols.reqrep import unpack_pair
from recorder.store.reader import Message, StreamReader

DEFAULT_UNKNOWN_REPLY = b"zmq-recorder replay: no recorded reply for this request"


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

    def answer(self, request: list[bytes]) -> tuple[list, Message | None]:
        refusal = self.refuse(request) if self.refuse is not None else None
        if refusal is not None:
            return refusal, None
        msg = next(self.messages, None)
        if msg is None:
            return [], None
        return msg.frames, msg


class PairResponder:
    """Replies of a recorded request/reply service, found by request bytes."""

    def __init__(self, reader: StreamReader, *, match: str = "bytes", unknown: bytes):
        self.reader, self.match, self.unknown = reader, match, unknown
        self.by_request: dict[bytes, deque[int]] = defaultdict(deque)
        self.order: deque[int] = deque()
        for msg in reader.messages():
            if msg.rejected:
                continue
            request, _ = unpack_pair(msg.frames)
            self.by_request[_digest(request)].append(msg.index)
            self.order.append(msg.index)

    def answer(self, request: list[bytes]) -> tuple[list, Message | None]:
        if self.match == "order":
            if not self.order:
                return [self.unknown], None
            index = self.order.popleft()
        else:
            candidates = self.by_request.get(_digest(request))
            if not candidates:
                return [self.unknown], None
            index = candidates[0]
            candidates.rotate(-1)
        msg = next(self.reader.messages(index, index + 1))
        _, reply = unpack_pair(msg.frames)
        return (reply or [self.unknown]), msg
