"""Writing whole zarr chunks without zarr's codec pipeline, for arrays that need no codec work.

When an array has no compression and stores values in this machine's byte order, a chunk on
disk is just its rows' bytes one after the other. Large frames then go from the receive buffer
into the chunk file with no copy in our process: `ChunkStream` writes each piece into the
chunk's temporary file as it arrives (while the bytes are still in the CPU cache) and renames it
into place when the chunk is full, the same temp-and-rename discipline zarr's LocalStore uses.
Other stores get the pieces joined and handed to `store.set`.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BytesCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.metadata import ArrayV3Metadata
from zarr.core.sync import sync
from zarr.storage import LocalStore

from recorder.errors import StoreError

PARTIAL_SUFFIX = ".partial"  # temporary chunk files (zarr's LocalStore uses the same suffix)


def stores_native_bytes(array: zarr.Array) -> bool:
    """True when a chunk on disk is exactly its values' bytes in this machine's order."""
    if array.dtype.kind in "OTUV" or not array.dtype.isnative:
        return False
    if not isinstance(array.metadata, ArrayV3Metadata):
        return False  # runs are zarr v3; a v2 array is never written as raw bytes here
    codecs = array.metadata.codecs
    if len(codecs) != 1 or not isinstance(codecs[0], BytesCodec):
        return False
    endian = codecs[0].endian
    return array.dtype.itemsize == 1 or endian is None or endian.value == sys.byteorder


def _chunk_key(array: zarr.Array, index: int) -> str:
    return array.metadata.encode_chunk_key((index, *(0,) * (array.ndim - 1)))


def chunk_file(array: zarr.Array, index: int) -> Path | None:
    """Where LocalStore keeps chunk `index` (along axis 0), or None for other stores."""
    store_path = array.store_path
    if not isinstance(store_path.store, LocalStore):
        return None
    return Path(store_path.store.root) / store_path.path / _chunk_key(array, index)


def _temp_for(path: Path) -> Path:
    return path.with_name(f"{path.name}.{uuid.uuid4().hex}{PARTIAL_SUFFIX}")


def _write_all(fd: int, piece) -> None:
    view = memoryview(piece).cast("B")
    while view.nbytes:
        n = os.write(fd, view)
        view = view[n:]


def write_chunk(array: zarr.Array, index: int, pieces: list, pad: int = 0) -> None:
    """Store chunk `index` as the concatenation of `pieces` and `pad` zero bytes."""
    if pad:
        pieces = [*pieces, bytes(pad)]
    path = chunk_file(array, index)
    if path is None:
        buf = default_buffer_prototype().buffer.from_bytes(b"".join(pieces))
        sync((array.store_path / _chunk_key(array, index)).set(buf))
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_for(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for piece in pieces:
            _write_all(fd, piece)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)


def patch_chunk(array: zarr.Array, index: int, data, offset: int) -> bool:
    """Write `data` at byte `offset` of chunk `index`'s file, in place.

    Only for a chunk file this process wrote whole before (so it has its full size) and only for
    bytes past what was committed: bytes readers may use never change, and a write cut short
    by a crash leaves only uncommitted bytes torn. Cheaper than a new file and a rename when a
    flush adds a few rows to each of many columns. False: no such file here (write it whole).
    """
    path = chunk_file(array, index)
    if path is None:
        return False
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return False
    try:
        view = memoryview(data).cast("B")
        while view.nbytes:
            n = os.pwrite(fd, view, offset)
            view, offset = view[n:], offset + n
    finally:
        os.close(fd)
    return True


def write_rows(array: zarr.Array, index: int, rows: np.ndarray) -> None:
    """Store a whole chunk held as one numpy buffer."""
    write_chunk(array, index, [rows.reshape(-1).view(np.uint8)])


class ChunkStream:
    """The chunk being filled, written piece by piece as pieces arrive."""

    def __init__(self, array: zarr.Array):
        self.array = array
        self.local = chunk_file(array, 0) is not None
        self.fd: int | None = None
        self.tmp: Path | None = None

    def write(self, index: int, piece) -> None:
        if not self.local:
            return
        if self.fd is None:
            path = self._file(index)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = _temp_for(path)
            self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        _write_all(self.fd, piece)

    def _file(self, index: int) -> Path:
        path = chunk_file(self.array, index)
        if path is None:  # `local` said it has one
            raise StoreError(f"chunk {index} of {self.array.path} has no file")
        return path

    def finish(self, index: int, pieces: list) -> None:
        """The chunk is full: put it in place."""
        if not self.local:
            write_chunk(self.array, index, pieces)
            return
        fd, tmp = self.fd, self.tmp
        self.fd = self.tmp = None
        if fd is None or tmp is None:
            raise StoreError(f"chunk {index} of {self.array.path} was never started")
        os.close(fd)
        os.replace(tmp, self._file(index))

    def abort(self) -> None:
        """Drop an unfinished chunk file (its data reached the store at the last flush)."""
        if self.fd is not None:
            os.close(self.fd)
            if self.tmp is not None:
                self.tmp.unlink(missing_ok=True)
            self.fd = self.tmp = None
