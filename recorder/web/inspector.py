"""The message inspector: pages of a stream's messages with every frame's size, decoded headers,
hex of what does not decode, and the message's columns; pages start at a message index, a time
or a Karabo train id, and a Karabo page can be narrowed to one source and one key.

Also which per-message columns a stream has, so the run page can offer the numeric ones as
plots. No Flask here; reads go through the store's reader only.
"""

from __future__ import annotations

import numpy as np

from recorder.errors import NotFound, UsageError
from recorder.store.reader import RunReader, StreamReader
from recorder.web import previews
from recorder.web.imaging import BOOKKEEPING, plain

#: Most hex characters one page may carry (limit x hex_bytes): a bound on one answer's size.
PAGE_HEX_LIMIT = 1 << 18
_MAX_COLUMNS = 300


def start_index(
    run: RunReader, s: StreamReader, *, start: int, t_s: float | None, train_id: int | None
) -> int:
    """Where a page starts: message `start`, else the first message received at or after `t_s`
    seconds from the run start, else the message of Karabo train `train_id` (404 if no
    message has it)."""
    if train_id is not None:
        if "train_id" not in s.column_names():
            raise UsageError(f"stream {s.name} has no train ids")
        tids = np.asarray(s.column("train_id"))
        hits = np.flatnonzero(tids == train_id)
        if not len(hits):
            span = f"{int(tids.min())}..{int(tids.max())}" if len(tids) else "none"
            raise NotFound(f"stream {s.name} has no train {train_id} (trains {span})")
        return int(hits[0])
    if t_s is not None:
        return s.index_at(run.started_ns + round(t_s * 1e9))
    return start


def _columns(s: StreamReader, start: int, stop: int) -> dict[str, np.ndarray]:
    names = [n for n in s.column_names() if n not in BOOKKEEPING][:_MAX_COLUMNS]
    return {n: np.asarray(s.column(n, start, stop)) for n in names}


def _karabo_sources(frames: list[dict]) -> None:
    """Mark each frame with the Karabo source it belongs to: a source's metadata frame (or an
    array header) names it, and the frames after it are its data and arrays."""
    current = None
    for f in frames:
        v = f.get("value")
        if f.get("kind") == "msgpack" and isinstance(v, dict) and "source" in v and "content" in v:
            current = str(v["source"])
        if current is not None:
            f["source"] = current


def _keys(frames: list[dict]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in frames:
        src, v = f.get("source"), f.get("value")
        if src is None:
            continue
        keys = out.setdefault(src, [])
        if isinstance(v, dict) and "content" not in v:
            keys.extend(k for k in v if k not in keys)
        elif isinstance(v, dict) and v.get("content") == "array" and v.get("path"):
            path = str(v["path"])
            keys.extend([] if path in keys else [path])
    return out


def _narrow(frames: list[dict], source: str | None, key: str | None) -> list[dict]:
    """Only the frames of `source`, and of those only what belongs to `key`."""
    out = []
    for f in frames:
        if source is not None and f.get("source") != source:
            continue
        if key is not None:
            v = f.get("value")
            if f.get("kind") == "array":
                if not str(f.get("array", "")).endswith(":" + key):
                    continue
            elif isinstance(v, dict) and "content" not in v:
                if key not in v:
                    continue
                f = {**f, "value": {key: v[key]}}
            elif isinstance(v, dict) and v.get("content") == "array" and v.get("path") != key:
                continue
        out.append(f)
    return out


def inspect(
    run: RunReader,
    s: StreamReader,
    *,
    start: int = 0,
    limit: int = 50,
    hex_bytes: int = 64,
    t_s: float | None = None,
    train_id: int | None = None,
    source: str | None = None,
    key: str | None = None,
) -> dict:
    """One page of messages for the inspector (see `GET .../messages` in docs/api.md)."""
    if limit * hex_bytes > PAGE_HEX_LIMIT:
        raise UsageError(
            f"limit x hex_bytes must stay within {PAGE_HEX_LIMIT} (ask fewer messages per page)"
        )
    if key is not None and source is None:
        raise UsageError("key needs source")
    first = start_index(run, s, start=start, t_s=t_s, train_id=train_id)
    page = previews.messages_page(run, s, start=first, limit=limit, hex_bytes=hex_bytes)
    stop = first + len(page["messages"])
    columns = _columns(s, first, stop) if stop > first else {}
    sources: list[str] = []
    keys: dict[str, list[str]] = {}
    for row, msg in enumerate(page["messages"]):
        msg["columns"] = {n: plain(c[row]) for n, c in columns.items() if row < len(c)}
        frames = msg["frames"]
        _karabo_sources(frames)
        for src, ks in _keys(frames).items():
            if src not in sources:
                sources.append(src)
            known = keys.setdefault(src, [])
            known.extend(k for k in ks if k not in known)
        if source is not None or key is not None:
            msg["frames"] = _narrow(frames, source, key)
    if source is not None and sources and source not in sources:
        raise NotFound(f"no source {source!r} in these messages (sources: {', '.join(sources)})")
    page["sources"] = sources
    page["keys"] = keys
    return page


def column_list(s: StreamReader) -> dict:
    """A stream's per-message columns with their types; `numeric` ones can be plotted."""
    out = []
    n = 1 if s.n_messages else 0
    for name in s.column_names():
        if name in BOOKKEEPING:
            continue
        dtype = np.asarray(s.column(name, 0, n)).dtype
        out.append({"name": name, "dtype": str(dtype), "numeric": dtype.kind in "iufb"})
    return {"stream": s.name, "messages": s.n_messages, "columns": out}
