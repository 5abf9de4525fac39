"""What every simulator does the same way: checking size options, waiting for a subscriber."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

from recorder.errors import UsageError


def merge_options(system: str, given: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The simulator's options: its defaults overridden by `given`; an unknown name is a
    UsageError (it reaches users through `recorder simulate --set`)."""
    unknown = set(given) - set(defaults)
    if unknown:
        raise UsageError(f"unknown {system} simulator options: {', '.join(sorted(unknown))}")
    return {**defaults, **given}


def wait_for_subscriber(
    xpub: zmq.Socket,
    stop: threading.Event | None,
    serve_until: Callable[[float, threading.Event | None], bool],
) -> bool:
    """Hold the first message until a subscriber has joined (an XPUB sees its subscription),
    serving the simulator's other sockets meanwhile; False if stopped first."""
    while not (stop is not None and stop.is_set()):
        if xpub.poll(0, zmq.POLLIN) and xpub.recv()[:1] == b"\x01":
            return True
        serve_until(time.monotonic() + 0.02, stop)
    return False
