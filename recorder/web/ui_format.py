"""Jinja filters that turn raw counters (ns, bytes, seconds) into what a person reads.

Kept apart from the views so templates and tests share one spelling of "1.2 MB" or "3 min 4 s".
"""

from __future__ import annotations

from datetime import UTC, datetime

NONE = "\u2013"  # an en dash: "no value", narrower than a word
_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def human_bytes(n) -> str:
    if n is None:
        return NONE
    n = float(n)
    for unit in _UNITS:
        if abs(n) < 1000 or unit == _UNITS[-1]:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"  # pragma: no cover


def human_rate(n) -> str:
    return NONE if n is None else human_bytes(n) + "/s"


def human_duration(s) -> str:
    if s is None:
        return NONE
    s = float(s)
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60)} s"
    if s < 86400 * 3:
        return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"
    return f"{s / 86400:.1f} days"


def when(ns) -> str:
    if not ns:
        return NONE
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(ns) -> str:
    """A machine-readable UTC time for <time datetime>, which the page shows in local time."""
    if not ns:
        return ""
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="milliseconds")


def number(n) -> str:
    return NONE if n is None else f"{int(n):,}".replace(",", "\u2009")


FILTERS = {
    "bytes": human_bytes,
    "rate": human_rate,
    "duration": human_duration,
    "when": when,
    "iso": iso,
    "number": number,
}
