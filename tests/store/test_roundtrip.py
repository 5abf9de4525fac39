"""Random multipart messages recorded from real PUB, PUSH and REP senders come back identical."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.recording.recording import Recording, SourceSpec
from recorder.store.reader import RunReader

RECORDER_SOCKET = {"PUB": "SUB", "PUSH": "PULL", "REP": "REQ"}


def _size():
    # mostly small, sometimes empty, sometimes up to 4 MiB: the shapes real streams have
    return st.one_of(
        st.integers(0, 64),
        st.integers(0, 8192),
        st.integers(1 << 20, 4 << 20),
    )


messages_strategy = st.lists(
    st.lists(_size(), min_size=1, max_size=8), min_size=1, max_size=12
).flatmap(
    lambda sizes: st.integers(0, 2**32).map(
        lambda seed: [
            [random.Random(seed + i * 31 + j).randbytes(n) for j, n in enumerate(m)]
            for i, m in enumerate(sizes)
        ]
    )
)


def record_from(ctx, sender, tmp_path, kind, messages, **kw):
    s = sender(kind, messages)
    spec = SourceSpec(endpoint=s.endpoint, socket_type=RECORDER_SOCKET[kind])
    rec = Recording(tmp_path, [spec], count=len(messages), flush_interval=0.05, **kw)
    rec.start()
    rec.wait(poll=0.01)
    status = rec.finish()
    s.join(10)
    assert s.error is None
    return rec, status


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["PUB", "PUSH", "REP"])
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(messages=messages_strategy)
def test_random_messages_come_back_byte_identical(ctx, sender, tmp_path_factory, kind, messages):
    runs = tmp_path_factory.mktemp("runs")
    rec, status = record_from(ctx, sender, runs, kind, messages)
    assert status == "complete"
    with RunReader(rec.run.path) as run:
        got = [[bytes(f) for f in m.frames] for m in run.messages()]
        recv = [m.recv_ns for m in run.messages()]
    assert got == messages
    assert recv == sorted(recv)


@pytest.mark.timeout(60)
def test_req_recorder_sends_the_request_bytes(ctx, sender, tmp_path):
    s = sender("REP", [[b"a"], [b"b", b"c"]])
    spec = SourceSpec(endpoint=s.endpoint, socket_type="REQ", request=b"next\x00")
    rec = Recording(tmp_path, [spec], count=2)
    rec.start()
    rec.wait(poll=0.01)
    rec.finish()
    s.join(5)
    assert s.requests == [b"next\x00", b"next\x00"]


@pytest.mark.timeout(60)
def test_subscribe_prefixes_filter_on_the_first_frame(ctx, sender, tmp_path):
    msgs = [[b"keep-1", b"x"], [b"drop", b"y"], [b"keep-2"], [b"also", b"z"]]
    s = sender("PUB", msgs)
    spec = SourceSpec(endpoint=s.endpoint, socket_type="SUB", subscribe=[b"keep", b"also"])
    rec = Recording(tmp_path, [spec], count=3)
    rec.start()
    rec.wait(poll=0.01)
    rec.finish()
    with RunReader(rec.run.path) as run:
        got = [[bytes(f) for f in m.frames] for m in run.messages()]
    assert got == [msgs[0], msgs[2], msgs[3]]


@pytest.mark.timeout(60)
def test_pull_bind_records_from_connecting_pushers(ctx, tmp_path):
    import zmq

    spec = SourceSpec(endpoint="tcp://127.0.0.1:*", socket_type="PULL", bind=True)
    rec = Recording(tmp_path, [spec], count=50)
    rec.start()
    push = ctx.socket(zmq.PUSH)
    push.connect(rec.streams[0].bound_endpoint)
    for i in range(50):
        push.send_multipart([b"%d" % i, bytes(i)])
    rec.wait(poll=0.01)
    rec.finish()
    push.close()
    with RunReader(rec.run.path) as run:
        assert [bytes(m.frames[0]) for m in run.messages()] == [b"%d" % i for i in range(50)]
        assert run.stream("main").role == "bind"


@pytest.mark.timeout(60)
def test_queue_overflow_drops_are_counted_never_silent(ctx, sender, tmp_path):
    """A writer that cannot keep up (a flush per batch, a 1-byte queue) must drop, and say so."""
    sent = [[b"%06d" % i, bytes(200)] for i in range(20000)]
    s = sender("PUSH", sent)
    spec = SourceSpec(endpoint=s.endpoint, socket_type="PULL")
    rec = Recording(tmp_path, [spec], count=len(sent), flush_interval=0.0005, queue_bytes=1)
    rec.start()
    rec.wait(poll=0.01)
    assert rec.finish() == "complete"
    stats = rec.stats()
    with RunReader(rec.run.path) as run:
        stored = [bytes(m.frames[0]) for m in run.messages()]
        summary = run.summary()
    assert stats["drops"] > 0
    assert summary["drops"] == stats["drops"]
    assert len(stored) + summary["drops"] == len(sent)
    numbers = [int(h) for h in stored]
    assert numbers == sorted(numbers)  # what was kept is in order, only whole batches are gone
