"""Where runs live when `--data` names an object store (`s3://bucket/prefix`).

Runs are recorded into a local spool and uploaded as their files become final
(`store/spool.py`, docs/storage.md says why), so a recording never waits on the network and
what a flush committed survives a SIGKILL on the local disk. Everything else the data folder
holds (the SQLite catalog, sessions/, live/, locks, the spool itself) is local state: it lives
in a state folder, RECORDER_STATE or ~/.cache/zmq-recorder/s3/BUCKET/PREFIX, whose
`object-store.json` names the bucket it mirrors. The bucket holds the runs only, under
PREFIX/runs/RUN_ID/, each a plain zarr v3 group any zarr reader opens.

Endpoint and credentials come from the usual AWS variables (AWS_ENDPOINT_URL_S3 or
AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION or
AWS_DEFAULT_REGION): the same ones boto3, the aws CLI and s3fs read.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from recorder.errors import DataFolderError, UsageError
from recorder.store import layout

SCHEME = "s3://"
STATE_ENV = "RECORDER_STATE"
MARKER = "object-store.json"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


def is_url(text: str | os.PathLike | None) -> bool:
    return isinstance(text, str) and text.startswith(SCHEME)


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key prefix (no slashes at either end; may be empty)."""

    bucket: str
    prefix: str = ""

    @property
    def url(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}".rstrip("/")

    def key(self, *parts: str) -> str:
        """The object key of a path under the prefix (parts joined with /)."""
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))

    def runs_key(self) -> str:
        return self.key(layout.RUNS_DIR)

    def run_url(self, run_id: str) -> str:
        return f"{SCHEME}{self.bucket}/{self.key(layout.RUNS_DIR, run_id)}"


def parse(text: str) -> S3Location:
    """`s3://bucket[/prefix]` (UsageError for anything else)."""
    if not is_url(text):
        raise UsageError(f"not an object store URL: {text!r} (s3://bucket/prefix)")
    bucket, _, prefix = text[len(SCHEME) :].partition("/")
    if not _BUCKET.match(bucket):
        raise UsageError(f"not a bucket name: {bucket!r} in {text!r}")
    prefix = "/".join(p for p in prefix.split("/") if p)
    if any(p in (".", "..") for p in prefix.split("/")):
        raise UsageError(f"no . or .. in an object store prefix: {text!r}")
    return S3Location(bucket, prefix)


def state_folder(loc: S3Location) -> Path:
    """The local folder for everything but the runs' final copy (catalog, sessions, spool)."""
    chosen = os.environ.get(STATE_ENV)
    if chosen:
        return Path(chosen).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "zmq-recorder" / "s3" / loc.bucket / (loc.prefix or "_")


def bind(state: Path, loc: S3Location) -> None:
    """Say in the state folder which bucket it mirrors (one state folder, one bucket)."""
    marker = state / MARKER
    doc = {"url": loc.url}
    if marker.is_file():
        was = json.loads(marker.read_text()).get("url")
        if was != loc.url:
            raise DataFolderError(
                f"state folder {state} belongs to {was}, not {loc.url}: set {STATE_ENV}"
            )
        return
    tmp = marker.with_name(f"{MARKER}.{uuid.uuid4().hex}.partial")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, marker)


def remote_of(folder: Path) -> S3Location | None:
    """The bucket a state (data) folder mirrors, or None for a plain local data folder."""
    try:
        doc = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return parse(doc["url"])


def endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def store_config(*, quick: bool = False) -> dict[str, Any]:
    """obstore S3Store keyword arguments from the AWS environment variables. `quick`: few
    retries and short timeouts, for the check at start (an unreachable store must say so in
    seconds, not after a minute of retries)."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    cfg: dict[str, Any] = {"region": region or "us-east-1"}
    for key, env in (
        ("access_key_id", "AWS_ACCESS_KEY_ID"),
        ("secret_access_key", "AWS_SECRET_ACCESS_KEY"),
        ("token", "AWS_SESSION_TOKEN"),
    ):
        if os.environ.get(env):
            cfg[key] = os.environ[env]
    url = endpoint()
    client: dict[str, Any] = {"connect_timeout": "3s" if quick else "10s"}
    if url:
        cfg["endpoint"] = url
        if url.startswith("http://"):
            client["allow_http"] = True
    cfg["client_options"] = client
    tries = 1 if quick else 5
    cfg["retry_config"] = {
        "max_retries": tries,
        "backoff": {
            "init_backoff": timedelta(milliseconds=100),
            "max_backoff": timedelta(seconds=2 if quick else 10),
            "base": 2,
        },
        "retry_timeout": timedelta(seconds=5 if quick else 60),
    }
    return cfg


def _obstore():
    try:
        import obstore
        import obstore.store
    except ImportError:
        raise DataFolderError(
            "object store data (s3://) needs obstore: pip install 'zmq-recorder[s3]'"
        ) from None
    return obstore


def s3_store(loc: S3Location, key: str = "", *, quick: bool = False):
    """An obstore S3Store rooted at `key` (under the location's prefix when given)."""
    S3Store = _obstore().store.S3Store

    prefix = loc.key(key) if key else loc.prefix
    return S3Store(loc.bucket, prefix=prefix or None, **store_config(quick=quick))


def describe(exc: BaseException, loc: S3Location) -> str:
    """One line for an object store error: what went wrong, naming the bucket."""
    text = str(exc)
    where = endpoint() or "AWS"
    for code, why in (
        ("InvalidAccessKeyId", "does not know the access key (AWS_ACCESS_KEY_ID)"),
        ("SignatureDoesNotMatch", "refused the secret key (AWS_SECRET_ACCESS_KEY)"),
        ("ExpiredToken", "says the session token expired (AWS_SESSION_TOKEN)"),
        ("AccessDenied", "denied access"),
        ("NoSuchBucket", "has no such bucket"),
        ("QuotaExceeded", "says the bucket's quota is exceeded"),
        ("EntityTooLarge", "refused an object as too large"),
    ):
        if code in text:
            return f"object store {where} {why} for bucket {loc.bucket} ({code})"
    if "error sending request" in text or "Connect" in text or "dns error" in text:
        return f"cannot reach the object store {where} for bucket {loc.bucket}"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"object store {where}, bucket {loc.bucket}: {first[:300]}"


def check(loc: S3Location, *, write: bool) -> None:
    """Reach the bucket once at start (DataFolderError with one clear line if not): list the
    prefix, and with `write` put and delete a probe object, so wrong credentials or a
    read-only bucket are said before any recording starts rather than in the middle of one."""
    obstore = _obstore()
    store = s3_store(loc, quick=True)
    try:
        obstore.list_with_delimiter(store, layout.RUNS_DIR)
        if write:
            probe = f"{layout.RUNS_DIR}/.probe-{uuid.uuid4().hex}"
            obstore.put(store, probe, b"")
            obstore.delete(store, probe)
    except Exception as exc:  # obstore raises its own classes, OSError subclasses among them
        raise DataFolderError(describe(exc, loc)) from None
