"""A replayed request/reply service seen by clients written like zguide's hwclient (send, wait
for the reply with a timeout) and lpclient (Lazy Pirate: poll with a timeout, retry on a new
socket, give up with "server seems to be offline"): they must observe what they observed live.
The recording is real: a slow REP service that never answers one request, recorded through
the recorder's proxy."""

from __future__ import annotations

import threading
import time

import pytest
import zmq

from recorder.recording.recording import SourceSpec
from recorder.replay.responders import DEFAULT_UNKNOWN_REPLY
from recorder.store.reader import RunReader
from tests.helpers import free_port, local
from tests.recordhelp import received, record
from tests.replayhelp import replaying

SERVICE_S = 0.2  # the live service takes this long per reply
NEVER_ANSWERED = b"3"  # ... and never answers this request (then hangs, as a crashed server)
HELLOS = [b"Hello %d" % i for i in range(10)]
TIMEOUT_MS = 600  # lpclient's REQUEST_TIMEOUT
RETRIES = 3  # lpclient's REQUEST_RETRIES


def slow_service(ctx: zmq.Context, stop: threading.Event) -> tuple[str, threading.Thread]:
    sock = ctx.socket(zmq.REP)
    sock.linger = 0
    sock.bind("tcp://127.0.0.1:*")
    endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def serve():
        try:
            while not stop.is_set():
                if not sock.poll(50):
                    continue
                request = sock.recv()
                if request == NEVER_ANSWERED:
                    stop.wait()  # a REP that does not answer cannot take another request
                    return
                time.sleep(SERVICE_S)
                sock.send(b"World to " + request)
        finally:
            sock.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return endpoint, thread


def hwclient(ctx: zmq.Context, endpoint: str) -> list[tuple[bytes, bytes, float]]:
    """zguide's hwclient, with a timeout: (request, reply, seconds it took) for each Hello."""
    sock = ctx.socket(zmq.REQ)
    sock.linger = 0
    sock.connect(endpoint)
    seen = []
    try:
        for r in HELLOS:
            t0 = time.perf_counter()
            sock.send(r)
            assert sock.poll(10_000), f"no reply to {r!r}"
            seen.append((r, sock.recv(), time.perf_counter() - t0))
    finally:
        sock.close()
    return seen


def lpclient(ctx: zmq.Context, endpoint: str, requests: list[bytes]) -> list[tuple]:
    """zguide's Lazy Pirate client: what it saw, event by event."""
    seen: list[tuple] = []

    def connect():
        s = ctx.socket(zmq.REQ)
        s.linger = 0
        s.connect(endpoint)
        return s

    sock = connect()
    for r in requests:
        sock.send(r)
        left = RETRIES
        while True:
            if sock.poll(TIMEOUT_MS):
                seen.append(("reply", r, sock.recv()))
                break
            left -= 1
            sock.close()  # a REQ that got no reply is stuck: a new socket
            if left == 0:
                seen.append(("server seems to be offline", r))
                return seen
            seen.append(("no response, retrying", r))
            sock = connect()
            sock.send(r)
    sock.close()
    return seen


LP_REQUESTS = [b"1", b"2", NEVER_ANSWERED, b"4"]


@pytest.fixture
def live(ctx, tmp_path):
    """The recorded run and what the clients saw live."""
    stop = threading.Event()
    upstream, thread = slow_service(ctx, stop)
    seen = {}

    def talk(rec):
        endpoint = rec.streams[0].bound_endpoint
        seen["hw"] = hwclient(ctx, endpoint)
        seen["lp"] = lpclient(ctx, endpoint, LP_REQUESTS)

    spec = SourceSpec(endpoint="tcp://127.0.0.1:*", protocol="reqrep", upstream=upstream)
    try:
        path = record(tmp_path, spec, on_started=talk, until=received(len(HELLOS) + 2))
    finally:
        stop.set()
        thread.join(5)
    return path, seen


def recorded_latency_s(path) -> dict[bytes, float]:
    with RunReader(path) as run:
        [stream] = run.streams.values()
        latency = stream.column("latency_ns")
        out = {}
        for msg in stream.messages():
            request = bytes(msg.frames[1])
            if request in HELLOS:
                out[request] = float(latency[msg.index]) / 1e9
    return out


@pytest.mark.timeout(90)
def test_replay_answers_as_the_recorded_server_did(ctx, live):
    path, seen = live
    # what the clients saw live: slow replies, and a server that went quiet on request 3
    assert [reply for _, reply, _ in seen["hw"]] == [b"World to " + r for r in HELLOS]
    assert all(took >= SERVICE_S for *_, took in seen["hw"])
    assert seen["lp"][-1] == ("server seems to be offline", NEVER_ANSWERED)
    latency = recorded_latency_s(path)
    assert all(latency[r] >= SERVICE_S for r in HELLOS)

    port = free_port()
    with replaying(path, endpoints={"": local(port)}) as rp:
        hw = hwclient(ctx, local(port))
        # each reply as late as recorded, the same bytes
        assert [(r, reply) for r, reply, _ in hw] == [(r, reply) for r, reply, _ in seen["hw"]]
        for r, _, took in hw:
            assert took >= 0.8 * latency[r], (r, took, latency[r])
        # Lazy Pirate: replies 1 and 2, then the same timeouts and retries, then it gives up
        assert lpclient(ctx, local(port), LP_REQUESTS) == seen["lp"]
        # no cycling: a request asked once more than recorded gets no reply
        again = ctx.socket(zmq.REQ)
        again.linger = 0
        again.connect(local(port))
        again.send(HELLOS[0])
        assert not again.poll(TIMEOUT_MS), "a recorded reply was given twice"
        again.close()
        assert rp.status()["error"] is None
        assert rp.status()["messages"] == len(HELLOS) + 2


@pytest.mark.timeout(90)
def test_old_behaviour_is_still_available_as_options(ctx, live):
    path, seen = live
    port = free_port()
    options = {"reply_timing": "immediate", "unanswered": "unknown-reply", "cycle": True}
    with replaying(path, endpoints={"": local(port)}, **options) as rp:
        # the unanswered request gets the unknown-reply text at once, and the client goes on
        lp = lpclient(ctx, local(port), LP_REQUESTS)
        assert lp[:3] == [("reply", b"1", b"World to 1"), ("reply", b"2", b"World to 2"),
                          ("reply", NEVER_ANSWERED, DEFAULT_UNKNOWN_REPLY)]  # fmt: skip
        assert lp[3] == ("reply", b"4", DEFAULT_UNKNOWN_REPLY)  # never recorded
        hw = hwclient(ctx, local(port))
        hw_again = hwclient(ctx, local(port))  # --cycle: the same replies again
        assert [reply for _, reply, _ in hw_again] == [reply for _, reply, _ in hw]
        assert [reply for _, reply, _ in hw] == [reply for _, reply, _ in seen["hw"]]
        assert rp.status()["error"] is None


@pytest.mark.timeout(90)
def test_speed_scales_the_recorded_latency_and_loop_serves_the_replies_again(ctx, live):
    path, _ = live
    latency = recorded_latency_s(path)
    port = free_port()
    with replaying(path, endpoints={"": local(port)}, speed=4.0, loop=2) as rp:
        first = hwclient(ctx, local(port))
        for r, _, took in first:
            assert took >= 0.8 * latency[r] / 4, (r, took, latency[r])
        lpclient(ctx, local(port), LP_REQUESTS[:3])  # uses up the rest of the first loop
        second = hwclient(ctx, local(port))  # the second loop: the same replies again
        assert [reply for _, reply, _ in second] == [reply for _, reply, _ in first]
        assert rp.status()["error"] is None
