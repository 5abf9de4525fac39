"""The images of an image stream as the frame table places them, in batches that fit memory.

Format 2 keeps an image stream's frames stacked (one row per image) or, once only the first
axis changed, ragged (an image is `length // row bytes` rows); a new width or dtype starts a new
segment. The frame table says, for every message, which segment and rows hold its image, so
reading it block by block finds every image of a window whatever the store did, for a run still
being recorded too (only committed rows are read).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from recorder.store.reader import ArraySegment, StreamReader

IMAGE = "image"
"""The array name both image protocols give their frames."""
BLOCK_MESSAGES = 4096  # frame table rows read at once
BATCH_BYTES = 8 << 20  # image bytes read at once (one shard of the store)

Key = tuple[tuple[int, ...], str]
"""(image shape, dtype string) of one image dataset."""


@dataclass(frozen=True, slots=True)
class ImageFrame:
    """Where one message's image is: `rows` rows of segment `segment` from row `offset`
    (`rows` is None for a stacked row: the image is that row)."""

    message: int
    segment: int
    offset: int
    rows: int | None
    nbytes: int
    key: Key


def image_segments(reader: StreamReader) -> dict[int, ArraySegment]:
    """The stream's committed image segments by number (placed ones never hold images)."""
    return {s.index: s for s in reader.array_segments(IMAGE) if not s.placed}


def _row_bytes(seg: ArraySegment) -> int:
    return max(1, int(np.prod(seg.shape)) * np.dtype(seg.dtype).itemsize)


def image_frames(reader: StreamReader, lo: int, hi: int) -> Iterator[list[ImageFrame]]:
    """The images of messages [lo, hi), in message order, a frame table block at a time.
    Messages without an image (an ADZMQ STOP, a compressed NDArray) are not there."""
    segs = image_segments(reader)
    if not segs:
        return
    wanted = np.fromiter(segs, dtype=np.int64)
    for b0 in range(lo, hi, BLOCK_MESSAGES):
        ft = reader.frame_rows(b0, min(hi, b0 + BLOCK_MESSAGES))
        pick = np.isin(ft.segment, wanted) & ~ft.placed
        block = []
        for m, k, off, length in zip(
            ft.message[pick], ft.segment[pick], ft.offset[pick], ft.length[pick], strict=True
        ):
            seg = segs[int(k)]
            dtype = np.dtype(seg.dtype).str
            if seg.ragged:
                rows = int(length) // _row_bytes(seg)
                key: Key = ((rows, *seg.shape), dtype)
                block.append(ImageFrame(int(m), seg.index, int(off), rows, int(length), key))
            else:
                key = (seg.shape, dtype)
                block.append(ImageFrame(int(m), seg.index, int(off), None, int(length), key))
        if block:
            yield block


def batches(frames: list[ImageFrame], limit: int | None = None) -> Iterator[list[ImageFrame]]:
    """Consecutive runs of `frames` of at most `limit` image bytes (at least one frame)."""
    limit = BATCH_BYTES if limit is None else limit
    batch: list[ImageFrame] = []
    size = 0
    for f in frames:
        if batch and size + f.nbytes > limit:
            yield batch
            batch, size = [], 0
        batch.append(f)
        size += f.nbytes
    if batch:
        yield batch


def read_images(reader: StreamReader, batch: list[ImageFrame]) -> list[np.ndarray]:
    """The images of `batch`, in its order: one read per segment the batch touches."""
    spans: dict[int, tuple[int, int]] = {}
    for f in batch:
        end = f.offset + (1 if f.rows is None else f.rows)
        lo, hi = spans.get(f.segment, (f.offset, end))
        spans[f.segment] = (min(lo, f.offset), max(hi, end))
    data = {k: (lo, reader.read_segment(k, lo, hi)) for k, (lo, hi) in spans.items()}
    out = []
    for f in batch:
        lo, values = data[f.segment]
        at = f.offset - lo
        out.append(values[at] if f.rows is None else values[at : at + f.rows])
    return out
