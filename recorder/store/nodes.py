"""Typed access to the nodes of a run: `group[key]` is an array or a group and attributes are
any JSON to zarr; the run format says which, so a node of the wrong kind means a malformed run
(StoreError), never an AttributeError deep in the reader."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np
import zarr
from zarr.core.common import JSON

from recorder.contracts import Annotations, RunAttrs, StreamAttrs
from recorder.errors import StoreError
from recorder.store import fast_nodes


def _node(group: zarr.Group, key: str) -> zarr.Array | zarr.Group:
    try:
        node = fast_nodes.open_node(group, key)
        return group[key] if node is None else node
    except KeyError:
        raise StoreError(f"{group.path or 'run'}: {key} is missing") from None


def array(group: zarr.Group, key: str) -> zarr.Array:
    """The array at `key` under `group`."""
    node = _node(group, key)
    if not isinstance(node, zarr.Array):
        raise StoreError(f"{group.path or 'run'}: {key} is a group, not an array")
    return node


def subgroup(group: zarr.Group, key: str) -> zarr.Group:
    """The group at `key` under `group`."""
    node = _node(group, key)
    if not isinstance(node, zarr.Group):
        raise StoreError(f"{group.path or 'run'}: {key} is an array, not a group")
    return node


def read_rows(arr: zarr.Array, start: int, stop: int | None) -> np.ndarray:
    """Rows [start, stop) of an array as numpy (zarr types a slice as any array-like)."""
    return np.asarray(arr[start:stop])


def _inline(metadata: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "inline", "must_understand": False, "metadata": metadata}


def consolidate(path) -> None:
    """Put every node's metadata into the root's zarr.json, so a finished run opens in one read
    (xarray, dask). Our own reader ignores the copy: annotations change after a run closed.

    Written as zarr-python 3.1 writes it (`consolidated_metadata`, kind `inline`), but by
    walking the folder once: zarr's own `consolidate_metadata` lists the store node by node
    and took a good part of closing a run. Folders that are not nodes of the run (a
    compaction's `.compact`/`.old` left by a crash) are left out."""
    root = Path(path)
    found: dict[str, Any] = {}
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.endswith((".compact", ".old")))
        if folder == str(root) or "zarr.json" not in files:
            continue
        doc = json.loads((Path(folder) / "zarr.json").read_text())
        if doc.get("node_type") == "group":
            doc["consolidated_metadata"] = {
                "kind": "inline",
                "must_understand": False,
                "metadata": {},
            }
        found[Path(folder).relative_to(root).as_posix()] = doc
    top = json.loads((root / "zarr.json").read_text())
    top["consolidated_metadata"] = _inline(dict(sorted(found.items())))
    tmp = root / f"zarr.json.{os.getpid()}.partial"
    tmp.write_text(json.dumps(top, allow_nan=True))
    os.replace(tmp, root / "zarr.json")


def is_consolidated(path) -> bool:
    """Has this run (a closed format-2 run) a consolidated copy of its metadata?"""
    try:
        with open(f"{path}/zarr.json", "rb") as f:
            return b'"consolidated_metadata"' in f.read()
    except OSError:
        return False


def attrs_of(node: zarr.Group | zarr.Array) -> dict[str, Any]:
    """A node's attributes as a plain dict (a copy)."""
    return dict(node.attrs)


def json_attrs(attrs: Mapping[str, Any]) -> dict[str, JSON]:
    """Typed attributes as zarr's `attrs.put` takes them (they hold JSON values only)."""
    return cast(dict[str, JSON], dict(attrs))


def run_attrs(root: zarr.Group) -> RunAttrs:
    """The run's attributes. RunReader checks format and version before trusting the rest."""
    return cast(RunAttrs, attrs_of(root))


def stream_attrs(group: zarr.Group) -> StreamAttrs:
    """A stream group's attributes. Written by StreamWriter on creation and every flush; keys
    a run from an older writer lacks are read with `.get` and a default."""
    return cast(StreamAttrs, attrs_of(group))


def annotations_of(group: zarr.Group) -> Annotations:
    return cast(Annotations, attrs_of(group))
