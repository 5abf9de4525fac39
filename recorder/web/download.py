"""`GET /api/v1/runs/<id>/download`: the run folder as one zip, streamed while it is built.

A run is a zarr folder of many small files; a zip is what a browser can save in one click and
what zarr-python opens directly (ZipStore) or unpacks anywhere. The chunks are stored, not
compressed again (most are raw detector data), and the zip is written piece by piece so memory
stays flat whatever the run's size.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

from flask import Response, stream_with_context

from recorder.store import spool
from recorder.web.api import api, state
from recorder.web.runs import run_path

PIECE = 1 << 20


class _Sink(io.RawIOBase):
    """An unseekable file that hands out what was written since the last `take()`."""

    def __init__(self):
        self.buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.buf += b
        return len(b)

    def take(self) -> bytes:
        out, self.buf = bytes(self.buf), bytearray()
        return out


def zip_pieces(folder: Path, top: str) -> Iterator[bytes]:
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            name = f"{top}/{path.relative_to(folder).as_posix()}"
            with path.open("rb") as src, zf.open(name, "w", force_zip64=True) as dst:
                while piece := src.read(PIECE):
                    dst.write(piece)
                    if len(sink.buf) >= PIECE:
                        yield sink.take()
            yield sink.take()
        for key in spool.bucket_only(folder):  # a run in an object store: chunks from there
            zf.writestr(f"{top}/{key}", spool.read_from_bucket(folder, key))
            yield sink.take()
    yield sink.take()


@api.op("GET", "/runs/<run_id>/download", tag="runs", media="application/zip")
def download_run(run_id: str):
    """The run's folder as a zip (zarr opens it directly); streamed, not compressed again."""
    folder = run_path(state().runs_dir, run_id)
    resp = Response(stream_with_context(zip_pieces(folder, run_id)), mimetype="application/zip")
    resp.headers["Content-Disposition"] = f'attachment; filename="{run_id}.zip"'
    return resp
