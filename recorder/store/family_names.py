"""Where a typed array family lives in a format-2 stream: a path made from a name off the wire.

Names such as ``image``, ``continuous/example_data`` or ``SPB_DET_AGIPD1M-1/DET/0CH0:xtdf/
image.data`` say what an array is, so the path follows them: each ``/``-separated part becomes
a group. But a name from the wire is never used as a path as it is: a part that is not a short
plain name (letters, digits, ``_ . -``; not ``.``/``..``; not starting with ``__``, which zarr
reserves) is replaced by a sanitized prefix and a hash of the part, and a part that would land
on a node already taken by another name gets the hash too. The real name is the family group's
`name` attribute and the stream's `segments` list, which is how readers find it.
"""

from __future__ import annotations

import hashlib
import re

from recorder.store import layout

_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}")
_MAX_DEPTH = 8  # deeper names are flattened into their last parts


def _hashed(part: str) -> str:
    prefix = re.sub(r"[^A-Za-z0-9_.\-]", "_", part)[:32].strip("._-") or "x"
    digest = hashlib.sha256(part.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{prefix}-{digest}"


def _plain(part: str) -> bool:
    return (
        _PLAIN.fullmatch(part) is not None
        and not part.startswith("__")
        and part not in (".", "..")
        and part not in layout.FAMILY_RESERVED
    )


def _safe(part: str) -> str:
    """A plain part as it is; one with a few other characters (Karabo's ``CAM:output``) with
    those made ``_`` (FamilyPaths hashes it if that meets another name); anything else, or a
    name a family group uses for its coordinates (a group called `message` would sit where an
    array is), hashed."""
    if _plain(part):
        return part
    readable = re.sub(r"[^A-Za-z0-9_.\-]", "_", part)
    if len(readable) <= 64 and _plain(readable) and len(part) == len(readable):
        return readable
    return _hashed(part)


class FamilyPaths:
    """Hands out one group path per (name, segment number) within one stream's `data/` group,
    never two names the same node (case-insensitively: file systems may fold case)."""

    def __init__(self) -> None:
        self._owner: dict[str, str] = {}  # lower-cased node path -> the name it was made for
        self._leaf: set[str] = set()  # lower-cased paths of values arrays

    def _claim(self, path: str, name: str) -> bool:
        key = path.lower()
        owner = self._owner.get(key)
        if owner is None:
            self._owner[key] = name
            return True
        return owner == name

    def place(self, name: str, segment: int) -> tuple[str, str]:
        """(group path under the stream, values array name) for segment number `segment` of
        `name` (0: its first segment; later ones get ``@<n>`` added to the group)."""
        parts = name.split("/")
        if len(parts) > _MAX_DEPTH:
            parts = [*parts[: _MAX_DEPTH - 1], "/".join(parts[_MAX_DEPTH - 1 :])]
        path = layout.DATA_GROUP
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            sub = "/".join(parts[: i + 1])  # the name this node stands for
            safe = _safe(part or "_")
            if last and segment:
                safe = f"{safe}@{segment}"
                sub = f"{name}@{segment}"
            candidate = f"{path}/{safe}"
            if candidate.lower() in self._leaf or not self._claim(candidate, sub):
                candidate = f"{path}/{_hashed(sub)}"
                self._claim(candidate, sub)
            path = candidate
        leaf = _safe(parts[-1] or "_")
        owner = f"{name}@{segment}#values"
        if not self._claim(f"{path}/{leaf}", owner):
            leaf = _hashed(owner)
            self._claim(f"{path}/{leaf}", owner)
        self._leaf.add(f"{path}/{leaf}".lower())
        return path, leaf
