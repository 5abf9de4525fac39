"""Uploading a run from the local spool to its bucket as its files become final.

The recorder writes a run exactly as on a local disk (chunk files renamed into place, counts
committed by each flush), into the state folder's `runs/` (store/location.py). An `Uploader`
per run copies it to PREFIX/runs/RUN_ID/ in passes: after every flush of one of its streams
and once a second. A pass reads every `zarr.json` first, then uploads the chunk files that are
new or changed, then those metadata snapshots (deepest first, the run's root last). A chunk
only grows between a snapshot and its upload, so whatever the bucket holds at any moment
reads as the run did at some earlier flush: the same crash rule as on disk, one pass later.

When the run closes, a last pass mirrors the spool (objects the spool no longer has, e.g.
shards a compaction replaced, are deleted), `.upload.json` says `uploaded`, and the chunk
files are dropped from the spool (metadata stays: listing and indexing runs stay local; the
reader fetches chunks from the bucket, store/objects.py). RECORDER_SPOOL_KEEP=1 keeps them.

A bucket that refuses a write (AccessDenied, quota, gone) stops the upload; the next flush of
the recording raises StoreError, which stops the recording as a full disk does. The run stays
whole in the spool and `recorder recover` uploads it once the bucket takes writes again.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from recorder.errors import StoreError
from recorder.store import layout, location
from recorder.store.location import S3Location

MARKER = ".upload.json"
KEEP_ENV = "RECORDER_SPOOL_KEEP"
UPLOADING, UPLOADED = "uploading", "uploaded"
_PASS_EVERY_S = 1.0
_SKIP_DIRS = (".compact", ".old")  # a compaction in progress: not part of the run yet
_PARALLEL = 8


def upload_target(run_dir: Path) -> S3Location | None:
    """The bucket location a spooled run folder is uploaded to (None: a plain local run)."""
    try:
        doc = json.loads((Path(run_dir) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return location.parse(doc["url"])


def upload_state(run_dir: Path) -> str | None:
    try:
        return json.loads((Path(run_dir) / MARKER).read_text()).get("state")
    except (OSError, ValueError):
        return None


def _write_marker(run_dir: Path, loc: S3Location, state: str, error: str | None = None) -> None:
    tmp = run_dir / f"{MARKER}.{uuid.uuid4().hex}.partial"
    tmp.write_text(json.dumps({"url": loc.url, "state": state, "error": error}))
    os.replace(tmp, run_dir / MARKER)


def _files(run_dir: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """(metadata files, other files) of a run folder by object key, leaving out temporary
    files and the upload marker."""
    meta: dict[str, Path] = {}
    data: dict[str, Path] = {}
    for folder, subfolders, files in os.walk(run_dir):
        subfolders[:] = [d for d in subfolders if not d.endswith(_SKIP_DIRS)]
        rel = Path(folder).relative_to(run_dir).as_posix()
        for name in files:
            if name.endswith(".partial") or name.startswith(MARKER):
                continue
            key = name if rel == "." else f"{rel}/{name}"
            (meta if name == "zarr.json" else data)[key] = Path(folder) / name
    return meta, data


class Uploader:
    """Copies one spooled run to its bucket, in the background, pass after pass."""

    def __init__(self, run_dir: Path, loc: S3Location):
        self.run_dir, self.loc = Path(run_dir), loc
        self.store = location.s3_store(loc, f"{layout.RUNS_DIR}/{self.run_dir.name}")
        self.error: StoreError | None = None
        self._sent: dict[str, tuple[int, int]] = {}  # data file key -> (size, mtime_ns)
        self._sent_meta: dict[str, bytes] = {}
        self._lock = threading.Lock()  # one pass at a time
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(_PARALLEL, thread_name_prefix="upload")
        self.bytes_sent = 0
        _write_marker(self.run_dir, loc, UPLOADING)
        self._thread: threading.Thread | None = None

    def start(self) -> Uploader:
        self._thread = threading.Thread(target=self._loop, name="upload", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(_PASS_EVERY_S)
            self._wake.clear()
            if self._stop.is_set() or self.error is not None:
                return
            self.upload_pass()

    def check(self) -> None:
        """After a flush: raise the upload's failure (the recording stops), else ask for a pass
        (the flush just made files final)."""
        if self.error is not None:
            raise self.error
        self._wake.set()

    def _put(self, key: str, data: bytes) -> None:
        import obstore

        obstore.put(self.store, key, data)

    def upload_pass(self, *, mirror: bool = False) -> bool:
        """One pass (see the module's docstring); False (and `error` set) if the bucket refused."""
        with self._lock:
            try:
                self._upload(mirror)
            except StoreError as exc:
                self.error = exc
            except Exception as exc:  # obstore's own errors: said in one line, naming the bucket
                self.error = StoreError(
                    f"{location.describe(exc, self.loc)}: run {self.run_dir.name} stopped, its "
                    f"data kept in the spool at {self.run_dir}; `recorder recover "
                    f"{self.run_dir.name}` uploads it"
                )
            return self.error is None

    def _upload(self, mirror: bool) -> None:
        meta_paths, _ = _files(self.run_dir)
        snapshot: dict[str, bytes] = {}
        for key, path in meta_paths.items():
            try:
                snapshot[key] = path.read_bytes()
            except FileNotFoundError:
                continue  # a node replaced in between: the next pass has it
        _, data = _files(self.run_dir)  # listed after the metadata it must cover
        jobs = []
        for key, path in data.items():
            try:
                st = path.stat()
                stamp = (st.st_size, st.st_mtime_ns)
                if self._sent.get(key) == stamp:
                    continue
                body = path.read_bytes()
            except FileNotFoundError:
                continue
            jobs.append((key, body, stamp))
        for (key, body, stamp), future in zip(
            jobs, [self._pool.submit(self._put, k, b) for k, b, _ in jobs], strict=True
        ):
            future.result()
            self._sent[key] = stamp
            self.bytes_sent += len(body)
        changed = {k: v for k, v in snapshot.items() if self._sent_meta.get(k) != v}
        # arrays' metadata (their shapes) before groups' (a stream's committed counts), the
        # run's root (its status) last: a reader never sees counts beyond an array's shape
        arrays = [k for k, v in changed.items() if _node_type(v) == "array"]
        groups = [k for k in changed if k not in arrays and k != "zarr.json"]
        for wave in (arrays, groups, ["zarr.json"] if "zarr.json" in changed else []):
            for key, future in [(k, self._pool.submit(self._put, k, changed[k])) for k in wave]:
                future.result()
                self._sent_meta[key] = changed[key]
        if mirror:
            self._mirror(set(snapshot) | set(data))

    def _mirror(self, local: set[str]) -> None:
        import obstore

        stale = [
            o["path"] for batch in obstore.list(self.store) for o in batch if o["path"] not in local
        ]
        if stale:
            obstore.delete(self.store, stale)
        for key in stale:
            self._sent.pop(key, None)

    def finish(self) -> StoreError | None:
        """The run is closed: stop the passes, mirror it, and drop its chunks from the spool.
        Returns the failure (the run stays whole in the spool) or None."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        if self.error is None:
            self.upload_pass(mirror=True)
        self._pool.shutdown(wait=True)
        if self.error is not None:
            _write_marker(self.run_dir, self.loc, UPLOADING, str(self.error))
            return self.error
        _write_marker(self.run_dir, self.loc, UPLOADED)
        if not os.environ.get(KEEP_ENV):
            evict(self.run_dir)
        return None


def _node_type(doc: bytes) -> str | None:
    try:
        return json.loads(doc).get("node_type")
    except ValueError:
        return None  # caught while being written: the next pass sends it whole


def evict(run_dir: Path) -> None:
    """Drop an uploaded run's chunk files from the spool (its metadata stays)."""
    _, data = _files(run_dir)
    for path in data.values():
        path.unlink(missing_ok=True)


def start(run_dir: Path) -> Uploader | None:
    """An Uploader for a run being created in `run_dir`, if its runs folder is the spool of
    an object store (store/location.py), else None."""
    loc = location.remote_of(Path(run_dir).parent.parent)
    if loc is None:
        return None
    return Uploader(run_dir, loc).start()


def upload(run_dir: Path) -> None:
    """Upload a whole spooled run now (recover: after a repair, or once the bucket takes
    writes again); StoreError if the bucket refuses."""
    loc = upload_target(run_dir)
    if loc is None:
        return
    up = Uploader(run_dir, loc)
    error = up.finish()
    if error is not None:
        raise error


def push_metadata(run_dir: Path, keys: list[str]) -> None:
    """Put these metadata files of an uploaded run (an edit after it closed: tags, notes, its
    session) into the bucket, so other hosts see them. A run still uploading gets them with its
    next pass, or from `recover`; StoreError (naming the bucket) if the bucket refuses."""
    if upload_state(run_dir) != UPLOADED:
        return
    loc = upload_target(run_dir)
    if loc is None:
        return
    import obstore

    store = location.s3_store(loc, f"{layout.RUNS_DIR}/{Path(run_dir).name}")
    try:
        for key in keys:  # the changed node first, the run's root (its consolidated copy) last
            obstore.put(store, key, (Path(run_dir) / key).read_bytes())
    except FileNotFoundError:
        return
    except Exception as exc:
        raise StoreError(
            f"{location.describe(exc, loc)}: the edit of run {Path(run_dir).name} is kept here "
            "but not in the bucket yet"
        ) from exc


def bucket_only(run_dir: Path) -> list[str]:
    """The objects of a spooled run that the spool no longer holds (its chunks, once uploaded):
    what a whole copy of the run (a download) needs from the bucket. [] for a local run."""
    import obstore

    loc = upload_target(run_dir)
    if loc is None:
        return []
    store = location.s3_store(loc, f"{layout.RUNS_DIR}/{Path(run_dir).name}")
    local = {p.relative_to(run_dir).as_posix() for p in Path(run_dir).rglob("*") if p.is_file()}
    try:
        found = [o["path"] for batch in obstore.list(store) for o in batch]
        return sorted(k for k in found if k not in local)
    except Exception as exc:
        raise StoreError(location.describe(exc, loc)) from None


def read_from_bucket(run_dir: Path, key: str) -> bytes:
    """One object of a spooled run, from the bucket."""
    import obstore

    loc = upload_target(run_dir)
    if loc is None:
        raise StoreError(f"{run_dir} is not a run of an object store")
    store = location.s3_store(loc, f"{layout.RUNS_DIR}/{Path(run_dir).name}")
    try:
        return bytes(obstore.get(store, key).bytes())
    except Exception as exc:
        raise StoreError(location.describe(exc, loc)) from None


def pending(runs_dir: Path) -> list[Path]:
    """Spooled runs whose upload has not finished (a killed recorder, a refusing bucket)."""
    if not runs_dir.is_dir():
        return []
    return sorted(p for p in runs_dir.iterdir() if p.is_dir() and upload_state(p) == UPLOADING)


def pull_metadata(runs_dir: Path) -> list[str]:
    """Runs in the bucket that this state folder's spool does not know yet (recorded by
    another host, or before the state folder was made): their metadata (every zarr.json, a
    few kB) is copied into the spool, marked uploaded, so they list, resolve and index like
    the rest. Returns their ids."""
    import obstore

    loc = location.remote_of(Path(runs_dir).parent)
    if loc is None:
        return []
    store = location.s3_store(loc, layout.RUNS_DIR)
    try:
        found = obstore.list_with_delimiter(store)["common_prefixes"]
    except Exception as exc:
        raise StoreError(location.describe(exc, loc)) from None
    new = []
    for prefix in found:
        run_id = prefix.rstrip("/").rsplit("/", 1)[-1]
        if (runs_dir / run_id).exists() or not _safe(run_id):
            continue
        tmp = runs_dir / f".{run_id}.{uuid.uuid4().hex}.pull"
        try:
            for batch in obstore.list(store, prefix=f"{run_id}/"):
                for o in batch:
                    if not o["path"].endswith("zarr.json"):
                        continue
                    rel = o["path"][len(run_id) + 1 :]
                    target = tmp / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(bytes(obstore.get(store, o["path"]).bytes()))
            if not (tmp / "zarr.json").is_file():
                continue
            _write_marker(tmp, loc, UPLOADED)
            os.replace(tmp, runs_dir / run_id)
            new.append(run_id)
        except Exception as exc:
            raise StoreError(location.describe(exc, loc)) from None
        finally:
            if tmp.exists():
                import shutil

                shutil.rmtree(tmp, ignore_errors=True)
    return new


def _safe(run_id: str) -> bool:
    try:
        layout.check_name("run id", run_id)
        return True
    except Exception:
        return False
