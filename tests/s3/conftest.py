"""Fixtures for runs in an object store: a moto S3 server (in-process, random port) with a
bucket, the AWS variables pointing at it (through tests/s3/s3help.S3Proxy), and a state folder
in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.s3.s3help import BUCKET, KEY_ID, S3Proxy


@pytest.fixture(scope="session")
def moto_server() -> Iterator[tuple[str, int]]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        yield server.get_host_and_port()
    finally:
        server.stop()


@pytest.fixture
def s3(moto_server, monkeypatch, tmp_path) -> Iterator[S3Proxy]:
    """The S3 proxy in front of moto, with a fresh bucket and the environment set for it."""
    import boto3

    proxy = S3Proxy(moto_server).start()
    for key, value in {
        "AWS_ENDPOINT_URL": proxy.url,
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "RECORDER_STATE": str(tmp_path / "state"),
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    client = boto3.client("s3", endpoint_url=f"http://{moto_server[0]}:{moto_server[1]}")
    if BUCKET not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=BUCKET)
    prefix = tmp_path.name  # one prefix per test: tests share the server and the bucket
    proxy.data_url = f"s3://{BUCKET}/{prefix}"  # type: ignore[attr-defined]
    proxy.client = client  # type: ignore[attr-defined]
    proxy.prefix = prefix  # type: ignore[attr-defined]
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()


@pytest.fixture
def state(s3) -> Path:
    from recorder import config

    return config.data_dir(s3.data_url)
