"""Plain request/reply services (REQ/REP): one recorded message is one request with its reply.

A multipart request and a multipart reply concatenated cannot be told apart again, so a pair is
stored as ``[count, request frames..., reply frames...]`` where ``count`` is an 8-byte
little-endian uint64 holding the number of request frames. Everything after the count is kept
verbatim, so replay answers with the exact reply bytes.

Payloads are often pickles (``send_pyobj``) and unpickling runs arbitrary code, so this module
only *sniffs* content types from a few bytes and never loads a pickle.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence

from recorder.errors import MalformedMessage
from recorder.protocols.base import Decoded, FrameBytes
from recorder.protocols.descriptor import Demo, ProtocolDescriptor, Responder, StreamMeaning

NAME = "reqrep"
_COUNT = struct.Struct("<Q")
_JSON_PARSE_LIMIT = 1 << 20
"""Frames up to this size are parsed as JSON to be sure; bigger ones are judged by their ends."""


def pack_pair(request_frames: Sequence[FrameBytes], reply_frames: Sequence[FrameBytes]) -> list:
    """The stored message of one exchange: count frame, request frames, reply frames.

    A request has at least one frame (REQ cannot send zero); the reply may be empty when the
    service never answered.
    """
    if len(request_frames) == 0:
        raise MalformedMessage("a request has at least one frame")
    return [_COUNT.pack(len(request_frames)), *request_frames, *reply_frames]


def unpack_pair(frames: Sequence[FrameBytes]) -> tuple[list, list]:
    """Inverse of `pack_pair`: (request frames, reply frames)."""
    if len(frames) < 2:
        raise MalformedMessage(f"a request/reply pair needs at least 2 frames, got {len(frames)}")
    head = memoryview(frames[0]).cast("B")
    if head.nbytes != _COUNT.size:
        raise MalformedMessage(f"pair count frame is {head.nbytes} bytes, not {_COUNT.size}")
    (n_request,) = _COUNT.unpack(head)
    if not 1 <= n_request <= len(frames) - 1:
        raise MalformedMessage(
            f"pair count says {n_request} request frames but only {len(frames) - 1} follow"
        )
    return list(frames[1 : 1 + n_request]), list(frames[1 + n_request :])


def sniff_pickle(frame: FrameBytes) -> bool:
    """True if `frame` looks like a binary pickle (protocol 2-5), judged from its first and
    last bytes only: PROTO opcode ``0x80 <2..5>`` ... STOP ``.``."""
    view = memoryview(frame).cast("B")
    return view.nbytes >= 3 and view[0] == 0x80 and 2 <= view[1] <= 5 and view[-1] == ord(".")


def sniff_json(frame: FrameBytes) -> bool:
    """True if `frame` is UTF-8 JSON (parsed when small, judged by its brackets when large)."""
    view = memoryview(frame).cast("B")
    if view.nbytes == 0 or view.nbytes > _JSON_PARSE_LIMIT:
        if view.nbytes == 0:
            return False
        head = bytes(view[:64]).lstrip()
        tail = bytes(view[-64:]).rstrip()
        return bool(head and tail) and (head[:1], tail[-1:]) in ((b"{", b"}"), (b"[", b"]"))
    try:
        json.loads(bytes(view).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    return True


def content_type(frame: FrameBytes) -> str:
    """``pickle``, ``json`` or ``bytes``: a label for the stored column, never a decode."""
    if sniff_pickle(frame):
        return "pickle"
    if sniff_json(frame):
        return "json"
    return "bytes"


def _nbytes(frames: Sequence[FrameBytes]) -> int:
    return sum(memoryview(f).nbytes for f in frames)


class ReqRepCodec:
    """Decoder of stored request/reply pairs; the reply latency is measured by the recorder."""

    name = NAME

    def decode(self, frames: Sequence[FrameBytes]) -> Decoded:
        request, reply = unpack_pair(frames)
        return Decoded(
            kind="pair",
            columns={
                "request_bytes": _nbytes(request),
                "reply_bytes": _nbytes(reply),
                "request_frames": len(request),
                "reply_frames": len(reply),
                "content": content_type(request[0]),
                "reply_content": content_type(reply[0]) if reply else "",
            },
        )


DESCRIPTOR = ProtocolDescriptor(
    name=NAME,
    codec=ReqRepCodec,
    default_socket="REP",  # what clients see, and what replay serves
    proxy=True,
    responder=Responder.PAIRS,
    sniff=None,  # stored pairs never travel on a wire: a service is recorded through the proxy
    simulator="recorder.simulators.reqrep:ReqRepServer",
    demo=Demo(),
    meaning=StreamMeaning(
        seq="",  # request/reply carries no sequence number
        source_time="",
        columns={
            "request_bytes": "bytes of all request frames",
            "reply_bytes": "bytes of all reply frames (0: the service never answered)",
            "request_frames": "frames of the request",
            "reply_frames": "frames of the reply",
            "content": "first request frame judged from its bytes: pickle, json or bytes "
            "(never unpickled)",
            "reply_content": "first reply frame judged the same way; empty without a reply",
            "request_ns": "when the proxy received the request, ns since the Unix epoch",
            "latency_ns": "ns from the proxy receiving the request to receiving its reply",
        },
    ),
)
