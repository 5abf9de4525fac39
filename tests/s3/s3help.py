"""A real S3 API server for the tests: moto in server mode on a random loopback port, behind a
small HTTP proxy that can play the two failures a lab meets (unknown credentials, a bucket that
stops taking writes) the way S3 answers them: 403 with S3's own error document."""

from __future__ import annotations

import http.client
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEY_ID = "testing"
_CREDENTIAL = re.compile(r"Credential=([^/]+)/")

_ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
    "<Message>{message}</Message><BucketName>{bucket}</BucketName></Error>"
)


class S3Proxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: tuple[str, int]):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.refuse_writes: str | None = None  # an S3 error code for every PUT/POST/DELETE
        self.refused = 0
        self.stopped = False  # answer nothing: the connection is closed at once

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> S3Proxy:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: S3Proxy

    def log_message(self, *args) -> None:
        pass

    def _answer(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        for k, v in headers:
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, code: str, message: str) -> None:
        bucket = self.path.lstrip("/").split("/", 1)[0].split("?", 1)[0]
        body = _ERROR.format(code=code, message=message, bucket=bucket).encode()
        self._answer(403, body, [("Content-Type", "application/xml")])

    def _any(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        found = _CREDENTIAL.search(self.headers.get("Authorization", ""))
        if found and found[1] != KEY_ID:
            return self._error("InvalidAccessKeyId", "The AWS Access Key Id does not exist.")
        if self.server.refuse_writes and self.command in ("PUT", "POST", "DELETE"):
            self.server.refused += 1
            return self._error(self.server.refuse_writes, "Writes refused.")
        conn = http.client.HTTPConnection(*self.server.upstream, timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            self._answer(resp.status, data, resp.getheaders())
        finally:
            conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any


BUCKET = "lab-runs"


def keys(s3, under: str = "") -> list[str]:
    """The object keys under the test's prefix (relative to it)."""
    out, token = [], None
    while True:
        kw = {"Bucket": BUCKET, "Prefix": f"{s3.prefix}/{under}"}
        if token:
            kw["ContinuationToken"] = token
        page = s3.client.list_objects_v2(**kw)
        out += [o["Key"][len(s3.prefix) + 1 :] for o in page.get("Contents", [])]
        token = page.get("NextContinuationToken")
        if not token:
            return out
