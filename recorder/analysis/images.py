"""Image streams (ADZMQ, pyMultiVideo): the n-th frame with the attributes it came with."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from recorder.analysis import arrays, columns
from recorder.analysis.stream import Stream

IMAGE = "image"
"""The array name both image protocols give their frames."""


@dataclass
class Frame:
    """One image and what its message said about it.

    `attrs` holds the message's columns (NDAttributes as ``ndattr.<name>``, pyMultiVideo's
    ``unique_id`` ...) without the ones the message did not carry.
    """

    image: np.ndarray
    message: int
    recv_ns: int
    seq: int | None
    source_ns: int | None
    attrs: dict[str, Any] = field(default_factory=dict)


def _value(value: Any, missing: Any) -> Any:
    """A numpy scalar as Python, or None where it is the column's missing value."""
    if isinstance(value, float) and value != value:  # NaN
        return None
    if missing is not None and not isinstance(missing, float) and value == missing:
        return None
    return value.item() if isinstance(value, np.generic) else value


class ImageStream(Stream):
    """An ADZMQ (areaDetector NDPluginZMQ) or pyMultiVideo stream: ``frame(n)``,
    ``frames()``, ``images`` (lazy), plus everything a Stream has."""

    @cached_property
    def _rows(self) -> list[tuple[int, int, int]]:
        family = arrays.families(self.reader).get(IMAGE)
        return family.rows_of_messages() if family else []

    @property
    def n_frames(self) -> int:
        """How many messages carried an image (an ADZMQ ``STOP`` carries none)."""
        return len(self._rows)

    @property
    def images(self) -> Any:
        """All images as one lazy dask array (frames, y, x), while the shape stays the same."""
        return self.array(IMAGE)

    def frame(self, n: int) -> Frame:
        """The n-th image (0-based; negative counts from the end) and its message's attributes."""
        if not -self.n_frames <= n < self.n_frames:
            raise IndexError(f"stream {self.name} has {self.n_frames} frames, not frame {n}")
        message, k, row = self._rows[n]
        family = arrays.families(self.reader)[IMAGE]
        image = self.reader.read_segment(family.segments[k].index, row, row + 1)[0]
        return self._frame(image, message)

    def frames(self) -> Iterator[Frame]:
        for n in range(self.n_frames):
            yield self.frame(n)

    def _frame(self, image: np.ndarray, message: int) -> Frame:
        r = self.reader
        attrs: dict[str, Any] = {}
        for name in columns.column_names(r):
            if name in ("recv_ns", "seq", "source_ns", "n_frames", "flags"):
                continue
            value = r.column(name, message, message + 1)[0]
            got = _value(value, columns.missing_of(r, name, np.asarray(value).dtype))
            if got is not None:
                attrs[name] = got
        seq, source = (int(r.column(c, message, message + 1)[0]) for c in ("seq", "source_ns"))
        return Frame(
            image=image,
            message=message,
            recv_ns=int(r.column("recv_ns", message, message + 1)[0]),
            seq=None if seq == -1 else seq,
            source_ns=None if source == -1 else source,
            attrs=attrs,
        )
