"""zarr stores for runs in an object store: the one place a run is opened from a bucket.

Two ways in:

- `s3://bucket/prefix/runs/RUN_ID` (a run's URL, as `recorder.open_run` and dask workers take
  it): zarr over obstore's S3Store, reading only the chunks asked for;
- a run folder in a state folder's spool (store/location.py): a `SpooledStore`, a LocalStore
  that reads what the spool still holds from disk (memory-mapped where the reader can) and
  anything else (chunks evicted after their upload) from the bucket. The run's metadata stays
  in the spool, so finding, listing and indexing runs stays local and fast.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import zarr
from zarr.abc.store import ByteRequest
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.storage import LocalStore

from recorder.errors import RunNotFound, StoreError
from recorder.store import layout, location
from recorder.store.location import S3Location

if TYPE_CHECKING:
    from zarr.storage import ObjectStore

UPLOAD_MARKER = ".upload.json"
"""In a spooled run folder: where the run is uploaded to and how far that got (spool.py)."""


def run_location(url: str) -> tuple[S3Location, str]:
    """(bucket location, run id) of `s3://bucket/prefix/runs/RUN_ID`."""
    loc = location.parse(url)
    head, _, run_id = loc.prefix.rpartition("/")
    parent, _, runs = head.rpartition("/")
    if runs != layout.RUNS_DIR or not run_id:
        raise StoreError(f"not a run URL: {url} (s3://bucket/prefix/runs/RUN_ID)")
    return S3Location(loc.bucket, parent), run_id


def run_object_store(loc: S3Location, run_id: str, *, read_only: bool = True) -> ObjectStore:
    from zarr.storage import ObjectStore  # loads zarr's obstore glue: only for object stores

    return ObjectStore(location.s3_store(loc, f"{layout.RUNS_DIR}/{run_id}"), read_only=read_only)


class SpooledStore(LocalStore):
    """A spooled run: local files first, the bucket for what is no longer (or not yet) here."""

    def __init__(self, root: Path | str, remote: ObjectStore, *, read_only: bool = True):
        super().__init__(root, read_only=read_only)
        self.remote = remote

    def with_read_only(self, read_only: bool = False) -> SpooledStore:
        return type(self)(self.root, self.remote, read_only=read_only)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SpooledStore) and self.root == other.root

    async def get(
        self,
        key: str,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        found = await super().get(key, prototype, byte_range)
        if found is not None:
            return found
        if prototype is None:
            from zarr.core.buffer import default_buffer_prototype

            prototype = default_buffer_prototype()
        return await self.remote.get(key, prototype, byte_range)

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> list[Buffer | None]:
        return [await self.get(key, prototype, r) for key, r in key_ranges]

    async def exists(self, key: str) -> bool:
        return await super().exists(key) or await self.remote.exists(key)


def spooled_remote(path: Path) -> ObjectStore | None:
    """The bucket copy of a spooled run folder, or None for a plain local run."""
    from recorder.store import spool

    target = spool.upload_target(path)
    if target is None:
        return None
    return run_object_store(target, path.name)


def open_run_group(where: Path | str) -> zarr.Group:
    """A run's root group for reading: a local folder, a spooled one, or a run URL."""
    try:
        if location.is_url(where):
            loc, run_id = run_location(str(where))
            store: LocalStore | ObjectStore = run_object_store(loc, run_id)
        else:
            remote = spooled_remote(Path(where))
            if remote is None:
                store = LocalStore(where, read_only=True)
            else:
                store = SpooledStore(where, remote)
        return zarr.open_group(store, mode="r", zarr_format=3, use_consolidated=False)
    except FileNotFoundError:
        raise RunNotFound(f"no run at {where}") from None
    except (OSError, ValueError) as exc:  # obstore's errors are OSErrors too
        if location.is_url(where):
            loc, _ = run_location(str(where))
            raise StoreError(f"cannot open run {where}: {location.describe(exc, loc)}") from None
        raise StoreError(f"cannot open run at {where}: {exc}") from exc
