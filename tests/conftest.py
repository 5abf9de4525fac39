"""Shared fixtures: real sockets on loopback with random ports, real data folders in tmp_path."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def data(tmp_path) -> Path:
    """A data folder as the recorder makes it (runs/ and the rest), in tmp_path."""
    from recorder import config

    d = tmp_path / "data"
    config.data_dir(d)
    return d


class Sender(threading.Thread):
    """Serves a fixed list of multipart messages from a bound socket in a thread.

    PUB uses XPUB (the same wire protocol) so it can wait for the subscriber's subscription
    before the first message instead of sleeping and hoping.
    """

    def __init__(self, ctx: zmq.Context, kind: str, messages: list[list[bytes]]):
        super().__init__(daemon=True)
        self.kind, self.messages = kind, messages
        sock_type = {"PUB": zmq.XPUB, "PUSH": zmq.PUSH, "REP": zmq.REP}[kind]
        self.sock = ctx.socket(sock_type)
        self.sock.linger = 2000
        self.sock.sndhwm = 0
        self.sock.bind("tcp://127.0.0.1:*")
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.error: BaseException | None = None
        self.requests: list[bytes] = []

    def run(self) -> None:
        try:
            if self.kind == "PUB":
                if not self.sock.poll(20_000):
                    raise TimeoutError("no subscriber joined")
                self.sock.recv()  # the subscription
            for msg in self.messages:
                if self.kind == "REP":
                    if not self.sock.poll(20_000):
                        raise TimeoutError("no request")
                    self.requests.append(self.sock.recv())
                self.sock.send_multipart(msg, copy=len(msg) == 0 or max(map(len, msg)) < 65536)
        except BaseException as exc:  # reported by the test through .error
            self.error = exc
        finally:
            self.sock.close()


@pytest.fixture
def sender(ctx) -> Callable[[str, list[list[bytes]]], Sender]:
    started: list[Sender] = []

    def make(kind: str, messages: list[list[bytes]]) -> Sender:
        s = Sender(ctx, kind, messages)
        started.append(s)
        s.start()
        return s

    yield make
    for s in started:
        s.join(5)


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL server of this test process's own (tests/pg.py), started on first use;
    the tests that need it are skipped where no server binary exists."""
    from tests import pg

    reason = pg.unavailable()
    if reason:
        pytest.skip(reason)
    server = pg.PgServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def pg_url(pg_server) -> Iterator[str]:
    """A fresh, empty database on the test server, dropped after the test."""
    if not pg_server.running():  # a test that stopped it failed before starting it again
        pg_server.start()
    url = pg_server.create_database()
    yield url
    pg_server.drop_database(url)
