"""Creating zarr nodes, and changing their shape or attributes, at the cost of writing one small
file.

zarr-python's `create_array` and `require_group` take 3-6 ms each (existence checks of every
parent, its async machinery), and a format-2 stream creates several arrays per typed family, in
the writer thread, while messages wait. The metadata of arrays of one kind differs only in
name, attributes and dimension names, so the first array of each kind is made by zarr itself
and its `zarr.json` kept as a template; later ones get a copy of it written (temp file and
rename, as zarr's LocalStore does) and a zarr.Array built on it. Groups likewise. Other stores
than the local one go through zarr every time.

Opening a node through zarr (`group[key]`) is such a round trip as well, 2 ms each: closing a
stream opens every array it derives coordinates for, a reader every array it reads. `open_node`
reads the node's `zarr.json` and builds it as zarr's LocalStore path does.

A shape or attribute change through zarr is an async round trip too (~1 ms of CPU on a quiet
machine; on the recorder's writer thread, with the receive thread holding the GIL, 5-7 ms of
waiting for zarr's event loop thread): `set_shape` and `put_attributes` write the node's new
`zarr.json` as zarr would serialize it and replace the node's metadata in place.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import zarr
from zarr.core.array import AsyncArray
from zarr.core.array_spec import ArrayConfigParams
from zarr.core.buffer import default_buffer_prototype
from zarr.core.common import ZARR_JSON
from zarr.core.group import AsyncGroup, GroupMetadata
from zarr.core.metadata import ArrayV3Metadata
from zarr.storage import LocalStore, StorePath

from recorder.store.chunk_io import replace_file

_TEMPLATES: dict[Hashable, dict[str, Any]] = {}
_MAX_TEMPLATES = 512


def local_folder(group: zarr.Group | zarr.Array) -> Path | None:
    """Where the local store keeps a node (None for other stores)."""
    store = group.store_path.store
    if not isinstance(store, LocalStore):
        return None
    return Path(store.root) / group.store_path.path


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    replace_file(path, json.dumps(doc, allow_nan=True).encode())  # makes a missing folder


def _child(group: zarr.Group | zarr.Array, name: str) -> StorePath:
    base = group.store_path.path
    return StorePath(group.store_path.store, f"{base}/{name}" if base else name)


def array(
    group: zarr.Group,
    name: str,
    kind: Hashable,
    make: Callable[[], zarr.Array],
    *,
    attributes: dict[str, Any] | None,
    dims: list[str] | None,
    config: ArrayConfigParams | None = None,
    overwrite: bool = False,
    shape: list[int] | None = None,
) -> zarr.Array:
    """Array `name` in `group`: made by `make()` (zarr) the first time a `kind` is seen, else
    from that kind's template with these attributes and dimension names."""
    folder = local_folder(group)
    template = _TEMPLATES.get(kind) if folder is not None else None
    if template is None:
        if overwrite and folder is not None:
            shutil.rmtree(folder / name, ignore_errors=True)
        arr = make()
        if folder is not None:
            if len(_TEMPLATES) >= _MAX_TEMPLATES:
                _TEMPLATES.clear()
            doc = json.loads((folder / name / "zarr.json").read_text())
            _TEMPLATES[kind] = doc
        return arr
    assert folder is not None, "templates are kept for local stores only"
    target = folder / name
    if target.exists():
        if not overwrite:
            raise FileExistsError(f"{target} exists already")
        shutil.rmtree(target)
    doc = copy.deepcopy(template)
    doc["attributes"] = dict(attributes or {})
    doc["dimension_names"] = list(dims) if dims is not None else None
    if shape is not None:
        doc["shape"] = list(shape)
    _write_json(target / "zarr.json", doc)
    meta = ArrayV3Metadata.from_dict(doc)
    return zarr.Array(AsyncArray(meta, _child(group, name), config=config))


def unlisted_array(parent: zarr.Array, name: str, like: zarr.Array) -> zarr.Array | None:
    """An array object at `name` inside `parent`'s folder with `like`'s metadata, whose
    `zarr.json` is never written: only its chunk files are, for a caller to move into a real
    array later (None for other stores than the local one)."""
    if local_folder(parent) is None:
        return None
    return zarr.Array(AsyncArray(like.metadata, _child(parent, name)))


def open_node(group: zarr.Group, key: str) -> zarr.Array | zarr.Group | None:
    """The node at `key` under `group`, as `group[key]` gives it (KeyError when there is none);
    None where zarr must answer: another store, a version 2 group, a group opened with its
    consolidated metadata (zarr answers from that copy), or a document zarr should judge."""
    folder = local_folder(group)
    meta = group.metadata
    if folder is None or meta.zarr_format != 3 or meta.consolidated_metadata is not None:
        return None
    try:
        raw = (folder / key / ZARR_JSON).read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        raise KeyError(key) from None  # what zarr's LocalStore makes of a missing document
    except OSError:
        return None
    try:
        doc = json.loads(raw)
        kind = doc.get("node_type") if isinstance(doc, dict) else None
        if kind == "array":
            return zarr.Array(AsyncArray(ArrayV3Metadata.from_dict(doc), _child(group, key)))
        if kind == "group":
            return zarr.Group(AsyncGroup(GroupMetadata.from_dict(doc), _child(group, key)))
    except (ValueError, TypeError, KeyError):
        pass
    return None  # zarr raises its own error for it


def group(parent: zarr.Group, rel: str, attributes: dict[str, Any] | None = None) -> zarr.Group:
    """Group `rel` (a/b/c) under `parent`, making the missing levels; `attributes` are set on
    the last level when it is made (and replace its attributes when it exists)."""
    folder = local_folder(parent)
    if folder is None:
        g = parent.require_group(rel)
        if attributes:
            g.attrs.update(attributes)
        return g
    parts = rel.split("/")
    for i in range(1, len(parts)):
        meta = folder.joinpath(*parts[:i]) / "zarr.json"
        if not meta.exists():
            _write_json(meta, {"zarr_format": 3, "node_type": "group", "attributes": {}})
    last = folder.joinpath(*parts) / "zarr.json"
    doc: dict[str, Any] = {
        "zarr_format": 3,
        "node_type": "group",
        "attributes": dict(attributes or {}),
    }
    if last.exists() and not attributes:
        doc = json.loads(last.read_text())
    else:
        _write_json(last, doc)
    return zarr.Group(AsyncGroup(GroupMetadata(attributes=doc["attributes"]), _child(parent, rel)))


def set_shape(array: zarr.Array, shape: tuple[int, ...]) -> bool:
    """The array's shape becomes `shape`, its chunk files untouched: for an array that grows,
    or shrinks to rows past which no chunk file exists (zarr's resize would delete them). False:
    another store or format, the caller asks zarr."""
    store = array.store_path.store
    meta = array.async_array.metadata
    if not isinstance(store, LocalStore) or not isinstance(meta, ArrayV3Metadata):
        return False
    new = meta.update_shape(shape)
    doc = new.to_buffer_dict(default_buffer_prototype())[ZARR_JSON].to_bytes()
    replace_file(Path(store.root) / array.store_path.path / ZARR_JSON, doc)
    object.__setattr__(array.async_array, "metadata", new)  # as zarr's _resize does
    return True


def resize(array: zarr.Array, shape: tuple[int, ...]) -> None:
    """`set_shape` where it can, else zarr's resize (another store or format): for an array
    with no chunk file past `shape`."""
    if not set_shape(array, shape):
        array.resize(shape)


def put_attributes(node: zarr.Group | zarr.Array, attributes: dict[str, Any]) -> None:
    """The node's attributes become `attributes` (all of them, as `attrs.put`)."""
    holder: Any = node.async_array if isinstance(node, zarr.Array) else node._async_group
    meta = holder.metadata
    new: Any = None
    if isinstance(meta, ArrayV3Metadata):
        new = meta.update_attributes(dict(attributes))
    elif (
        isinstance(meta, GroupMetadata)
        and meta.zarr_format == 3  # a version 2 group keeps its attributes in .zattrs
        and meta.consolidated_metadata is None
    ):
        new = GroupMetadata(attributes=dict(attributes))
    store = node.store_path.store
    if new is None or not isinstance(store, LocalStore):  # zarr's own way
        node.attrs.put(attributes)
        return
    doc = new.to_buffer_dict(default_buffer_prototype())[ZARR_JSON].to_bytes()
    replace_file(Path(store.root) / node.store_path.path / ZARR_JSON, doc)
    object.__setattr__(holder, "metadata", new)


def update_attributes(node: zarr.Group | zarr.Array, changes: dict[str, Any]) -> None:
    """`changes` merged into the node's attributes (as `attrs.update`)."""
    put_attributes(node, {**node.attrs.asdict(), **changes})
