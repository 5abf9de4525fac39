"""Writing whole zarr chunks without zarr's codec pipeline, for the arrays the recorder appends to.

zarr would encode every write through its async pipeline and read back partial chunks. The
recorder knows each array's layout (docs/format.md) and writes chunk files itself:

- raw chunks (format 1, and format 2 message columns' inner data): a chunk on disk is just its
  rows' bytes, so large frames go from the receive buffer into the chunk file with no copy in
  our process: `ChunkStream` writes each piece into the chunk's temporary file as it arrives
  (while the bytes are still in the CPU cache) and renames it into place when the chunk is full,
  the same temp-and-rename discipline zarr's LocalStore uses;
- shards (format 2 heap and typed arrays): the file is its inner chunks one after the other and
  an index (offset, size per inner chunk, then a CRC32C of the index) at the end, as zarr's
  `sharding_indexed` codec reads it. Inner chunks no row reached are left out (the index says
  "empty"), which is how the last, partly filled shard of an array stays as small as its data;
- compressed chunks (zstd or blosc after the bytes codec, inside a shard or not): the rows'
  bytes through the same numcodecs codec zarr uses, so zarr decodes them unchanged.

Anything else (strings, another byte order, codecs not listed here) goes through zarr.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import google_crc32c
import numpy as np
import zarr
from numcodecs import Blosc, Zstd  # type: ignore[import-untyped]
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, ShardingCodec, ZstdCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.metadata import ArrayV3Metadata
from zarr.core.sync import sync
from zarr.storage import LocalStore

from recorder.errors import StoreError
from recorder.store.writeback import start_writeback

PARTIAL_SUFFIX = ".partial"  # temporary chunk files (zarr's LocalStore uses the same suffix)
_EMPTY = np.uint64(2**64 - 1)  # a shard index entry for an inner chunk that was never written

Encode = Callable[[memoryview], bytes]


@dataclass(frozen=True)
class ChunkFormat:
    """How one chunk file of an array is made from its rows' bytes (in row order)."""

    row_bytes: int
    chunk_rows: int
    """Rows per chunk file (per shard, for a sharded array)."""
    inner_rows: int | None = None
    """Sharded: rows per inner chunk."""
    encode: Encode | None = None
    """Compressor of each (inner) chunk; None: raw bytes."""

    @property
    def chunk_bytes(self) -> int:
        return self.chunk_rows * self.row_bytes

    @property
    def raw(self) -> bool:
        """Rows sit in the file as their bytes at row_bytes * row (a mapped reader can use it)."""
        return self.encode is None

    def index_bytes(self) -> int:
        if self.inner_rows is None:
            return 0
        return -(-self.chunk_rows // self.inner_rows) * 16 + 4


def file_rows(array: zarr.Array) -> int:
    """Rows per chunk file: the shard's rows for a sharded array (`array.chunks` gives the
    inner chunks there), else the chunk's."""
    grid = array.metadata.chunk_grid
    shape = getattr(grid, "chunk_shape", None)
    return int(shape[0]) if shape else int(array.chunks[0])


class _NotOurs:
    """A codec pipeline the recorder does not write itself (zarr encodes it)."""


NOT_OURS = _NotOurs()


def _encoder(codec) -> Encode | _NotOurs:
    """A bytes-to-bytes codec's encoder, or NOT_OURS."""
    if isinstance(codec, ZstdCodec):
        z = Zstd.from_config({"level": codec.level, "checksum": codec.checksum})
        return lambda data: bytes(z.encode(data))
    if isinstance(codec, BloscCodec) and codec.typesize is not None:
        shuffle = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[codec.shuffle.value]
        b = Blosc.from_config(
            {
                "cname": codec.cname.value,
                "clevel": codec.clevel,
                "shuffle": shuffle,
                "blocksize": codec.blocksize,
                "typesize": codec.typesize,
            }
        )
        return lambda data: bytes(b.encode(np.frombuffer(data, dtype=np.uint8)))
    return NOT_OURS


def _bytes_pipeline(codecs, itemsize: int) -> Encode | _NotOurs | None:
    """(bytes codec [+ one compressor]) -> its encoder (None: raw), or NOT_OURS."""
    if not codecs or not isinstance(codecs[0], BytesCodec):
        return NOT_OURS
    endian = codecs[0].endian
    if itemsize != 1 and endian is not None and endian.value != sys.byteorder:
        return NOT_OURS
    if len(codecs) == 1:
        return None
    if len(codecs) == 2:
        return _encoder(codecs[1])
    return NOT_OURS


def chunk_format(array: zarr.Array) -> ChunkFormat | None:
    """How the recorder writes this array's chunks itself, or None: zarr must encode them."""
    dtype = array.dtype
    if (
        dtype.kind in "OTUV"
        or not dtype.isnative
        or not isinstance(array.metadata, ArrayV3Metadata)
    ):
        return None
    row_bytes = max(1, int(np.prod(array.shape[1:], dtype=np.int64))) * dtype.itemsize
    chunk_rows = file_rows(array)
    codecs = array.metadata.codecs
    if len(codecs) == 1 and isinstance(codecs[0], ShardingCodec):
        shard = codecs[0]
        index = shard.index_codecs
        inner_shape = tuple(shard.chunk_shape)
        if (
            shard.index_location.value != "end"
            or len(index) != 2
            or not isinstance(index[0], BytesCodec)
            or not isinstance(index[1], Crc32cCodec)
            or inner_shape[1:] != tuple(array.shape[1:])
            or chunk_rows % inner_shape[0]
        ):
            return None
        enc = _bytes_pipeline(shard.codecs, dtype.itemsize)
        if isinstance(enc, _NotOurs):
            return None
        return ChunkFormat(row_bytes, chunk_rows, int(inner_shape[0]), enc)
    enc = _bytes_pipeline(codecs, dtype.itemsize)
    if isinstance(enc, _NotOurs):
        return None
    return ChunkFormat(row_bytes, chunk_rows, None, enc)


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


def _create(path: Path, flags: int = os.O_WRONLY) -> int:
    """A new, empty file (truncated if there was one), its folder made only when missing: a
    `mkdir(exist_ok=True)` before every chunk cost a failing system call and a Python
    exception each time (76 us a chunk under a recording's writeback)."""
    flags |= os.O_CREAT | os.O_TRUNC
    try:
        return os.open(path, flags, 0o644)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, flags, 0o644)


@contextlib.contextmanager
def _replacing(path: Path, final: bool = False) -> Iterator[int]:
    """A new file beside `path` to write, which replaces `path` when the block ends (and is
    removed if it fails): a reader sees the old chunk or the new one, never half of one.
    `final`: the chunk is whole and written for good, so its writeback starts now."""
    tmp = _temp_for(path)
    fd = _create(tmp)
    try:
        yield fd
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    if final:
        start_writeback(fd)
    os.close(fd)
    os.replace(tmp, path)


def replace_file(path: Path, data: bytes) -> None:
    """`path` holds `data`, written beside it and renamed over it (as zarr's LocalStore
    writes): metadata documents and chunks zarr would encode."""
    with _replacing(path) as fd:
        _write_all(fd, data)


def _write_all(fd: int, piece) -> None:
    view = memoryview(piece).cast("B")
    while view.nbytes:
        n = os.write(fd, view)
        view = view[n:]


_IOV_MAX = 1024  # buffers one writev takes (Linux's IOV_MAX)
_NO_COPY_RANGE = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM}


def _writev_all(fd: int, pieces) -> int:
    """Write the pieces in order with as few system calls as the kernel allows; their count."""
    views = [v for v in (memoryview(p).cast("B") for p in pieces) if v.nbytes]
    total = sum(v.nbytes for v in views)
    while views:
        n = os.writev(fd, views[:_IOV_MAX])
        while views and n >= views[0].nbytes:
            n -= views[0].nbytes
            views.pop(0)
        if n:
            views[0] = views[0][n:]
    return total


def _copy_file(src: int, dst: int, n: int) -> None:
    """The first `n` bytes of file `src` to `dst`'s position, copied in the kernel (no pass
    through our memory); read and written when the file system cannot."""
    off = 0
    try:
        while off < n:
            got = os.copy_file_range(src, dst, n - off, off)
            if got == 0:
                raise StoreError(f"chunk file ended {n - off} bytes early")
            off += got
        return
    except OSError as exc:
        if exc.errno not in _NO_COPY_RANGE:
            raise
    while off < n:
        data = os.pread(src, min(n - off, 8 << 20), off)
        if not data:
            raise StoreError(f"chunk file ended {n - off} bytes early")
        _write_all(dst, data)
        off += len(data)


def shard_index(fmt: ChunkFormat, sizes: list[int]) -> bytes:
    """The index zarr's sharding codec reads at the end of a shard: inner chunks in order,
    `sizes` of the first len(sizes) of them (the rest empty), then the index's CRC32C."""
    assert fmt.inner_rows is not None, "only shards have an index"
    n_inner = -(-fmt.chunk_rows // fmt.inner_rows)
    index = np.full((n_inner, 2), _EMPTY, dtype="<u8")
    if sizes:
        ends = np.cumsum(np.asarray(sizes, dtype=np.uint64))
        index[: len(sizes), 0] = ends - np.asarray(sizes, dtype=np.uint64)
        index[: len(sizes), 1] = sizes
    raw = index.tobytes()
    return raw + np.uint32(google_crc32c.value(raw)).tobytes()


def contiguous_rows(fmt: ChunkFormat, tail: bytes) -> int:
    """Rows readable straight from a raw shard whose last bytes are `tail` (its index): inner
    chunks written in order from the start, each whole. 0 when the shard is laid out otherwise
    (then zarr reads it)."""
    assert fmt.inner_rows is not None and fmt.raw, "only raw shards are read mapped"
    index = np.frombuffer(tail[:-4], dtype="<u8").reshape(-1, 2)
    present = index[:, 0] != _EMPTY
    k = int(np.argmin(present)) if not present.all() else len(present)
    inner_bytes = fmt.inner_rows * fmt.row_bytes
    expect = np.arange(k, dtype=np.uint64) * np.uint64(inner_bytes)
    if present[k:].any() or not (index[:k, 0] == expect).all():
        return 0
    if not (index[:k, 1] == inner_bytes).all():
        return 0
    return min(k * fmt.inner_rows, fmt.chunk_rows)


def _encoded_pieces(fmt: ChunkFormat, pieces: list, rows: int) -> list:
    """The file's bytes for the first `rows` rows of a chunk given as `pieces` of raw bytes.

    Raw pieces are passed on as they are (no join, no copy): only the zero padding of the last
    (inner) chunk is new bytes."""
    views = [memoryview(p).cast("B") for p in pieces]
    have = sum(v.nbytes for v in views)
    if fmt.inner_rows is None:
        size = fmt.chunk_bytes
    else:
        inner_bytes = fmt.inner_rows * fmt.row_bytes
        n_inner = -(-(rows * fmt.row_bytes) // inner_bytes) if rows else 0
        size = n_inner * inner_bytes
    views = _cut(views, size)
    if have < size:
        views.append(memoryview(bytes(size - have)))
    if fmt.inner_rows is None:
        return views if fmt.encode is None else [fmt.encode(memoryview(b"".join(views)))]
    if fmt.encode is None:
        return [*views, shard_index(fmt, [inner_bytes] * n_inner)]
    data = memoryview(b"".join(views))
    out = [fmt.encode(data[j * inner_bytes : (j + 1) * inner_bytes]) for j in range(n_inner)]
    return [*out, shard_index(fmt, [len(e) for e in out])]


def _cut(views: list[memoryview], size: int) -> list[memoryview]:
    """The first `size` bytes of the pieces."""
    out, left = [], size
    for v in views:
        if left <= 0:
            break
        out.append(v[:left] if v.nbytes > left else v)
        left -= min(left, v.nbytes)
    return out


def write_chunk(array: zarr.Array, index: int, pieces: list, rows: int | None = None) -> None:
    """Store chunk `index` holding the concatenation of `pieces` (raw row bytes): `rows` rows
    of it (default: whole). A plain chunk is padded to its size; a shard gets only the inner
    chunks its rows reach."""
    fmt = chunk_format(array)
    if fmt is None:
        raise StoreError(f"{array.path}: chunks of this array are written through zarr")
    if rows is None:
        rows = fmt.chunk_rows
    out = _encoded_pieces(fmt, pieces, rows)
    path = chunk_file(array, index)
    if path is None:
        buf = default_buffer_prototype().buffer.from_bytes(b"".join(bytes(p) for p in out))
        sync((array.store_path / _chunk_key(array, index)).set(buf))
        return
    with _replacing(path, final=rows >= fmt.chunk_rows) as fd:
        for piece in out:
            _write_all(fd, piece)


def write_rows(array: zarr.Array, index: int, rows: np.ndarray, valid: int | None = None) -> None:
    """Store a whole chunk held as one numpy buffer (`valid`: rows that hold data)."""
    write_chunk(array, index, [rows.reshape(-1).view(np.uint8).data], valid)


class ChunkStream:
    """The chunk being filled, written piece by piece as pieces arrive (raw arrays on a local
    store only; others are written whole when full).

    The temporary file is the only copy of a streamed chunk: the caller need not keep its
    pieces (the received frames are freed once written, as a plain recv-and-write loop frees
    them), and a flush copies what the file holds so far into the chunk's place in the kernel
    (`commit`)."""

    def __init__(self, array: zarr.Array):
        self.array = array
        fmt = chunk_format(array)
        self.fmt = fmt
        self.local = fmt is not None and fmt.raw and chunk_file(array, 0) is not None
        self.fd: int | None = None
        self.tmp: Path | None = None
        self.written = 0  # bytes in the temporary file

    def write(self, index: int, *pieces) -> None:
        """Append pieces to chunk `index`'s file: one system call for all of them."""
        if not self.local:
            return
        if self.fd is None:
            self.tmp = _temp_for(self._file(index))
            self.fd = _create(self.tmp, os.O_RDWR)
            self.written = 0
        self.written += _writev_all(self.fd, pieces)

    def _file(self, index: int) -> Path:
        path = chunk_file(self.array, index)
        if path is None:  # `local` said it has one
            raise StoreError(f"chunk {index} of {self.array.path} has no file")
        return path

    def commit(self, index: int, rows: int) -> None:
        """Store the first `rows` rows of the unfinished chunk `index` (a flush): the bytes
        written so far, copied from the temporary file by the kernel, then what write_chunk
        would add (padding, a shard's index). The temporary file goes on growing."""
        fmt = self.fmt
        assert fmt is not None and self.local, "only streamed chunks are committed"
        src = self.fd
        if src is None:
            raise StoreError(f"chunk {index} of {self.array.path} was never started")
        have = self.written
        if fmt.inner_rows is None:
            size = fmt.chunk_bytes
            tail = b""
        else:
            inner_bytes = fmt.inner_rows * fmt.row_bytes
            n_inner = -(-(rows * fmt.row_bytes) // inner_bytes) if rows else 0
            size = n_inner * inner_bytes
            tail = shard_index(fmt, [inner_bytes] * n_inner)
        path = self._file(index)
        with _replacing(path) as fd:
            _copy_file(src, fd, min(have, size))
            if size > have:
                os.ftruncate(fd, size)  # zero padding, as write_chunk writes it
            if tail:
                os.lseek(fd, size, os.SEEK_SET)
                _write_all(fd, tail)

    def finish(self, index: int, pieces: list) -> None:
        """The chunk is full: put it in place (`pieces`: the chunk's bytes, unless streamed)."""
        if not self.local:
            write_chunk(self.array, index, pieces)
            return
        fd, tmp = self.fd, self.tmp
        self.fd = self.tmp = None
        self.written = 0
        if fd is None or tmp is None:
            raise StoreError(f"chunk {index} of {self.array.path} was never started")
        fmt = self.fmt
        assert fmt is not None, "local streams have a format"
        if fmt.inner_rows is not None:  # a whole raw shard: every inner chunk, in order
            inner_bytes = fmt.inner_rows * fmt.row_bytes
            n_inner = -(-fmt.chunk_rows // fmt.inner_rows)
            try:
                _write_all(fd, shard_index(fmt, [inner_bytes] * n_inner))
            except BaseException:
                os.close(fd)
                tmp.unlink(missing_ok=True)
                raise
        start_writeback(fd)
        os.close(fd)
        os.replace(tmp, self._file(index))

    def abort(self) -> None:
        """Drop an unfinished chunk file (its data reached the store at the last flush)."""
        if self.fd is not None:
            os.close(self.fd)
            if self.tmp is not None:
                self.tmp.unlink(missing_ok=True)
            self.fd = self.tmp = None
            self.written = 0
