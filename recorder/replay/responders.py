"""What a replayed REP server answers, per protocol.

- karabo: one train per `next`, in recorded order; anything else gets the real server's error
  reply and no train is consumed.
- reqrep: the recorded reply of an exchange whose request had the same bytes (cycling through
  them when asked again); a request never recorded gets a clear, configurable answer. With
  `match="order"` replies come in recorded order whatever is asked.
- anything else recorded with REQ: the next recorded reply for any request.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict, deque
from collections.abc import Iterator

from recorder.protocols.karabo import NEXT_REQUEST, bad_request_reply
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
    """Next recorded message per request (Karabo checks that the request is `next`)."""

    def __init__(self, messages: Iterator[Message], protocol: str):
        self.messages = messages
        self.karabo = protocol == "karabo"

    def answer(self, request: list[bytes]) -> tuple[list, Message | None]:
        if self.karabo and (len(request) != 1 or request[0] != NEXT_REQUEST):
            return [bad_request_reply(request[0] if request else b"")], None
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
