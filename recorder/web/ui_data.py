"""What the pages show that the API does not serve as such: live job rows and the message-rate
timeline of a run. Everything else the pages read through the API's own view functions, so the
UI and automation see the same numbers.
"""

from __future__ import annotations

import time

import numpy as np

from recorder.db.jobs import ACTIVE_STATES as ACTIVE
from recorder.db.jobs import FAILED
from recorder.store.reader import RunReader


def elapsed_s(job: dict) -> float | None:
    start = job.get("started_ns") or job.get("created_ns")
    if not start:
        return None
    end = job.get("ended_ns") or time.time_ns()
    return max(0.0, (end - start) / 1e9)


def split_jobs(jobs: list[dict], recent: int = 8) -> tuple[list[dict], list[dict]]:
    """(live jobs, the most recent finished ones): the dashboard shows both, live first."""
    live = [j for j in jobs if j["state"] in ACTIVE]
    done = [j for j in jobs if j["state"] not in ACTIVE][:recent]
    return live, done


FAILURE_SHOWN_S = 600.0


def recent_failures(jobs: list[dict], within_s: float = FAILURE_SHOWN_S) -> list[dict]:
    """Jobs that failed in the last `within_s` seconds: the dashboard shows each as a banner
    (a recording that fails a second after it started must not hide in a collapsed list)."""
    since = time.time_ns() - int(within_s * 1e9)
    return [j for j in jobs if j["state"] == FAILED and (j.get("ended_ns") or 0) >= since]


def rate_timeline(path, started_ns: int, buckets: int = 120, min_width_s: float = 0.25) -> dict:
    """Messages per second per stream in equal time buckets over the run, for one uPlot chart.
    Buckets are at least `min_width_s` wide: narrower ones only show how the sender batches."""
    with RunReader(path) as run:
        recv = {name: s.column("recv_ns") for name, s in run.streams.items()}
    stamps = [r for r in recv.values() if len(r)]
    if not stamps:
        return {"t_s": [], "series": {}}
    t0 = started_ns
    t1 = max(int(r[-1]) for r in stamps)
    span = max(t1 - t0, 1_000_000)
    buckets = max(1, min(buckets, int(span / 1e9 / min_width_s)))
    edges = np.linspace(0, span, buckets + 1)
    width_s = span / buckets / 1e9
    series = {}
    for name, r in recv.items():
        counts, _ = np.histogram((r.astype(np.int64) - t0) if len(r) else [], bins=edges)
        series[name] = [round(float(c) / width_s, 3) for c in counts]
    centres = ((edges[:-1] + edges[1:]) / 2 / 1e9).round(4).tolist()
    return {"t_s": centres, "series": series}


def image_array(arrays: list[str]) -> str:
    """The array a thumbnail shows for a Karabo stream: the detector or camera image
    (`...image.data`) when there is one, else "" (the frames API picks the first 2-D array;
    `image.cellId` and friends are 1-D and have no picture)."""
    for name in arrays:
        if name.endswith("image.data"):
            return name
    return ""


def local_range(args: dict[str, str]) -> dict[str, str]:
    """The runs page's date range is typed in the browser's local time: `tz` (minutes east of
    UTC, which the page's script adds) turns a `since`/`until` without a zone into one with it;
    without `tz` such a time is UTC, as in the API."""
    out = {k: v for k, v in args.items() if k != "tz"}
    tz = args.get("tz", "")
    if not tz.lstrip("-").isdigit() or abs(int(tz)) > 18 * 60:
        return out
    minutes = int(tz)
    zone = f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    for key in ("since", "until"):
        value = out.get(key, "")
        if value and len(value) <= 16 and "+" not in value and not value.endswith("Z"):
            out[key] = (value if "T" in value else value + "T00:00") + zone
    return out
