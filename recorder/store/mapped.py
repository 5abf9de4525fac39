"""Reading raw-bytes chunks by mapping their files: the reader's twin of chunk_io.

A chunk of an uncompressed array in the machine's byte order is, on disk, exactly its values.
Mapping the file gives those values without a read copy, and replay hands slices of the map
to zmq, which sends them straight from the page cache (zarr's own read path costs about as much
as the network send itself for 1 MiB frames). Anything else — other stores, encoded chunks, a
chunk never written (fill value) — goes through zarr as usual.

Maps are not prefaulted (no MAP_POPULATE): the page cache of a chunk file the recorder wrote in
pieces holds 4 KiB pages, and populating a map of them walks every page (60-130 us of CPU per
MiB here, on the reading thread), while a fault maps 64 KiB around it at once (about half that)
and happens where the bytes are first read: in zmq's I/O thread, which never needs the GIL.
Files whose cache holds 2 MiB folios map for ~2.5 us per MiB either way. Making them so does not
pay: the files of a replay benchmark's run rewritten in one write each (Linux 6.18, ext4: mapping
them in 12-19 -> 4-9 us per MiB) replayed no faster at --max-speed (6 alternated rounds: raw
0.75 -> 0.73 of the pyzmq sender, adzmq 0.79 -> 0.79; the replay's CPU 380 -> 430 and 335 -> 360
us per MiB), so the writer keeps writing chunks as the frames arrive.

A frame that straddles two chunk files (heap frames do, one 1 MiB frame in eight) is not
joined by a copy: the two files are mapped one after the other into one reserved address range
(Linux), so the frame is again a slice (`_Pair`).
"""

from __future__ import annotations

import ctypes
import mmap
import os
import sys
import weakref
from collections import OrderedDict
from pathlib import Path

import numpy as np
import zarr

from recorder.store.chunk_io import (
    ChunkFormat,
    chunk_file,
    chunk_format,
    contiguous_rows,
    file_rows,
    shard_index,
)
from recorder.store.nodes import read_rows

_MAPS_KEPT = 8  # chunks kept mapped: a few, so frames straddling chunk ends stay cheap
_MAP_FIXED = 0x10  # Linux's value on x86 and ARM (the mmap module does not name it)
_PAIRS = sys.platform.startswith("linux") and os.uname().machine in ("x86_64", "aarch64")


class _Pair:
    """Two files mapped back to back into one address range: the view is the first's leading
    `first_bytes` followed by the second's leading `second_bytes` (a whole number of pages
    first, so the second lands right after it). Unmapped when the last slice of it is gone."""

    _libc = None

    @classmethod
    def _lib(cls):
        if cls._libc is None:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.mmap.restype = ctypes.c_void_p
            libc.mmap.argtypes = [
                ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                ctypes.c_long,
            ]  # fmt: skip
            libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
            cls._libc = libc
        return cls._libc

    @classmethod
    def map(cls, first: Path, first_bytes: int, second: Path, second_bytes: int):
        """A memoryview of the two files' leading bytes, contiguous; None where that cannot be
        done (not Linux, a first part that is not whole pages, a file gone): the caller joins."""
        if not _PAIRS or first_bytes % mmap.PAGESIZE or not second_bytes:
            return None
        lib = cls._lib()
        total = first_bytes + second_bytes
        failed = ctypes.c_void_p(-1).value
        base = lib.mmap(None, total, mmap.PROT_READ, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
        if base in (None, failed):
            return None
        fixed = mmap.MAP_SHARED | _MAP_FIXED  # into the range reserved above
        try:
            for path, at, size in (
                (first, base, first_bytes),
                (second, base + first_bytes, second_bytes),
            ):
                fd = os.open(path, os.O_RDONLY)
                try:
                    if os.fstat(fd).st_size < size:
                        raise OSError("shorter than its rows")
                    got = lib.mmap(at, size, mmap.PROT_READ, fixed, fd, 0)
                finally:
                    os.close(fd)
                if got != at:
                    raise OSError("not mapped where asked")
        except OSError:
            lib.munmap(base, total)
            return None
        buf = (ctypes.c_char * total).from_address(base)
        # not at exit: zmq's I/O thread may still be sending from it then (the process's end
        # unmaps it anyway)
        weakref.finalize(buf, lib.munmap, base, total).atexit = False
        return memoryview(buf).cast("B")


def mappable(array: zarr.Array) -> bool:
    """Raw rows in local files: a format-1 raw chunk, or a format-2 uncompressed shard."""
    fmt = chunk_format(array)
    return fmt is not None and fmt.raw and chunk_file(array, 0) is not None


class MappedWindow:
    """`get(start, count)` -> rows [start, start + count) of a mapped raw-bytes array."""

    def __init__(self, array: zarr.Array, limit: int):
        self.array, self.limit = array, limit
        self.chunk = file_rows(array)
        self.row_shape = tuple(array.shape[1:])
        self.dtype = array.dtype
        fmt = chunk_format(array)
        assert fmt is not None, "only mappable arrays get a MappedWindow"
        self.fmt: ChunkFormat = fmt
        self.row_bytes = fmt.row_bytes
        self.chunk_bytes = self.chunk * fmt.row_bytes
        self.maps: OrderedDict[int, np.ndarray | None] = OrderedDict()
        self._files: dict[int, Path | None] = {}  # of the chunks in `maps` (zarr's key costs)
        self._full = b""  # a whole shard's index: its tail, compared instead of parsed
        if fmt.inner_rows is not None:
            inner_bytes = fmt.inner_rows * fmt.row_bytes
            self._full = shard_index(fmt, [inner_bytes] * -(-fmt.chunk_rows // fmt.inner_rows))
        self._last = -1  # the chunk `frame` sliced last, and its bytes
        self._last_bytes: memoryview | None = None
        self._pair = -1  # chunks (_pair, _pair + 1) mapped back to back, and their bytes
        self._pair_bytes: memoryview | None = None

    def _chunk(self, index: int) -> np.ndarray | None:
        if index in self.maps:
            self.maps.move_to_end(index)
            return self.maps[index]
        path = self._files[index] = chunk_file(self.array, index)
        try:
            fd = os.open(path, os.O_RDONLY) if path is not None else -1
        except FileNotFoundError:
            fd = -1  # never written: fill value, read through zarr
        if fd < 0:
            view = None
        else:
            try:
                mm = mmap.mmap(fd, 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
            finally:
                os.close(fd)
            view = self._rows_of(mm)
        self.maps[index] = view
        if len(self.maps) > _MAPS_KEPT:
            gone, _ = self.maps.popitem(last=False)  # the map closes when its last frame goes
            self._files.pop(gone, None)
        return view

    def _file(self, index: int) -> Path | None:
        return self._files[index] if index in self._files else chunk_file(self.array, index)

    def _rows_of(self, mm: mmap.mmap) -> np.ndarray | None:
        """The rows a mapped chunk file holds in place: all of a raw chunk; of a shard, the
        inner chunks written in order from its start (None: laid out otherwise)."""
        fmt = self.fmt
        if fmt.inner_rows is None:
            return np.frombuffer(mm, dtype=self.dtype).reshape(-1, *self.row_shape)
        tail = fmt.index_bytes()
        if len(mm) < tail:
            return None
        end = mm[len(mm) - tail :]
        rows = fmt.chunk_rows if end == self._full else contiguous_rows(fmt, end)
        if not rows:
            return None
        items = rows * fmt.row_bytes // self.dtype.itemsize
        return np.frombuffer(mm, dtype=self.dtype, count=items).reshape(-1, *self.row_shape)

    def frame(self, start: int, count: int) -> memoryview:
        """Rows [start, start + count) as their bytes (a frame as it came off the wire when the
        array holds it in wire byte order): a slice of the mapped chunk when the rows lie in
        one, which costs no numpy call; else joined, or read through zarr, as `get` does."""
        first = start // self.chunk
        lo = (start - first * self.chunk) * self.row_bytes
        hi = lo + count * self.row_bytes
        if first != self._last:
            rows = self._chunk(first)
            self._last = first
            self._last_bytes = None if rows is None else rows.reshape(-1).view(np.uint8).data
        view = self._last_bytes
        if view is not None and count > 0 and hi <= len(view):
            return view[lo:hi]
        chunk_bytes = self.chunk_bytes
        if view is not None and len(view) == chunk_bytes < hi <= 2 * chunk_bytes:
            pair = self._paired(first, hi - chunk_bytes)
            if pair is not None:
                return pair[lo:hi]
        return np.ascontiguousarray(self.get(start, count)).reshape(-1).view(np.uint8).data

    def _paired(self, first: int, need: int) -> memoryview | None:
        """Chunk `first` (whole) and at least `need` bytes of the next, contiguous."""
        pair = self._pair_bytes
        if self._pair == first and pair is not None and len(pair) >= self.chunk_bytes + need:
            return pair
        rows = self._chunk(first + 1)
        a, b = self._file(first), self._file(first + 1)
        if rows is None or a is None or b is None or rows.nbytes < need:
            return None
        self._pair = first
        self._pair_bytes = _Pair.map(a, self.chunk_bytes, b, rows.nbytes)
        return self._pair_bytes

    def get(self, start: int, count: int) -> np.ndarray:
        if count <= 0:
            return read_rows(self.array, start, start)
        first, last = start // self.chunk, (start + count - 1) // self.chunk
        chunks = [self._chunk(i) for i in range(first, last + 1)]
        lo = start - first * self.chunk
        hi = start + count - last * self.chunk  # rows needed from the last chunk
        # whole chunks, but the last may be a partly written shard holding the rows asked for
        views = [v for v in chunks if v is not None]
        whole = all(len(v) == self.chunk for v in views[:-1])
        if len(views) != len(chunks) or not whole or len(views[-1]) < hi:
            return read_rows(self.array, start, min(start + count, self.limit))  # let zarr
        if first == last:
            return views[0][lo : lo + count]
        # a frame straddling chunk ends (heap frames do): join just its own rows
        return np.concatenate([views[0][lo:], *views[1:-1], views[-1][:hi]])
