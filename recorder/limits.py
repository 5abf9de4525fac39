"""The bounds of what a recording or a replay may be asked for, checked in one place.

The core (Recording, Replayer) checks what makes a request meaningful (a positive count, an
end after the start ...) whoever asks; job planning runs the same check so an API caller gets a
4xx before any worker starts. Each check names the values the way the caller's front end
spells them: `--count` on the command line, `count` in the JSON API.

The `*_MAX` caps bound what one API request can ask of a shared server; the API's request
models take them (so the OpenAPI document shows them), and the command line, whose user owns
the machine, is not capped.
"""

from __future__ import annotations

from collections.abc import Mapping

from recorder.errors import UsageError

# -- recording ---------------------------------------------------------------------------------

COUNT_MAX = 2**62  # messages per stream
DURATION_MAX_S = 1e7
FLUSH_INTERVAL_MAX_S = 60
FLUSH_INTERVAL_DEFAULT_S = 1.0

RECORD_CLI = {"count": "--count", "duration": "--duration", "flush_interval": "--flush-interval"}
RECORD_API = {"count": "count", "duration": "duration_s", "flush_interval": "flush_interval_s"}


def check_recording(
    *,
    count: int | None = None,
    duration: float | None = None,
    flush_interval: float = FLUSH_INTERVAL_DEFAULT_S,
    names: Mapping[str, str] = RECORD_CLI,
) -> None:
    """A recording's stop conditions and flush interval: each positive when given."""
    given = {"count": count, "duration": duration, "flush_interval": flush_interval}
    for key, value in given.items():
        if value is not None and value <= 0:
            raise UsageError(f"{names[key]} must be positive")


# -- tokens and sessions ----------------------------------------------------------------------

#: The longest lifetime a token or a browser session may be given, whoever asks: beyond it a
#: nanosecond time would no longer fit SQLite's 64-bit INTEGER, and no lab means longer.
LIFETIME_MAX_S = 10 * 365 * 86400

# -- replay ------------------------------------------------------------------------------------

SPEED_MAX = 1000  # timing factor
RATE_MAX_HZ = 1e7
LOOP_MAX = 1_000_000  # plays; 0 is forever
TIME_MAX_S = 1e9  # start, end and seek positions, seconds from the run's start
STEP_MAX = 1_000_000  # messages per step command
MATCH_MODES = ("bytes", "order")

REPLAY_CLI = {
    "speed": "--speed",
    "max_speed": "--max-speed",
    "rate": "--rate",
    "loop": "--loop",
    "start": "--start",
    "end": "--end",
    "match": "--match",
}
REPLAY_API = {
    "speed": "speed",
    "max_speed": "max_speed",
    "rate": "rate",
    "loop": "loop",
    "start": "start_s",
    "end": "end_s",
    "match": "match",
}


def check_replay(
    *,
    speed: float | None = None,
    max_speed: bool = False,
    rate: float | None = None,
    loop: int = 1,
    start: float | None = None,
    end: float | None = None,
    match: str = "bytes",
    names: Mapping[str, str] = REPLAY_CLI,
) -> None:
    """A replay's pacing (at most one of speed, max speed and rate), loops, window and reply
    matching."""
    n = names
    if sum((speed is not None, bool(max_speed), rate is not None)) > 1:
        raise UsageError(f"choose one of {n['speed']}, {n['max_speed']} and {n['rate']}")
    for key, value in (("speed", speed), ("rate", rate)):
        if value is not None and value <= 0:
            raise UsageError(f"{n[key]} must be positive")
    if loop < 0:
        raise UsageError(f"{n['loop']} takes a count >= 0 (0: forever)")
    if start is not None and start < 0:
        raise UsageError(f"{n['start']} must be >= 0")
    if end is not None and end <= 0:
        raise UsageError(f"{n['end']} must be positive")
    if start is not None and end is not None and end <= start:
        raise UsageError(f"{n['end']} must be after {n['start']}")
    if match not in MATCH_MODES:
        raise UsageError(f"{n['match']} is {' or '.join(MATCH_MODES)}")
