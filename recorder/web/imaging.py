"""How one stored image frame is looked at: which pixel values become black and white (contrast),
which colours lie between them (colour map), and at what size, plus the facts a viewer shows
beside the frame (its number, time, unique id and attributes, and the values of its pixels).

No Flask here. The colour maps are matplotlib's, sampled at 17 points and interpolated, so no
plotting library is needed on the server.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from recorder.errors import NotFound, UsageError
from recorder.store.reader import RunReader, StreamReader

#: Largest side of a full-resolution PNG: bigger frames are scaled down to it (a bound on the
#: memory and time one request can take).
FULL_LIMIT = 8192

CONTRASTS = ("auto", "minmax", "percentile", "manual")

_MAPS = {
    "viridis": (
        "44015448186a472d7b4240863b528b33638d2c728e26828e21918c"
        "1fa08828ae803fbc735ec96284d44baddc30d8e219fde725"
    ),
    "magma": (
        "0000040a08221d114736106b51127c6a1c818326819c2e7fb73779"
        "d0416fe75263f56b5cfc8961fea772fec488fde2a3fcfdbf"
    ),
    "inferno": (
        "0000040b0724210c4a3d096557106e71196e8a226aa32c61bc3754"
        "d24644e45a31f1731df98e09fcac11f9cb35f2ea69fcffa4"
    ),
    "plasma": (
        "0d08873105974c02a16600a77e03a89511a1aa2395bc3587cc4778"
        "da5a6ae66c5cf0804ef89540fdac33fdc527f8df25f0f921"
    ),
    "cividis": (
        "00224e002e6a1a386f32436d434e6c535a6d61656f6f70737d7c78"
        "8c88789b9476aba072bcae6ccdbb63dec958f0d846fee838"
    ),
    "turbo": (
        "30123b4040a2466be34294ff28bceb18ddc232f2986dfe62a4fc3c"
        "cdec34eecf3afdac34fb7e21eb500ed02f05a916017a0403"
    ),
}
CMAPS = ("gray", *_MAPS)

#: Percentiles are taken over at most this many pixels (every k-th of a bigger frame): a 4k x 4k
#: float frame would otherwise sort 128 MB per request for two numbers.
_PERCENTILE_SAMPLE = 1 << 20

#: Columns every stream has that say where a message is stored, not what it was.
BOOKKEEPING = {"first_frame", "n_frames", "flags"}


def _lut(name: str) -> np.ndarray:
    """A 256 x 3 uint8 table for colour map `name`."""
    pts = bytes.fromhex(_MAPS[name])
    anchors = np.frombuffer(pts, dtype=np.uint8).reshape(-1, 3).astype(np.float64)
    x = np.linspace(0, 255, len(anchors))
    return np.stack([np.interp(np.arange(256), x, anchors[:, c]) for c in range(3)], axis=1).astype(
        np.uint8
    )


@dataclass(frozen=True)
class Look:
    """How to turn pixel values into a picture: `contrast` auto (0.5-99.5 percentiles, uint8 as
    it is), minmax, percentile (`plo`..`phi`) or manual (`lo`..`hi` in pixel values)."""

    contrast: str = "auto"
    lo: float | None = None
    hi: float | None = None
    plo: float = 0.5
    phi: float = 99.5
    cmap: str = "gray"

    def check(self) -> Look:
        if self.contrast not in CONTRASTS:
            raise UsageError(f"contrast must be one of {', '.join(CONTRASTS)}")
        if self.cmap not in CMAPS:
            raise UsageError(f"cmap must be one of {', '.join(CMAPS)}")
        if self.contrast == "manual":
            if self.lo is None or self.hi is None:
                raise UsageError("contrast=manual needs lo and hi")
            if not self.lo < self.hi:
                raise UsageError("lo must be below hi")
        if not 0 <= self.plo < self.phi <= 100:
            raise UsageError("percentiles need 0 <= plo < phi <= 100")
        return self


def image_of(a: np.ndarray) -> np.ndarray:
    """The 2-D (or uint8 RGB/RGBA) picture inside any image-like array: detector stacks
    (modules, cells ...) show the first along their shortest axes."""
    rgb = a.dtype == np.uint8 and a.ndim == 3 and a.shape[-1] in (3, 4)
    while a.ndim > 2 and not rgb:
        a = np.take(a, 0, axis=int(np.argmin(a.shape)))
        rgb = a.dtype == np.uint8 and a.ndim == 3 and a.shape[-1] in (3, 4)
    if a.ndim < 2 or a.size == 0:
        raise NotFound("not an image")
    if a.dtype.kind == "c":
        a = np.abs(a)
    return a


def _percentiles(values: np.ndarray, q: list[float]) -> np.ndarray:
    step = max(1, values.size // _PERCENTILE_SAMPLE)
    return np.percentile(values[::step], q)


def _limits(f: np.ndarray, finite: np.ndarray, look: Look) -> tuple[float, float]:
    if look.contrast == "manual":
        return float(look.lo), float(look.hi)  # type: ignore[arg-type]
    values = f[finite]
    if look.contrast == "minmax":
        return float(values.min()), float(values.max())
    plo, phi = (look.plo, look.phi) if look.contrast == "percentile" else (0.5, 99.5)
    lo, hi = _percentiles(values, [plo, phi])
    return float(lo), float(hi)


def to_uint8(a: np.ndarray, look: Look) -> np.ndarray:
    """Pixel values to 0..255 by the look's contrast (RGB: the same limits for every colour)."""
    a = image_of(a)
    if a.dtype == np.uint8 and look.contrast == "auto":
        return np.ascontiguousarray(a)
    f = a.astype(np.float64)
    finite = np.isfinite(f)
    if not finite.any():
        return np.zeros(a.shape, dtype=np.uint8)
    lo, hi = _limits(f, finite, look)
    if hi <= lo:
        hi = lo + 1
    out = np.clip((np.where(finite, f, lo) - lo) * (255.0 / (hi - lo)), 0, 255)
    return out.astype(np.uint8)


def render_png(a: np.ndarray, look: Look, size: int | None) -> bytes:
    """A frame as a PNG by `look`, scaled down to fit size x size pixels (None: full resolution,
    up to FULL_LIMIT)."""
    from PIL import Image

    pic = to_uint8(a, look)
    if look.cmap != "gray" and pic.ndim == 2:
        pic = _lut(look.cmap)[pic]
    img = Image.fromarray(pic)  # L, RGB or RGBA from the shape
    limit = FULL_LIMIT if size is None else size
    img.thumbnail((limit, limit))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _check_index(s: StreamReader, i: int) -> None:
    if not 0 <= i < s.n_messages:
        raise NotFound(f"stream {s.name} has no message {i} (it has {s.n_messages})")


def frame_arrays(s: StreamReader, index: int) -> list[tuple[str, np.ndarray]]:
    """Message `index`'s typed frames of at least two dimensions, by array name."""
    _check_index(s, index)
    ft = s.frame_rows(index, index + 1)
    segments = s.array_segments()
    out = []
    for seg, off, placed in zip(ft.segment, ft.offset, ft.placed, strict=True):
        if seg < 0 or placed or seg >= len(segments):
            continue
        info = segments[int(seg)]
        if len(info.shape) < 2:
            continue
        out.append((info.name, np.asarray(s.read_segment(info.index, int(off), int(off) + 1)[0])))
    return out


def frame_array(s: StreamReader, index: int, array: str | None = None) -> np.ndarray:
    """Message `index`'s first image (or its image of array `array`)."""
    for name, a in frame_arrays(s, index):
        if array is None or name == array:
            return a
    which = f"image {array!r}" if array else "image"
    raise NotFound(f"message {index} of stream {s.name} has no {which}")


def frame_png(
    s: StreamReader, index: int, *, array: str | None, size: int | None, look: Look
) -> bytes:
    return render_png(frame_array(s, index, array), look.check(), size)


def plain(v) -> object:
    """One column value as JSON: numbers stay numbers, NaN and infinities become text."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")[:2000]
    if isinstance(v, float) and not np.isfinite(v):
        return str(v)
    if isinstance(v, str):
        return v[:2000]
    if isinstance(v, int | float | bool) or v is None:
        return v
    return str(v)[:2000]


def message_columns(s: StreamReader, index: int) -> dict[str, object]:
    """Every per-message column of message `index` (seq, times, NDAttributes, unique ids, train
    ids, Karabo scalars) except the storage bookkeeping."""
    out: dict[str, object] = {}
    for name in s.column_names():
        if name in BOOKKEEPING:
            continue
        col = s.column(name, index, index + 1)
        if len(col):
            out[name] = plain(col[0])
    return out


def _stats(a: np.ndarray) -> dict[str, float | None]:
    f = image_of(a).astype(np.float64)
    finite = f[np.isfinite(f)]
    if not finite.size:
        return {"min": None, "max": None, "mean": None, "p0_5": None, "p99_5": None}
    p_lo, p_hi = _percentiles(finite, [0.5, 99.5])
    return {
        "min": float(finite.min()),
        "max": float(finite.max()),
        "mean": float(finite.mean()),
        "p0_5": float(p_lo),
        "p99_5": float(p_hi),
    }


def frame_details(run: RunReader, s: StreamReader, index: int, array: str | None = None) -> dict:
    """What a viewer shows beside frame `index`: its number, receive time, unique id, every
    attribute stored with it, its images (name, dtype, shape) and the chosen one's values."""
    arrays = frame_arrays(s, index)
    chosen = next((a for name, a in arrays if array is None or name == array), None)
    if array is not None and chosen is None:
        raise NotFound(f"message {index} of stream {s.name} has no image {array!r}")
    columns = message_columns(s, index)
    recv_ns = int(s.column("recv_ns", index, index + 1)[0])
    unique = next(
        (columns[k] for k in ("unique_id", "uniqueId", "train_id") if k in columns),
        columns.get("seq"),
    )
    return {
        "stream": s.name,
        "index": index,
        "total": s.n_messages,
        "recv_ns": recv_ns,
        "t_s": (recv_ns - run.started_ns) / 1e9,
        "unique_id": unique,
        "attributes": columns,
        "images": [
            {"array": name, "dtype": str(a.dtype), "shape": list(a.shape)} for name, a in arrays
        ],
        "array": next((name for name, a in arrays if a is chosen), None),
        "stats": _stats(chosen) if chosen is not None else None,
    }
