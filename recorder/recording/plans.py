"""What a recording does beyond "record everything from now": armed with a pre-trigger buffer,
split into runs of a given length or size. Checked once here for the CLI and the API alike.

A plan holds trigger rules as their canonical text (recording/trigger_rules.py parses and
evaluates them): that is how they travel in a job's parameters and how a run records the rule
that made it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from recorder.errors import UsageError

PRE_TRIGGER_MAX_S = 3600.0
POST_TRIGGER_MAX_S = 1e7
ARMED_BYTES_DEFAULT = 1 << 30  # the pre-trigger buffer's memory, all streams together
ARMED_BYTES_MAX = 1 << 40
SPLIT_MIN_S = 0.1
SPLIT_MIN_BYTES = 1 << 10

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*$", re.IGNORECASE)
_SECONDS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_size(text: str) -> int:
    """Bytes from `2GiB`, `500MB`, `1.5G`, `4096` (k, M, G, T: powers of 1000; with i: 1024)."""
    m = _SIZE.match(str(text))
    if not m or not (m.group(2) or not m.group(3)):
        raise UsageError(f"not a size: {text!r} (e.g. 4096, 500MB, 2GiB)")
    number, unit, binary = float(m.group(1)), m.group(2).lower(), bool(m.group(3))
    power = "kmgt".index(unit) + 1 if unit else 0
    return int(number * (1024 if binary else 1000) ** power)


def parse_split(text: str) -> SplitPlan:
    """`--split-every`: a duration (`60`, `60s`, `10m`, `1h`) or a size (`500MB`, `2GiB`)."""
    m = _DURATION.match(str(text))
    if m:
        seconds = float(m.group(1)) * _SECONDS[(m.group(2) or "s").lower()]
        return SplitPlan(seconds=seconds).check()
    try:
        return SplitPlan(bytes=parse_size(text)).check()
    except UsageError:
        raise UsageError(
            f"--split-every: {text!r} is neither a duration (60, 10m, 1h) nor a size (500MB, 2GiB)"
        ) from None


@dataclass(frozen=True)
class SplitPlan:
    """End a run and start the next every `seconds` of receive time or every `bytes` stored;
    each message lands in exactly one run."""

    seconds: float | None = None
    bytes: int | None = None

    def check(self, name: str = "--split-every") -> SplitPlan:
        if (self.seconds is None) == (self.bytes is None):
            raise UsageError(f"{name}: give a duration or a size")
        if self.seconds is not None and not SPLIT_MIN_S <= self.seconds <= POST_TRIGGER_MAX_S:
            raise UsageError(f"{name}: a duration from {SPLIT_MIN_S} s, not {self.seconds:g}")
        if self.bytes is not None and self.bytes < SPLIT_MIN_BYTES:
            raise UsageError(f"{name}: a size from {SPLIT_MIN_BYTES} bytes, not {self.bytes}")
        return self

    def to_json(self) -> dict[str, Any]:
        return {"seconds": self.seconds} if self.seconds is not None else {"bytes": self.bytes}

    @classmethod
    def from_json(cls, obj: dict[str, Any], name: str = "split") -> SplitPlan:
        unknown = set(obj) - {"seconds", "bytes"}
        if unknown:
            raise UsageError(f"{name}: unknown field(s) {', '.join(sorted(unknown))}")
        return cls(seconds=obj.get("seconds"), bytes=obj.get("bytes")).check(name)


@dataclass(frozen=True)
class TriggerPlan:
    """An armed recording: keep the last `pre_s` seconds of every stream in memory (at most
    `max_bytes`, oldest dropped and counted), and on a trigger (a rule firing, or a manual one)
    write them and go on for `post_s` seconds (None: until stopped), then re-arm. Each trigger
    makes its own run; a trigger during a run extends it."""

    pre_s: float = 0.0
    post_s: float | None = None
    max_bytes: int = ARMED_BYTES_DEFAULT
    rules: tuple[str, ...] = field(default_factory=tuple)  # canonical rule texts

    def check(self, names: dict[str, str] | None = None) -> TriggerPlan:
        n = {
            "pre_s": "--pre-trigger",
            "post_s": "--post-trigger",
            "max_bytes": "--max-buffer",
            **(names or {}),
        }
        if not 0 <= self.pre_s <= PRE_TRIGGER_MAX_S:
            raise UsageError(f"{n['pre_s']}: 0 to {PRE_TRIGGER_MAX_S:g} s, not {self.pre_s:g}")
        if self.post_s is not None and not 0 < self.post_s <= POST_TRIGGER_MAX_S:
            raise UsageError(f"{n['post_s']}: more than 0 s, not {self.post_s:g}")
        if not 0 <= self.max_bytes <= ARMED_BYTES_MAX:
            raise UsageError(f"{n['max_bytes']}: 0 to {ARMED_BYTES_MAX} bytes")
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "pre_s": self.pre_s,
            "post_s": self.post_s,
            "max_bytes": self.max_bytes,
            "rules": list(self.rules),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> TriggerPlan:
        """From a job's parameters (rules already canonical: planning parsed them)."""
        return cls(
            pre_s=float(obj.get("pre_s", 0.0)),
            post_s=None if obj.get("post_s") is None else float(obj["post_s"]),
            max_bytes=int(obj.get("max_bytes", ARMED_BYTES_DEFAULT)),
            rules=tuple(obj.get("rules") or ()),
        ).check({"pre_s": "pre_s", "post_s": "post_s", "max_bytes": "max_bytes"})
