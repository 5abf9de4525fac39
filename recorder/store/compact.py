"""Compaction when a stream closes: a small sharded array becomes one exact chunk.

Shards keep the write path fast and bound what a partly filled shard wastes to one inner chunk,
but for a short run (ten messages) one inner chunk of padding is most of the array. When a stream
closes, every bulk array (heap, typed arrays) that fits in one shard and holds less than
layout.COMPACT_BELOW is rewritten as a plain array whose only chunk is exactly its rows. Larger
arrays keep their shards: the at most one inner chunk the last one wastes is a few percent of
their data at most, not worth rewriting them.

A crash never loses the array: the compact copy is written beside the original
(`<name>.compact`), then swapped in by two folder renames. Between them the array is missing for
an instant (a reader of a run being closed may see that); a crash there leaves `<name>.old`,
which `recorder recover` (this module's `cleanup`) puts back in place. Local stores only
(other stores keep the shards).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import zarr

from recorder.store import layout, nodes
from recorder.store.chunk_io import chunk_file, chunk_format, write_rows

_NEW, _OLD = ".compact", ".old"
NEW_SUFFIX = _NEW  # where a replacement array is written before swap_in


def compact(group: zarr.Group, name: str) -> bool:
    """Rewrite array `name` of `group` as one exact chunk if it fits in one shard and is small
    enough that one inner chunk of padding matters (layout.COMPACT_BELOW). True if done."""
    arr = nodes.array(group, name)
    shards = arr.shards
    path = chunk_file(arr, 0)
    if shards is None or path is None or arr.shape[0] > shards[0]:
        return False
    if arr.nbytes >= layout.COMPACT_BELOW:
        return False
    folder = Path(arr.store_path.store.root) / arr.store_path.path  # type: ignore[attr-defined]
    data = np.ascontiguousarray(arr[...])
    rows = int(arr.shape[0])
    doc = json.loads((folder / "zarr.json").read_text())
    (sharding,) = doc["codecs"]  # a sharded array: its inner codecs become the array's
    doc["codecs"] = sharding["configuration"]["codecs"]
    doc["chunk_grid"]["configuration"]["chunk_shape"] = [max(1, rows), *arr.shape[1:]]
    new_folder = folder.with_name(folder.name + _NEW)
    shutil.rmtree(new_folder, ignore_errors=True)
    new_folder.mkdir()
    (new_folder / "zarr.json").write_text(json.dumps(doc, allow_nan=True))
    if rows:
        new = zarr.open_array(new_folder, mode="r+", zarr_format=3)
        if chunk_format(new) is not None:
            write_rows(new, 0, data)  # as chunk_io writes every chunk: no zarr pipeline
        else:
            new[...] = data
    swap_in(group, name)
    return True


def swap_in(group: zarr.Group, name: str) -> None:
    """Put `<name>.compact` (written beside it) in the place of array `name` of `group`."""
    store = group.store_path.store
    folder = Path(store.root) / group.store_path.path / name  # type: ignore[attr-defined]
    old = folder.with_name(folder.name + _OLD)
    os.replace(folder, old)
    os.replace(folder.with_name(folder.name + _NEW), folder)
    shutil.rmtree(old, ignore_errors=True)


def cleanup(folder: Path) -> None:
    """Finish a compaction a crash interrupted, anywhere under `folder`."""
    for done in sorted(folder.rglob("*" + _OLD)):
        target = done.with_name(done.name[: -len(_OLD)])
        new = done.with_name(done.name[: -len(_OLD)] + _NEW)
        with contextlib.suppress(OSError):
            if not target.exists():
                os.replace(new if new.exists() else done, target)
            shutil.rmtree(done, ignore_errors=True)
    for new in sorted(folder.rglob("*" + _NEW)):  # the original was never moved: drop the copy
        shutil.rmtree(new, ignore_errors=True)
