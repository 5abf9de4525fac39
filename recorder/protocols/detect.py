"""Guess a stream's wire protocol from its first few messages.

Each message is shown to every registered protocol's `sniff` (cheap marks: envelope bytes, the
first bytes of a JSON or msgpack header); the stream gets the label most messages agree on.
Anything unclear is ``raw``, which records every frame verbatim and so is always safe.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import islice

from recorder.protocols.base import FrameBytes
from recorder.protocols.descriptor import NEUTRAL
from recorder.protocols.raw import NAME as FALLBACK
from recorder.protocols.registry import descriptors

MAX_MESSAGES = 10


def _classify(frames: Sequence[FrameBytes]) -> str | None:
    """The first protocol that claims the message (their marks do not overlap), or None."""
    for d in descriptors():
        if d.sniff is not None:
            label = d.sniff(frames)
            if label is not None:
                return label
    return None


def detect_protocol(messages: Iterable[Sequence[FrameBytes]]) -> str:
    """Name of the protocol most of the first `MAX_MESSAGES` messages fit, else ``raw``.

    Never raises: a message that breaks a check simply fits no protocol.
    """
    votes: Counter[str] = Counter()
    counted = 0
    try:
        sample = list(islice(messages, MAX_MESSAGES))
    except Exception:  # not even a list of messages
        return FALLBACK
    for frames in sample:
        try:
            label = _classify(frames)
        except Exception:  # garbage of any kind is just "not this protocol"
            label = None
        if label == NEUTRAL:
            continue
        counted += 1
        if label is not None:
            votes[label] += 1
    if not votes:
        return FALLBACK
    name, count = votes.most_common(1)[0]
    return name if 2 * count > counted else FALLBACK
